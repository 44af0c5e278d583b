//! Jira simulator (contract §2): Cloud v3 and Data Center v2 issue reads with the same status
//! shape, the token-paginated `GET /rest/api/3/search/jql` (`isLast`, no `total`, `fields`
//! defaulting to `id`), the legacy `/rest/api/{2,3}/search` answering 410 (Cloud) or paging by
//! `startAt` (scenario `data_center`), `POST /rest/api/{3,2}/issue` (ADF on v3), `myself`, Basic
//! `email:api_token` and Bearer PAT auth, `text/plain` 401, 404 `ErrorCollection`, Cloud 429
//! headers.
//!
//! Seeded issues: `OPS-42` Done (done category, resolution Done), `OPS-43` In Progress,
//! `OPS-44` "Approved" in the In Progress category, `OPS-45` Done with no resolution, `OLD-7`
//! moved (answers as `OPS-46`, Done), `REL-1` … `REL-7` (To Do, for paging).
//!
//! Scenarios: `cloud` (default), `data_center` (legacy search works). `POST
//! /_sim/issues/{key}/status` moves an issue to another status (see `set_status`), recording
//! who moved it in the issue's changelog, served as Jira does: `expand=changelog` on an issue
//! read (`changelog.histories`, Cloud and Data Center) and the paged
//! `GET /rest/api/{3,2}/issue/{key}/changelog` (`values`, `isLast`, `total`).

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

/// Cloud Basic auth: this email with `API_TOKEN`.
pub const EMAIL: &str = "ci-bot@acme.example";
pub const API_TOKEN: &str = "ATATT3xSimJiraToken0042";
/// Data Center personal access token (Bearer).
pub const PAT: &str = "NjQ0SimJiraPersonalAccessToken";

#[derive(Debug, Clone, Copy)]
struct Category {
    id: u32,
    key: &'static str,
    name: &'static str,
    color: &'static str,
}

const TODO: Category = Category {
    id: 2,
    key: "new",
    name: "To Do",
    color: "blue-gray",
};
const IN_PROGRESS: Category = Category {
    id: 4,
    key: "indeterminate",
    name: "In Progress",
    color: "yellow",
};
const DONE: Category = Category {
    id: 3,
    key: "done",
    name: "Done",
    color: "green",
};

/// One status move in an issue's changelog: (who, from (name, id), to (name, id)).
type StatusMove = (
    String,
    (&'static str, &'static str),
    (&'static str, &'static str),
);

#[derive(Debug, Clone)]
struct Issue {
    id: u32,
    key: String,
    summary: String,
    status: (&'static str, &'static str, Category),
    resolution: Option<&'static str>,
    labels: Vec<String>,
    /// Status moves, oldest first.
    history: Vec<StatusMove>,
}

#[derive(Debug)]
struct Data {
    data_center: bool,
    issues: Vec<Issue>,
    /// Old key → current key.
    moved: BTreeMap<String, String>,
    next_id: u32,
}

struct Sim {
    control: Arc<Control>,
    data: Mutex<Data>,
}

fn seed() -> Data {
    let issue = |id, key: &str, summary: &str, status, resolution| Issue {
        id,
        key: key.into(),
        summary: summary.into(),
        status,
        resolution,
        labels: vec!["release".into()],
        history: Vec::new(),
    };
    let mut issues = vec![
        issue(
            10042,
            "OPS-42",
            "Release payments-api 1.8.3",
            ("Done", "10001", DONE),
            Some("Done"),
        ),
        issue(
            10043,
            "OPS-43",
            "Release orders-api 2.0.0",
            ("In Progress", "3", IN_PROGRESS),
            None,
        ),
        issue(
            10044,
            "OPS-44",
            "Release worker 3.1",
            ("Approved", "10100", IN_PROGRESS),
            None,
        ),
        issue(
            10045,
            "OPS-45",
            "Release legacy-app",
            ("Done", "10001", DONE),
            None,
        ),
        issue(
            10046,
            "OPS-46",
            "Moved from OLD-7",
            ("Done", "10001", DONE),
            Some("Done"),
        ),
    ];
    for n in 1..=7 {
        issues.push(issue(
            10100 + n,
            &format!("REL-{n}"),
            &format!("Release train item {n}"),
            ("To Do", "10000", TODO),
            None,
        ));
    }
    Data {
        data_center: false,
        issues,
        moved: BTreeMap::from([("OLD-7".to_string(), "OPS-46".to_string())]),
        next_id: 10500,
    }
}

