//! Signed checkpoints: a statement, signed with the gate's Ed25519 key, that the log held
//! `tree_size` events with Merkle root `root` at time `at`, chained to the checkpoint before it.
//! The key is read from `audit.signing_key` (PKCS#8 PEM, as `portcullis audit keygen` prints
//! it); its id is derived from the public key, so a verifier can tell keys apart.

use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::chain::canonical_json;
use super::{AuditError, hex};
use crate::secret::Secret;

/// What a checkpoint states. Its canonical JSON (`chain::canonical_json`) is what is signed and
/// what the next checkpoint's `previous` hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// 1 for the first checkpoint, then 2, 3, …
    pub index: u64,
    /// How many events the tree covers: events with sequence numbers 1..=tree_size.
    pub tree_size: u64,
    /// Hex of the Merkle root over their hashes.
    pub root: String,
    /// Hex of the chain hash of event `tree_size`.
    pub last_event_hash: String,
    /// Hex of SHA-256 of the previous checkpoint's canonical JSON; 64 zeros for the first.
    pub previous: String,
    pub at: DateTime<Utc>,
    /// `ed25519:` and the first 16 hex digits of SHA-256 of the raw public key.
    pub key_id: String,
}

impl Checkpoint {
    /// The signed bytes.
    pub fn text(&self) -> Result<String, AuditError> {
        canonical_json(self)
    }

    /// Hex of SHA-256 of the signed bytes (the next checkpoint's `previous`).
    pub fn hash(&self) -> Result<String, AuditError> {
        Ok(hex(&Sha256::digest(self.text()?.as_bytes())))
    }
}

/// A checkpoint with its signature (hex of the 64-byte Ed25519 signature over `text()`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub signature: String,
}

/// The id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("ed25519:{}", &hex(&digest)[..16])
}

/// The gate's signing key.
pub struct CheckpointSigner {
    key: SigningKey,
    id: String,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner")
            .field("key_id", &self.id)
            .finish_non_exhaustive()
    }
}

impl CheckpointSigner {
    /// Reads a PKCS#8 PEM private key; other text around the block (the whole output of
    /// `portcullis audit keygen` saved to a file) is ignored. The error never contains the key.
    pub fn from_pem(pem: &Secret) -> Result<Self, AuditError> {
        const BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
        const END: &str = "-----END PRIVATE KEY-----";
        let text = pem.expose();
        let block = match (text.find(BEGIN), text.find(END)) {
            (Some(b), Some(e)) if b < e => &text[b..e + END.len()],
            _ => text.trim(),
        };
        let key = SigningKey::from_pkcs8_pem(block).map_err(|_| {
            AuditError::Key("it is not an Ed25519 private key in PKCS#8 PEM".into())
        })?;
        let id = key_id(&key.verifying_key());
        Ok(Self { key, id })
    }

    /// A fresh key pair from the operating system's randomness.
    pub fn generate() -> Self {
        // `rand`'s thread generator is a CSPRNG seeded from the operating system.
        let key = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let id = key_id(&key.verifying_key());
        Self { key, id }
    }

    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// The private key as PKCS#8 PEM (for `portcullis audit keygen` only).
    pub fn private_pem(&self) -> Result<Secret, AuditError> {
        let pem = self
            .key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| AuditError::Key(format!("cannot encode the key: {e}")))?;
        Ok(Secret::new(pem.as_str()))
    }

    /// The public key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_pem(&self) -> Result<String, AuditError> {
        self.key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| AuditError::Key(format!("cannot encode the public key: {e}")))
    }

    pub fn sign(&self, checkpoint: Checkpoint) -> Result<SignedCheckpoint, AuditError> {
        let signature = self.key.sign(checkpoint.text()?.as_bytes());
        Ok(SignedCheckpoint {
            checkpoint,
            signature: hex(&signature.to_bytes()),
        })
    }
}

/// Reads a public key in SPKI PEM.
pub fn public_key_from_pem(pem: &str) -> Result<VerifyingKey, AuditError> {
    VerifyingKey::from_public_key_pem(pem.trim())
        .map_err(|_| AuditError::Key("it is not an Ed25519 public key in SPKI PEM".into()))
}

/// Whether `signed` carries a valid signature by `key` (and names that key).
pub fn signature_holds(signed: &SignedCheckpoint, key: &VerifyingKey) -> bool {
    if signed.checkpoint.key_id != key_id(key) {
        return false;
    }
    let Ok(text) = signed.checkpoint.text() else {
        return false;
    };
    let Some(bytes) = decode_hex(&signed.signature) else {
        return false;
    };
    let Ok(sig) = Signature::from_slice(&bytes) else {
        return false;
    };
    key.verify(text.as_bytes(), &sig).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn checkpoint(key_id: &str) -> Checkpoint {
        Checkpoint {
            index: 1,
            tree_size: 3,
            root: "ab".repeat(32),
            last_event_hash: "cd".repeat(32),
            previous: "00".repeat(32),
            at: DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap(),
            key_id: key_id.to_string(),
        }
    }

    #[test]
    fn a_generated_key_round_trips_through_pem_and_signs_verifiably() {
        let signer = CheckpointSigner::generate();
        let again = CheckpointSigner::from_pem(&signer.private_pem().unwrap()).unwrap();
        // The whole keygen output saved to a file reads too.
        let saved = format!(
            "# key id: {}\n{}# Public key\n{}",
            signer.key_id(),
            signer.private_pem().unwrap().expose(),
            signer.public_pem().unwrap()
        );
        assert_eq!(
            CheckpointSigner::from_pem(&Secret::new(saved))
                .unwrap()
                .key_id(),
            signer.key_id()
        );
        assert_eq!(again.key_id(), signer.key_id());
        let public = public_key_from_pem(&signer.public_pem().unwrap()).unwrap();
        let signed = again.sign(checkpoint(signer.key_id())).unwrap();
        assert!(signature_holds(&signed, &public));

        let mut edited = signed.clone();
        edited.checkpoint.tree_size = 4;
        assert!(!signature_holds(&edited, &public));
        let other = CheckpointSigner::generate();
        let public_other = public_key_from_pem(&other.public_pem().unwrap()).unwrap();
        assert!(!signature_holds(&signed, &public_other));
    }

    #[test]
    fn a_bad_key_is_named_without_its_content() {
        let e = CheckpointSigner::from_pem(&Secret::new("-----BEGIN PRIVATE KEY-----\nAAAA\n"))
            .unwrap_err();
        assert!(e.to_string().contains("portcullis audit keygen"), "{e}");
        assert!(!e.to_string().contains("AAAA"));
    }
}
