//! Artifact integrity against the registry simulator: images the test pushes, signs and attests
//! with keys it generates, read by the `registry` adapter and judged by the built-in
//! supply-chain rules. A missing digest, a moved tag, an unsigned image, an unknown key, a
//! tampered signature, an attestation for another digest, provenance from another repository:
//! none continues; a correctly signed and attested image does.

use std::sync::Arc;
use std::time::Duration;

use portcullis::adapters::{Adapter, AdapterConfig};
use portcullis::sim::{self, Sims};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::fixtures::{image, request};
use crate::support::oci::{self, Pusher};

const REPO: &str = "acme/app";
const SOURCE: &str = "github.com/acme/app";
const COMMIT: &str = "4f2a9c1e0d0c0ffee4f2a9c1e0d0c0ffee4f2a9c";

fn config(sims: &Sims, pems: &[(&str, &str)]) -> Value {
    let keys: Vec<Value> = pems
        .iter()
        .map(|(id, pem)| json!({"id": id, "public_key": {"value": pem}}))
        .collect();
    json!({"kind": "registry", "name": "registry", "cache_ttl": "0s",
        "registries": [{"host": "ghcr.io", "base_url": sims.registry.base_url,
            "auth": {"type": "basic", "username": sim::registry::USER, "password": {"value": sim::registry::PASSWORD}}}],
        "keys": keys, "newest_tag": {"pattern": "^\\d+\\.\\d+\\.\\d+$"}})
}

fn adapter(config: &Value) -> Arc<dyn Adapter> {
    let c: AdapterConfig = serde_json::from_value(config.clone()).unwrap();
    crate::support::build_adapters(&[c]).remove(0)
}

async fn facts(adapter: &dyn Adapter, reference: &str) -> Value {
    let req = request(|d| {
        d.images = vec![image(reference)];
        d.sources[0].repository = SOURCE.into();
        d.sources[0].commit = COMMIT[..8].into();
    });
    let f = adapter
        .collect(&req, Instant::now() + Duration::from_secs(5))
        .await
        .unwrap();
    f.document["images"][0].clone()
}

/// A pushed image, signed and attested as the release pipeline does, unless the case changes it.
struct World {
    sims: Sims,
    push: Pusher,
    key: p256::ecdsa::SigningKey,
    pem: String,
}

async fn world() -> World {
    let sims = sim::start(0).await.unwrap();
    let push = Pusher::new(&sims.registry);
    let (key, pem) = oci::key();
    World {
        sims,
        push,
        key,
        pem,
    }
}

impl World {
    async fn release(&self, tag: &str, seed: &str) -> String {
        let d = self.push.image(REPO, tag, seed).await;
        self.push.sign(REPO, &d, &self.key, &d, false).await;
        self.push
            .attest(REPO, &d, &self.key, &oci::provenance(&d, SOURCE, COMMIT))
            .await;
        d
    }

    fn adapter(&self) -> Arc<dyn Adapter> {
        adapter(&config(&self.sims, &[("release", &self.pem)]))
    }
}

#[tokio::test]
async fn a_signed_and_attested_image_has_every_fact() {
    let w = world().await;
    let d = w.release("1.4.2", "good").await;
    w.push.image(REPO, "1.3.0", "old").await;
    let f = facts(&*w.adapter(), &format!("ghcr.io/{REPO}:1.4.2@{d}")).await;
    assert_eq!(f["exists"], true, "{f}");
    assert_eq!(f["tag_moved"], false);
    assert_eq!(f["media_type"], oci::MANIFEST);
    assert_eq!(f["signed"], true, "{f}");
    assert_eq!(f["signed_by"], json!(["release"]));
    assert_eq!(f["newest_tag"], "1.4.2");
    assert_eq!(f["is_newest"], true);
    assert_eq!(
        f["predicate_types"],
        json!(["https://slsa.dev/provenance/v1"])
    );
    let p = &f["provenance"];
    assert_eq!(p["source_repository"], SOURCE, "{f}");
    assert_eq!(p["source_commit"], COMMIT);
    assert_eq!(p["repository_matches_request"], true);
    assert_eq!(p["commit_matches_request"], true);
    assert_eq!(p["key_ids"], json!(["release"]));
    assert_eq!(
        p["builder_id"],
        "https://github.com/acme/ci/.github/workflows/release.yml@refs/heads/main"
    );
    assert_eq!(f["problems"], json!([]), "{f}");
}

