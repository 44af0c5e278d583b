//! The ServiceNow simulator's HTTP handlers: the Table API, the Change Management API, OAuth
//! tokens, the error envelopes and the control routes that decide and reset changes.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};

use super::query::{Shape, list_response, render_record, select, shape_of, table_records};
use super::seed::{advance, seed};
use super::{CLIENT_ID, CLIENT_SECRET, PASSWORD, Record, Sim, USER, raw, sys_id};

pub(super) fn envelope(message: &str, detail: Option<&str>) -> serde_json::Value {
    serde_json::json!({"error": {"message": message, "detail": detail}, "status": "failure"})
}

pub(super) fn render_error(status: StatusCode, retry_after: Option<u64>) -> Response {
    match status.as_u16() {
        401 => unauthenticated(),
        429 => {
            let reset = (Utc::now()
                + Duration::seconds(i64::try_from(retry_after.unwrap_or(1)).unwrap_or(1)))
            .timestamp();
            (
                status,
                [
                    (
                        header::RETRY_AFTER.as_str(),
                        retry_after.unwrap_or(1).to_string(),
                    ),
                    ("x-ratelimit-limit", "1000".into()),
                    ("x-ratelimit-reset", reset.to_string()),
                    ("x-ratelimit-rule", sys_id(0xfeed)),
                ],
                Json(envelope(
                    "Rate limit exceeded",
                    Some("Too many requests for this user in the current hour"),
                )),
            )
                .into_response()
        }
        502..=504 => (
            status,
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>Instance unavailable</body></html>",
        )
            .into_response(),
        _ => (status, Json(envelope("Internal server error", None))).into_response(),
    }
}

pub(super) fn unauthenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(envelope(
            "User Not Authenticated",
            Some("Required to provide Auth information"),
        )),
    )
        .into_response()
}

pub(super) fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(envelope(
            "No Record found",
            Some("Record doesn't exist or ACL restricts the record retrieval"),
        )),
    )
        .into_response()
}

pub(super) fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("json") || a.contains("*/*"))
}

pub(super) fn xml() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><response><result></result></response>",
    )
        .into_response()
}

pub(super) async fn table_list(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(table): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    if !wants_json(&headers) {
        return xml();
    }
    let data = sim.data();
    let Some(records) = table_records(&data, &table) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(envelope("Invalid table", Some(&table))),
        )
            .into_response();
    };
    let selected = select(
        &data,
        records,
        q.get("sysparm_query").map_or("", String::as_str),
    );
    list_response(
        &data,
        &table,
        &format!("/api/now/table/{table}"),
        selected,
        &q,
        shape_of(&q),
        sim.control.truncate_pagination(),
    )
}

pub(super) async fn table_get(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path((table, id)): Path<(String, String)>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    if !wants_json(&headers) {
        return xml();
    }
    let mut data = sim.data();
    if table == "change_request" {
        advance(&mut data, &id);
    }
    let exclude = q.get("sysparm_exclude_reference_link").map(String::as_str) == Some("true");
    let found = table_records(&data, &table)
        .and_then(|rs| rs.iter().find(|r| r.get("sys_id") == Some(&id)));
    match found {
        Some(r) => Json(serde_json::json!({
            "result": render_record(&data, &table, r, shape_of(&q), exclude, None)
        }))
        .into_response(),
        None => not_found(),
    }
}

pub(super) async fn change_list(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    let data = sim.data();
    let selected = select(
        &data,
        &data.changes,
        q.get("sysparm_query").map_or("", String::as_str),
    );
    list_response(
        &data,
        "change_request",
        "/api/sn_chg_rest/change",
        selected,
        &q,
        Shape::ChangeApi,
        sim.control.truncate_pagination(),
    )
}

pub(super) async fn change_get(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    let mut data = sim.data();
    advance(&mut data, &id);
    match data.changes.iter().find(|r| r.get("sys_id") == Some(&id)) {
        Some(r) => Json(serde_json::json!({
            "result": render_record(&data, "change_request", r, Shape::ChangeApi, true, None)
        }))
        .into_response(),
        None => not_found(),
    }
}

