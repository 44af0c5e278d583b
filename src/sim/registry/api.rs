//! The registry simulator's HTTP handlers: the version check, the token endpoint, reads of
//! manifests, blobs, tags and referrers, pushes (monolithic blob upload, manifest `PUT`), the
//! `{"errors": [...]}` shape, and the control routes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::paging::{referrers, tags};
use super::seed::seed;
use super::{MANIFEST, PASSWORD, SERVICE, Sim, USER, digest_of};

pub(super) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"errors": [{"code": code, "message": message, "detail": null}]}).to_string(),
    )
        .into_response()
}

pub(super) fn render_error(status: StatusCode, retry_after: Option<u64>) -> Response {
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

pub(super) fn host(headers: &HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string()
}

pub(super) async fn base(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if crate::sim::bearer(&headers).is_none() {
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
pub(super) async fn token(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let robot = match crate::sim::basic(&headers) {
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
pub(super) fn split(path: &str) -> Option<(&str, &str, &str)> {
    for kind in ["manifests", "blobs", "tags", "referrers"] {
        let marker = format!("/{kind}/");
        if let Some(i) = path.rfind(&marker) {
            return Some((&path[..i], kind, &path[i + marker.len()..]));
        }
    }
    None
}

pub(super) async fn read(
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

/// `PUT /v2/<name>/manifests/<tag-or-digest>`.
pub(super) async fn put_manifest(
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
pub(super) async fn upload(
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

pub(super) async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.data() = seed();
    sim.control.clear();
    StatusCode::NO_CONTENT
}

pub(super) async fn scenario(State(sim): State<Arc<Sim>>, Path(name): Path<String>) -> StatusCode {
    match name.as_str() {
        "referrers_unsupported" => sim.data().referrers = false,
        "referrers_supported" => sim.data().referrers = true,
        _ => return StatusCode::NOT_FOUND,
    }
    StatusCode::NO_CONTENT
}
