//! The Jira simulator's HTTP handlers: issue reads, searches (token-paged and legacy), issue
//! creation, `myself`, the paged changelog, the error shapes, and the control routes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::query::{ALL_FIELDS, history_entry, requested_fields, search, view};
use super::seed::seed;
use super::{DONE, EMAIL, IN_PROGRESS, Issue, Sim, TODO};

pub(super) fn error_collection(messages: &[&str], errors: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"errorMessages": messages, "errors": errors})
}

pub(super) fn render_error(status: StatusCode, retry_after: Option<u64>) -> Response {
    match status.as_u16() {
        401 => unauthenticated(),
        429 => {
            let reset = (chrono::Utc::now() + chrono::Duration::minutes(1))
                .format("%Y-%m-%dT%H:%MZ")
                .to_string();
            (
                status,
                [
                    (
                        header::RETRY_AFTER.as_str(),
                        retry_after.unwrap_or(1).to_string(),
                    ),
                    ("x-ratelimit-reset", reset),
                    ("x-ratelimit-limit", "350".into()),
                    ("x-ratelimit-remaining", "0".into()),
                    ("ratelimit-reason", "jira-burst-based".into()),
                ],
                Json(error_collection(
                    &["Rate limit exceeded."],
                    serde_json::json!({}),
                )),
            )
                .into_response()
        }
        _ => (
            status,
            Json(error_collection(
                &["Internal server error"],
                serde_json::json!({}),
            )),
        )
            .into_response(),
    }
}

pub(super) fn unauthenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
        "Client must be authenticated to access this resource.",
    )
        .into_response()
}

pub(super) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(error_collection(
            &["Issue does not exist or you do not have permission to see it."],
            serde_json::json!({}),
        )),
    )
        .into_response()
}

pub(super) fn valid_version(version: &str) -> bool {
    version == "2" || version == "3"
}

pub(super) async fn get_issue(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((version, key)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    if !valid_version(&version) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let data = sim.data();
    let key = data.moved.get(&key).cloned().unwrap_or(key);
    let Some(issue) = data
        .issues
        .iter()
        .find(|i| i.key == key || i.id.to_string() == key)
    else {
        return not_found();
    };
    let mut body =
        match serde_json::to_value(view(issue, &version, &requested_fields(&q, &ALL_FIELDS))) {
            Ok(v) => v,
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        };
    if q.get("expand")
        .is_some_and(|e| e.split(',').any(|x| x.trim() == "changelog"))
    {
        let histories: Vec<_> = issue
            .history
            .iter()
            .enumerate()
            .map(|(n, h)| history_entry(n, h, data.data_center))
            .collect();
        body["changelog"] = serde_json::json!({
            "startAt": 0, "maxResults": histories.len(), "total": histories.len(), "histories": histories,
        });
    }
    Json(body).into_response()
}

pub(super) async fn search_jql(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    let data = sim.data();
    let found = match search(&data, q.get("jql").map_or("", String::as_str)) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let max: usize = q
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(50)
        .clamp(1, 5000);
    let start: usize = match q.get("nextPageToken") {
        None => 0,
        Some(t) => match t.strip_prefix("CAES").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(error_collection(
                        &["The provided next page token is invalid or expired."],
                        serde_json::json!({}),
                    )),
                )
                    .into_response();
            }
        },
    };
    if start > 0 && sim.control.truncate_pagination() {
        // The fault: a later page is empty and says it is the last.
        return Json(serde_json::json!({"issues": [], "isLast": true})).into_response();
    }
    let fields = requested_fields(&q, &[]);
    let page: Vec<_> = found
        .iter()
        .skip(start)
        .take(max)
        .map(|i| view(i, "3", &fields))
        .collect();
    let end = start + page.len();
    let mut body = serde_json::json!({"issues": page, "isLast": end >= found.len()});
    if end < found.len() {
        body["nextPageToken"] = format!("CAES{end}").into();
    }
    Json(body).into_response()
}

pub(super) async fn legacy_search(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(version): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    let data = sim.data();
    if !data.data_center || version != "2" {
        return (
            StatusCode::GONE,
            Json(error_collection(
                &["The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"],
                serde_json::json!({}),
            )),
        )
            .into_response();
    }
    let found = match search(&data, q.get("jql").map_or("", String::as_str)) {
        Ok(f) => f,
        Err(r) => return *r,
    };
    let start: usize = q.get("startAt").and_then(|s| s.parse().ok()).unwrap_or(0);
    let max: usize = q
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(50)
        .clamp(1, 1000);
    if start > 0 && sim.control.truncate_pagination() {
        // The fault: a later page is empty and its `total` shrank to what was already read.
        return Json(serde_json::json!({
            "expand": "schema,names", "startAt": start, "maxResults": max, "total": start, "issues": [],
        }))
        .into_response();
    }
    let fields = requested_fields(&q, &ALL_FIELDS);
    let page: Vec<_> = found
        .iter()
        .skip(start)
        .take(max)
        .map(|i| view(i, "2", &fields))
        .collect();
    Json(serde_json::json!({
        "expand": "schema,names", "startAt": start, "maxResults": max, "total": found.len(), "issues": page,
    }))
    .into_response()
}