pub(super) async fn change_create(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Map<String, serde_json::Value>>,
) -> Response {
    if let Some(r) = sim.refusal(&headers) {
        return r;
    }
    let mut data = sim.data();
    data.created += 1;
    let n = 40_000 + data.created;
    let mut record = Record::from([
        ("sys_id", sys_id(0xe000 + n)),
        ("number", format!("CHG00{n}")),
        ("short_description", String::new()),
        ("type", "normal".into()),
        ("state", "-5".into()),
        ("approval", "not requested".into()),
        ("start_date", String::new()),
        ("end_date", String::new()),
        ("cmdb_ci", String::new()),
        ("risk", "3".into()),
        ("impact", "3".into()),
        ("on_hold", "false".into()),
        ("conflict_status", "Not Run".into()),
        ("active", "true".into()),
        ("sys_updated_on", raw(Utc::now())),
    ]);
    let mut ignored = Vec::new();
    for (k, v) in &body {
        let writable = [
            "short_description",
            "description",
            "assignment_group",
            "correlation_id",
            "correlation_display",
            "start_date",
            "end_date",
            "cmdb_ci",
            "risk",
            "impact",
        ];
        let text = v
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        match writable.iter().find(|w| **w == k.as_str()) {
            Some(w) if *w != "cmdb_ci" || data.cis.contains_key(&text) => {
                record.insert(w, text);
            }
            _ => ignored.push(k.clone()),
        }
    }
    let rendered = render_record(
        &data,
        "change_request",
        &record,
        Shape::ChangeApi,
        true,
        None,
    );
    if let Some(id) = record.get("sys_id") {
        data.progressing.push(id.clone());
    }
    data.changes.push(record);
    Json(serde_json::json!({
        "result": rendered, "__meta": {"ignoredAttributes": ignored}
    }))
    .into_response()
}

pub(super) async fn oauth_token(
    State(sim): State<Arc<Sim>>,
    Form(form): Form<BTreeMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let client_ok = field("client_id") == CLIENT_ID && field("client_secret") == CLIENT_SECRET;
    let grant_ok = match field("grant_type") {
        "client_credentials" => true,
        "password" => field("username") == USER && field("password") == PASSWORD,
        _ => false,
    };
    if !client_ok || !grant_ok || sim.control.credentials_expired() {
        return (
            StatusCode::UNAUTHORIZED,
            Json(
                serde_json::json!({"error_description": "access_denied", "error": "server_error"}),
            ),
        )
            .into_response();
    }
    let token = format!("snow-sim-access-{}", uuid::Uuid::new_v4().simple());
    let epoch = sim.control.token_epoch();
    sim.data().tokens.push((token.clone(), epoch));
    Json(serde_json::json!({
        "access_token": token, "refresh_token": format!("snow-sim-refresh-{}", uuid::Uuid::new_v4().simple()),
        "scope": "useraccount", "token_type": "Bearer", "expires_in": 1799,
    }))
    .into_response()
}

/// Control: `POST /_sim/changes/{number}` with `{"approval": "approved" | "rejected",
/// "approver": "carol.cab", "comments": "…"}` decides a change as its CAB would (approved →
/// Scheduled `-2`, rejected → back to New `-5`) and records the approver in
/// `sysapproval_approver` (`sys_updated_by`); `{"progress": false}` only stops a created change
/// from moving on as it is read.
pub(super) async fn decide(
    State(sim): State<Arc<Sim>>,
    Path(number): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    let mut data = sim.data();
    let Some(id) = data
        .changes
        .iter()
        .find(|r| r.get("number") == Some(&number))
        .and_then(|r| r.get("sys_id").cloned())
    else {
        return StatusCode::NOT_FOUND;
    };
    data.progressing.retain(|p| *p != id);
    let approval = body["approval"].as_str().unwrap_or_default().to_string();
    let state = match approval.as_str() {
        "approved" => "-2",
        "rejected" => "-5",
        "" => return StatusCode::NO_CONTENT,
        _ => return StatusCode::BAD_REQUEST,
    };
    if let Some(change) = data
        .changes
        .iter_mut()
        .find(|r| r.get("sys_id") == Some(&id))
    {
        change.insert("approval", approval.clone());
        change.insert("state", state.into());
        change.insert("sys_updated_on", raw(Utc::now()));
    }
    if let Some(approver) = body["approver"].as_str() {
        let n = u32::try_from(data.approvals.len()).unwrap_or(0);
        data.approvals.push(Record::from([
            ("sys_id", sys_id(0xb100 + n)),
            ("state", approval),
            ("approver", sys_id(0xd100 + n)),
            ("sysapproval", id),
            (
                "comments",
                body["comments"].as_str().unwrap_or_default().to_string(),
            ),
            ("sys_updated_by", approver.to_string()),
            ("sys_updated_on", raw(Utc::now())),
        ]));
    }
    StatusCode::NO_CONTENT
}

pub(super) async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.data() = seed();
    sim.control.clear();
    StatusCode::NO_CONTENT
}
