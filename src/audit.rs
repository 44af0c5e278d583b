//! The tamper-evident record of decisions, as an outside verifier sees it: the canonical bytes
//! of an event and the hash chain over them (`audit/chain.rs`), the RFC 6962 / 9162 Merkle tree
//! over the chain's hashes with inclusion proofs (`audit/merkle.rs`), and signed checkpoints
//! with the Ed25519 key that signs them (`audit/checkpoint.rs`).
//!
//! Architecture invariant: this module depends only on `domain`, `secret` (to read the signing
//! key) and crypto crates, so the code the gate writes with is the code a verifier reads.
//! The exact formats are written down in `docs/audit.md`.

pub mod chain;
pub mod checkpoint;
pub mod merkle;
pub mod proof;
pub mod verify;

/// Why audit data could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the event could not be encoded: {0}")]
    Encode(String),
    #[error(
        "audit.signing_key is not usable: {0}; generate a key pair with `portcullis audit keygen`"
    )]
    Key(String),
    #[error("`{what}` is not {len} bytes of hex")]
    Hex { what: String, len: usize },
}

impl AuditError {
    pub fn reason_code(&self) -> &'static str {
        match self {
            AuditError::Encode(_) => "audit.encode",
            AuditError::Key(_) => "audit.key",
            AuditError::Hex { .. } => "audit.hex",
        }
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// 32 bytes from 64 hex digits (`what` names the value in the error).
pub fn hash_from_hex(text: &str, what: &str) -> Result<[u8; 32], AuditError> {
    let bad = || AuditError::Hex {
        what: what.to_string(),
        len: 32,
    };
    if text.len() != 64 || !text.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        let pair = text.get(2 * i..2 * i + 2).ok_or_else(bad)?;
        *slot = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}
