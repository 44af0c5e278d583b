//! GitHub REST simulator (contract `source-and-findings.md` §1–§3): the repository, branch
//! protection (404 `Branch not protected`), rules for a branch, commits with their signature
//! verification, the pull requests of a commit, reviews, check runs and combined statuses,
//! Actions workflow permissions and the contents API, each paged with `Link` headers
//! (`per_page` up to 100, default 30). Auth: a personal access token (Bearer or `token`), or a
//! GitHub App's RS256 JWT exchanged at `POST /app/installations/{id}/access_tokens` for an
//! installation token that expires an hour after the JWT's `iat` + 60 s. Errors are GitHub's
//! `{"message", "documentation_url", "status"}`; 401 `Bad credentials`; rate limits are 429
//! (secondary, with `Retry-After`) or, with scenario `primary_rate_limit`, one 403 with
//! `x-ratelimit-remaining: 0` and `x-ratelimit-reset` one second after its `Date`.
//!
//! Control: `PUT /_sim/github/repos/{owner}/{repo}` seeds a repository (a `seed::RepoState`
//! document), `POST /_sim/reset` restores the default seed, `POST /_sim/scenario/{name}`
//! (`primary_rate_limit`).

#![expect(
    clippy::result_large_err,
    reason = "handlers return the vendor's error response as the error; one per request"
)]

mod app;
mod paging;
pub mod seed;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use self::seed::RepoState;
use super::faults::{Control, wrap};

pub use app::APP_PRIVATE_KEY;
pub use seed::{REPOSITORY, SEEDED_COMMIT, SEEDED_HEAD};

use self::app::{access_token, installation};

/// A personal access token the simulator accepts.
pub const TOKEN: &str = "ghp_simPortcullisToken0123456789abcdefAB";
/// The simulated App's id and its installation on every repository.
pub const APP_ID: u64 = 424242;
pub const INSTALLATION_ID: u64 = 1001;
const DOCS: &str = "https://docs.github.com/rest";

struct Sim {
    control: Arc<Control>,
    repos: Mutex<BTreeMap<String, RepoState>>,
    /// Installation tokens issued: token → token epoch at issue.
    tokens: Mutex<HashMap<String, u64>>,
    issued: AtomicU64,
    primary_limit: AtomicBool,
}

pub fn router(control: Arc<Control>) -> Router {
    let sim = Arc::new(Sim {
        control: Arc::clone(&control),
        repos: Mutex::new(seed::seeded()),
        tokens: Mutex::new(HashMap::new()),
        issued: AtomicU64::new(0),
        primary_limit: AtomicBool::new(false),
    });
    let api = Router::new()
        .route("/app/installations/{id}/access_tokens", post(access_token))
        .route("/repos/{owner}/{repo}", get(repository))
        .route("/repos/{owner}/{repo}/installation", get(installation))
        .route(
            "/repos/{owner}/{repo}/branches/{branch}/protection",
            get(protection),
        )
        .route("/repos/{owner}/{repo}/rules/branches/{branch}", get(rules))
        .route("/repos/{owner}/{repo}/commits/{sha}", get(commit))
        .route(
            "/repos/{owner}/{repo}/commits/{sha}/pulls",
            get(commit_pulls),
        )
        .route(
            "/repos/{owner}/{repo}/commits/{sha}/check-runs",
            get(check_runs),
        )
        .route("/repos/{owner}/{repo}/commits/{sha}/status", get(status))
        .route("/repos/{owner}/{repo}/pulls/{number}/reviews", get(reviews))
        .route(
            "/repos/{owner}/{repo}/actions/permissions/workflow",
            get(workflow_permissions),
        )
        .route("/repos/{owner}/{repo}/contents/{*path}", get(contents))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&sim),
            primary_limit,
        ))
        .with_state(Arc::clone(&sim));
    wrap(api, control, render_error).merge(
        Router::new()
            .route("/_sim/github/repos/{owner}/{repo}", put(seed_repo))
            .route("/_sim/reset", post(reset))
            .route("/_sim/scenario/{name}", post(scenario))
            .with_state(sim),
    )
}

fn message(status: StatusCode, text: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        json!({"message": text, "documentation_url": DOCS, "status": status.as_u16().to_string()})
            .to_string(),
    )
        .into_response()
}