#[tokio::test]
async fn the_seeded_index_lists_its_platforms() {
    let sims = sim::start(0).await.unwrap();
    let a = adapter(&config(&sims, &[("sim", &sim::registry::public_key_pem())]));
    let d = sim::registry::seeded_digest();
    let f = facts(
        &*a,
        &format!("ghcr.io/{}:1.8.3@{d}", sim::registry::REPOSITORY),
    )
    .await;
    assert_eq!(
        f["media_type"], "application/vnd.oci.image.index.v1+json",
        "{f}"
    );
    assert_eq!(f["platforms"], json!(["linux/amd64", "linux/arm64/v8"]));
    assert_eq!(f["signed"], true, "{f}");
    // Paged tag listing (four a page): 1.7.0 … 1.9.0-rc.1, `latest`; the newest release is 1.8.3.
    assert_eq!(f["newest_tag"], "1.8.3");
    assert_eq!(f["is_newest"], true);
}

#[tokio::test]
async fn what_the_registry_contradicts_is_a_fact() {
    let w = world().await;
    let a = w.adapter();
    let d = w.release("2.0.0", "first").await;
    // A digest the registry never had (in a repository it has).
    let ghost = format!("sha256:{}", "e".repeat(64));
    let f = facts(&*a, &format!("ghcr.io/{REPO}@{ghost}")).await;
    assert_eq!(f["exists"], false, "{f}");
    assert_eq!(f["tag_moved"], false);

    // A tag pushed over after the release.
    w.push.image(REPO, "2.0.0", "second").await;
    let f = facts(&*a, &format!("ghcr.io/{REPO}:2.0.0@{d}")).await;
    assert_eq!(f["exists"], true);
    assert_eq!(f["tag_moved"], true, "{f}");
    assert_eq!(f["signed"], true);
}

#[tokio::test]
async fn bad_signatures_never_count() {
    let w = world().await;
    let a = w.adapter();
    let (stranger, _) = oci::key();

    let unsigned = w.push.image(REPO, "u", "unsigned").await;
    let f = facts(&*a, &format!("ghcr.io/{REPO}@{unsigned}")).await;
    assert_eq!(f["signed"], false, "{f}");
    assert_eq!(f["signed_by"], json!([]));

    let unknown = w.push.image(REPO, "k", "unknown-key").await;
    w.push
        .sign(REPO, &unknown, &stranger, &unknown, false)
        .await;
    let f = facts(&*a, &format!("ghcr.io/{REPO}@{unknown}")).await;
    assert_eq!(f["signed"], false, "{f}");
    assert!(
        f["problems"][0]
            .as_str()
            .unwrap()
            .contains("any configured key"),
        "{f}"
    );

    let tampered = w.push.image(REPO, "t", "tampered").await;
    w.push.sign(REPO, &tampered, &w.key, &tampered, true).await;
    let f = facts(&*a, &format!("ghcr.io/{REPO}@{tampered}")).await;
    assert_eq!(f["signed"], false, "{f}");

    // A genuine signature of another image, copied next to this one.
    let other = w.push.image(REPO, "o", "other").await;
    let copied = w.push.image(REPO, "c", "copied").await;
    w.push.sign(REPO, &copied, &w.key, &other, false).await;
    let f = facts(&*a, &format!("ghcr.io/{REPO}@{copied}")).await;
    assert_eq!(f["signed"], false, "{f}");
    assert!(
        f["problems"][0]
            .as_str()
            .unwrap()
            .contains("another digest"),
        "{f}"
    );
}

#[tokio::test]
async fn provenance_must_name_this_digest_and_this_source() {
    let w = world().await;
    let a = w.adapter();
    // A genuine attestation of another image attached to this one.
    let other = w.push.image(REPO, "x", "x").await;
    let d = w.push.image(REPO, "y", "y").await;
    w.push.sign(REPO, &d, &w.key, &d, false).await;
    w.push
        .attest(REPO, &d, &w.key, &oci::provenance(&other, SOURCE, COMMIT))
        .await;
    let f = facts(&*a, &format!("ghcr.io/{REPO}@{d}")).await;
    assert_eq!(f["provenance"], Value::Null, "{f}");
    assert_eq!(f["attestations"][0]["subject_matches"], false);
    assert!(
        f["problems"][0]
            .as_str()
            .unwrap()
            .contains("another digest"),
        "{f}"
    );

    // Built from a fork.
    let fork = w.push.image(REPO, "z", "z").await;
    w.push.sign(REPO, &fork, &w.key, &fork, false).await;
    w.push
        .attest(
            REPO,
            &fork,
            &w.key,
            &oci::provenance(&fork, "github.com/evil/app", COMMIT),
        )
        .await;
    let f = facts(&*a, &format!("ghcr.io/{REPO}@{fork}")).await;
    assert_eq!(f["provenance"]["repository_matches_request"], false, "{f}");
    assert_eq!(f["provenance"]["commit_matches_request"], false);
}

