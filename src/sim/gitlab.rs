//! GitLab REST v4 simulator (contract `source-and-findings.md` §4): projects by numeric id or
//! URL-encoded path, protected branches (exact and wildcard entries), project approval settings
//! and rules, commits, their signature (404 when unsigned), their merge requests and statuses,
//! merge request approvals and pipelines filtered by `sha` and `ref`. Lists are offset-paged
//! (`page`, `per_page` default 20 and at most 100) with `x-page`, `x-per-page`, `x-total`,
//! `x-total-pages`, `x-next-page` (empty on the last page), `x-prev-page` and `Link`. Auth:
//! `PRIVATE-TOKEN` or `Authorization: Bearer`; 401 `{"message":"401 Unauthorized"}`; 429 is a
//! plain-text `Retry later` with `Retry-After` and the `RateLimit-*` headers.
//!
//! Seeded data: project `acme/payments-api` (id 7), `main` protected (Maintainers push and
//! merge, no force push), one approval required, and `SEEDED_COMMIT` the merge commit of
//! merge request !12 by `alice` approved by `bob`, with a successful pipeline and a verified
//! signature. Control: `PUT /_sim/gitlab/projects/{url-encoded path}` seeds a project (a
//! `ProjectState` document), `POST /_sim/reset` restores the seed.

#![expect(
    clippy::result_large_err,
    reason = "handlers return the vendor's error response as the error; one per request"
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};

use super::faults::{Control, wrap};

pub use self::seed::{
    PROJECT, ProjectState, SEEDED_COMMIT, TOKEN, approvals, merged_request, seeded,
};

mod seed;

struct Sim {
    control: Arc<Control>,
    projects: Mutex<BTreeMap<String, ProjectState>>,
}

type Q = Query<HashMap<String, String>>;

pub fn router(control: Arc<Control>) -> Router {
    let sim = Arc::new(Sim {
        control: Arc::clone(&control),
        projects: Mutex::new(seeded()),
    });
    let api = Router::new()
        .route("/api/v4/projects/{id}", get(project))
        .route(
            "/api/v4/projects/{id}/protected_branches",
            get(protected_branches),
        )
        .route("/api/v4/projects/{id}/approvals", get(project_approvals))
        .route("/api/v4/projects/{id}/approval_rules", get(approval_rules))
        .route(
            "/api/v4/projects/{id}/repository/commits/{sha}",
            get(commit),
        )
        .route(
            "/api/v4/projects/{id}/repository/commits/{sha}/signature",
            get(signature),
        )
        .route(
            "/api/v4/projects/{id}/repository/commits/{sha}/merge_requests",
            get(commit_mrs),
        )
        .route(
            "/api/v4/projects/{id}/repository/commits/{sha}/statuses",
            get(statuses),
        )
        .route(
            "/api/v4/projects/{id}/merge_requests/{iid}/approvals",
            get(mr_approvals),
        )
        .route("/api/v4/projects/{id}/pipelines", get(pipelines))
        .with_state(Arc::clone(&sim));
    wrap(api, control, render_error).merge(
        Router::new()
            .route("/_sim/gitlab/projects/{id}", put(seed_project))
            .route("/_sim/reset", post(reset))
            .with_state(sim),
    )
}

fn message(status: StatusCode, text: &str) -> Response {
    (status, Json(json!({"message": text}))).into_response()
}

fn render_error(status: StatusCode, retry_after: Option<u64>) -> Response {
    match status.as_u16() {
        401 => message(status, "401 Unauthorized"),
        429 => {
            let mut r = (
                status,
                [(header::CONTENT_TYPE, "text/plain")],
                "Retry later\n",
            )
                .into_response();
            let wait = retry_after.unwrap_or(60);
            for (name, value) in [
                ("retry-after", wait.to_string()),
                ("ratelimit-name", "throttle_authenticated_api".into()),
                ("ratelimit-limit", "7200".into()),
                ("ratelimit-observed", "7201".into()),
                ("ratelimit-remaining", "0".into()),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    r.headers_mut().insert(name, v);
                }
            }
            r
        }
        _ => message(
            status,
            &format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            ),
        ),
    }
}

