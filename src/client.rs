//! The gRPC client a pipeline job runs (`portcullis check`) and the tests use: send a check,
//! follow the decision until it is final, and classify failures so the caller can exit with a
//! code that means something.

use std::path::PathBuf;
use std::time::Duration;

use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};

use crate::pb;
use crate::pb::gate_client::GateClient as PbClient;

/// Why no usable answer came back.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The service refused the request as malformed; retrying will not help.
    #[error("the service rejected the request: {0}")]
    BadInput(String),
    /// Token missing, wrong, or lacking the role.
    #[error("not allowed: {0}")]
    Auth(String),
    /// Could not reach the service, or it could not decide (store down, shutting down).
    #[error("no decision from the service: {0}")]
    Unreachable(String),
    /// The deadline passed before a final decision.
    #[error("the deadline passed before the decision was final")]
    Deadline,
}

impl ClientError {
    fn from_status(s: &Status) -> Self {
        if let Some(problem) = crate::tls::classify(s) {
            return ClientError::Unreachable(tls_message(problem));
        }
        let msg = s.message().to_string();
        match s.code() {
            Code::InvalidArgument
            | Code::AlreadyExists
            | Code::FailedPrecondition
            | Code::NotFound => ClientError::BadInput(msg),
            Code::Unauthenticated | Code::PermissionDenied => ClientError::Auth(msg),
            _ => ClientError::Unreachable(format!("{}: {msg}", s.code())),
        }
    }

    /// Whether trying again (with the same idempotency key or decision id) may help.
    pub fn is_transient(&self) -> bool {
        matches!(self, ClientError::Unreachable(_))
    }
}

/// What to say about a failed handshake with the service, with the flag that fixes it.
fn tls_message(problem: crate::tls::TlsProblem) -> String {
    use crate::tls::TlsProblem;
    let fix = match problem {
        TlsProblem::UntrustedIssuer => {
            ": the service's certificate is not signed by a trusted CA; pass its CA with --ca-cert"
        }
        TlsProblem::HostnameMismatch => {
            ": the service's certificate does not name the host in --server; use a name it lists"
        }
        TlsProblem::Expired => {
            ": the service's certificate has expired; its operator must renew it"
        }
        TlsProblem::ClientCertificateRefused => {
            ": the service requires a client certificate it trusts; pass --client-cert and --client-key"
        }
        _ => "",
    };
    format!("tls handshake with the service failed ({problem}){fix}")
}

/// TLS towards the service (an `https://` server URL): the system's roots plus `ca_cert`, and
/// a client certificate when the service requires one.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM bundle of CAs trusted in addition to the system's roots.
    pub ca_cert: Option<PathBuf>,
    /// PEM client certificate chain.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's PEM private key.
    pub client_key: Option<PathBuf>,
}

impl TlsOptions {
    fn is_empty(&self) -> bool {
        self.ca_cert.is_none() && self.client_cert.is_none() && self.client_key.is_none()
    }

    fn tonic(&self) -> Result<ClientTlsConfig, ClientError> {
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|e| {
                ClientError::BadInput(format!("cannot read `{}`: {}", p.display(), e.kind()))
            })
        };
        let mut config = ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &self.ca_cert {
            config = config.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                // The key's bytes go straight to rustls; they are never formatted.
                config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            (None, None) => {}
            _ => {
                return Err(ClientError::BadInput(
                    "--client-cert and --client-key go together".into(),
                ));
            }
        }
        Ok(config)
    }
}

#[derive(Clone)]
struct Bearer(Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A connection to the gate's gRPC API.
#[derive(Clone)]
pub struct GateClient {
    inner: PbClient<InterceptedService<Channel, Bearer>>,
}

impl std::fmt::Debug for GateClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateClient").finish_non_exhaustive()
    }
}

impl GateClient {
    /// Prepares a lazily connecting client; connection errors surface on the first call.
    pub fn new(
        server: &str,
        token: Option<&str>,
        connect_timeout: Duration,
    ) -> Result<Self, ClientError> {
        Self::with_tls(server, token, connect_timeout, &TlsOptions::default())
    }

