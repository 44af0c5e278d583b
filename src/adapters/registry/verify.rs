//! Signature and attestation checks for one image digest (contract §5–§6): cosign Simple Signing
//! payloads, DSSE envelopes with in-toto Statements, and the SLSA provenance fields rules read.
//! The cryptography is RustCrypto's (`p256` ECDSA as cosign generates, `ed25519-dalek`); this
//! file only decides *what* is verified and in which order: the signature first, then the
//! payload type, then the same bytes that were verified are parsed — never re-decoded.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::DecodePublicKey as _;
use serde_json::Value;

/// The DSSE payload type of an in-toto Statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The predicate type cosign v3 uses for a plain image signature in a Sigstore bundle.
pub const COSIGN_SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
pub const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
pub const SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";

/// One configured public key, by the id rules and facts name it with.
#[derive(Clone)]
pub struct TrustedKey {
    pub id: String,
    key: PublicKey,
}

#[derive(Clone)]
enum PublicKey {
    P256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alg = match self.key {
            PublicKey::P256(_) => "ecdsa-p256",
            PublicKey::Ed25519(_) => "ed25519",
        };
        write!(f, "TrustedKey({}, {alg})", self.id)
    }
}

impl TrustedKey {
    /// Parses a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as `cosign generate-key-pair` writes
    /// `cosign.pub`: ECDSA P-256, or Ed25519.
    pub fn from_pem(id: &str, pem: &str) -> Result<Self, String> {
        let pem = pem.trim();
        if let Ok(k) = p256::PublicKey::from_public_key_pem(pem) {
            return Ok(Self {
                id: id.to_string(),
                key: PublicKey::P256(p256::ecdsa::VerifyingKey::from(&k)),
            });
        }
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(Self {
                id: id.to_string(),
                key: PublicKey::Ed25519(k),
            });
        }
        Err("is not a PEM `PUBLIC KEY` for ECDSA P-256 or Ed25519".into())
    }

    /// Whether `signature` (ASN.1 DER or fixed-size for ECDSA, 64 bytes for Ed25519) signs
    /// `message` under this key. ECDSA hashes the message with SHA-256, as cosign does.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            PublicKey::P256(k) => {
                let sig = p256::ecdsa::Signature::from_der(signature)
                    .or_else(|_| p256::ecdsa::Signature::from_slice(signature));
                sig.is_ok_and(|s| k.verify(message, &s).is_ok())
            }
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify_strict(message, &s).is_ok()),
        }
    }
}

/// The ids of the keys under which `signature` verifies `message` (empty: none of them).
fn signers(keys: &[TrustedKey], message: &[u8], signature: &[u8]) -> Vec<String> {
    keys.iter()
        .filter(|k| k.verifies(message, signature))
        .map(|k| k.id.clone())
        .collect()
}

/// Base64 as DSSE allows it: standard or URL-safe, padded or not.
pub fn b64(text: &str) -> Option<Vec<u8>> {
    let t = text.trim();
    STANDARD
        .decode(t)
        .or_else(|_| URL_SAFE.decode(t))
        .or_else(|_| URL_SAFE_NO_PAD.decode(t))
        .ok()
}

/// A cosign Simple Signing signature (a `.sig` layer): the verified key ids, or why it is not
/// a signature of `digest`.
pub fn simple_signing(
    keys: &[TrustedKey],
    payload: &[u8],
    signature_b64: &str,
    digest: &str,
) -> Result<Vec<String>, String> {
    let signature = b64(signature_b64).ok_or("the signature annotation is not base64")?;
    let ids = signers(keys, payload, &signature);
    if ids.is_empty() {
        return Err(
            "a `.sig` signature does not verify under any configured key (unknown key or tampered payload)"
                .into(),
        );
    }
    let doc: Value = serde_json::from_slice(payload)
        .map_err(|e| format!("a signed Simple Signing payload is not json: {e}"))?;
    let critical = &doc["critical"];
    if critical["type"] != "cosign container image signature" {
        return Err(format!(
            "a signed payload has type `{}`, not `cosign container image signature`",
            critical["type"].as_str().unwrap_or("")
        ));
    }
    let signed = critical["image"]["docker-manifest-digest"]
        .as_str()
        .unwrap_or("");
    if signed != digest {
        return Err(format!(
            "a valid signature signs another digest, `{signed}`"
        ));
    }
    Ok(ids)
}

