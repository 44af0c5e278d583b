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

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::EncodePublicKey as _;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::faults::{Control, wrap};

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

/// The digest of the seeded `1.8.3` index.
pub fn seeded_digest() -> String {
    seed().repos[REPOSITORY].tags["1.8.3"].clone()
}

fn seed() -> Data {
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
fn sign(repo: &mut Repo, key: &p256::ecdsa::SigningKey, digest: &str) {
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
fn attest(repo: &mut Repo, key: &p256::ecdsa::SigningKey, digest: &str) {
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

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"errors": [{"code": code, "message": message, "detail": null}]}).to_string(),
    )
        .into_response()
}

fn render_error(status: StatusCode, retry_after: Option<u64>) -> Response {
    let mut r = match status {
        StatusCode::TOO_MANY_REQUESTS => error(status, "TOOMANYREQUESTS", "too many requests"),
        StatusCode::UNAUTHORIZED => error(status, "UNAUTHORIZED", "authentication required"),
        _ => error(status, "UNKNOWN", "unknown error"),
    };
    if let Some(s) = retry_after
        && let Ok(v) = HeaderValue::from_str(&s.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
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

fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string()
}

async fn base(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if super::bearer(&headers).is_none() {
        let mut r = error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        );
        let challenge = format!(
            "Bearer realm=\"http://{}/token\",service=\"{SERVICE}\"",
            host(&headers)
        );
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        return r;
    }
    let _ = sim;
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        "{}",
    )
        .into_response()
}

/// `GET /token?service=…&scope=repository:<name>:<actions>`: the robot gets what it asks for,
/// anyone else an empty grant (a 200, as the spec allows: the registry refuses later).
async fn token(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let robot = match super::basic(&headers) {
        Some((u, p)) if u == USER && p == PASSWORD && !sim.control.credentials_expired() => true,
        Some(_) => {
            return error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "invalid credentials",
            );
        }
        None if sim.control.credentials_expired() => {
            return error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "authentication required",
            );
        }
        None => false,
    };
    let mut grants = Vec::new();
    for (k, v) in &q {
        if k != "scope" {
            continue;
        }
        // `repository:<name>:<actions>`; the name may hold `:` (a host:port), so split from the right.
        let Some((rest, actions)) = v.rsplit_once(':') else {
            continue;
        };
        let Some(name) = rest.strip_prefix("repository:") else {
            continue;
        };
        if robot {
            grants.push((
                name.to_string(),
                actions.split(',').map(str::to_string).collect(),
            ));
        }
    }
    let n = sim.issued.fetch_add(1, Ordering::SeqCst);
    let token = format!("simtok-{n:08}-{:016x}", rand::random::<u64>());
    sim.tokens
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(token.clone(), (grants, sim.control.token_epoch()));
    axum::Json(
        json!({"token": token, "access_token": token, "expires_in": 300,
        "issued_at": "2026-03-12T15:40:01Z"}),
    )
    .into_response()
}

/// Splits `<name>/<kind>/<rest>` at the last `/manifests/`, `/blobs/`, `/tags/` or `/referrers/`.
fn split(path: &str) -> Option<(&str, &str, &str)> {
    for kind in ["manifests", "blobs", "tags", "referrers"] {
        let marker = format!("/{kind}/");
        if let Some(i) = path.rfind(&marker) {
            return Some((&path[..i], kind, &path[i + marker.len()..]));
        }
    }
    None
}

async fn read(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(path): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some((name, kind, rest)) = split(&path) else {
        return error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        );
    };
    if let Some(r) = sim.refusal(&headers, name, "pull", &host(&headers)) {
        return r;
    }
    let data = sim.data();
    let Some(repo) = data.repos.get(name) else {
        return error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        );
    };
    match kind {
        "manifests" => {
            let digest = if rest.starts_with("sha256:") {
                rest.to_string()
            } else {
                match repo.tags.get(rest) {
                    Some(d) => d.clone(),
                    None => {
                        return error(
                            StatusCode::NOT_FOUND,
                            "MANIFEST_UNKNOWN",
                            "manifest unknown",
                        );
                    }
                }
            };
            let Some((media, bytes)) = repo.manifests.get(&digest) else {
                return error(
                    StatusCode::NOT_FOUND,
                    "MANIFEST_UNKNOWN",
                    "manifest unknown",
                );
            };
            (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, media.clone()),
                    (
                        header::HeaderName::from_static("docker-content-digest"),
                        digest,
                    ),
                ],
                bytes.clone(),
            )
                .into_response()
        }
        "blobs" => match repo.blobs.get(rest) {
            Some(bytes) => (
                StatusCode::OK,
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (
                        header::HeaderName::from_static("docker-content-digest"),
                        rest.to_string(),
                    ),
                ],
                bytes.clone(),
            )
                .into_response(),
            None => error(
                StatusCode::NOT_FOUND,
                "BLOB_UNKNOWN",
                "blob unknown to registry",
            ),
        },
        "tags" if rest == "list" => tags(name, repo, &q),
        "referrers" if data.referrers => referrers(repo, rest, &q),
        _ => error(
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "repository name not known to registry",
        ),
    }
}

