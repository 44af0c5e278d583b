//! Certificates made in the test with rcgen: a private CA, server leaves (valid, expired, for
//! the wrong host), client leaves, and a small HTTPS tool served with the crate's own TLS
//! listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use portcullis::tls::server::TlsListener;
use portcullis::tls::{ClientAuth, ServerTls, ServerTlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// A private certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM text.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose, expired: bool) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![purpose];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn server(&self) -> Leaf {
        self.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
        )
    }

    /// A server certificate for `127.0.0.1` that expired in 2021.
    pub fn expired_server(&self) -> Leaf {
        self.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            true,
        )
    }

    /// A server certificate for another host only.
    pub fn other_host_server(&self) -> Leaf {
        self.leaf(
            &["tool.example.com"],
            ExtendedKeyUsagePurpose::ServerAuth,
            false,
        )
    }

    /// A client certificate.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth, false)
    }
}

impl Leaf {
    /// Writes `<name>.crt` and `<name>.key` under `dir`; returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }

    /// The leaf certificate's DER bytes, to compare with what a server presented.
    pub fn der(&self) -> Vec<u8> {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject as _;
        CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .unwrap()
            .to_vec()
    }
}

/// Writes `ca.pem` under `dir`.
pub fn write_ca(ca: &Ca, dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(&path, ca.pem()).unwrap();
    path
}

/// An HTTPS tool on 127.0.0.1 answering `GET /status` with `{"state": "green"}`, presenting
/// `leaf`; with `client_ca`, it requires client certificates from that CA. Stops when dropped.
pub struct TlsTool {
    pub addr: SocketAddr,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for TlsTool {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl TlsTool {
    pub async fn start(leaf: &Leaf, client_ca: Option<&Ca>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (cert_file, key_file) = leaf.write(dir.path(), "tool");
        let config = ServerTlsConfig {
            cert_file,
            key_file,
            client_ca_file: client_ca.map(|ca| write_ca(ca, dir.path(), "client-ca")),
            client_auth: client_ca.map(|_| ClientAuth::Required),
            reload_interval: std::time::Duration::from_secs(60),
        };
        let tls: Arc<ServerTls> = ServerTls::load(&config, &[b"http/1.1"]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let incoming = TlsListener::new(listener, tls, "tool", stop.clone()).unwrap();
        let app = Router::new().route(
            "/status",
            get(|| async { axum::Json(json!({"state": "green"})) }),
        );
        let served = stop.clone();
        tokio::spawn(async move {
            axum::serve(incoming, app)
                .with_graceful_shutdown(async move { served.cancelled().await })
                .await
        });
        Self {
            addr,
            stop,
            _dir: dir,
        }
    }

    /// `https://<host>:<port>/status`.
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/status", self.addr.port())
    }
}

/// An HTTPS client trusting only `ca`, presenting `identity` (certificate, key PEM) when given.
pub fn https_client(ca: &Ca, identity: Option<(&str, &str)>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap());
    if let Some((cert, key)) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap());
    }
    b.build().unwrap()
}