impl Sim {
    fn with<T>(
        &self,
        headers: &HeaderMap,
        id: &str,
        f: impl FnOnce(&ProjectState) -> Result<T, Response>,
    ) -> Result<T, Response> {
        let token = headers
            .get("private-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| super::bearer(headers));
        if self.control.credentials_expired() || token.as_deref() != Some(TOKEN) {
            return Err(message(StatusCode::UNAUTHORIZED, "401 Unauthorized"));
        }
        let projects = self
            .projects
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let project = projects
            .get(id)
            .or_else(|| projects.values().find(|p| p.id.to_string() == id))
            .ok_or_else(|| message(StatusCode::NOT_FOUND, "404 Project Not Found"))?;
        f(project)
    }

    /// One page of `items` with GitLab's offset-paging headers.
    fn page(
        &self,
        items: Vec<Value>,
        q: &HashMap<String, String>,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Response {
        let per_page = q
            .get("per_page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(20)
            .clamp(1, 100);
        let page = q
            .get("page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        if page > 1 && self.control.truncate_pagination() {
            return Json(json!([])).into_response();
        }
        let pages = items.len().div_ceil(per_page).max(1);
        let slice: Vec<Value> = items
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .cloned()
            .collect();
        let mut response = Json(slice).into_response();
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("127.0.0.1");
        let link_to = |n: usize| {
            let mut query: Vec<String> = q
                .iter()
                .filter(|(k, _)| k.as_str() != "page")
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            query.sort();
            query.push(format!("page={n}"));
            format!("http://{host}{}?{}", uri.path(), query.join("&"))
        };
        let next = if page < pages {
            (page + 1).to_string()
        } else {
            String::new()
        };
        let prev = if page > 1 {
            (page - 1).to_string()
        } else {
            String::new()
        };
        let mut links = Vec::new();
        if page < pages {
            links.push(format!("<{}>; rel=\"next\"", link_to(page + 1)));
        }
        links.push(format!("<{}>; rel=\"first\"", link_to(1)));
        links.push(format!("<{}>; rel=\"last\"", link_to(pages)));
        for (name, value) in [
            ("x-page", page.to_string()),
            ("x-per-page", per_page.to_string()),
            ("x-total", items.len().to_string()),
            ("x-total-pages", pages.to_string()),
            ("x-next-page", next),
            ("x-prev-page", prev),
            ("link", links.join(", ")),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}

fn answer(r: Result<Response, Response>) -> Response {
    r.unwrap_or_else(|e| e)
}

async fn project(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(sim.with(&headers, &id, |p| {
        Ok(Json(
            json!({"id": p.id, "path_with_namespace": id, "default_branch": p.default_branch,
            "visibility": "private",
            "only_allow_merge_if_pipeline_succeeds": p.only_allow_merge_if_pipeline_succeeds}),
        )
        .into_response())
    }))
}

async fn protected_branches(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(sim.with(&headers, &id, |p| {
        Ok(sim.page(p.protected_branches.clone(), &q, &headers, &uri))
    }))
}

async fn project_approvals(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    answer(sim.with(&headers, &id, |p| match &p.approvals {
        Some(a) => Ok(Json(a.clone()).into_response()),
        None => Err(message(StatusCode::FORBIDDEN, "403 Forbidden")),
    }))
}

async fn approval_rules(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(sim.with(&headers, &id, |p| match &p.approval_rules {
        Some(r) => Ok(sim.page(r.clone(), &q, &headers, &uri)),
        None => Err(message(StatusCode::FORBIDDEN, "403 Forbidden")),
    }))
}

fn resolve(p: &ProjectState, sha: &str) -> Result<String, Response> {
    p.commits
        .keys()
        .find(|k| sha.len() >= 7 && k.starts_with(sha))
        .cloned()
        .ok_or_else(|| message(StatusCode::NOT_FOUND, "404 Commit Not Found"))
}

async fn commit(
    State(sim): State<Arc<Sim>>,
    Path((id, sha)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(sim.with(&headers, &id, |p| {
        let full = resolve(p, &sha)?;
        Ok(Json(p.commits[&full].clone()).into_response())
    }))
}

async fn signature(
    State(sim): State<Arc<Sim>>,
    Path((id, sha)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(sim.with(&headers, &id, |p| {
        let full = resolve(p, &sha)?;
        match p.signatures.get(&full) {
            Some(s) => {
                let mut s = s.clone();
                s["commit_sha"] = json!(full);
                Ok(Json(s).into_response())
            }
            None => Err(message(StatusCode::NOT_FOUND, "404 Signature Not Found")),
        }
    }))
}

async fn commit_mrs(
    State(sim): State<Arc<Sim>>,
    Path((id, sha)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(sim.with(&headers, &id, |p| {
        let full = resolve(p, &sha)?;
        let items = p
            .merge_requests
            .iter()
            .filter(|m| {
                [&m["merge_commit_sha"], &m["squash_commit_sha"], &m["sha"]]
                    .iter()
                    .any(|s| **s == full.as_str())
            })
            .cloned()
            .collect();
        Ok(sim.page(items, &q, &headers, &uri))
    }))
}

async fn statuses(
    State(sim): State<Arc<Sim>>,
    Path((id, sha)): Path<(String, String)>,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(sim.with(&headers, &id, |p| {
        let full = resolve(p, &sha)?;
        Ok(sim.page(
            p.statuses.get(&full).cloned().unwrap_or_default(),
            &q,
            &headers,
            &uri,
        ))
    }))
}

async fn mr_approvals(
    State(sim): State<Arc<Sim>>,
    Path((id, iid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    answer(sim.with(&headers, &id, |p| {
        p.mr_approvals
            .get(&iid)
            .map(|a| Json(a.clone()).into_response())
            .ok_or_else(|| message(StatusCode::NOT_FOUND, "404 Not found"))
    }))
}

async fn pipelines(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Query(q): Q,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    answer(sim.with(&headers, &id, |p| {
        let mut items: Vec<Value> = p
            .pipelines
            .iter()
            .filter(|x| q.get("sha").is_none_or(|s| x["sha"] == s.as_str()))
            .filter(|x| q.get("ref").is_none_or(|r| x["ref"] == r.as_str()))
            .cloned()
            .collect();
        // Newest first, as GitLab orders by id descending.
        items.sort_by_key(|x| std::cmp::Reverse(x["id"].as_u64().unwrap_or(0)));
        Ok(sim.page(items, &q, &headers, &uri))
    }))
}

async fn seed_project(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(state): Json<ProjectState>,
) -> StatusCode {
    sim.projects
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(id, state);
    StatusCode::NO_CONTENT
}

async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.projects
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = seeded();
    sim.control.clear();
    StatusCode::NO_CONTENT
}
