//! OCI registry simulator (contract `supply-chain.md` §2–§5), the Distribution v2 API a
//! `registry:2`/Harbor speaks: the token flow (`401` with `WWW-Authenticate: Bearer realm=…,
//! service=…,scope=…`, `GET /token` anonymous or with Basic credentials, partial grants),
//! manifests and indexes by tag or digest (`Docker-Content-Digest`), blobs, tag listing paged
//! with `Link` (at most four tags a page, whatever `n` asks), the OCI 1.1 referrers API (or a
//! 404 like `registry:2`, scenario `referrers_unsupported`), and pushing (monolithic blob
//! upload, manifest `PUT`, `OCI-Subject`), so tests sign and attest images themselves. Errors
//! are `{"errors":[{"code","message","detail"}]}`.
//!
//! Seeded data: repository `acme/payments-api` with a two-platform index tagged `1.8.3` (and
//! `1.7.0`, `1.8.0`, `1.8.2` as single manifests, `1.9.0-rc.1`, `latest`), signed with the
//! simulator's key (`public_key_pem()`) as a cosign `.sig` and attested with SLSA v1
//! provenance (`.att`) built from `github.com/acme/payments-api` at `SEEDED_COMMIT`.
//!
//! Scenarios: `referrers_unsupported`, `referrers_supported` (the default).
//!
//! Here the state, the signing key and the routes; `registry/seed.rs` the seeded repository,
//! `registry/paging.rs` the tag and referrer listings, `registry/api.rs` the handlers.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use p256::pkcs8::EncodePublicKey as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::faults::{Control, wrap};

mod api;
mod paging;
mod seed;

pub use self::seed::seeded_digest;

use self::api::{base, error, put_manifest, read, render_error, reset, scenario, token, upload};
use self::seed::seed;

/// A robot account with pull and push on every repository (Basic, to the token endpoint).
pub const USER: &str = "sim-robot";
pub const PASSWORD: &str = "sim-registry-pass-7e1d";
/// The `service` of the token challenge.
pub const SERVICE: &str = "registry.sim";
/// The seeded repository.
pub const REPOSITORY: &str = "acme/payments-api";
/// The commit the seeded provenance names.
pub const SEEDED_COMMIT: &str = "0123abcdef0123456789abcdef0123456789abcd";
/// The builder the seeded provenance names.
pub const SEEDED_BUILDER: &str =
    "https://github.com/acme/ci/.github/workflows/release.yml@refs/heads/main";
/// Tags per page, whatever `n` asks, so paging is exercised.
const PAGE: usize = 4;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// The simulator's signing key (a fixed ECDSA P-256 key, public test material).
fn signing_key() -> Option<p256::ecdsa::SigningKey> {
    p256::ecdsa::SigningKey::from_slice(&[0x5a; 32]).ok()
}

/// The PEM public key the seeded signatures verify under.
pub fn public_key_pem() -> String {
    signing_key()
        .and_then(|k| {
            k.verifying_key()
                .to_public_key_pem(p256::pkcs8::LineEnding::LF)
                .ok()
        })
        .unwrap_or_default()
}

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

#[derive(Debug, Default, Clone)]
struct Repo {
    manifests: HashMap<String, (String, Vec<u8>)>,
    tags: BTreeMap<String, String>,
    blobs: HashMap<String, Vec<u8>>,
}

impl Repo {
    fn blob(&mut self, bytes: Vec<u8>) -> Value {
        let d = digest_of(&bytes);
        let size = bytes.len();
        self.blobs.insert(d.clone(), bytes);
        json!({"digest": d, "size": size})
    }

    fn manifest(&mut self, media_type: &str, doc: &Value, tag: Option<&str>) -> String {
        let bytes = serde_json::to_vec(doc).unwrap_or_default();
        let d = digest_of(&bytes);
        self.manifests
            .insert(d.clone(), (media_type.to_string(), bytes));
        if let Some(t) = tag {
            self.tags.insert(t.to_string(), d.clone());
        }
        d
    }

    fn image(&mut self, platform: &str) -> (String, usize) {
        let config =
            self.blob(format!("{{\"architecture\":\"{platform}\",\"os\":\"linux\"}}").into_bytes());
        let layer = self.blob(format!("layer of {platform}").into_bytes());
        let doc = json!({"schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config["digest"], "size": config["size"]},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer["digest"], "size": layer["size"]}]});
        let size = serde_json::to_vec(&doc).map(|b| b.len()).unwrap_or(0);
        (self.manifest(MANIFEST, &doc, None), size)
    }
}

/// What a token grants: (repository, actions) pairs, and the token epoch it was issued in.
type Grant = (Vec<(String, Vec<String>)>, u64);

struct Sim {
    control: Arc<Control>,
    data: Mutex<Data>,
    tokens: Mutex<HashMap<String, Grant>>,
    issued: AtomicU64,
}

struct Data {
    repos: BTreeMap<String, Repo>,
    referrers: bool,
}

pub fn router(control: Arc<Control>) -> Router {
    let sim = Arc::new(Sim {
        control: Arc::clone(&control),
        data: Mutex::new(seed()),
        tokens: Mutex::new(HashMap::new()),
        issued: AtomicU64::new(0),
    });
    let api = Router::new()
        .route("/v2/", get(base))
        .route("/v2/{*path}", get(read).put(put_manifest).post(upload))
        .route("/token", get(token))
        .with_state(Arc::clone(&sim));
    wrap(api, control, render_error).merge(
        Router::new()
            .route("/_sim/reset", post(reset))
            .route("/_sim/scenario/{name}", post(scenario))
            .with_state(sim),
    )
}

impl Sim {
    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `None` when the bearer token grants `action` on `repo`; otherwise the 401 challenge.
    fn refusal(
        &self,
        headers: &HeaderMap,
        repo: &str,
        action: &str,
        host: &str,
    ) -> Option<Response> {
        let granted = super::bearer(headers).is_some_and(|t| {
            let tokens = self
                .tokens
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            tokens.get(&t).is_some_and(|(grants, epoch)| {
                *epoch == self.control.token_epoch()
                    && !self.control.credentials_expired()
                    && grants
                        .iter()
                        .any(|(r, actions)| r == repo && actions.iter().any(|a| a == action))
            })
        });
        if granted {
            return None;
        }
        let actions = if action == "pull" {
            "pull"
        } else {
            "pull,push"
        };
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        let challenge = format!(
            "Bearer realm=\"http://{host}/token\",service=\"{SERVICE}\",scope=\"repository:{repo}:{actions}\""
        );
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        Some(r)
    }
}
