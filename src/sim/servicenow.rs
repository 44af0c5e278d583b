//! ServiceNow simulator (contract §3): the Table API on `change_request` and
//! `sysapproval_approver` (`sysparm_query` with `^`, `IN`, `ORDERBY[DESC]`, dot-walked
//! `cmdb_ci.name`, unknown conditions silently dropped; `sysparm_display_value`
//! false/true/all; `sysparm_exclude_reference_link`; `sysparm_fields`; limit/offset with `Link`
//! and `X-Total-Count`; `{"result":[]}` on no match; 404 envelope on an unknown sys_id), the
//! Change Management API (`{value, display_value}` fields, `__meta` on writes, new normal changes
//! in `-5` / `not requested`), `POST /oauth_token.do`, Basic and Bearer auth with the 401
//! envelope, 429 with `Retry-After` and `X-RateLimit-*`. Raw dates are UTC; display dates are in
//! the integration user's zone (America/New_York, shown as UTC−5). Without an `Accept` that
//! allows JSON the answer is XML, as a real instance may do.
//!
//! Seeded changes (window relative to start-up): `CHG0030001` approved, Scheduled, in its window,
//! CI `payments-api`; `CHG0030002` requested, Authorize; `CHG0030003` rejected, back to New;
//! `CHG0030004` approved with no end date (`""`); `CHG0030005` approved, window in the past;
//! `CHG0030006` approved but Canceled; `CHG0030007` standard, Implement, CI `orders-api`.
//! A normal change created with `POST /api/sn_chg_rest/change/normal` starts in New / not
//! requested and moves one step per read of it by sys_id: Assess, Authorize (requested),
//! Scheduled (approved). `POST /_sim/changes/{number}` decides a change as its CAB would (see
//! `decide`), recording who in `sysapproval_approver.sys_updated_by`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, NaiveDateTime, Utc};

use super::faults::{Control, wrap};

/// Basic auth of the integration user.
pub const USER: &str = "portcullis.integration";
pub const PASSWORD: &str = "snow-Sim-pa55word";
/// OAuth client for `POST /oauth_token.do` (`client_credentials` or `password` grant).
pub const CLIENT_ID: &str = "3f1b2c0d9e8a7b6c5d4e3f2a1b0c9d8e";
pub const CLIENT_SECRET: &str = "snow-Sim-client-secret";

const INSTANCE: &str = "https://acme.service-now.com";
const RAW_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// One record: field name → raw string value. Reference fields hold the referenced sys_id.
type Record = BTreeMap<&'static str, String>;

#[derive(Debug)]
struct Data {
    changes: Vec<Record>,
    approvals: Vec<Record>,
    /// sys_id → name of configuration items.
    cis: BTreeMap<String, String>,
    tokens: Vec<(String, u64)>,
    created: u32,
    /// sys_ids of changes created through the API: each read moves them one step through
    /// New → Assess → Authorize (approval requested) → Scheduled (approved), as a CAB would.
    progressing: Vec<String>,
}

struct Sim {
    control: Arc<Control>,
    data: Mutex<Data>,
}

const REFERENCE_FIELDS: [&str; 2] = ["cmdb_ci", "sysapproval"];

fn sys_id(n: u32) -> String {
    format!("{n:032x}")
}

fn raw(t: DateTime<Utc>) -> String {
    t.format(RAW_FORMAT).to_string()
}

