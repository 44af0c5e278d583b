//! SonarQube simulator (contract §1): `GET /api/qualitygates/project_status`,
//! `GET /api/ce/task` and `GET /api/project_analyses/search` (paged by `p`/`ps`, each analysis
//! with the commit `revision` it analysed), Bearer or Basic `token:` auth, 401 with an empty body, the 400/403/404
//! texts, `NONE` with `conditions: []`, a compute-engine task that goes PENDING → IN_PROGRESS →
//! SUCCESS, and the edition switch (Community has only the main branch).
//!
//! Seeded data:
//! - project `payments-api` (main branch `main`): `main` OK, branch `release/1.8` OK, branch
//!   `feature/risky` ERROR (new_coverage 61.3 < 80), pull request `42` ERROR;
//! - project `orders-api`: main ERROR; `fresh-service`: NONE; `legacy-app`: WARN;
//! - analyses `AU-ok-1` (OK), `AU-err-1` (ERROR);
//! - every branch and pull request has two analyses, newest first: one of a commit starting
//!   `0123abcd` (`AU-ok-1` on `payments-api`'s main branch, `AU-err-1` on `orders-api`'s) and one
//!   of a commit starting `4f2a9c1e`, both with that branch's status;
//! - compute-engine tasks `AX-task-ok` (SUCCESS → `AU-ok-1`), `AX-task-slow` (PENDING, then
//!   IN_PROGRESS, then SUCCESS → `AU-ok-1`, one step per read), `AX-task-failed` (FAILED).
//!
//! Scenarios: `community_edition`, `developer_edition` (the default).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;

use super::faults::{Control, wrap};

