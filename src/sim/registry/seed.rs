//! The registry simulator's seeded repository: `acme/payments-api`'s index and manifests, signed
//! with the simulator's key (a cosign `.sig`) and attested with SLSA v1 provenance (`.att`).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Signer as _;
use serde_json::json;

use super::{Data, INDEX, MANIFEST, REPOSITORY, Repo, SEEDED_BUILDER, SEEDED_COMMIT, signing_key};

/// The digest of the seeded `1.8.3` index.
pub fn seeded_digest() -> String {
    seed().repos[REPOSITORY].tags["1.8.3"].clone()
}

pub(super) fn seed() -> Data {
    let mut repo = Repo::default();
    let (amd, amd_size) = repo.image("amd64");
    let (arm, arm_size) = repo.image("arm64");
    let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [
        {"mediaType": MANIFEST, "digest": amd, "size": amd_size, "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": MANIFEST, "digest": arm, "size": arm_size, "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]});
    let digest = repo.manifest(INDEX, &index, Some("1.8.3"));
    for (tag, platform) in [
        ("1.7.0", "s390x"),
        ("1.8.0", "ppc64le"),
        ("1.8.2", "riscv64"),
        ("1.9.0-rc.1", "mips64le"),
    ] {
        let (d, _) = repo.image(platform);
        repo.tags.insert(tag.into(), d);
    }
    repo.tags.insert("latest".into(), digest.clone());
    if let Some(key) = signing_key() {
        sign(&mut repo, &key, &digest);
        attest(&mut repo, &key, &digest);
    }
    let mut repos = BTreeMap::new();
    repos.insert(REPOSITORY.to_string(), repo);
    Data {
        repos,
        referrers: true,
    }
}

/// A cosign `.sig` manifest for `digest`, as cosign ≤ v2 writes it.
pub(super) fn sign(repo: &mut Repo, key: &p256::ecdsa::SigningKey, digest: &str) {
    let payload = serde_json::to_vec(&json!({"critical": {
        "identity": {"docker-reference": format!("registry.sim/{REPOSITORY}")},
        "image": {"docker-manifest-digest": digest},
        "type": "cosign container image signature"}, "optional": null}))
    .unwrap_or_default();
    let sig: p256::ecdsa::DerSignature = key.sign(&payload);
    let layer = repo.blob(payload);
    let config = repo.blob(b"{}".to_vec());
    let doc = json!({"schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
        "layers": [{"mediaType": "application/vnd.dev.cosign.simplesigning.v1+json", "digest": layer["digest"], "size": layer["size"],
            "annotations": {"dev.cosignproject.cosign/signature": STANDARD.encode(sig.as_bytes())}}]});
    repo.manifest(
        MANIFEST,
        &doc,
        Some(&format!("{}.sig", digest.replacen(':', "-", 1))),
    );
}

/// A cosign `.att` manifest with SLSA v1 provenance for `digest`.
pub(super) fn attest(repo: &mut Repo, key: &p256::ecdsa::SigningKey, digest: &str) {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let statement = serde_json::to_vec(&json!({"_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": format!("registry.sim/{REPOSITORY}"), "digest": {"sha256": hex}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"buildType": "https://github.com/actions/buildtypes/workflow/v1",
            "externalParameters": {"workflow": {"repository": "https://github.com/acme/payments-api", "ref": "refs/heads/main", "path": ".github/workflows/release.yml"}},
            "resolvedDependencies": [{"uri": "git+https://github.com/acme/payments-api@refs/heads/main", "digest": {"gitCommit": SEEDED_COMMIT}}]},
            "runDetails": {"builder": {"id": SEEDED_BUILDER}, "metadata": {"invocationId": "https://github.com/acme/payments-api/actions/runs/1"}}}}))
    .unwrap_or_default();
    let payload_type = "application/vnd.in-toto+json";
    let mut pae = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        statement.len()
    )
    .into_bytes();
    pae.extend_from_slice(&statement);
    let sig: p256::ecdsa::DerSignature = key.sign(&pae);
    let envelope = serde_json::to_vec(&json!({"payloadType": payload_type,
        "payload": STANDARD.encode(&statement),
        "signatures": [{"keyid": "", "sig": STANDARD.encode(sig.as_bytes())}]}))
    .unwrap_or_default();
    let layer = repo.blob(envelope);
    let config = repo.blob(b"{}".to_vec());
    let doc = json!({"schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
        "layers": [{"mediaType": "application/vnd.dsse.envelope.v1+json", "digest": layer["digest"], "size": layer["size"],
            "annotations": {"predicateType": "https://slsa.dev/provenance/v1"}}]});
    repo.manifest(
        MANIFEST,
        &doc,
        Some(&format!("{}.att", digest.replacen(':', "-", 1))),
    );
}
