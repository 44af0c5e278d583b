//! Aqua (self-hosted console) simulator (contract §4): `POST /api/v1/login` → JWT-like token,
//! Bearer check (an expired token is 401, a fresh login works), `GET
//! /api/v2/images/{registry}/{repository…}/{tag}` by Aqua registry *name* (first segment) and tag
//! (last segment), `scan_status` progression, `GET /api/v2/risks/vulnerabilities` paging, 404
//! `{message, code}` for an unknown image.
//!
//! Seeded images in registry `GHCR` (the Aqua name of ghcr.io), digests in [`DIGESTS`]:
//! `acme/payments-api:1.8.3` clean and allowed; `acme/orders-api:2.0.0` two critical CVEs,
//! disallowed; `acme/worker:3.1` scanned from an older digest than the one deployed (the tag was
//! re-pushed); `acme/pending:0.1` pending, then in_progress, then finished (one step per read);
//! `acme/partial:1.0` finished with `partial_results: true`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::faults::{Control, wrap};

pub const USER: &str = "administrator";
pub const PASSWORD: &str = "aqua-Sim-pa55word";
/// The Aqua registry name the seeded images live in.
pub const REGISTRY: &str = "GHCR";

/// `(repository, digest the deploy uses)`; for `acme/worker` the scanned digest differs.
pub const DIGESTS: [(&str, &str); 5] = [
    (
        "acme/payments-api",
        "sha256:1111111111111111111111111111111111111111111111111111111111111111",
    ),
    (
        "acme/orders-api",
        "sha256:2222222222222222222222222222222222222222222222222222222222222222",
    ),
    (
        "acme/worker",
        "sha256:3333333333333333333333333333333333333333333333333333333333333333",
    ),
    (
        "acme/pending",
        "sha256:4444444444444444444444444444444444444444444444444444444444444444",
    ),
    (
        "acme/partial",
        "sha256:5555555555555555555555555555555555555555555555555555555555555555",
    ),
];
const WORKER_SCANNED: &str =
    "sha256:9999999999999999999999999999999999999999999999999999999999999999";

#[derive(Debug, Clone)]
struct Vuln {
    name: &'static str,
    severity: &'static str,
    package: &'static str,
    version: &'static str,
    fix: &'static str,
}

#[derive(Debug, Clone)]
struct Image {
    repository: &'static str,
    tag: &'static str,
    digest: &'static str,
    statuses: Vec<&'static str>,
    reads: usize,
    disallowed: bool,
    partial: bool,
    vulns: Vec<Vuln>,
}

#[derive(Debug)]
struct Data {
    images: Vec<Image>,
    tokens: Vec<(String, u64)>,
}

struct Sim {
    control: Arc<Control>,
    data: Mutex<Data>,
}

fn digest(repo: &str) -> &'static str {
    DIGESTS
        .iter()
        .find(|(r, _)| *r == repo)
        .map_or("", |(_, d)| d)
}

fn seed() -> Data {
    let medium = Vuln {
        name: "CVE-2024-0001",
        severity: "medium",
        package: "libexpat",
        version: "2.5.0-1",
        fix: "2.5.0-2",
    };
    let image = |repository, tag, digest, disallowed, vulns: Vec<Vuln>| Image {
        repository,
        tag,
        digest,
        statuses: vec!["finished"],
        reads: 0,
        disallowed,
        partial: false,
        vulns,
    };
    let mut pending = image("acme/pending", "0.1", digest("acme/pending"), false, vec![]);
    pending.statuses = vec!["pending", "in_progress", "finished"];
    let mut partial = image("acme/partial", "1.0", digest("acme/partial"), false, vec![]);
    partial.partial = true;
    Data {
        images: vec![
            image(
                "acme/payments-api",
                "1.8.3",
                digest("acme/payments-api"),
                false,
                vec![
                    medium.clone(),
                    Vuln {
                        name: "CVE-2022-48174",
                        severity: "negligible",
                        package: "busybox",
                        version: "1.36.1-1",
                        fix: "",
                    },
                ],
            ),
            image(
                "acme/orders-api",
                "2.0.0",
                digest("acme/orders-api"),
                true,
                vec![
                    Vuln {
                        name: "CVE-2021-44228",
                        severity: "critical",
                        package: "log4j-core",
                        version: "2.14.1",
                        fix: "2.15.0, 2.12.2",
                    },
                    Vuln {
                        name: "CVE-2022-22965",
                        severity: "critical",
                        package: "spring-beans",
                        version: "5.3.17",
                        fix: "5.3.18",
                    },
                    Vuln {
                        name: "CVE-2023-1234",
                        severity: "high",
                        package: "openssl",
                        version: "3.0.7",
                        fix: "3.0.8",
                    },
                    medium,
                ],
            ),
            image("acme/worker", "3.1", WORKER_SCANNED, false, vec![]),
            pending,
            partial,
        ],
        tokens: Vec::new(),
    }
}