fn seed() -> Data {
    let now = Utc::now();
    let payments = sys_id(0xc1_0001);
    let orders = sys_id(0xc1_0002);
    let change =
        |n: u32, ty: &str, state: &str, approval: &str, start: String, end: String, ci: &str| {
            Record::from([
                ("sys_id", sys_id(0xa000 + n)),
                ("number", format!("CHG003000{n}")),
                ("short_description", format!("Deploy change {n}")),
                ("type", ty.into()),
                ("state", state.into()),
                ("approval", approval.into()),
                ("start_date", start),
                ("end_date", end),
                ("cmdb_ci", ci.into()),
                ("risk", "3".into()),
                ("impact", "2".into()),
                ("on_hold", "false".into()),
                ("conflict_status", "No Conflict".into()),
                ("active", "true".into()),
                ("sys_updated_on", raw(now - Duration::hours(3))),
            ])
        };
    let open = (raw(now - Duration::hours(1)), raw(now + Duration::hours(4)));
    let past = (raw(now - Duration::days(2)), raw(now - Duration::days(1)));
    let changes = vec![
        change(
            1,
            "normal",
            "-2",
            "approved",
            open.0.clone(),
            open.1.clone(),
            &payments,
        ),
        change(
            2,
            "normal",
            "-3",
            "requested",
            open.0.clone(),
            open.1.clone(),
            &payments,
        ),
        change(
            3,
            "normal",
            "-5",
            "rejected",
            open.0.clone(),
            open.1.clone(),
            &payments,
        ),
        change(
            4,
            "normal",
            "-2",
            "approved",
            open.0.clone(),
            String::new(),
            &payments,
        ),
        change(5, "normal", "-2", "approved", past.0, past.1, &payments),
        change(
            6,
            "normal",
            "4",
            "approved",
            open.0.clone(),
            open.1.clone(),
            &payments,
        ),
        change(7, "standard", "-1", "approved", open.0, open.1, &orders),
    ];
    let approvals = vec![
        Record::from([
            ("sys_id", sys_id(0xb001)),
            ("state", "approved".into()),
            ("approver", sys_id(0xd001)),
            ("sysapproval", sys_id(0xa001)),
            ("comments", String::new()),
            ("sys_updated_by", "carol.cab".into()),
            ("sys_updated_on", raw(now - Duration::hours(2))),
        ]),
        Record::from([
            ("sys_id", sys_id(0xb002)),
            ("state", "requested".into()),
            ("approver", sys_id(0xd002)),
            ("sysapproval", sys_id(0xa002)),
            ("comments", String::new()),
            ("sys_updated_by", "system".into()),
            ("sys_updated_on", raw(now - Duration::hours(2))),
        ]),
    ];
    Data {
        changes,
        approvals,
        cis: BTreeMap::from([
            (payments, "payments-api".to_string()),
            (orders, "orders-api".to_string()),
        ]),
        tokens: Vec::new(),
        created: 0,
        progressing: Vec::new(),
    }
}

/// Who approves a created change that moves on by itself (its `sysapproval_approver` record).
pub const PROGRESSION_APPROVER: &str = "cab.sim";

/// One step of a created change's life, applied when it is read.
fn advance(data: &mut Data, id: &str) {
    if !data.progressing.iter().any(|p| p == id) {
        return;
    }
    let Some(change) = data
        .changes
        .iter_mut()
        .find(|r| r.get("sys_id").is_some_and(|s| s == id))
    else {
        return;
    };
    let (state, approval) = match change.get("state").map(String::as_str) {
        Some("-5") => ("-4", "not requested"),
        Some("-4") => ("-3", "requested"),
        _ => ("-2", "approved"),
    };
    change.insert("state", state.into());
    change.insert("approval", approval.into());
    if state == "-2" {
        data.progressing.retain(|p| p != id);
        let n = u32::try_from(data.approvals.len()).unwrap_or(0);
        data.approvals.push(Record::from([
            ("sys_id", sys_id(0xb100 + n)),
            ("state", "approved".to_string()),
            ("approver", sys_id(0xd100 + n)),
            ("sysapproval", id.to_string()),
            ("comments", String::new()),
            ("sys_updated_by", PROGRESSION_APPROVER.to_string()),
            ("sys_updated_on", raw(Utc::now())),
        ]));
    }
}

/// The simulator's routes.
pub fn router(control: Arc<Control>) -> Router {
    let sim = Arc::new(Sim {
        control: Arc::clone(&control),
        data: Mutex::new(seed()),
    });
    let api = Router::new()
        .route("/api/now/table/{table}", get(table_list))
        .route("/api/now/table/{table}/{sys_id}", get(table_get))
        .route("/api/sn_chg_rest/change", get(change_list))
        .route("/api/sn_chg_rest/v1/change", get(change_list))
        .route("/api/sn_chg_rest/change/normal", post(change_create))
        .route("/api/sn_chg_rest/v1/change/normal", post(change_create))
        .route("/api/sn_chg_rest/change/{sys_id}", get(change_get))
        .route("/api/sn_chg_rest/v1/change/{sys_id}", get(change_get))
        .route("/oauth_token.do", post(oauth_token))
        .with_state(Arc::clone(&sim));
    wrap(api, control, render_error).merge(
        Router::new()
            .route("/_sim/reset", post(reset))
            .route("/_sim/changes/{number}", post(decide))
            .with_state(sim),
    )
}