/// A verified in-toto Statement from a DSSE envelope.
#[derive(Debug, Clone)]
pub struct VerifiedStatement {
    pub key_ids: Vec<String>,
    pub predicate_type: String,
    /// Whether some `subject[].digest.sha256` is the image's digest.
    pub subject_matches: bool,
    pub predicate: Value,
}

/// The envelope's Pre-Authentication Encoding (DSSE v1): what the signature covers.
fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Verifies a DSSE envelope (`{payload, payloadType, signatures[]}`) against `keys`, then
/// reads the Statement out of exactly the verified bytes and matches its subjects against
/// `digest` (`sha256:<hex>`).
pub fn dsse_statement(
    keys: &[TrustedKey],
    envelope: &Value,
    digest: &str,
) -> Result<VerifiedStatement, String> {
    let payload_type = envelope["payloadType"]
        .as_str()
        .ok_or("a DSSE envelope has no `payloadType`")?;
    let body = envelope["payload"]
        .as_str()
        .and_then(b64)
        .ok_or("a DSSE envelope's `payload` is missing or not base64")?;
    let signed = pae(payload_type, &body);
    let mut key_ids: Vec<String> = Vec::new();
    for sig in envelope["signatures"].as_array().into_iter().flatten() {
        // `keyid` is an unauthenticated hint: every configured key is tried.
        if let Some(bytes) = sig["sig"].as_str().and_then(b64) {
            for id in signers(keys, &signed, &bytes) {
                if !key_ids.contains(&id) {
                    key_ids.push(id);
                }
            }
        }
    }
    if key_ids.is_empty() {
        return Err(
            "an attestation does not verify under any configured key (unknown key or tampered envelope)"
                .into(),
        );
    }
    if payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "a signed envelope carries `{payload_type}`, not an in-toto statement"
        ));
    }
    let statement: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("a signed in-toto statement is not json: {e}"))?;
    let kind = statement["_type"].as_str().unwrap_or("");
    if !kind.starts_with("https://in-toto.io/Statement/") {
        return Err(format!(
            "a signed payload is `{kind}`, not an in-toto statement"
        ));
    }
    let predicate_type = statement["predicateType"]
        .as_str()
        .ok_or("a signed statement has no `predicateType`")?
        .to_string();
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let subject_matches = statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["digest"]["sha256"].as_str() == Some(hex));
    Ok(VerifiedStatement {
        key_ids,
        predicate_type,
        subject_matches,
        predicate: statement["predicate"].clone(),
    })
}

/// The SLSA provenance fields rules read, from a verified predicate of `predicate_type` (v1 or
/// v0.2, whose paths differ); `None` for other predicate types.
pub fn provenance(predicate_type: &str, predicate: &Value) -> Option<Provenance> {
    let s = |v: &Value| v.as_str().map(str::to_string);
    match predicate_type {
        SLSA_V1 => {
            let def = &predicate["buildDefinition"];
            let deps = def["resolvedDependencies"].as_array();
            let dep = deps
                .into_iter()
                .flatten()
                .find(|d| d["digest"]["gitCommit"].is_string() || d["digest"]["sha1"].is_string());
            let workflow_repo = s(&def["externalParameters"]["workflow"]["repository"]);
            Some(Provenance {
                builder_id: s(&predicate["runDetails"]["builder"]["id"]),
                build_type: s(&def["buildType"]),
                source_repository: workflow_repo
                    .or_else(|| dep.and_then(|d| s(&d["uri"])))
                    .map(|r| normalise_repo(&r)),
                source_commit: dep
                    .and_then(|d| s(&d["digest"]["gitCommit"]).or_else(|| s(&d["digest"]["sha1"]))),
                source_ref: s(&def["externalParameters"]["workflow"]["ref"]),
            })
        }
        SLSA_V02 => {
            let config = &predicate["invocation"]["configSource"];
            let material = predicate["materials"].as_array().and_then(|m| m.first());
            let uri = s(&config["uri"]).or_else(|| material.and_then(|m| s(&m["uri"])));
            Some(Provenance {
                builder_id: s(&predicate["builder"]["id"]),
                build_type: s(&predicate["buildType"]),
                source_ref: uri
                    .as_deref()
                    .and_then(|u| u.split_once('@'))
                    .map(|(_, r)| r.to_string()),
                source_repository: uri.map(|r| normalise_repo(&r)),
                source_commit: s(&config["digest"]["sha1"])
                    .or_else(|| material.and_then(|m| s(&m["digest"]["sha1"]))),
            })
        }
        _ => None,
    }
}