/// A user token with Browse on every project (send as Bearer, or as Basic `token:`).
pub const TOKEN: &str = "squ_sim_5f1c0ffee0ddba11";
/// A valid token without Browse permission (403).
pub const TOKEN_NO_BROWSE: &str = "squ_sim_nobrowse";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ProjectStatus {
    status: &'static str,
    conditions: Vec<Condition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignored_conditions: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cayc_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Condition {
    status: &'static str,
    metric_key: &'static str,
    comparator: &'static str,
    error_threshold: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    actual_value: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct Project {
    main_branch: &'static str,
    branches: BTreeMap<&'static str, ProjectStatus>,
    pull_requests: BTreeMap<&'static str, ProjectStatus>,
}

#[derive(Debug, Clone)]
struct Task {
    component: &'static str,
    steps: Vec<&'static str>,
    reads: usize,
    analysis_id: Option<&'static str>,
    error: Option<&'static str>,
}

#[derive(Debug)]
struct Data {
    community: bool,
    projects: BTreeMap<&'static str, Project>,
    analyses: BTreeMap<String, ProjectStatus>,
    /// Analyses newest first, per project and branch (`pr:<id>` for a pull request).
    history: Vec<AnalysisRecord>,
    tasks: BTreeMap<&'static str, Task>,
}

#[derive(Debug, Clone)]
struct AnalysisRecord {
    key: String,
    project: &'static str,
    /// The branch name, or `pr:<id>`.
    scope: String,
    revision: String,
    date: &'static str,
}

/// Commit prefixes of the two analyses every branch has, newest first.
const REVISIONS: [(&str, &str); 2] = [
    ("0123abcd", "2026-03-12T15:40:05+0000"),
    ("4f2a9c1e", "2026-03-10T09:12:44+0000"),
];

struct Sim {
    control: Arc<Control>,
    data: Mutex<Data>,
}

fn ok() -> ProjectStatus {
    ProjectStatus {
        status: "OK",
        conditions: vec![
            Condition {
                status: "OK",
                metric_key: "new_coverage",
                comparator: "LT",
                error_threshold: "80",
                actual_value: Some("87.5"),
            },
            Condition {
                status: "OK",
                metric_key: "new_violations",
                comparator: "GT",
                error_threshold: "0",
                actual_value: Some("0"),
            },
        ],
        ignored_conditions: Some(false),
        cayc_status: Some("compliant"),
        period: Some(serde_json::json!({
            "mode": "PREVIOUS_VERSION", "date": "2026-03-01T09:12:44+0000", "parameter": "1.8.2"
        })),
    }
}

fn error() -> ProjectStatus {
    ProjectStatus {
        status: "ERROR",
        conditions: vec![
            Condition {
                status: "ERROR",
                metric_key: "new_coverage",
                comparator: "LT",
                error_threshold: "80",
                actual_value: Some("61.3"),
            },
            Condition {
                status: "ERROR",
                metric_key: "new_security_hotspots_reviewed",
                comparator: "LT",
                error_threshold: "100",
                actual_value: None,
            },
        ],
        ignored_conditions: Some(false),
        cayc_status: Some("non-compliant"),
        period: None,
    }
}

fn none() -> ProjectStatus {
    ProjectStatus {
        status: "NONE",
        conditions: vec![],
        ignored_conditions: None,
        cayc_status: None,
        period: None,
    }
}

fn seed() -> Data {
    let project = |main: ProjectStatus| Project {
        main_branch: "main",
        branches: BTreeMap::from([("main", main)]),
        pull_requests: BTreeMap::new(),
    };
    let mut payments = project(ok());
    payments.branches.insert("release/1.8", ok());
    payments.branches.insert("feature/risky", error());
    payments.pull_requests.insert("42", error());
    let mut warn = ok();
    warn.status = "WARN";
    let projects = BTreeMap::from([
        ("payments-api", payments),
        ("orders-api", project(error())),
        ("fresh-service", project(none())),
        ("legacy-app", project(warn)),
    ]);
    let (analyses, history) = analyses_of(&projects);
    Data {
        community: false,
        projects,
        analyses,
        history,
        tasks: BTreeMap::from([
            (
                "AX-task-ok",
                Task {
                    component: "payments-api",
                    steps: vec!["SUCCESS"],
                    reads: 0,
                    analysis_id: Some("AU-ok-1"),
                    error: None,
                },
            ),
            (
                "AX-task-slow",
                Task {
                    component: "payments-api",
                    steps: vec!["PENDING", "IN_PROGRESS", "SUCCESS"],
                    reads: 0,
                    analysis_id: Some("AU-ok-1"),
                    error: None,
                },
            ),
            (
                "AX-task-failed",
                Task {
                    component: "payments-api",
                    steps: vec!["FAILED"],
                    reads: 0,
                    analysis_id: None,
                    error: Some("Fail to extract report AX-task-failed from database"),
                },
            ),
        ]),
    }
}

/// Two analyses per branch and pull request (see the module doc), and each one's status.
fn analyses_of(
    projects: &BTreeMap<&'static str, Project>,
) -> (BTreeMap<String, ProjectStatus>, Vec<AnalysisRecord>) {
    let mut statuses = BTreeMap::new();
    let mut history = Vec::new();
    let scopes = |p: &Project| -> Vec<(String, ProjectStatus)> {
        let branches = p
            .branches
            .iter()
            .map(|(b, s)| ((*b).to_string(), s.clone()));
        let prs = p
            .pull_requests
            .iter()
            .map(|(id, s)| (format!("pr:{id}"), s.clone()));
        branches.chain(prs).collect()
    };
    for (name, project) in projects {
        for (scope, status) in scopes(project) {
            for (i, (prefix, date)) in REVISIONS.iter().enumerate() {
                let key = match (*name, scope.as_str(), i) {
                    ("payments-api", "main", 0) => "AU-ok-1".to_string(),
                    ("orders-api", "main", 0) => "AU-err-1".to_string(),
                    _ => format!("AU-{name}-{}-{}", scope.replace(['/', ':'], "-"), 2 - i),
                };
                // A full 40-hex revision, distinct per project and branch.
                let mut digest = 0u64;
                for b in format!("{name}/{scope}").bytes() {
                    digest = digest.wrapping_mul(31).wrapping_add(u64::from(b));
                }
                let revision = format!("{prefix}{digest:016x}{digest:016x}");
                statuses.insert(key.clone(), status.clone());
                history.push(AnalysisRecord {
                    key,
                    project: name,
                    scope: scope.clone(),
                    revision,
                    date,
                });
            }
        }
    }
    (statuses, history)
}

/// The simulator's routes (API behind the fault middleware, plus the control API).
pub fn router(control: Arc<Control>) -> Router {
    let sim = Arc::new(Sim {
        control: Arc::clone(&control),
        data: Mutex::new(seed()),
    });
    let api = Router::new()
        .route("/api/qualitygates/project_status", get(project_status))
        .route("/api/ce/task", get(ce_task))
        .route("/api/project_analyses/search", get(project_analyses))
        .route("/api/system/status", get(system_status))
        .with_state(Arc::clone(&sim));
    wrap(api, control, render_error).merge(
        Router::new()
            .route("/_sim/reset", post(reset))
            .route("/_sim/scenario/{name}", post(scenario))
            .with_state(sim),
    )
}

fn render_error(status: StatusCode, retry_after: Option<u64>) -> Response {
    match status.as_u16() {
        401 => status.into_response(),
        429 => (
            status,
            [(header::RETRY_AFTER, retry_after.unwrap_or(1).to_string())],
            Json(errors("Too many requests")),
        )
            .into_response(),
        502..=504 => (
            status,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body><h1>SonarQube is starting</h1></body></html>",
        )
            .into_response(),
        403 => (status, Json(errors("Insufficient privileges"))).into_response(),
        _ => (
            status,
            Json(errors(
                "An error has occurred. Please contact your administrator",
            )),
        )
            .into_response(),
    }
}

fn errors(msg: &str) -> serde_json::Value {
    serde_json::json!({"errors": [{"msg": msg}]})
}

fn fail(status: StatusCode, msg: String) -> Response {
    (status, Json(errors(&msg))).into_response()
}

impl Sim {
    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err` is the response to send: 401 (empty body) or 403.
    /// The response refusing the request's credentials, if they are refused.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        let token = super::bearer(headers).or_else(|| {
            super::basic(headers).and_then(|(user, password)| password.is_empty().then_some(user))
        });
        if self.control.credentials_expired() {
            return Some(StatusCode::UNAUTHORIZED.into_response());
        }
        match token.as_deref() {
            Some(TOKEN) => None,
            Some(TOKEN_NO_BROWSE) => Some(render_error(StatusCode::FORBIDDEN, None)),
            _ => Some(StatusCode::UNAUTHORIZED.into_response()),
        }
    }
}

async fn project_status(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    let ids = ["analysisId", "projectId", "projectKey"]
        .iter()
        .filter(|k| q.contains_key(**k))
        .count();
    if ids != 1 {
        return fail(
            StatusCode::BAD_REQUEST,
            "Either 'analysisId', 'projectId' or 'projectKey' must be provided".into(),
        );
    }
    if q.contains_key("branch") && q.contains_key("pullRequest") {
        return fail(
            StatusCode::BAD_REQUEST,
            "Either 'branch' or 'pullRequest' can be provided, not both".into(),
        );
    }
    let data = sim.data();
    let status = if let Some(id) = q.get("analysisId") {
        match data.analyses.get(id.as_str()) {
            Some(s) => s.clone(),
            None => {
                return fail(
                    StatusCode::NOT_FOUND,
                    format!("Analysis with id '{id}' is not found"),
                );
            }
        }
    } else {
        let key = q
            .get("projectKey")
            .or_else(|| q.get("projectId"))
            .cloned()
            .unwrap_or_default();
        let Some(project) = data.projects.get(key.as_str()) else {
            return fail(StatusCode::NOT_FOUND, format!("Project '{key}' not found"));
        };
        if let Some(pr) = q.get("pullRequest") {
            match project.pull_requests.get(pr.as_str()) {
                Some(s) if !data.community => s.clone(),
                _ => {
                    return fail(
                        StatusCode::NOT_FOUND,
                        format!("Pull request '{pr}' in project '{key}' not found"),
                    );
                }
            }
        } else {
            let branch = q.get("branch").map_or(project.main_branch, String::as_str);
            let visible = !data.community || branch == project.main_branch;
            match project.branches.get(branch) {
                Some(s) if visible => s.clone(),
                _ => {
                    return fail(
                        StatusCode::NOT_FOUND,
                        format!("Branch '{branch}' in project '{key}' not found"),
                    );
                }
            }
        }
    };
    Json(serde_json::json!({"projectStatus": status})).into_response()
}

/// `GET /api/project_analyses/search?project=&branch=|pullRequest=&p=&ps=`: the analyses of
/// one branch (the main branch when neither is given), newest first, paged.
async fn project_analyses(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    let Some(key) = q.get("project") else {
        return fail(
            StatusCode::BAD_REQUEST,
            "The 'project' parameter is missing".into(),
        );
    };
    if q.contains_key("branch") && q.contains_key("pullRequest") {
        return fail(
            StatusCode::BAD_REQUEST,
            "Either branch or pull request can be provided, not both".into(),
        );
    }
    let data = sim.data();
    let Some(project) = data.projects.get(key.as_str()) else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("Component key '{key}' not found"),
        );
    };
    let scope = if let Some(pr) = q.get("pullRequest") {
        if data.community || !project.pull_requests.contains_key(pr.as_str()) {
            return fail(
                StatusCode::NOT_FOUND,
                format!("Pull request '{pr}' in project '{key}' not found"),
            );
        }
        format!("pr:{pr}")
    } else {
        let branch = q.get("branch").map_or(project.main_branch, String::as_str);
        let visible = !data.community || branch == project.main_branch;
        if !visible || !project.branches.contains_key(branch) {
            return fail(
                StatusCode::NOT_FOUND,
                format!("Branch '{branch}' in project '{key}' not found"),
            );
        }
        branch.to_string()
    };
    let page: usize = q.get("p").and_then(|p| p.parse().ok()).unwrap_or(1).max(1);
    let size: usize = q.get("ps").and_then(|p| p.parse().ok()).unwrap_or(100);
    if !(1..=500).contains(&size) {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("'ps' value ({size}) must be less than 500"),
        );
    }
    let all: Vec<&AnalysisRecord> = data
        .history
        .iter()
        .filter(|a| a.project == key.as_str() && a.scope == scope)
        .collect();
    if page > 1 && sim.control.truncate_pagination() {
        // The fault: a later page is empty and its total shrank to what was already served.
        return Json(serde_json::json!({
            "paging": {"pageIndex": page, "pageSize": size, "total": (page - 1) * size},
            "analyses": [],
        }))
        .into_response();
    }
    let analyses: Vec<serde_json::Value> = all
        .iter()
        .skip((page - 1) * size)
        .take(size)
        .map(|a| {
            serde_json::json!({
                "key": a.key, "date": a.date, "projectVersion": "1.8.3",
                "buildString": "1.8.3.412", "revision": a.revision,
                "manualNewCodePeriodBaseline": false, "detectedCI": "Jenkins", "events": [],
            })
        })
        .collect();
    Json(serde_json::json!({
        "paging": {"pageIndex": page, "pageSize": size, "total": all.len()},
        "analyses": analyses,
    }))
    .into_response()
}

async fn ce_task(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    let id = q.get("id").cloned().unwrap_or_default();
    let mut data = sim.data();
    let Some(task) = data.tasks.get_mut(id.as_str()) else {
        return fail(
            StatusCode::NOT_FOUND,
            format!("No activity found for task '{id}'"),
        );
    };
    let status = task.steps[task.reads.min(task.steps.len() - 1)];
    task.reads += 1;
    let mut body = serde_json::json!({
        "id": id, "type": "REPORT", "componentKey": task.component, "status": status,
        "submittedAt": "2026-03-12T15:40:01+0000", "warningCount": 0, "warnings": [],
    });
    if status == "SUCCESS" {
        body["analysisId"] = task.analysis_id.into();
        body["startedAt"] = "2026-03-12T15:40:02+0000".into();
        body["executedAt"] = "2026-03-12T15:40:05+0000".into();
        body["executionTimeMs"] = 2840.into();
    }
    if let (Some(e), "FAILED") = (task.error, status) {
        body["errorMessage"] = e.into();
    }
    Json(serde_json::json!({"task": body})).into_response()
}

async fn system_status() -> Json<serde_json::Value> {
    Json(serde_json::json!({"id": "sim", "version": "10.7.0.96327", "status": "UP"}))
}

async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.data() = seed();
    sim.control.clear();
    StatusCode::NO_CONTENT
}

async fn scenario(State(sim): State<Arc<Sim>>, Path(name): Path<String>) -> StatusCode {
    match name.as_str() {
        "community_edition" => sim.data().community = true,
        "developer_edition" => sim.data().community = false,
        _ => return StatusCode::NOT_FOUND,
    }
    StatusCode::NO_CONTENT
}