fn envelope(message: &str, detail: Option<&str>) -> serde_json::Value {
    serde_json::json!({"error": {"message": message, "detail": detail}, "status": "failure"})
}

fn render_error(status: StatusCode, retry_after: Option<u64>) -> Response {
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

fn unauthenticated() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(envelope(
            "User Not Authenticated",
            Some("Required to provide Auth information"),
        )),
    )
        .into_response()
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(envelope(
            "No Record found",
            Some("Record doesn't exist or ACL restricts the record retrieval"),
        )),
    )
        .into_response()
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
        let epoch = self.control.token_epoch();
        let ok = match (super::basic(headers), super::bearer(headers)) {
            (Some((user, password)), _) => user == USER && password == PASSWORD,
            (None, Some(token)) => self
                .data()
                .tokens
                .iter()
                .any(|(t, e)| *t == token && *e == epoch),
            _ => false,
        };
        if ok { None } else { Some(unauthenticated()) }
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("json") || a.contains("*/*"))
}

fn xml() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><response><result></result></response>",
    )
        .into_response()
}

fn state_name(state: &str) -> &'static str {
    match state {
        "-5" => "New",
        "-4" => "Assess",
        "-3" => "Authorize",
        "-2" => "Scheduled",
        "-1" => "Implement",
        "0" => "Review",
        "3" => "Closed",
        "4" => "Canceled",
        _ => "",
    }
}

