//! SonarQube simulator (contract §1): `GET /api/qualitygates/project_status` and
//! `GET /api/ce/task`, Bearer or Basic `token:` auth, 401 with an empty body, the 400/403/404
//! texts, `NONE` with `conditions: []`, a compute-engine task that goes PENDING → IN_PROGRESS →
//! SUCCESS, and the edition switch (Community has only the main branch).
//!
//! Seeded data:
//! - project `payments-api` (main branch `main`): `main` OK, branch `release/1.8` OK, branch
//!   `feature/risky` ERROR (new_coverage 61.3 < 80), pull request `42` ERROR;
//! - project `orders-api`: main ERROR; `fresh-service`: NONE; `legacy-app`: WARN;
//! - analyses `AU-ok-1` (OK), `AU-err-1` (ERROR);
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
    analyses: BTreeMap<&'static str, ProjectStatus>,
    tasks: BTreeMap<&'static str, Task>,
}

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
    Data {
        community: false,
        projects: BTreeMap::from([
            ("payments-api", payments),
            ("orders-api", project(error())),
            ("fresh-service", project(none())),
            ("legacy-app", project(warn)),
        ]),
        analyses: BTreeMap::from([("AU-ok-1", ok()), ("AU-err-1", error())]),
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

/// The simulator's routes (API behind the fault middleware, plus the control API).
pub fn router(control: Arc<Control>) -> Router {
    let sim = Arc::new(Sim {
        control: Arc::clone(&control),
        data: Mutex::new(seed()),
    });
    let api = Router::new()
        .route("/api/qualitygates/project_status", get(project_status))
        .route("/api/ce/task", get(ce_task))
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
