//! What an outbound connection (an adapter's tool, a notification target) trusts and presents:
//! the system's root store plus an optional CA bundle, and optionally a client certificate for
//! mutual TLS.
//!
//! ```yaml
//! tls:
//!   ca_file: /etc/portcullis/ca/corp-root.pem        # trusted in addition to the system roots
//!   system_roots: true                                # false: trust only `ca_file` (private PKI)
//!   client_cert_file: /etc/portcullis/mtls/tls.crt    # mTLS: the chain presented
//!   client_key: {file: /etc/portcullis/mtls/tls.key}  # its key, a secret source (env or file)
//! ```

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use serde::Deserialize;

use super::{TlsError, pem, provider};
use crate::secret::SecretSource;

/// One client's TLS settings (`adapters[].tls`, `notifications[].tls`). All optional: the
/// default trusts the system's root store and presents no certificate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientTlsConfig {
    /// PEM bundle of CA certificates trusted in addition to (or, with `system_roots: false`,
    /// instead of) the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Whether the system's root store is trusted (default true).
    #[serde(default = "yes")]
    pub system_roots: bool,
    /// PEM certificate chain presented to servers that ask for one (leaf first).
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's PEM private key, from a file or the environment.
    #[serde(default)]
    pub client_key: Option<SecretSource>,
}

impl Default for ClientTlsConfig {
    fn default() -> Self {
        Self {
            ca_file: None,
            system_roots: true,
            client_cert_file: None,
            client_key: None,
        }
    }
}

fn yes() -> bool {
    true
}

/// The system's root certificates, read once per process (the store is a few hundred files).
/// Where the system has none (a distroless image), the Mozilla roots compiled in stand in.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        if !found.errors.is_empty() {
            tracing::debug!(errors = found.errors.len(), "some system root certificates were unreadable");
        }
        if found.certs.is_empty() {
            tracing::warn!(
                "no system root certificates found: trusting the built-in Mozilla roots; mount the CA bundle or set `tls.ca_file`"
            );
        }
        found.certs
    })
}

/// The system's roots as trust anchors, parsed once per process and shared by every client that
/// trusts only them (each adapter and notification target has a client of its own: parsing the
/// store for each was most of the service's start-up work after reading the files).
fn system_root_store() -> Arc<RootCertStore> {
    static STORE: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    Arc::clone(STORE.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        let system = system_roots();
        if system.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        } else {
            // A system store may hold a certificate webpki cannot parse; skipping it is what
            // every TLS client does.
            let _ = roots.add_parsable_certificates(system.iter().cloned());
        }
        Arc::new(roots)
    }))
}

/// A rustls client configuration for `config`, speaking `alpn` (empty: no ALPN).
pub fn client_config(
    config: &ClientTlsConfig,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, TlsError> {
    let roots = match (&config.ca_file, config.system_roots) {
        (None, true) => system_root_store(),
        (ca_file, system) => Arc::new(roots_with(ca_file.as_ref(), system)?),
    };
    if roots.is_empty() {
        return Err(TlsError::Invalid(
            "`tls.system_roots` is false and no `tls.ca_file` is set, so no server could be trusted: set `tls.ca_file`".into(),
        ));
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Invalid(format!("the TLS provider refuses its defaults: {e}")))?
        .with_root_certificates(roots);
    client_auth(config, builder, alpn)
}

/// The system's roots (if `system`) and the CA bundle at `ca_file` (if any), in a store of their
/// own.
fn roots_with(ca_file: Option<&PathBuf>, system: bool) -> Result<RootCertStore, TlsError> {
    let mut roots = if system {
        (*system_root_store()).clone()
    } else {
        RootCertStore::empty()
    };
    if let Some(path) = ca_file {
        let bundle = pem::certificates(path, &pem::read(path)?)?;
        for cert in bundle {
            roots.add(cert).map_err(|e| TlsError::BadCertificate {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
        }
    }
    Ok(roots)
}

/// `builder` finished with the client certificate `config` names, if any, speaking `alpn`.
fn client_auth(
    config: &ClientTlsConfig,
    builder: rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, TlsError> {
    let mut tls = match (&config.client_cert_file, &config.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err(TlsError::Incomplete {
                setting: "tls.client_cert_file",
                needs: "tls.client_key",
            });
        }
        (None, Some(_)) => {
            return Err(TlsError::Incomplete {
                setting: "tls.client_key",
                needs: "tls.client_cert_file",
            });
        }
        (Some(cert_path), Some(key_source)) => {
            let chain = pem::certificates(cert_path, &pem::read(cert_path)?)?;
            let origin = key_origin(key_source);
            let key_pem = key_source.resolve().map_err(|e| TlsError::KeySource {
                origin: origin.clone(),
                detail: e.to_string(),
            })?;
            let key = pem::private_key(&origin, &key_pem)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                TlsError::Invalid(format!(
                    "the client certificate in `{}` and the key {origin} do not go together: {e}",
                    cert_path.display()
                ))
            })?
        }
    };
    tls.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(tls)
}

/// Where a key comes from, for messages (never its value).
fn key_origin(source: &SecretSource) -> String {
    match source {
        SecretSource::Env(var) => format!("from environment variable `{var}`"),
        SecretSource::File(path) => format!("in `{}`", path.display()),
        SecretSource::Value(_) => "given literally".into(),
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn parses_with_defaults_and_refuses_unknown_keys() {
        let c: ClientTlsConfig = serde_norway::from_str("ca_file: /x.pem").unwrap();
        assert!(c.system_roots);
        assert!(serde_norway::from_str::<ClientTlsConfig>("ca: /x.pem").is_err());
    }

    #[test]
    fn half_an_identity_is_refused() {
        let c: ClientTlsConfig = serde_norway::from_str("client_key: {value: k}").unwrap();
        let e = client_config(&c, &[]).unwrap_err();
        assert_eq!(e.reason_code(), "tls.invalid");
        assert!(e.to_string().contains("tls.client_cert_file"), "{e}");
    }

    #[test]
    fn no_roots_at_all_is_refused() {
        let c: ClientTlsConfig = serde_norway::from_str("system_roots: false").unwrap();
        assert!(client_config(&c, &[]).is_err());
    }

    #[test]
    fn a_key_that_is_not_pem_does_not_show_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "").unwrap();
        let c = ClientTlsConfig {
            client_cert_file: Some(cert),
            client_key: Some(SecretSource::Value(crate::secret::Secret::new(
                "-----BEGIN PRIVATE KEY-----\nsupersecretmaterial\n",
            ))),
            ..ClientTlsConfig::default()
        };
        let e = client_config(&c, &[]).unwrap_err().to_string();
        assert!(!e.contains("supersecret"), "{e}");
    }
}
