//! The service's own TLS (`server.tls`): a certificate and key read from files and reloaded
//! when their content changes, optionally requiring client certificates from a CA bundle; and
//! a listener that completes handshakes off the accept loop, for axum and tonic alike.
//!
//! Reloading polls the files' content digest (like policy reload): Kubernetes Secret and
//! ConfigMap mounts swap symlinks, which inotify-based watchers miss. A reload that fails (a
//! half-written file, a key that does not match) keeps the certificate in use and says why.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::{TlsError, pem, provider};

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once per listener; more connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;

/// `server.tls`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain, leaf first (`tls.crt` of a Kubernetes TLS Secret).
    pub cert_file: PathBuf,
    /// PEM private key (`tls.key`).
    pub key_file: PathBuf,
    /// PEM bundle of the CAs whose client certificates are accepted.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
    /// `none`, `optional` (verified when presented) or `required`; default `required` when
    /// `client_ca_file` is set, `none` otherwise.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// How often the files are checked for a new certificate.
    #[serde(default = "default_reload_interval", with = "humantime_serde")]
    pub reload_interval: Duration,
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(10)
}

/// Whether callers must present a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    None,
    Optional,
    Required,
}

impl ServerTlsConfig {
    fn client_auth(&self) -> ClientAuth {
        self.client_auth
            .unwrap_or(if self.client_ca_file.is_some() {
                ClientAuth::Required
            } else {
                ClientAuth::None
            })
    }

    fn files(&self) -> Vec<&Path> {
        let mut files = vec![self.cert_file.as_path(), self.key_file.as_path()];
        files.extend(self.client_ca_file.as_deref());
        files
    }
}

/// The current server configuration for one listener, swapped when the files change.
pub struct ServerTls {
    config: ServerTlsConfig,
    alpn: Vec<Vec<u8>>,
    current: RwLock<Arc<rustls::ServerConfig>>,
    digest: Mutex<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.config.cert_file)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the files now; an error here stops start-up.
    pub fn load(config: &ServerTlsConfig, alpn: &[&[u8]]) -> Result<Arc<Self>, TlsError> {
        if config.client_auth() != ClientAuth::None && config.client_ca_file.is_none() {
            return Err(TlsError::Invalid(
                "`server.tls.client_auth` needs `server.tls.client_ca_file`, the CAs whose client certificates are accepted".into(),
            ));
        }
        if config.reload_interval.is_zero() {
            return Err(TlsError::Invalid(
                "`server.tls.reload_interval` must be longer than zero".into(),
            ));
        }
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let (digest, built) = build(config, &alpn)?;
        Ok(Arc::new(Self {
            config: config.clone(),
            alpn,
            current: RwLock::new(Arc::new(built)),
            digest: Mutex::new(digest),
        }))
    }

    /// An acceptor over the configuration in use now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        TlsAcceptor::from(config)
    }

    /// Re-reads the files; swaps the configuration when their content changed and builds.
    /// `Ok(true)` means a new configuration is in use.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let digest = digest_files(&self.config.files())?;
        let unchanged = self.digest.lock().map(|d| *d == digest).unwrap_or(false);
        if unchanged {
            return Ok(false);
        }
        let (digest, built) = build(&self.config, &self.alpn)?;
        if let Ok(mut current) = self.current.write() {
            *current = Arc::new(built);
        }
        if let Ok(mut d) = self.digest.lock() {
            *d = digest;
        }
        Ok(true)
    }

    /// Polls for changed files every `reload_interval` until `stop`.
    pub async fn watch(self: Arc<Self>, listener: &'static str, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.config.reload_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick completes at once; the files were just loaded.
        tick.tick().await;
        let mut last_error: Option<TlsError> = None;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.reload() {
                Ok(true) => {
                    info!(listener, cert_file = %self.config.cert_file.display(), "tls certificate reloaded");
                    last_error = None;
                }
                Ok(false) => {}
                Err(e) => {
                    // Once per distinct error: a broken file stays broken between polls.
                    if last_error.as_ref() != Some(&e) {
                        warn!(
                            listener,
                            reason_code = e.reason_code(),
                            "tls reload failed, keeping the certificate in use: {e}"
                        );
                    }
                    last_error = Some(e);
                }
            }
        }
    }
}

