//! Wiring: `App::build` turns settings into a running gate with bound listeners; `App::run`
//! serves gRPC and HTTP until the shutdown future completes, then drains in-flight checks.
//! Building is separate from running so tests can bind `127.0.0.1:0` and read the ports back.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use tracing::{info, warn};

use crate::adapters;
use crate::api;
use crate::auth::{AuthConfigError, Authenticator};
use crate::config::Settings;
use crate::contracts::{self, ContractState};
use crate::gate::{Gate, GateOptions};
use crate::metrics::Metrics;
use crate::policy::{PolicyErrors, PolicyHandle, PolicySet};
use crate::store::{self, StoreError, StoreOptions};
use crate::tls::ServerTls;
use crate::tls::server::TlsListener;

/// The HTTP port's router: the gate's own routes (`api::http::routes`) and the caller contracts'
/// (`contracts::routes`), merged here so neither module names the other, under one body limit
/// (`server.max_body_bytes`); evidence submission keeps its own (`server.max_evidence_bytes`);
/// anything else is a `route.not_found` problem. Tracing is layered by the caller.
pub fn http_router(
    state: ContractState,
    max_body_bytes: usize,
    max_evidence_bytes: usize,
) -> Router {
    let http = state.http.clone();
    Router::new()
        .merge(api::http::routes())
        .merge(contracts::routes(state))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        // Merged after the general limit is applied, so reports keep their own, larger one.
        .merge(api::http::evidence_routes(max_evidence_bytes))
        .fallback(crate::edge::not_found)
        .with_state(http)
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("invalid auth configuration: {0}")]
    Auth(#[from] AuthConfigError),
    #[error(
        "no API tokens are configured, so the server may only listen on loopback, but `{addr}` is not a loopback address: configure `auth.tokens` or bind 127.0.0.1"
    )]
    OpenNonLoopback { addr: SocketAddr },
    #[error("the policy set does not load:\n{0}")]
    Policy(#[from] PolicyErrors),
    #[error("cannot open the store: {0}")]
    Store(#[from] StoreError),
    #[error("invalid adapter configuration: {0}")]
    Adapters(#[from] adapters::AdapterBuildError),
    #[error("invalid review route: {0}")]
    Routing(#[from] crate::review_routing::RoutingError),
    #[error("invalid notification configuration: {0}")]
    Notifications(#[from] crate::notify::NotifyError),
    #[error("invalid admission configuration: {0}")]
    Admission(#[from] crate::admission::AdmissionBuildError),
    #[error("invalid `server.tls`: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error(
        "`audit.signing_key` is not set: the decision log must be signed; generate a key pair with `portcullis audit keygen` and set `audit.signing_key` to `{{env: …}}` or `{{file: …}}` holding its private key"
    )]
    NoSigningKey,
    #[error("cannot read `audit.signing_key`: {0}")]
    SigningKey(String),
    #[error("{0}")]
    Audit(#[from] crate::audit::AuditError),
    #[error("cannot listen on `{addr}`: {message}")]
    Bind { addr: SocketAddr, message: String },
    #[error("the {server} server failed: {message}")]
    Server {
        server: &'static str,
        message: String,
    },
}

/// A built service, listening but not yet serving.
pub struct App {
    settings: Settings,
    gate: Arc<Gate>,
    reviews: crate::review_routing::ReviewFollowers,
    admission: Option<Arc<crate::admission::Admission>>,
    auth: Arc<Authenticator>,
    policies: PolicyHandle,
    http: TcpListener,
    grpc: TcpListener,
    /// The service's certificates (HTTP, gRPC), when `server.tls` is set.
    tls: Option<(Arc<ServerTls>, Arc<ServerTls>)>,
    /// `admission.listener`: the API server's HTTPS port and its certificate.
    admission_listener: Option<(TcpListener, Arc<ServerTls>)>,
}

impl App {
    pub async fn build(settings: Settings) -> Result<App, ServeError> {
        Self::build_with_clock(settings, Arc::new(crate::clock::SystemClock)).await
    }

    /// [`App::build`] with everything that reads the time or waits for a retry reading `clock`:
    /// the gate, adapters, review routing, notifications and admission (tests set it instead of
    /// sleeping).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<App, ServeError> {
        settings.validate()?;
        let auth = Arc::new(Authenticator::new(&settings.auth.tokens)?);
        for warning in auth.warnings() {
            warn!("{warning}");
        }
        if auth.is_open() {
            for addr in [settings.server.http_addr, settings.server.grpc_addr] {
                if !addr.ip().is_loopback() {
                    return Err(ServeError::OpenNonLoopback { addr });
                }
            }
            warn!(
                "no API tokens configured: every caller is treated as admin; listening on loopback only"
            );
        }
        let set = match &settings.policy.dir {
            Some(dir) => PolicySet::load_dir(dir)?,
            None => PolicySet::builtin()?,
        };
        info!(
            policy_version = set.version(),
            rules = set.rule_count(),
            source = %settings.policy.dir.as_ref().map_or("built-in pack".to_string(), |d| d.display().to_string()),
            "policies loaded"
        );
        let policies = PolicyHandle::new(set);
        // Fail closed for the record: no key, no service (before the store is opened).
        let signer = Arc::new(signing_key(&settings.audit)?);
        info!(key_id = signer.key_id(), "audit checkpoints are signed");
        let store = store::open(
            &settings.store.url,
            &StoreOptions {
                max_connections: settings.store.max_connections,
                connect_timeout: settings.store.connect_timeout,
                ..StoreOptions::default()
            },
        )
        .await?;
        let adapters = adapters::build(&settings.adapters, &clock)?;
        let metrics = Arc::new(Metrics::new());
        let admission = if settings.admission.enabled {
            Some(Arc::new(crate::admission::Admission::build(
                &settings.admission,
                Arc::clone(&store),
                Arc::clone(&metrics),
                settings.server.public_url.clone(),
                Arc::clone(&clock),
            )?))
        } else {
            None
        };
        let notifier = crate::notify::Notifier::build(
            &settings.notifications,
            settings.server.public_url.clone(),
            Arc::clone(&metrics),
        )?
        .with_clock(Arc::clone(&clock));
        let gate = Gate::new(
            policies.clone(),
            adapters,
            store,
            metrics,
            GateOptions {
                evidence_deadline: settings.gate.evidence_deadline,
                review_timeout: settings.review.timeout,
                review_timeouts: settings
                    .review
                    .environments
                    .iter()
                    .map(|(env, d)| (env.clone(), **d))
                    .collect(),
                approvals: settings
                    .review
                    .approvals
                    .iter()
                    .map(|(env, rule)| {
                        (
                            env.clone(),
                            crate::gate::ApprovalPolicy {
                                required: rule.required.max(1),
                                groups: rule.groups.clone(),
                            },
                        )
                    })
                    .collect(),
                environments: settings.gate.declared_environments()?,
                no_rules_verdict: settings.gate.no_rules_verdict,
                replay_window: settings.gate.replay_window,
            },
        )
        .with_clock(Arc::clone(&clock))
        .with_signer(signer);
        let gate = if notifier.is_empty() {
            gate
        } else {
            gate.with_observer(Arc::new(notifier))
        };
        // Bound before review routing is built: without `server.public_url`, ticket links use the
        // listener's own address.
        let http = bind(settings.server.http_addr).await?;
        let review_base = review_base(&settings, &http);
        let servicenow = crate::review_routing::ServiceNowRouting::build(
            crate::review_routing::ServiceNow,
            &settings.review.routes,
            &settings.adapters,
            review_base.as_deref(),
            &clock,
        )?
        .map(Arc::new);
        let jira = crate::review_routing::JiraRouting::build(
            crate::review_routing::Jira,
            &settings.review.routes,
            &settings.adapters,
            review_base.as_deref(),
            &clock,
        )?
        .map(Arc::new);
        let gate = match &servicenow {
            Some(routing) => gate.with_observer(routing.observer()),
            None => gate,
        };
        let gate = match &jira {
            Some(routing) => gate.with_observer(routing.observer()),
            None => gate,
        };
        let gate = Arc::new(gate);
        // Loaded before binding, so a missing or mismatched certificate stops start-up. One
        // configuration per listener: ALPN differs (gRPC is HTTP/2 only).
        let tls = match &settings.server.tls {
            Some(config) => Some((
                ServerTls::load(config, &[b"h2", b"http/1.1"])?,
                ServerTls::load(config, &[b"h2"])?,
            )),
            None => None,
        };
        if let Some(listener) = &settings.admission.listener {
            if admission.is_none() {
                warn!(
                    "`admission.listener` is set but `admission.enabled` is false: not listening"
                );
            } else if listener.tls.client_ca_file.is_none() && auth.is_open() {
                warn!(
                    "`admission.listener` has no client CA and no tokens are configured: every admission review will be refused (401); set `admission.listener.tls.client_ca_file` or an `admission` token"
                );
            }
        }
        let admission_listener = match (&admission, &settings.admission.listener) {
            (Some(_), Some(listener)) => Some((
                bind(listener.addr).await?,
                ServerTls::load(&listener.tls, &[b"h2", b"http/1.1"])?,
            )),
            _ => None,
        };
        let grpc = bind(settings.server.grpc_addr).await?;
        Ok(App {
            tls,
            admission_listener,
            settings,
            gate,
            reviews: crate::review_routing::ReviewFollowers { servicenow, jira },
            admission,
            auth,
            policies,
            http,
            grpc,
        })
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .local_addr()
            .unwrap_or(self.settings.server.http_addr)
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc
            .local_addr()
            .unwrap_or(self.settings.server.grpc_addr)
    }

    /// The address of `admission.listener`, when the webhook has one.
    pub fn admission_addr(&self) -> Option<SocketAddr> {
        self.admission_listener
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes; then stops accepting, lets in-flight requests finish
    /// and waits up to `server.shutdown_grace` for running checks to be stored.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let stop = CancellationToken::new();
        let App {
            settings,
            gate,
            reviews,
            admission,
            auth,
            policies,
            http,
            grpc,
            tls,
            admission_listener,
        } = self;
        info!(http = %http.local_addr().map(|a| a.to_string()).unwrap_or_default(),
              grpc = %grpc.local_addr().map(|a| a.to_string()).unwrap_or_default(),
              tls = tls.is_some(),
              "portcullis serving");

        if let Some(dir) = settings.policy.dir.clone() {
            let stop = stop.clone();
            tokio::spawn(crate::policy::watch_dir(
                dir,
                settings.policy.reload_interval,
                policies,
                async move { stop.cancelled().await },
            ));
        }

        // Every lease-held job, in one list awaited at shutdown: each gives its lease up when
        // `stop` is cancelled, and `run` returns only after they have, so a replica taking over
        // need not wait for a lease to lapse.
        let mut jobs = Vec::new();
        // One sweeper per replica; the `review-expiry` lease lets only one of them work at a time.
        jobs.push(tokio::spawn(Arc::clone(&gate).run_expiry_sweeper(
            format!("portcullis-{}", uuid::Uuid::new_v4()),
            settings.review.sweep_interval,
            stop.clone(),
        )));
        // One checkpoint signer at a time, under the `audit-checkpoint` lease.
        jobs.push(tokio::spawn(Arc::clone(&gate).run_checkpointer(
            format!("portcullis-{}", uuid::Uuid::new_v4()),
            settings.audit.checkpoint_interval,
            stop.clone(),
        )));
        if let Some(retention) = settings.audit.retention {
            jobs.push(tokio::spawn(Arc::clone(&gate).run_retention(
                format!("portcullis-{}", uuid::Uuid::new_v4()),
                retention,
                settings.audit.retention_interval,
                stop.clone(),
            )));
        }
        // Reviews routed to ServiceNow or Jira: one replica at a time opens and polls their
        // tickets.
        if let Some(routing) = &reviews.servicenow {
            jobs.push(tokio::spawn(Arc::clone(routing).run(
                Arc::clone(&gate),
                format!("portcullis-{}", uuid::Uuid::new_v4()),
                stop.clone(),
            )));
        }
        if let Some(routing) = &reviews.jira {
            jobs.push(tokio::spawn(Arc::clone(routing).run(
                Arc::clone(&gate),
                format!("portcullis-{}", uuid::Uuid::new_v4()),
                stop.clone(),
            )));
        }

        // The contracts reach the review followers and admission through typed state.
        let contract_state = ContractState {
            http: crate::edge::HttpState {
                gate: Arc::clone(&gate),
                auth: Arc::clone(&auth),
                public_url: settings.server.public_url.clone(),
            },
            reviews,
            admission,
        };
        // The API server's own port: `POST /v1/admission` only, over TLS, with the client's
        // certificate handed to the handler (who may call is decided there).
        let admission_task = match admission_listener {
            Some((listener, admission_tls)) => {
                tokio::spawn(Arc::clone(&admission_tls).watch("admission", stop.clone()));
                let incoming = TlsListener::new(listener, admission_tls, "admission", stop.clone())
                    .map_err(|e| ServeError::Server {
                        server: "admission",
                        message: e.to_string(),
                    })?;
                let router = contracts::admission_routes(
                    contract_state.clone(),
                    settings.server.max_body_bytes,
                )
                .layer(TraceLayer::new_for_http());
                let admission_stop = stop.clone();
                Some(tokio::spawn(async move {
                    axum::serve(
                        incoming,
                        router.into_make_service_with_connect_info::<crate::tls::server::TlsPeer>(),
                    )
                    .with_graceful_shutdown(async move { admission_stop.cancelled().await })
                    .await
                }))
            }
            None => None,
        };
        let http_router = http_router(
            contract_state,
            settings.server.max_body_bytes,
            settings.server.max_evidence_bytes,
        )
        // Outermost, so every request (rejected ones too) gets a span.
        .layer(TraceLayer::new_for_http());
        let http_stop = stop.clone();
        let http_task = match &tls {
            Some((http_tls, _)) => {
                tokio::spawn(Arc::clone(http_tls).watch("http", stop.clone()));
                let listener = TlsListener::new(http, Arc::clone(http_tls), "http", stop.clone())
                    .map_err(|e| ServeError::Server {
                    server: "http",
                    message: e.to_string(),
                })?;
                tokio::spawn(async move {
                    axum::serve(listener, http_router)
                        .with_graceful_shutdown(async move { http_stop.cancelled().await })
                        .await
                })
            }
            None => tokio::spawn(async move {
                axum::serve(http, http_router)
                    .with_graceful_shutdown(async move { http_stop.cancelled().await })
                    .await
            }),
        };

        let (health_reporter, health) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<crate::pb::gate_server::GateServer<api::grpc::GrpcApi>>()
            .await;
        // Reflection in both versions (grpcurl before 1.8 and grpcio speak only v1alpha), over
        // the gate's own service and the health service.
        let reflection_error = |e: tonic_reflection::server::Error| ServeError::Server {
            server: "grpc",
            message: e.to_string(),
        };
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(reflection_error)?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(reflection_error)?;
        let grpc_service = api::grpc::service(
            Arc::clone(&gate),
            Arc::clone(&auth),
            crate::api::grpc::Limits {
                max_body_bytes: settings.server.max_body_bytes,
                max_evidence_bytes: settings.server.max_evidence_bytes,
            },
        );
        let grpc_stop = stop.clone();
        let grpc_router = tonic::transport::Server::builder()
            .add_service(health)
            .add_service(reflection)
            .add_service(reflection_v1alpha)
            .add_service(grpc_service);
        let grpc_task = match &tls {
            Some((_, grpc_tls)) => {
                tokio::spawn(Arc::clone(grpc_tls).watch("grpc", stop.clone()));
                let listener = TlsListener::new(grpc, Arc::clone(grpc_tls), "grpc", stop.clone())
                    .map_err(|e| ServeError::Server {
                    server: "grpc",
                    message: e.to_string(),
                })?;
                tokio::spawn(async move {
                    grpc_router
                        .serve_with_incoming_shutdown(listener.into_stream(), async move {
                            grpc_stop.cancelled().await
                        })
                        .await
                })
            }
            None => tokio::spawn(async move {
                grpc_router
                    .serve_with_incoming_shutdown(
                        tokio_stream::wrappers::TcpListenerStream::new(grpc),
                        async move { grpc_stop.cancelled().await },
                    )
                    .await
            }),
        };

        let mut http_task = http_task;
        let mut grpc_task = grpc_task;
        let early = tokio::select! {
            () = shutdown => None,
            r = &mut http_task => Some(("http", flatten(r))),
            r = &mut grpc_task => Some(("grpc", flatten(r))),
        };
        info!("shutting down: draining in-flight checks");
        stop.cancel();
        let drained = gate.drain(settings.server.shutdown_grace).await;
        for job in jobs {
            let _ = tokio::time::timeout(settings.server.shutdown_grace, job).await;
        }
        if !drained {
            warn!(grace = ?settings.server.shutdown_grace, "checks still running after the grace period");
        }
        // A finished JoinHandle must not be polled again; wait only for the servers still running.
        let grace = settings.server.shutdown_grace + Duration::from_secs(1);
        if early.as_ref().is_none_or(|(server, _)| *server != "http") {
            let _ = tokio::time::timeout(grace, http_task).await;
        }
        if early.as_ref().is_none_or(|(server, _)| *server != "grpc") {
            let _ = tokio::time::timeout(grace, grpc_task).await;
        }
        if let Some(task) = admission_task {
            let _ = tokio::time::timeout(grace, task).await;
        }
        match early {
            Some((server, Err(message))) => Err(ServeError::Server { server, message }),
            Some((server, Ok(()))) => Err(ServeError::Server {
                server,
                message: "stopped unexpectedly".into(),
            }),
            None => Ok(()),
        }
    }
}

/// The absolute base of the links review tickets carry: `server.public_url`, else the HTTP
/// listener's own address when it names one host (a development setup; warned about). `None`
/// when the listener listens on every address: its address names no host, and review routing
/// then refuses to start (`RoutingError::NoPublicUrl`).
fn review_base(settings: &Settings, http: &TcpListener) -> Option<String> {
    if let Some(url) = &settings.server.public_url {
        return Some(url.clone());
    }
    let addr = http
        .local_addr()
        .ok()
        .filter(|a| !a.ip().is_unspecified())?;
    let scheme = if settings.server.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let base = format!("{scheme}://{addr}");
    if !settings.review.routes.is_empty() {
        warn!(
            "`server.public_url` is not set: review tickets link to {base}; set it to the URL people reach the gate at"
        );
    }
    Some(base)
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr).await.map_err(|e| ServeError::Bind {
        addr,
        message: e.to_string(),
    })
}

fn flatten<E1: std::fmt::Display, E2: std::fmt::Display>(
    r: Result<Result<(), E2>, E1>,
) -> Result<(), String> {
    r.map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
}

/// The checkpoint signing key `audit` names.
pub fn signing_key(
    audit: &crate::config::AuditSettings,
) -> Result<crate::audit::checkpoint::CheckpointSigner, ServeError> {
    let source = audit.signing_key.as_ref().ok_or(ServeError::NoSigningKey)?;
    let pem = source
        .resolve()
        .map_err(|e| ServeError::SigningKey(e.to_string()))?;
    Ok(crate::audit::checkpoint::CheckpointSigner::from_pem(&pem)?)
}
