//! Naming a failed TLS handshake. Errors arrive wrapped (reqwest → hyper → `io::Error` →
//! `rustls::Error`), so the whole source chain is walked, looking inside `io::Error`s too
//! (their `source()` skips the error they wrap).

use std::error::Error;

use rustls::{AlertDescription, CertificateError};

/// What went wrong in a TLS handshake, as an operator would put it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProblem {
    /// The peer's certificate does not chain to a trusted root.
    UntrustedIssuer,
    /// The peer's certificate has expired.
    Expired,
    /// The peer's certificate is not valid yet (or a clock is wrong).
    NotYetValid,
    /// The peer's certificate does not name the host that was called.
    HostnameMismatch,
    /// The peer's certificate was revoked.
    Revoked,
    /// The peer's certificate is unusable otherwise (bad signature, wrong purpose, encoding).
    BadCertificate,
    /// The peer asked for a client certificate and none (or none it trusts) was presented.
    ClientCertificateRefused,
    /// Any other handshake failure (no common protocol version or cipher, a peer speaking
    /// plain text).
    Handshake,
}

impl TlsProblem {
    /// The short label used in reasons and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsProblem::UntrustedIssuer => "untrusted issuer",
            TlsProblem::Expired => "expired certificate",
            TlsProblem::NotYetValid => "certificate not yet valid",
            TlsProblem::HostnameMismatch => "hostname mismatch",
            TlsProblem::Revoked => "revoked certificate",
            TlsProblem::BadCertificate => "invalid certificate",
            TlsProblem::ClientCertificateRefused => "client certificate refused",
            TlsProblem::Handshake => "handshake failed",
        }
    }

    /// What to do about it, for an outbound call.
    pub fn help(self) -> &'static str {
        match self {
            TlsProblem::UntrustedIssuer => {
                "the server's certificate is not signed by a CA in the system store or `tls.ca_file`: add the issuing CA's PEM to `tls.ca_file`"
            }
            TlsProblem::Expired => {
                "the server's certificate has expired: its operator must renew it (check this host's clock too)"
            }
            TlsProblem::NotYetValid => {
                "the server's certificate is not valid yet: check the clocks of this host and the server"
            }
            TlsProblem::HostnameMismatch => {
                "the server's certificate does not name the host in the url: use a host name the certificate lists"
            }
            TlsProblem::Revoked => {
                "the server's certificate was revoked: its operator must replace it"
            }
            TlsProblem::BadCertificate => {
                "the server's certificate cannot be used for a TLS server (signature, purpose or encoding)"
            }
            TlsProblem::ClientCertificateRefused => {
                "the server requires a client certificate it trusts: configure `tls.client_cert_file` and `tls.client_key`"
            }
            TlsProblem::Handshake => {
                "the TLS handshake failed: check that the url's port speaks TLS"
            }
        }
    }
}

impl std::fmt::Display for TlsProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The TLS problem somewhere in `error`'s source chain, if there is one.
pub fn classify(error: &(dyn Error + 'static)) -> Option<TlsProblem> {
    let mut next = Some(error);
    // Bounded: a cyclic `source()` would otherwise loop forever.
    for _ in 0..32 {
        let e = next?;
        if let Some(r) = e.downcast_ref::<rustls::Error>() {
            return Some(from_rustls(r));
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if let Some(p) = classify(inner) {
                return Some(p);
            }
        }
        next = e.source();
    }
    None
}

/// The problem a rustls error describes.
pub fn from_rustls(e: &rustls::Error) -> TlsProblem {
    match e {
        rustls::Error::InvalidCertificate(c) => from_certificate(c),
        rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied,
        ) => TlsProblem::ClientCertificateRefused,
        rustls::Error::NoCertificatesPresented => TlsProblem::ClientCertificateRefused,
        _ => TlsProblem::Handshake,
    }
}

fn from_certificate(c: &CertificateError) -> TlsProblem {
    match c {
        CertificateError::UnknownIssuer => TlsProblem::UntrustedIssuer,
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => TlsProblem::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            TlsProblem::NotYetValid
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            TlsProblem::HostnameMismatch
        }
        CertificateError::Revoked => TlsProblem::Revoked,
        _ => TlsProblem::BadCertificate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_rustls_errors_are_found_inside_io_errors() {
        let rustls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls);
        #[derive(Debug, thiserror::Error)]
        #[error("client error")]
        struct Outer(#[source] std::io::Error);
        let outer = Outer(io);
        assert_eq!(classify(&outer), Some(TlsProblem::UntrustedIssuer));
        let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(classify(&plain), None);
    }

    #[test]
    fn certificate_errors_have_names() {
        let name = |c| from_rustls(&rustls::Error::InvalidCertificate(c)).as_str();
        assert_eq!(name(CertificateError::Expired), "expired certificate");
        assert_eq!(name(CertificateError::NotValidForName), "hostname mismatch");
        assert_eq!(
            from_rustls(&rustls::Error::AlertReceived(
                AlertDescription::CertificateRequired
            )),
            TlsProblem::ClientCertificateRefused
        );
    }
}