/// SLSA provenance, as facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub builder_id: Option<String>,
    pub build_type: Option<String>,
    /// Normalised: no scheme, no `git+`, no `.git`, no `@ref`, lower case (`github.com/acme/api`).
    pub source_repository: Option<String>,
    pub source_commit: Option<String>,
    pub source_ref: Option<String>,
}

/// `git+https://github.com/Acme/api.git@refs/heads/main` → `github.com/acme/api`; a bare
/// `acme/api` (GitHub's `workflow.repository`) stays as it is, lower case.
pub fn normalise_repo(uri: &str) -> String {
    let mut r = uri.trim();
    r = r.strip_prefix("git+").unwrap_or(r);
    if let Some((_, rest)) = r.split_once("://") {
        r = rest;
    }
    if let Some((before, _)) = r.split_once('@') {
        r = before;
    }
    let r = r.trim_end_matches('/');
    let r = r.strip_suffix(".git").unwrap_or(r);
    r.to_ascii_lowercase()
}

/// Whether a provenance repository names the same repository as a check's source: equal once
/// normalised, or equal after the host when one side has none (`acme/api` vs
/// `github.com/acme/api`).
pub fn same_repository(provenance: &str, source: &str) -> bool {
    let a = normalise_repo(provenance);
    let b = normalise_repo(source);
    if a == b {
        return true;
    }
    let path = |s: &str| -> Option<String> {
        let (host, rest) = s.split_once('/')?;
        host.contains('.').then(|| rest.to_string())
    };
    match (path(&a), path(&b)) {
        (Some(pa), None) => pa == b,
        (None, Some(pb)) => pb == a,
        _ => false,
    }
}