#[tokio::test]
async fn cosign_v3_referrer_bundles_count_with_or_without_the_referrers_api() {
    let w = world().await;
    let d = w.push.image(REPO, "v3", "v3").await;
    w.push.sign_referrer(REPO, &d, &w.key).await;
    let a = w.adapter();
    let f = facts(&*a, &format!("ghcr.io/{REPO}@{d}")).await;
    assert_eq!(f["referrers_api"], true, "{f}");
    assert_eq!(f["signed"], true, "{f}");
    let r = reqwest::Client::new()
        .post(format!(
            "{}/_sim/scenario/referrers_unsupported",
            w.sims.registry.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let f = facts(&*a, &format!("ghcr.io/{REPO}@{d}")).await;
    assert_eq!(f["referrers_api"], false, "{f}");
    assert_eq!(f["signed"], true, "the fallback tag is read: {f}");
}

/// The built-in supply-chain rules over the adapter, through the running service.
#[tokio::test]
async fn only_the_good_image_continues() {
    let w = world().await;
    let good = w.release("3.0.0", "good").await;
    let (stranger, _) = oci::key();
    let unsigned = w.push.image(REPO, "u", "unsigned").await;
    let unknown = w.push.image(REPO, "k", "unknown").await;
    w.push
        .sign(REPO, &unknown, &stranger, &unknown, false)
        .await;
    let tampered = w.push.image(REPO, "t", "tampered").await;
    w.push.sign(REPO, &tampered, &w.key, &tampered, true).await;
    w.push
        .attest(
            REPO,
            &tampered,
            &w.key,
            &oci::provenance(&tampered, SOURCE, COMMIT),
        )
        .await;
    let moved = w.release("3.1.0", "moved").await;
    w.push.image(REPO, "3.1.0", "over").await;
    let other_subject = w.push.image(REPO, "s", "subject").await;
    w.push
        .sign(REPO, &other_subject, &w.key, &other_subject, false)
        .await;
    w.push
        .attest(
            REPO,
            &other_subject,
            &w.key,
            &oci::provenance(&good, SOURCE, COMMIT),
        )
        .await;
    let fork = w.push.image(REPO, "f", "fork").await;
    w.push.sign(REPO, &fork, &w.key, &fork, false).await;
    w.push
        .attest(
            REPO,
            &fork,
            &w.key,
            &oci::provenance(&fork, "github.com/evil/app", COMMIT),
        )
        .await;
    let ghost = format!("sha256:{}", "e".repeat(64));

    let app = crate::support::TestApp::builder()
        .adapter(config(&w.sims, &[("release", &w.pem)]))
        .policies(&[(
            "supply-chain.yaml",
            include_str!("../../src/policy/builtin/supply-chain.yaml"),
        )])
        .spawn()
        .await;
    let cases = [
        (format!("ghcr.io/{REPO}:3.0.0@{good}"), "continue", None),
        (
            format!("ghcr.io/{REPO}@{ghost}"),
            "terminate",
            Some("image-exists-in-registry"),
        ),
        (
            format!("ghcr.io/{REPO}:3.1.0@{moved}"),
            "manual_review",
            Some("image-tag-not-moved"),
        ),
        (
            format!("ghcr.io/{REPO}@{unsigned}"),
            "terminate",
            Some("image-signed"),
        ),
        (
            format!("ghcr.io/{REPO}@{unknown}"),
            "terminate",
            Some("image-signed"),
        ),
        (
            format!("ghcr.io/{REPO}@{tampered}"),
            "terminate",
            Some("image-signed"),
        ),
        (
            format!("ghcr.io/{REPO}@{other_subject}"),
            "manual_review",
            Some("image-built-from-this-commit"),
        ),
        (
            format!("ghcr.io/{REPO}@{fork}"),
            "terminate",
            Some("image-built-from-this-commit"),
        ),
    ];
    for (reference, verdict, rule) in cases {
        let body = json!({"application": "app", "environment": "prod", "images": [reference],
            "sources": [{"repository": SOURCE, "commit": &COMMIT[..8]}]});
        let d = app.check(&body).await.json_with(StatusCode::CREATED);
        assert_eq!(d["verdict"], verdict, "{reference}: {d}");
        if let Some(rule) = rule {
            let failed: Vec<&str> = d["rule_results"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["outcome"] != "pass")
                .map(|r| r["rule_id"].as_str().unwrap_or_default())
                .collect();
            assert!(failed.contains(&rule), "{reference}: {failed:?} {d}");
        }
    }
}