/// The files' content digest and the configuration built from that content. The files are
/// read once for both, so the digest always describes what is served.
fn build(
    config: &ServerTlsConfig,
    alpn: &[Vec<u8>],
) -> Result<(Vec<u8>, rustls::ServerConfig), TlsError> {
    let cert_pem = pem::read(&config.cert_file)?;
    let key_pem = pem::key_file(&config.key_file)?;
    let ca_pem = match &config.client_ca_file {
        Some(path) => Some((path, pem::read(path)?)),
        None => None,
    };
    let mut hasher = Sha256::new();
    hasher.update(Sha256::digest(&cert_pem));
    hasher.update(Sha256::digest(key_pem.expose().as_bytes()));
    if let Some((_, ca)) = &ca_pem {
        hasher.update(Sha256::digest(ca));
    }
    let digest = hasher.finalize().to_vec();

    let chain = pem::certificates(&config.cert_file, &cert_pem)?;
    let origin = format!("in `{}`", config.key_file.display());
    let key = pem::private_key(&origin, &key_pem)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(format!("the TLS provider refuses its defaults: {e}")))?;
    let builder = match (&ca_pem, config.client_auth()) {
        (Some((path, pem_bytes)), auth) if auth != ClientAuth::None => {
            let mut roots = RootCertStore::empty();
            for cert in pem::certificates(path, pem_bytes)? {
                roots.add(cert).map_err(|e| TlsError::BadCertificate {
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier.build().map_err(|e| {
                TlsError::Invalid(format!(
                    "cannot verify client certificates with `{}`: {e}",
                    path.display()
                ))
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut built = builder.with_single_cert(chain, key).map_err(|e| {
        TlsError::Invalid(format!(
            "the certificate in `{}` and the key {origin} do not go together: {e}",
            config.cert_file.display()
        ))
    })?;
    built.alpn_protocols = alpn.to_vec();
    Ok((digest, built))
}

fn digest_files(files: &[&Path]) -> Result<Vec<u8>, TlsError> {
    let mut hasher = Sha256::new();
    for path in files {
        hasher.update(Sha256::digest(pem::read(path)?));
    }
    Ok(hasher.finalize().to_vec())
}

/// What the TLS handshake established about a client: its address and, when it presented one
/// that the configured client CAs verified, its certificate. Handlers read it through
/// `ConnectInfo<TlsPeer>` on a router served with `into_make_service_with_connect_info`.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub addr: SocketAddr,
    /// The leaf of the client's verified certificate chain; `None` when it presented none
    /// (`client_auth: optional`, or no client CA configured).
    pub client_certificate: Option<rustls_pki_types::CertificateDer<'static>>,
}

impl TlsPeer {
    /// Whether the client's certificate is valid for one of `names` (DNS names or IP addresses
    /// in its subjectAltName, the way a server certificate names its host). `false` without a
    /// certificate or with no names.
    pub fn certificate_names_any(&self, names: &[String]) -> bool {
        let Some(der) = &self.client_certificate else {
            return false;
        };
        let Ok(cert) = webpki::EndEntityCert::try_from(der) else {
            return false;
        };
        names.iter().any(|name| {
            rustls_pki_types::ServerName::try_from(name.as_str())
                .is_ok_and(|n| cert.verify_is_valid_for_subject_name(&n).is_ok())
        })
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for TlsPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        let (_, connection) = stream.io().get_ref();
        Self {
            addr: *stream.remote_addr(),
            client_certificate: connection
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|c| c.clone().into_owned()),
        }
    }
}

/// A listener handing out connections whose TLS handshake has completed. Handshakes run in
/// their own tasks, so a slow or silent client never holds up the others.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Accepts on `listener` until `stop`, handshaking with `tls`'s current configuration.
    pub fn new(
        listener: TcpListener,
        tls: Arc<ServerTls>,
        name: &'static str,
        stop: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(accept_loop(listener, tls, name, tx, stop));
        Ok(Self { rx, local })
    }

    /// The next handshaken connection; `None` once the listener has stopped.
    pub async fn next(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.rx.recv().await
    }

    /// The connections as a stream, for tonic's `serve_with_incoming_shutdown`.
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = Result<TlsStream<TcpStream>, std::io::Error>> {
        futures::StreamExt::map(
            tokio_stream::wrappers::ReceiverStream::new(self.rx),
            |(io, _)| Ok(io),
        )
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept loop ended (shutdown): no connection will come; axum's graceful
            // shutdown ends the serve future.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    name: &'static str,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
    stop: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            a = listener.accept() => a,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                warn!(listener = name, "cannot accept a connection: {e}");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = tls.acceptor();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, peer)).await;
                }
                Ok(Err(e)) => {
                    let problem = super::classify(&e).map_or("handshake failed", |p| p.as_str());
                    debug!(listener = name, %peer, problem, "tls handshake failed: {e}");
                }
                Err(_) => debug!(listener = name, %peer, "tls handshake timed out"),
            }
        });
    }
}