/// The simulator's routes.
pub fn router(control: Arc<Control>) -> Router {
    let sim = Arc::new(Sim {
        control: Arc::clone(&control),
        data: Mutex::new(seed()),
    });
    let api = Router::new()
        .route("/api/v1/login", post(login))
        .route("/api/v2/images/{registry}/{*rest}", get(image))
        .route("/api/v2/risks/vulnerabilities", get(vulnerabilities))
        .with_state(Arc::clone(&sim));
    wrap(api, control, render_error).merge(
        Router::new()
            .route("/_sim/reset", post(reset))
            .with_state(sim),
    )
}

fn message(status: StatusCode, text: &str) -> Response {
    (
        status,
        Json(serde_json::json!({"message": text, "code": status.as_u16()})),
    )
        .into_response()
}

fn render_error(status: StatusCode, retry_after: Option<u64>) -> Response {
    match status.as_u16() {
        401 => message(status, "Authentication failed: token expired or invalid"),
        429 => {
            let mut r = message(status, "Too many requests");
            if let Ok(v) = retry_after.unwrap_or(1).to_string().parse() {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        _ => message(status, "Internal server error"),
    }
}

impl Sim {
    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The response refusing the request's credentials, if they are refused.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let epoch = self.control.token_epoch();
        let valid = super::bearer(headers).is_some_and(|t| {
            self.data()
                .tokens
                .iter()
                .any(|(token, e)| *token == t && *e == epoch)
        });
        if valid && !self.control.credentials_expired() {
            None
        } else {
            Some(render_error(StatusCode::UNAUTHORIZED, None))
        }
    }
}

#[derive(Deserialize)]
struct Login {
    id: String,
    password: String,
}

async fn login(State(sim): State<Arc<Sim>>, Json(body): Json<Login>) -> Response {
    if body.id != USER || body.password != PASSWORD || sim.control.credentials_expired() {
        return message(StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    let token = format!("eyJhbGciOiJIUzI1NiJ9.{}.sim", uuid::Uuid::new_v4().simple());
    let epoch = sim.control.token_epoch();
    sim.data().tokens.push((token.clone(), epoch));
    Json(serde_json::json!({
        "token": token,
        "user": {"id": USER, "name": USER, "role": "administrator", "is_super": true},
    }))
    .into_response()
}

fn severity_count(image: &Image, severity: &str) -> usize {
    image
        .vulns
        .iter()
        .filter(|v| v.severity == severity)
        .count()
}

async fn image(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((registry, rest)): Path<(String, String)>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    let Some((repository, tag)) = rest.rsplit_once('/') else {
        return message(StatusCode::NOT_FOUND, "Image not found");
    };
    let mut data = sim.data();
    let Some(img) = data
        .images
        .iter_mut()
        .find(|i| registry == REGISTRY && i.repository == repository && i.tag == tag)
    else {
        return message(
            StatusCode::NOT_FOUND,
            &format!("Image {repository}:{tag} not found in registry {registry}"),
        );
    };
    let status = img.statuses[img.reads.min(img.statuses.len() - 1)];
    img.reads += 1;
    let finished = status == "finished";
    let count = |s| if finished { severity_count(img, s) } else { 0 };
    let checks: Vec<_> = if finished {
        vec![serde_json::json!({
            "policy_name": "Default", "assurance_type": "image", "failed": img.disallowed,
            "blocking": true, "control": "max_severity", "max_severity_allowed": "high",
            "max_severity_found": if count("critical") > 0 { "critical" } else if count("high") > 0 { "high" } else { "medium" },
            "malware_found": false, "sensitive_data_found": false, "root_user_found": false,
            "blacklisted_cves_found": [], "custom_checks_failed": [],
        })]
    } else {
        vec![]
    };
    let name = format!("{}:{}", img.repository, img.tag);
    Json(serde_json::json!({
        "registry": REGISTRY, "registry_type": "HUB", "repository": img.repository, "tag": img.tag,
        "name": name, "digest": img.digest,
        "metadata": {
            "docker_id": format!("sha256:{}", "c".repeat(64)),
            "repo_digests": [format!("ghcr.io/{}@{}", img.repository, img.digest)],
            "created": "2026-03-10T11:00:00Z", "architecture": "amd64", "os": "linux", "os_version": "",
        },
        "vulns_found": if finished { img.vulns.len() } else { 0 },
        "crit_vulns": count("critical"), "high_vulns": count("high"), "med_vulns": count("medium"),
        "low_vulns": count("low"), "neg_vulns": count("negligible"),
        "sensitive_data": 0, "malware": 0,
        "scan_status": status, "scan_date": "2026-03-12T15:41:07Z", "scan_error": "",
        "partial_results": img.partial, "disallowed": finished && img.disallowed,
        "pending_disallowed": false, "whitelisted": false, "blacklisted": false,
        "permission": "", "permission_author": "", "permission_comment": "",
        "newer_image_exists": false,
        "assurance_results": {"disallowed": finished && img.disallowed, "checks_performed": checks},
        "history": [],
    }))
    .into_response()
}

async fn vulnerabilities(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    let data = sim.data();
    let registry = q.get("registry_name").cloned().unwrap_or_default();
    let image_name = q.get("image_name").cloned().unwrap_or_default();
    let page: usize = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let pagesize: usize = q
        .get("pagesize")
        .and_then(|p| p.parse().ok())
        .unwrap_or(50)
        .clamp(1, 1000);
    let rows: Vec<_> = data
        .images
        .iter()
        .filter(|i| registry == REGISTRY && format!("{}:{}", i.repository, i.tag) == image_name)
        .flat_map(|i| {
            i.vulns.iter().map(move |v| {
                serde_json::json!({
                    "name": v.name, "description": format!("{} in {}", v.name, v.package),
                    "aqua_severity": v.severity, "aqua_score": 9.8, "nvd_cvss3_severity": v.severity,
                    "vendor_severity": v.severity, "fix_version": v.fix, "solution": format!("Upgrade package {} to version {}", v.package, v.fix),
                    "resource": {"type": "package", "format": "deb", "path": "", "name": v.package, "version": v.version, "cpe": "", "licenses": []},
                    "registry": REGISTRY, "image_repository_name": i.repository,
                    "image_name": format!("{}:{}", i.repository, i.tag), "image_digest": i.digest,
                    "os": "debian", "os_version": "12", "first_found_date": "2026-03-12T15:41:07Z",
                    "last_found_date": "2026-03-12T15:41:07Z", "v_patch_status": "",
                    "acknowledged_date": "1970-01-01T00:00:00Z",
                })
            })
        })
        .collect();
    if page > 1 && sim.control.truncate_pagination() {
        // The fault: a later page is empty and its count shrank to what was already served.
        return Json(serde_json::json!({
            "count": (page - 1) * pagesize, "page": page, "pagesize": pagesize, "result": [],
            "query": {"registry_name": registry, "image_name": image_name},
            "more_data_all_pages": 0, "is_estimated_count": false, "is_partial_data": false,
        }))
        .into_response();
    }
    let count = rows.len();
    let result: Vec<_> = rows
        .into_iter()
        .skip((page - 1) * pagesize)
        .take(pagesize)
        .collect();
    Json(serde_json::json!({
        "count": count, "page": page, "pagesize": pagesize, "result": result,
        "query": {"registry_name": registry, "image_name": image_name},
        "more_data_all_pages": 0, "is_estimated_count": false, "is_partial_data": false,
    }))
    .into_response()
}

async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.data() = seed();
    sim.control.clear();
    StatusCode::NO_CONTENT
}
