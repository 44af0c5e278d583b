//! TLS, with rustls, in one place: what outbound clients trust and present (`client.rs`), how a
//! failed handshake is named (`classify.rs`), the service's own certificate reloaded from files
//! (`server.rs`), and reading PEM files (`pem.rs`).
//!
//! Every TLS configuration uses the ring provider explicitly (the one reqwest already uses), so
//! no process-wide default provider has to be installed and two providers never disagree.

pub mod classify;
pub mod client;
pub mod pem;
pub mod server;

use std::sync::Arc;

pub use classify::{TlsProblem, classify};
pub use client::{ClientTlsConfig, client_config};
pub use server::{ClientAuth, ServerTls, ServerTlsConfig};

/// The crypto provider every TLS configuration in the crate is built with.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why a TLS configuration cannot be built. Names files and settings, never key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read `{path}`: {detail}")]
    Read { path: String, detail: String },
    #[error(
        "`{path}` holds no PEM certificate: give a file with `-----BEGIN CERTIFICATE-----` blocks"
    )]
    NoCertificate { path: String },
    #[error("`{path}` is not a valid PEM certificate bundle: {detail}")]
    BadCertificate { path: String, detail: String },
    #[error("the private key {origin} is not a PEM private key (PKCS#8, PKCS#1 or SEC1): {detail}")]
    BadKey { origin: String, detail: String },
    #[error("the private key {origin} cannot be read: {detail}")]
    KeySource { origin: String, detail: String },
    #[error("`{setting}` needs `{needs}` as well: a client certificate and its key go together")]
    Incomplete {
        setting: &'static str,
        needs: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
}

impl TlsError {
    pub fn reason_code(&self) -> &'static str {
        match self {
            TlsError::Read { .. } => "tls.read",
            TlsError::NoCertificate { .. } | TlsError::BadCertificate { .. } => "tls.certificate",
            TlsError::BadKey { .. } | TlsError::KeySource { .. } => "tls.key",
            TlsError::Incomplete { .. } | TlsError::Invalid(_) => "tls.invalid",
        }
    }
}