fn not_found() -> Response {
    message(StatusCode::NOT_FOUND, "Not Found")
}

fn render_error(status: StatusCode, retry_after: Option<u64>) -> Response {
    match status.as_u16() {
        401 => message(status, "Bad credentials"),
        403 | 429 => {
            let mut r = message(
                status,
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.",
            );
            if let Some(v) = retry_after.and_then(|s| HeaderValue::from_str(&s.to_string()).ok()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            r
        }
        500 => message(status, "Server Error"),
        _ => message(status, "Service Unavailable"),
    }
}

/// Scenario `primary_rate_limit`: the next API call is refused as GitHub's primary limit does.
async fn primary_limit(
    State(sim): State<Arc<Sim>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !sim.primary_limit.swap(false, Ordering::SeqCst) {
        return next.run(request).await;
    }
    let now = chrono::Utc::now();
    let mut r = message(
        StatusCode::FORBIDDEN,
        "API rate limit exceeded for user ID 1.",
    );
    let h = r.headers_mut();
    let date = now.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    for (name, value) in [
        ("date", date),
        ("x-ratelimit-limit", "5000".into()),
        ("x-ratelimit-remaining", "0".into()),
        ("x-ratelimit-used", "5000".into()),
        ("x-ratelimit-reset", (now.timestamp() + 1).to_string()),
        ("x-ratelimit-resource", "core".into()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    r
}

impl Sim {
    fn repos(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RepoState>> {
        self.repos
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `None` when the request carries the PAT or a live installation token.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| {
                scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")
            })
            .map(|(_, t)| t.trim().to_string());
        let ok = !self.control.credentials_expired()
            && token.is_some_and(|t| {
                t == TOKEN
                    || self
                        .tokens
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get(&t)
                        .is_some_and(|epoch| *epoch == self.control.token_epoch())
            });
        (!ok).then(|| message(StatusCode::UNAUTHORIZED, "Bad credentials"))
    }

    /// The repository, or GitHub's 401/404.
    fn with_repo<T>(
        &self,
        headers: &HeaderMap,
        owner: &str,
        repo: &str,
        f: impl FnOnce(&RepoState) -> Result<T, Response>,
    ) -> Result<T, Response> {
        if let Some(r) = self.refusal(headers) {
            return Err(r);
        }
        let repos = self.repos();
        let state = repos
            .get(&format!("{owner}/{repo}"))
            .ok_or_else(not_found)?;
        f(state)
    }
}

async fn repository(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(sim.with_repo(&headers, &owner, &repo, |r| {
        Ok(Json(
            json!({"id": 1296269, "name": repo, "full_name": format!("{owner}/{repo}"),
            "owner": {"login": owner}, "private": true, "default_branch": r.default_branch}),
        )
        .into_response())
    }))
}

fn answer(r: Result<Response, Response>) -> Response {
    r.unwrap_or_else(|e| e)
}

async fn protection(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, branch)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(sim.with_repo(&headers, &owner, &repo, |r| {
        if r.protection_forbidden {
            return Err(message(
                StatusCode::FORBIDDEN,
                "Resource not accessible by integration",
            ));
        }
        Ok(match r.protection.get(&branch) {
            Some(p) => Json(p.clone()).into_response(),
            None => message(StatusCode::NOT_FOUND, "Branch not protected"),
        })
    }))
}

type Q = Query<HashMap<String, String>>;

async fn rules(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, branch)): Path<(String, String, String)>,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(sim.with_repo(&headers, &owner, &repo, |r| {
        let items = r.rules.get(&branch).cloned().unwrap_or_default();
        Ok(sim.page(items, &q, &headers, &uri, None))
    }))
}

/// The full SHA a (possibly abbreviated) SHA names.
fn resolve(r: &RepoState, sha: &str) -> Option<String> {
    if sha.len() < 7 {
        return None;
    }
    r.commits.keys().find(|k| k.starts_with(sha)).cloned()
}

