//! Reading certificates and private keys from PEM text. Key material is held as a
//! [`Secret`](crate::secret::Secret) until rustls takes it, so it never prints on the way.

use std::path::Path;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::TlsError;
use crate::secret::Secret;

/// Reads a file's bytes; the error names the file and the failure, not the content.
pub fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.display().to_string(),
        detail: e.kind().to_string(),
    })
}

/// Every certificate in a PEM bundle; at least one.
pub fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

/// The first private key in PEM text. `origin` says where it came from for the error.
pub fn private_key(origin: &str, pem: &Secret) -> Result<PrivateKeyDer<'static>, TlsError> {
    // The pem parser's errors describe the structure (no section, bad base64), never the bytes.
    PrivateKeyDer::from_pem_slice(pem.expose().as_bytes()).map_err(|e| TlsError::BadKey {
        origin: origin.to_string(),
        detail: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no `PRIVATE KEY` block found".into(),
            _ => "the PEM block does not decode".into(),
        },
    })
}

/// A private key file's text as a secret (`server.tls.key_file`).
pub fn key_file(path: &Path) -> Result<Secret, TlsError> {
    let bytes = read(path)?;
    String::from_utf8(bytes)
        .map(Secret::new)
        .map_err(|_| TlsError::BadKey {
            origin: format!("in `{}`", path.display()),
            detail: "the file is not PEM text".into(),
        })
}