/// Whether a provenance commit is the check's commit: equal, or the check names an abbreviated
/// commit (at least 7 hex digits) that the full one starts with.
pub fn same_commit(provenance: &str, source: &str) -> bool {
    let p = provenance.to_ascii_lowercase();
    let s = source.to_ascii_lowercase();
    p == s || (s.len() >= 7 && s.chars().all(|c| c.is_ascii_hexdigit()) && p.starts_with(&s))
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;
    use serde_json::json;

    fn key(seed: u8) -> (p256::ecdsa::SigningKey, TrustedKey) {
        let sk = p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let pem = sk
            .verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        (sk, TrustedKey::from_pem(&format!("k{seed}"), &pem).unwrap())
    }

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn envelope(sk: &p256::ecdsa::SigningKey, statement: &Value) -> Value {
        let body = serde_json::to_vec(statement).unwrap();
        let sig: p256::ecdsa::DerSignature = sk.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &body));
        json!({"payloadType": IN_TOTO_PAYLOAD_TYPE, "payload": STANDARD.encode(&body),
               "signatures": [{"keyid": "", "sig": STANDARD.encode(sig.as_bytes())}]})
    }

    #[test]
    fn simple_signing_needs_a_known_key_and_the_same_digest() {
        let (sk, trusted) = key(7);
        let (_, other) = key(9);
        let payload = serde_json::to_vec(&json!({"critical": {"type": "cosign container image signature",
            "image": {"docker-manifest-digest": DIGEST}, "identity": {"docker-reference": "x"}}, "optional": null}))
        .unwrap();
        let sig: p256::ecdsa::DerSignature = sk.sign(&payload);
        let sig = STANDARD.encode(sig.as_bytes());
        assert_eq!(
            simple_signing(std::slice::from_ref(&trusted), &payload, &sig, DIGEST).unwrap(),
            ["k7"]
        );
        let e = simple_signing(&[other], &payload, &sig, DIGEST).unwrap_err();
        assert!(e.contains("any configured key"), "{e}");
        let mut tampered = payload.clone();
        tampered[5] ^= 1;
        assert!(simple_signing(std::slice::from_ref(&trusted), &tampered, &sig, DIGEST).is_err());
        let e = simple_signing(&[trusted], &payload, &sig, &DIGEST.replace('1', "2")).unwrap_err();
        assert!(e.contains("another digest"), "{e}");
    }

    #[test]
    fn dsse_reads_only_verified_statements_and_matches_subjects() {
        let (sk, trusted) = key(3);
        let hex = DIGEST.strip_prefix("sha256:").unwrap();
        let statement = json!({"_type": "https://in-toto.io/Statement/v1",
            "subject": [{"name": "x", "digest": {"sha256": "ab"}}, {"name": "y", "digest": {"sha256": hex}}],
            "predicateType": SLSA_V1, "predicate": {"runDetails": {"builder": {"id": "https://ci/b"}}}});
        let env = envelope(&sk, &statement);
        let v = dsse_statement(std::slice::from_ref(&trusted), &env, DIGEST).unwrap();
        assert_eq!(v.key_ids, ["k3"]);
        assert!(v.subject_matches);
        assert_eq!(v.predicate_type, SLSA_V1);
        let v = dsse_statement(
            std::slice::from_ref(&trusted),
            &env,
            &DIGEST.replace('1', "2"),
        )
        .unwrap();
        assert!(!v.subject_matches);
        let mut bad = env.clone();
        bad["payloadType"] = json!("application/json");
        assert!(dsse_statement(std::slice::from_ref(&trusted), &bad, DIGEST).is_err());
        let (_, stranger) = key(4);
        assert!(dsse_statement(&[stranger], &env, DIGEST).is_err());
    }

    #[test]
    fn provenance_fields_of_both_versions() {
        let v1 = json!({"buildDefinition": {"buildType": "https://github.com/actions/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"repository": "https://github.com/Acme/api", "ref": "refs/heads/main"}},
            "resolvedDependencies": [{"uri": "git+https://github.com/acme/api@refs/heads/main", "digest": {"gitCommit": "0123abcd99"}}]},
            "runDetails": {"builder": {"id": "https://github.com/acme/ci/.github/workflows/build.yml@refs/heads/main"}}});
        let p = provenance(SLSA_V1, &v1).unwrap();
        assert_eq!(p.source_repository.as_deref(), Some("github.com/acme/api"));
        assert_eq!(p.source_commit.as_deref(), Some("0123abcd99"));
        let v02 = json!({"builder": {"id": "https://ci/b"}, "buildType": "https://ci/t",
            "invocation": {"configSource": {"uri": "git+https://github.com/acme/api.git@refs/tags/v1", "digest": {"sha1": "abc1234"}}}});
        let p = provenance(SLSA_V02, &v02).unwrap();
        assert_eq!(p.builder_id.as_deref(), Some("https://ci/b"));
        assert_eq!(p.source_repository.as_deref(), Some("github.com/acme/api"));
        assert_eq!(p.source_ref.as_deref(), Some("refs/tags/v1"));
        assert!(provenance("https://spdx.dev/Document", &v02).is_none());
        assert!(same_repository("github.com/acme/api", "acme/api"));
        assert!(same_repository(
            "github.com/acme/api",
            "https://github.com/acme/api.git"
        ));
        assert!(!same_repository(
            "github.com/evil/api",
            "github.com/acme/api"
        ));
        assert!(same_commit("0123abcd99", "0123abcd"));
        assert!(!same_commit("0123abcd99", "0123"));
    }
}