/// The simulator's routes.
pub fn router(control: Arc<Control>) -> Router {
    let sim = Arc::new(Sim {
        control: Arc::clone(&control),
        data: Mutex::new(seed()),
    });
    let api = Router::new()
        .route("/rest/api/{version}/issue/{key}", get(get_issue))
        .route(
            "/rest/api/{version}/issue/{key}/changelog",
            get(get_changelog),
        )
        .route("/rest/api/{version}/issue", post(create_issue))
        .route("/rest/api/3/search/jql", get(search_jql))
        .route("/rest/api/{version}/search", get(legacy_search))
        .route("/rest/api/{version}/myself", get(myself))
        .with_state(Arc::clone(&sim));
    wrap(api, control, render_error).merge(
        Router::new()
            .route("/_sim/reset", post(reset))
            .route("/_sim/scenario/{name}", post(scenario))
            .route("/_sim/issues/{key}/status", post(set_status))
            .with_state(sim),
    )
}

fn error_collection(messages: &[&str], errors: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"errorMessages": messages, "errors": errors})
}

fn render_error(status: StatusCode, retry_after: Option<u64>) -> Response {
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

fn unauthenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "text/plain;charset=UTF-8")],
        "Client must be authenticated to access this resource.",
    )
        .into_response()
}

#[derive(Serialize)]
struct IssueView {
    id: String,
    key: String,
    #[serde(rename = "self")]
    self_url: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl Sim {
    fn data(&self) -> std::sync::MutexGuard<'_, Data> {
        self.data
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The response refusing the request's credentials, if they are refused.
    fn refusal(&self, headers: &HeaderMap) -> Option<Response> {
        if self.control.credentials_expired() {
            return Some(unauthenticated());
        }
        let ok = match (super::basic(headers), super::bearer(headers)) {
            (Some((user, token)), _) => user == EMAIL && token == API_TOKEN,
            (None, Some(token)) => token == PAT,
            _ => false,
        };
        if ok { None } else { Some(unauthenticated()) }
    }
}

fn view(issue: &Issue, version: &str, fields: &[&str]) -> IssueView {
    let base = "https://acme.atlassian.net";
    let (name, id, cat) = issue.status;
    let mut out = serde_json::Map::new();
    for &f in fields {
        let value = match f {
            "summary" => serde_json::json!(issue.summary),
            "status" => serde_json::json!({
                "self": format!("{base}/rest/api/{version}/status/{id}"),
                "description": "", "iconUrl": format!("{base}/images/icons/statuses/generic.png"),
                "name": name, "id": id,
                "statusCategory": {
                    "self": format!("{base}/rest/api/{version}/statuscategory/{}", cat.id),
                    "id": cat.id, "key": cat.key, "colorName": cat.color, "name": cat.name,
                },
            }),
            "resolution" => match issue.resolution {
                Some(r) => serde_json::json!({
                    "self": format!("{base}/rest/api/{version}/resolution/10000"),
                    "id": "10000", "description": "Work has been completed on this issue.", "name": r,
                }),
                None => serde_json::Value::Null,
            },
            "issuetype" => serde_json::json!({"id": "10002", "name": "Task", "subtask": false}),
            "project" => {
                let project = issue.key.split('-').next().unwrap_or_default();
                serde_json::json!({"id": "10000", "key": project, "name": format!("{project} project")})
            }
            "labels" => serde_json::json!(issue.labels),
            "updated" => serde_json::json!("2026-03-12T16:04:11.482+0000"),
            _ => continue,
        };
        out.insert(f.to_string(), value);
    }
    IssueView {
        id: issue.id.to_string(),
        key: issue.key.clone(),
        self_url: format!("{base}/rest/api/{version}/issue/{}", issue.id),
        fields: out,
    }
}

const ALL_FIELDS: [&str; 7] = [
    "summary",
    "status",
    "resolution",
    "issuetype",
    "project",
    "labels",
    "updated",
];

fn requested_fields(q: &BTreeMap<String, String>, default: &[&'static str]) -> Vec<&'static str> {
    match q.get("fields") {
        None => default.to_vec(),
        Some(list) => {
            let asked: Vec<&str> = list.split(',').map(str::trim).collect();
            if asked.contains(&"*all") {
                return ALL_FIELDS.to_vec();
            }
            ALL_FIELDS
                .iter()
                .copied()
                .filter(|f| asked.contains(f))
                .collect()
        }
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(error_collection(
            &["Issue does not exist or you do not have permission to see it."],
            serde_json::json!({}),
        )),
    )
        .into_response()
}

fn valid_version(version: &str) -> bool {
    version == "2" || version == "3"
}

async fn get_issue(
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

/// A tiny JQL subset: `A AND B …` of `project = X`, `key in (A, B)`, `statusCategory = Done`,
/// `status = "X"`, with an optional `ORDER BY …`. `None` for anything else.
type IssueTest = Box<dyn Fn(&Issue) -> bool>;

fn matches_jql(jql: &str) -> Option<Vec<IssueTest>> {
    let upper = jql.to_uppercase();
    let body = match upper.find(" ORDER BY") {
        Some(i) => &jql[..i],
        None => jql,
    };
    let mut tests: Vec<IssueTest> = Vec::new();
    for clause in body.split(" AND ").map(str::trim).filter(|c| !c.is_empty()) {
        let unquote = |s: &str| s.trim().trim_matches('"').to_string();
        if let Some((field, value)) = clause.split_once('=') {
            let value = unquote(value);
            match field.trim().to_lowercase().as_str() {
                "project" => {
                    tests.push(Box::new(move |i: &Issue| {
                        i.key.starts_with(&format!("{value}-"))
                    }));
                }
                "statuscategory" => {
                    tests.push(Box::new(move |i: &Issue| {
                        i.status.2.name.eq_ignore_ascii_case(&value)
                    }));
                }
                "status" => {
                    tests.push(Box::new(move |i: &Issue| {
                        i.status.0.eq_ignore_ascii_case(&value)
                    }));
                }
                _ => return None,
            }
        } else if let Some(i) = clause.to_lowercase().find(" in ") {
            if clause[..i].trim().to_lowercase() != "key" {
                return None;
            }
            let list = clause[i + 4..]
                .trim()
                .trim_start_matches('(')
                .trim_end_matches(')');
            let keys: Vec<String> = list.split(',').map(unquote).collect();
            tests.push(Box::new(move |i: &Issue| keys.contains(&i.key)));
        } else {
            return None;
        }
    }
    Some(tests)
}

fn search(data: &Data, jql: &str) -> Result<Vec<Issue>, Box<Response>> {
    let bad = |msg: String| {
        (
            StatusCode::BAD_REQUEST,
            Json(error_collection(&[&msg], serde_json::json!({}))),
        )
            .into_response()
            .into()
    };
    if jql.trim().is_empty() || jql.trim().to_uppercase().starts_with("ORDER BY") {
        return Err(bad(
            "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
                .into(),
        ));
    }
    let Some(tests) = matches_jql(jql) else {
        return Err(bad(format!(
            "Error in the JQL Query: cannot parse `{jql}`."
        )));
    };
    Ok(data
        .issues
        .iter()
        .filter(|i| tests.iter().all(|t| t(i)))
        .cloned()
        .collect())
}

async fn search_jql(
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

async fn legacy_search(
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

async fn create_issue(
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

async fn myself(State(sim): State<Arc<Sim>>, headers: HeaderMap) -> Response {
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
async fn set_status(
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

/// One changelog entry as Jira writes it; the author's shape differs between Cloud
/// (`accountId`) and Data Center (`name`, `key`).
fn history_entry(n: usize, (by, from, to): &StatusMove, data_center: bool) -> serde_json::Value {
    let author = if data_center {
        serde_json::json!({"name": by, "key": format!("JIRAUSER{}", 10_100 + n), "emailAddress": by, "displayName": by, "active": true})
    } else {
        serde_json::json!({"accountId": format!("5b10a2844c20165700ede{n:03}"), "emailAddress": by, "displayName": by, "active": true, "accountType": "atlassian"})
    };
    serde_json::json!({
        "id": (20_000 + n).to_string(),
        "author": author,
        "created": "2026-03-12T16:04:11.482+0000",
        "items": [{
            "field": "status", "fieldtype": "jira", "fieldId": "status",
            "from": from.1, "fromString": from.0, "to": to.1, "toString": to.0,
        }],
    })
}

/// `GET /rest/api/{version}/issue/{key}/changelog?startAt=&maxResults=`: the paged changelog.
async fn get_changelog(
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

async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.data() = seed();
    sim.control.clear();
    StatusCode::NO_CONTENT
}

async fn scenario(State(sim): State<Arc<Sim>>, Path(name): Path<String>) -> StatusCode {
    match name.as_str() {
        "cloud" => sim.data().data_center = false,
        "data_center" => sim.data().data_center = true,
        _ => return StatusCode::NOT_FOUND,
    }
    StatusCode::NO_CONTENT
}