fn tags(name: &str, repo: &Repo, q: &HashMap<String, String>) -> Response {
    let n: usize = q.get("n").and_then(|n| n.parse().ok()).unwrap_or(100);
    let page = n.min(PAGE);
    let after = q.get("last").cloned();
    let rest: Vec<&String> = repo
        .tags
        .keys()
        .filter(|t| after.as_ref().is_none_or(|a| *t > a))
        .collect();
    let chosen: Vec<&String> = rest.iter().take(page).copied().collect();
    let mut r = axum::Json(json!({"name": name, "tags": chosen})).into_response();
    if rest.len() > chosen.len()
        && let Some(last) = chosen.last()
    {
        let link = format!("</v2/{name}/tags/list?n={n}&last={last}>; rel=\"next\"");
        if let Ok(v) = HeaderValue::from_str(&link) {
            r.headers_mut().insert(header::LINK, v);
        }
    }
    r
}

fn referrers(repo: &Repo, digest: &str, q: &HashMap<String, String>) -> Response {
    let filter = q.get("artifactType").cloned();
    let mut list = Vec::new();
    let mut ids: Vec<&String> = repo.manifests.keys().collect();
    ids.sort();
    for d in ids {
        let (media, bytes) = &repo.manifests[d];
        let Ok(doc) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        if doc["subject"]["digest"].as_str() != Some(digest) {
            continue;
        }
        let artifact = doc["artifactType"]
            .as_str()
            .or_else(|| doc["config"]["mediaType"].as_str())
            .unwrap_or("")
            .to_string();
        if filter.as_ref().is_some_and(|f| *f != artifact) {
            continue;
        }
        let mut desc =
            json!({"mediaType": media, "digest": d, "size": bytes.len(), "artifactType": artifact});
        if doc["annotations"].is_object() {
            desc["annotations"] = doc["annotations"].clone();
        }
        list.push(desc);
    }
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, INDEX)],
        json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": list}).to_string(),
    )
        .into_response();
    if filter.is_some() {
        r.headers_mut().insert(
            header::HeaderName::from_static("oci-filters-applied"),
            HeaderValue::from_static("artifactType"),
        );
    }
    r
}

/// `PUT /v2/<name>/manifests/<tag-or-digest>`.
async fn put_manifest(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(path): Path<String>,
    body: Bytes,
) -> Response {
    let Some((name, "manifests", reference)) = split(&path) else {
        return error(StatusCode::NOT_FOUND, "UNSUPPORTED", "not a manifest path");
    };
    if let Some(r) = sim.refusal(&headers, name, "push", &host(&headers)) {
        return r;
    }
    let Ok(doc) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
            "manifest invalid",
        );
    };
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| doc["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| MANIFEST.to_string());
    let digest = digest_of(&body);
    if reference.starts_with("sha256:") && reference != digest {
        return error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "provided digest did not match uploaded content",
        );
    }
    let mut data = sim.data();
    let repo = data.repos.entry(name.to_string()).or_default();
    for d in doc["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(std::iter::once(&doc["config"]))
    {
        if let Some(blob) = d["digest"].as_str()
            && !repo.blobs.contains_key(blob)
        {
            return error(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                "blob unknown to registry",
            );
        }
    }
    repo.manifests
        .insert(digest.clone(), (media, body.to_vec()));
    if !reference.starts_with("sha256:") {
        repo.tags.insert(reference.to_string(), digest.clone());
    }
    let mut r = (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{name}/manifests/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest,
            ),
        ],
    )
        .into_response();
    if let Some(subject) = doc["subject"]["digest"].as_str()
        && let Ok(v) = HeaderValue::from_str(subject)
    {
        r.headers_mut()
            .insert(header::HeaderName::from_static("oci-subject"), v);
    }
    r
}

/// `POST /v2/<name>/blobs/uploads/?digest=<digest>` with the blob as the body (a monolithic
/// upload in one request).
async fn upload(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(path): Path<String>,
    Query(mut q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let Some(name) = path.strip_suffix("/blobs/uploads/") else {
        return error(StatusCode::NOT_FOUND, "UNSUPPORTED", "not an upload path");
    };
    if let Some(r) = sim.refusal(&headers, name, "push", &host(&headers)) {
        return r;
    }
    let Some(expected) = q.remove("digest") else {
        return error(
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
            "only monolithic uploads (`?digest=`) are simulated",
        );
    };
    let digest = digest_of(&body);
    if digest != expected {
        return error(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "provided digest did not match uploaded content",
        );
    }
    sim.data()
        .repos
        .entry(name.to_string())
        .or_default()
        .blobs
        .insert(digest.clone(), body.to_vec());
    (
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v2/{name}/blobs/{digest}")),
            (
                header::HeaderName::from_static("docker-content-digest"),
                digest,
            ),
        ],
    )
        .into_response()
}

async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.data() = seed();
    sim.control.clear();
    StatusCode::NO_CONTENT
}

async fn scenario(State(sim): State<Arc<Sim>>, Path(name): Path<String>) -> StatusCode {
    match name.as_str() {
        "referrers_unsupported" => sim.data().referrers = false,
        "referrers_supported" => sim.data().referrers = true,
        _ => return StatusCode::NOT_FOUND,
    }
    StatusCode::NO_CONTENT
}