    /// [`GateClient::new`] with TLS options for an `https://` server.
    pub fn with_tls(
        server: &str,
        token: Option<&str>,
        connect_timeout: Duration,
        tls: &TlsOptions,
    ) -> Result<Self, ClientError> {
        let mut endpoint = Endpoint::from_shared(server.to_string())
            .map_err(|e| {
                ClientError::BadInput(format!("`{server}` is not a valid server URL: {e}"))
            })?
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true);
        if server.starts_with("https://") {
            endpoint = endpoint.tls_config(tls.tonic()?).map_err(|e| {
                ClientError::BadInput(format!("cannot set up tls for `{server}`: {e}"))
            })?;
        } else if !tls.is_empty() {
            return Err(ClientError::BadInput(format!(
                "tls options are given but `{server}` is not an https:// URL: use https://"
            )));
        }
        let channel = endpoint.connect_lazy();
        let bearer = match token {
            Some(t) => Some(format!("Bearer {t}").parse().map_err(|_| {
                ClientError::BadInput("the token has characters not allowed in a header".into())
            })?),
            None => None,
        };
        Ok(Self {
            inner: PbClient::with_interceptor(channel, Bearer(bearer)),
        })
    }

    /// Sends a check, retrying transient failures until `deadline`. Retrying is safe only with
    /// an idempotency key; without one a single attempt is made.
    pub async fn check(
        &mut self,
        request: pb::CheckRequest,
        deadline: Instant,
    ) -> Result<pb::Decision, ClientError> {
        self.check_reporting(request, deadline, |_| {}).await
    }

    /// [`GateClient::check`], telling `on_retry` about each transient failure it will retry.
    pub async fn check_reporting(
        &mut self,
        request: pb::CheckRequest,
        deadline: Instant,
        mut on_retry: impl FnMut(&ClientError),
    ) -> Result<pb::Decision, ClientError> {
        let retry = !request.idempotency_key.is_empty();
        let mut backoff = Duration::from_millis(200);
        loop {
            let mut req = Request::new(request.clone());
            req.set_timeout(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            );
            match self.inner.check(req).await {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(s) => {
                    let e = ClientError::from_status(&s);
                    if !(retry && e.is_transient()) || Instant::now() + backoff >= deadline {
                        return Err(e);
                    }
                    on_retry(&e);
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    /// Reads a decision once.
    pub async fn get(&mut self, id: &str) -> Result<pb::Decision, ClientError> {
        self.inner
            .get_decision(pb::GetDecisionRequest { id: id.to_string() })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| ClientError::from_status(&s))
    }

    /// Follows a decision until it is final or `deadline` passes, reconnecting after transient
    /// errors. `on_update` sees every version. Never creates a decision.
    pub async fn wait_final(
        &mut self,
        id: &str,
        deadline: Instant,
        on_update: impl FnMut(&pb::Decision),
    ) -> Result<pb::Decision, ClientError> {
        self.wait_final_reporting(id, deadline, None, on_update, |_| {})
            .await
    }

    /// [`GateClient::wait_final`] until `stop` completes instead of a deadline (then
    /// [`ClientError::Deadline`]): the caller decides when waiting is over, by an event or its
    /// own clock, rather than by tokio's timer.
    pub async fn wait_final_until(
        &mut self,
        id: &str,
        stop: impl std::future::Future<Output = ()>,
        on_update: impl FnMut(&pb::Decision),
    ) -> Result<pb::Decision, ClientError> {
        // A year: never reached, `stop` is the deadline.
        let never = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        tokio::select! {
            biased;
            r = self.wait_final(id, never, on_update) => r,
            () = stop => Err(ClientError::Deadline),
        }
    }

    /// [`GateClient::wait_final`], telling `on_retry` about each transient failure, and giving
    /// up with that failure once the service has been out of reach for `connect_window`.
    pub async fn wait_final_reporting(
        &mut self,
        id: &str,
        deadline: Instant,
        connect_window: Option<Duration>,
        mut on_update: impl FnMut(&pb::Decision),
        mut on_retry: impl FnMut(&ClientError),
    ) -> Result<pb::Decision, ClientError> {
        let mut last: Option<pb::Decision> = None;
        let mut out_of_reach_since: Option<Instant> = None;
        let mut backoff = Duration::from_millis(200);
        loop {
            let mut reached = false;
            let attempt = async {
                let mut stream = self
                    .inner
                    .watch_decision(pb::WatchDecisionRequest { id: id.to_string() })
                    .await
                    .map_err(|s| ClientError::from_status(&s))?
                    .into_inner();
                reached = true;
                loop {
                    match stream.message().await {
                        Ok(Some(d)) => {
                            on_update(&d);
                            let fin = d.status == pb::DecisionStatus::Final as i32;
                            last = Some(d);
                            if fin {
                                return Ok(true);
                            }
                        }
                        Ok(None) => return Ok(false),
                        Err(s) => return Err(ClientError::from_status(&s)),
                    }
                }
            };
            let outcome = tokio::time::timeout_at(deadline, attempt).await;
            if reached {
                out_of_reach_since = None;
            }
            match outcome {
                Ok(Ok(true)) => return last.ok_or(ClientError::Deadline),
                Ok(Ok(false)) => {}
                Ok(Err(e)) if !e.is_transient() => return Err(e),
                Ok(Err(e)) => {
                    let since = *out_of_reach_since.get_or_insert_with(Instant::now);
                    if connect_window.is_some_and(|w| since.elapsed() >= w) {
                        return Err(e);
                    }
                    on_retry(&e);
                }
                Err(_) => return Err(ClientError::Deadline),
            }
            if Instant::now() + backoff >= deadline {
                return Err(ClientError::Deadline);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}
