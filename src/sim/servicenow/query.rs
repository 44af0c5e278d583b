//! The ServiceNow simulator's query engine: encoded queries (`^`, `IN`, `ORDERBY[DESC]`,
//! `cmdb_ci.name`), display values, record shapes (`sysparm_display_value`, reference links,
//! `sysparm_fields`) and paged list answers with `Link` and `X-Total-Count`.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{Duration, NaiveDateTime};

use super::{Data, INSTANCE, RAW_FORMAT, REFERENCE_FIELDS, Record};

pub(super) fn state_name(state: &str) -> &'static str {
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

pub(super) fn display(data: &Data, field: &str, value: &str) -> String {
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
pub(super) enum Shape {
    Raw,
    Display,
    All,
    /// The Change Management API: every field `{value, display_value}`.
    ChangeApi,
}

pub(super) fn render_record(
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
pub(super) type Filter = (String, Vec<String>);

/// Parses an encoded query into filters and an ordering. Conditions on unknown fields are
/// dropped silently, as an instance does by default.
pub(super) fn query(data: &Data, q: &str, known: &[&str]) -> (Vec<Filter>, Option<(String, bool)>) {
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

pub(super) fn select<'a>(data: &'a Data, records: &'a [Record], q: &str) -> Vec<&'a Record> {
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

pub(super) fn shape_of(q: &BTreeMap<String, String>) -> Shape {
    match q.get("sysparm_display_value").map(String::as_str) {
        Some("true") => Shape::Display,
        Some("all") => Shape::All,
        _ => Shape::Raw,
    }
}

pub(super) fn list_response(
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

pub(super) fn table_records<'a>(data: &'a Data, table: &str) -> Option<&'a [Record]> {
    match table {
        "change_request" => Some(&data.changes),
        "sysapproval_approver" => Some(&data.approvals),
        _ => None,
    }
}