pub(super) async fn create_issue(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(version): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    let fields = &body["fields"];
    let mut errors = serde_json::Map::new();
    if fields["summary"].as_str().is_none_or(str::is_empty) {
        errors.insert(
            "summary".into(),
            "You must specify a summary of the issue.".into(),
        );
    }
    let project = fields["project"]["key"].as_str().unwrap_or_default();
    if project.is_empty() {
        errors.insert("project".into(), "Specify a valid project ID or key".into());
    }
    match (&fields["description"], version.as_str()) {
        (serde_json::Value::Null, _) => {}
        (serde_json::Value::Object(doc), "3")
            if doc.get("type").and_then(|t| t.as_str()) == Some("doc") => {}
        (_, "3") => {
            errors.insert(
                "description".into(),
                "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
                    .into(),
            );
        }
        (serde_json::Value::String(_), _) => {}
        (_, _) => {
            errors.insert(
                "description".into(),
                "Operation value must be a string".into(),
            );
        }
    }
    if !errors.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            Json(error_collection(&[], serde_json::Value::Object(errors))),
        )
            .into_response();
    }
    let mut data = sim.data();
    data.next_id += 1;
    let id = data.next_id;
    let number = data
        .issues
        .iter()
        .filter(|i| i.key.starts_with(&format!("{project}-")))
        .count()
        + 500;
    let key = format!("{project}-{number}");
    data.issues.push(Issue {
        id,
        key: key.clone(),
        summary: fields["summary"].as_str().unwrap_or_default().into(),
        status: ("To Do", "10000", TODO),
        resolution: None,
        history: Vec::new(),
        labels: fields["labels"]
            .as_array()
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default(),
    });
    (
        StatusCode::CREATED,
        Json(serde_json::json!({
            "id": id.to_string(), "key": key,
            "self": format!("https://acme.atlassian.net/rest/api/{version}/issue/{id}"),
        })),
    )
        .into_response()
}

pub(super) async fn myself(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    Json(serde_json::json!({
        "accountId": "5b10ac8d82e05b22cc7d4ef5", "emailAddress": EMAIL, "displayName": "CI bot", "active": true,
    }))
    .into_response()
}

/// Control: `POST /_sim/issues/{key}/status` with `{"status": "Approved"}` moves an issue as a
/// person would. Known statuses: To Do, In Progress, Approved (In Progress category), Rejected
/// and Done (done category).
pub(super) async fn set_status(
    State(sim): State<Arc<Sim>>,
    Path(key): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    let status = match body["status"].as_str().unwrap_or_default() {
        "To Do" => ("To Do", "10000", TODO),
        "In Progress" => ("In Progress", "3", IN_PROGRESS),
        "Approved" => ("Approved", "10100", IN_PROGRESS),
        "Rejected" => ("Rejected", "10102", DONE),
        "Done" => ("Done", "10001", DONE),
        _ => return StatusCode::BAD_REQUEST,
    };
    let mut data = sim.data();
    match data.issues.iter_mut().find(|i| i.key == key) {
        Some(issue) => {
            // Without `by` the move is not in the changelog (who moved it cannot be read).
            if let Some(by) = body["by"].as_str() {
                let from = (issue.status.0, issue.status.1);
                issue
                    .history
                    .push((by.to_string(), from, (status.0, status.1)));
            }
            issue.status = status;
            StatusCode::NO_CONTENT
        }
        None => StatusCode::NOT_FOUND,
    }
}

/// `GET /rest/api/{version}/issue/{key}/changelog?startAt=&maxResults=`: the paged changelog.
pub(super) async fn get_changelog(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((version, key)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    if !valid_version(&version) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let data = sim.data();
    let key = data.moved.get(&key).cloned().unwrap_or(key);
    let Some(issue) = data
        .issues
        .iter()
        .find(|i| i.key == key || i.id.to_string() == key)
    else {
        return not_found();
    };
    let start: usize = q.get("startAt").and_then(|s| s.parse().ok()).unwrap_or(0);
    let max: usize = q
        .get("maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(100)
        .clamp(1, 100);
    let total = issue.history.len();
    let values: Vec<_> = issue
        .history
        .iter()
        .enumerate()
        .skip(start)
        .take(max)
        .map(|(n, h)| history_entry(n, h, data.data_center))
        .collect();
    Json(serde_json::json!({
        "self": format!("https://acme.atlassian.net/rest/api/{version}/issue/{}/changelog?startAt={start}&maxResults={max}", issue.key),
        "maxResults": max, "startAt": start, "total": total,
        "isLast": start + values.len() >= total, "values": values,
    }))
    .into_response()
}

pub(super) async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.data() = seed();
    sim.control.clear();
    StatusCode::NO_CONTENT
}

pub(super) async fn scenario(State(sim): State<Arc<Sim>>, Path(name): Path<String>) -> StatusCode {
    match name.as_str() {
        "cloud" => sim.data().data_center = false,
        "data_center" => sim.data().data_center = true,
        _ => return StatusCode::NOT_FOUND,
    }
    StatusCode::NO_CONTENT
}