async fn commit(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(sim.with_repo(&headers, &owner, &repo, |r| {
        let full = resolve(r, &sha).ok_or_else(|| {
            message(
                StatusCode::UNPROCESSABLE_ENTITY,
                &format!("No commit found for SHA: {sha}"),
            )
        })?;
        let mut c = r.commits.get(&full).cloned().unwrap_or_default();
        c["sha"] = json!(full);
        Ok(Json(c).into_response())
    }))
}

async fn commit_pulls(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(sim.with_repo(&headers, &owner, &repo, |r| {
        let items: Vec<Value> = r
            .pulls
            .iter()
            .filter(|p| p["merge_commit_sha"] == sha.as_str() || p["head"]["sha"] == sha.as_str())
            .cloned()
            .collect();
        Ok(sim.page(items, &q, &headers, &uri, None))
    }))
}

async fn check_runs(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(sim.with_repo(&headers, &owner, &repo, |r| {
        let items = r.check_runs.get(&sha).cloned().unwrap_or_default();
        Ok(sim.page(items, &q, &headers, &uri, Some("check_runs")))
    }))
}

async fn status(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(sim.with_repo(&headers, &owner, &repo, |r| {
        let items = r.statuses.get(&sha).cloned().unwrap_or_default();
        Ok(sim.page(items, &q, &headers, &uri, Some("statuses")))
    }))
}

async fn reviews(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, number)): Path<(String, String, String)>,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(sim.with_repo(&headers, &owner, &repo, |r| {
        if !r.pulls.iter().any(|p| {
            p["number"]
                .as_u64()
                .is_some_and(|n| n.to_string() == number)
        }) {
            return Err(not_found());
        }
        let items = r.reviews.get(&number).cloned().unwrap_or_default();
        Ok(sim.page(items, &q, &headers, &uri, None))
    }))
}

async fn workflow_permissions(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(sim.with_repo(&headers, &owner, &repo, |r| {
        Ok(Json(r.workflow_permissions.clone()).into_response())
    }))
}

async fn contents(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo, path)): Path<(String, String, String)>,
    Query(q): Q,
    headers: HeaderMap,
) -> Response {
    answer(sim.with_repo(&headers, &owner, &repo, |r| {
        let reference = q.get("ref").cloned().unwrap_or_else(|| r.default_branch.clone());
        let sha = resolve(r, &reference).unwrap_or(reference);
        let files = r.files.get(&sha).ok_or_else(not_found)?;
        let path = path.trim_end_matches('/');
        if let Some(text) = files.get(path) {
            let name = path.rsplit('/').next().unwrap_or(path);
            // The contents API wraps base64 at 60 characters, as `git` does.
            let encoded = STANDARD.encode(text);
            let wrapped: Vec<String> = encoded
                .as_bytes()
                .chunks(60)
                .map(|c| String::from_utf8_lossy(c).to_string())
                .collect();
            return Ok(Json(json!({"type": "file", "encoding": "base64", "size": text.len(),
                "name": name, "path": path, "content": wrapped.join("\n") + "\n",
                "sha": format!("{:040x}", text.len())}))
            .into_response());
        }
        let prefix = format!("{path}/");
        let entries: Vec<Value> = files
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix).map(|rest| (p, rest)))
            .filter(|(_, rest)| !rest.contains('/'))
            .map(|(p, rest)| json!({"type": "file", "name": rest, "path": p, "size": files[p].len()}))
            .collect();
        if entries.is_empty() {
            return Err(not_found());
        }
        Ok(Json(entries).into_response())
    }))
}

async fn seed_repo(
    State(sim): State<Arc<Sim>>,
    Path((owner, repo)): Path<(String, String)>,
    Json(state): Json<RepoState>,
) -> StatusCode {
    sim.repos().insert(format!("{owner}/{repo}"), state);
    StatusCode::NO_CONTENT
}

async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.repos() = seed::seeded();
    sim.primary_limit.store(false, Ordering::SeqCst);
    sim.control.clear();
    StatusCode::NO_CONTENT
}

async fn scenario(State(sim): State<Arc<Sim>>, Path(name): Path<String>) -> StatusCode {
    match name.as_str() {
        "primary_rate_limit" => sim.primary_limit.store(true, Ordering::SeqCst),
        _ => return StatusCode::NOT_FOUND,
    }
    StatusCode::NO_CONTENT
}