fn display(data: &Data, field: &str, value: &str) -> String {
    match field {
        "state" if !state_name(value).is_empty() => state_name(value).into(),
        "approval" => match value {
            "not requested" => "Not Yet Requested".into(),
            "requested" => "Requested".into(),
            "approved" => "Approved".into(),
            "rejected" => "Rejected".into(),
            other => other.into(),
        },
        "type" => {
            let mut c = value.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
        "start_date" | "end_date" | "sys_updated_on" => {
            NaiveDateTime::parse_from_str(value, RAW_FORMAT)
                .map(|t| (t - Duration::hours(5)).format(RAW_FORMAT).to_string())
                .unwrap_or_default()
        }
        "cmdb_ci" => data.cis.get(value).cloned().unwrap_or_default(),
        "risk" => match value {
            "1" => "Very High",
            "2" => "High",
            "3" => "Moderate",
            "4" => "Low",
            _ => "",
        }
        .into(),
        _ => value.into(),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Raw,
    Display,
    All,
    /// The Change Management API: every field `{value, display_value}`.
    ChangeApi,
}

fn render_record(
    data: &Data,
    table: &str,
    record: &Record,
    shape: Shape,
    exclude_links: bool,
    fields: Option<&[String]>,
) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for (&name, value) in record {
        if fields.is_some_and(|f| !f.iter().any(|x| x == name)) {
            continue;
        }
        let is_ref = REFERENCE_FIELDS.contains(&name) && !value.is_empty();
        let link = is_ref.then(|| {
            let target = if name == "cmdb_ci" { "cmdb_ci" } else { "task" };
            format!("{INSTANCE}/api/now/table/{target}/{value}")
        });
        let shown = display(data, name, value);
        let v = match shape {
            Shape::Raw if is_ref && !exclude_links => {
                serde_json::json!({"link": link, "value": value})
            }
            Shape::Raw => serde_json::json!(value),
            Shape::Display if is_ref && !exclude_links => {
                serde_json::json!({"display_value": shown, "link": link})
            }
            Shape::Display => serde_json::json!(shown),
            Shape::All | Shape::ChangeApi => {
                let mut v = serde_json::json!({"display_value": shown, "value": value});
                if is_ref && !exclude_links && shape == Shape::All {
                    v["link"] = link.into();
                }
                v
            }
        };
        out.insert(name.to_string(), v);
    }
    let _ = table;
    serde_json::Value::Object(out)
}

/// A condition: the field must hold one of the values.
type Filter = (String, Vec<String>);

/// Parses an encoded query into filters and an ordering. Conditions on unknown fields are
/// dropped silently, as an instance does by default.
fn query(data: &Data, q: &str, known: &[&str]) -> (Vec<Filter>, Option<(String, bool)>) {
    let mut filters = Vec::new();
    let mut order = None;
    for part in q.split('^').filter(|p| !p.is_empty()) {
        if let Some(f) = part.strip_prefix("ORDERBYDESC") {
            order = Some((f.to_string(), true));
        } else if let Some(f) = part.strip_prefix("ORDERBY") {
            order = Some((f.to_string(), false));
        } else if let Some((f, v)) = part.split_once("IN").filter(|(f, _)| known.contains(f)) {
            filters.push((f.to_string(), v.split(',').map(String::from).collect()));
        } else if let Some((f, v)) = part.split_once('=') {
            if f == "cmdb_ci.name" {
                let ids: Vec<String> = data
                    .cis
                    .iter()
                    .filter(|(_, n)| *n == v)
                    .map(|(id, _)| id.clone())
                    .collect();
                filters.push((
                    "cmdb_ci".into(),
                    if ids.is_empty() {
                        vec!["-".into()]
                    } else {
                        ids
                    },
                ));
            } else if known.contains(&f) {
                filters.push((f.to_string(), vec![v.to_string()]));
            }
        }
    }
    (filters, order)
}

fn select<'a>(data: &'a Data, records: &'a [Record], q: &str) -> Vec<&'a Record> {
    let known: Vec<&str> = records
        .first()
        .map(|r| r.keys().copied().collect())
        .unwrap_or_default();
    let (filters, order) = query(data, q, &known);
    let mut out: Vec<&Record> = records
        .iter()
        .filter(|r| {
            filters
                .iter()
                .all(|(f, vs)| r.get(f.as_str()).is_some_and(|v| vs.contains(v)))
        })
        .collect();
    if let Some((field, desc)) = order {
        out.sort_by(|a, b| a.get(field.as_str()).cmp(&b.get(field.as_str())));
        if desc {
            out.reverse();
        }
    }
    out
}

fn shape_of(q: &BTreeMap<String, String>) -> Shape {
    match q.get("sysparm_display_value").map(String::as_str) {
        Some("true") => Shape::Display,
        Some("all") => Shape::All,
        _ => Shape::Raw,
    }
}

fn list_response(
    data: &Data,
    table: &str,
    path: &str,
    records: Vec<&Record>,
    q: &BTreeMap<String, String>,
    shape: Shape,
    truncate_pagination: bool,
) -> Response {
    let limit: usize = q
        .get("sysparm_limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10_000)
        .max(1);
    let offset: usize = q
        .get("sysparm_offset")
        .and_then(|o| o.parse().ok())
        .unwrap_or(0);
    let fields: Option<Vec<String>> = q
        .get("sysparm_fields")
        .map(|f| f.split(',').map(|s| s.trim().to_string()).collect());
    let exclude = q.get("sysparm_exclude_reference_link").map(String::as_str) == Some("true");
    if truncate_pagination && offset > 0 {
        // The fault: a later page is empty and carries neither `Link` nor `X-Total-Count`.
        return Json(serde_json::json!({"result": []})).into_response();
    }
    let total = records.len();
    let page: Vec<_> = records
        .into_iter()
        .skip(offset)
        .take(limit)
        .map(|r| render_record(data, table, r, shape, exclude, fields.as_deref()))
        .collect();
    let link_to = |off: usize, rel: &str| {
        let mut params: Vec<String> = q
            .iter()
            .filter(|(k, _)| k.as_str() != "sysparm_offset")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        params.push(format!("sysparm_offset={off}"));
        format!("<{INSTANCE}{path}?{}>;rel=\"{rel}\"", params.join("&"))
    };
    let last = total.saturating_sub(1) / limit * limit;
    let mut links = vec![link_to(0, "first")];
    if offset > 0 {
        links.push(link_to(offset.saturating_sub(limit), "prev"));
    }
    if offset + limit < total {
        links.push(link_to(offset + limit, "next"));
    }
    links.push(link_to(last, "last"));
    let mut response = Json(serde_json::json!({"result": page})).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = links.join(",").parse() {
        headers.insert(header::LINK, v);
    }
    if q.get("sysparm_no_count").map(String::as_str) != Some("true") {
        if let Ok(v) = total.to_string().parse() {
            headers.insert("x-total-count", v);
        }
    }
    response
}

fn table_records<'a>(data: &'a Data, table: &str) -> Option<&'a [Record]> {
    match table {
        "change_request" => Some(&data.changes),
        "sysapproval_approver" => Some(&data.approvals),
        _ => None,
    }
}

async fn table_list(
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

async fn table_get(
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

async fn change_list(
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

async fn change_get(
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

async fn change_create(
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

async fn oauth_token(
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
async fn decide(
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

async fn reset(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.data() = seed();
    sim.control.clear();
    StatusCode::NO_CONTENT
}
