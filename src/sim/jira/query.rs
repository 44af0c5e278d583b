//! The Jira simulator's query engine and views: the JQL subset searches understand, the fields
//! an issue read or search returns (`fields`, Cloud and Data Center shapes) and changelog entries.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::api::error_collection;
use super::{Data, Issue, StatusMove};

#[derive(Serialize)]
pub(super) struct IssueView {
    id: String,
    key: String,
    #[serde(rename = "self")]
    self_url: String,
    fields: serde_json::Map<String, serde_json::Value>,
}

pub(super) fn view(issue: &Issue, version: &str, fields: &[&str]) -> IssueView {
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

pub(super) const ALL_FIELDS: [&str; 7] = [
    "summary",
    "status",
    "resolution",
    "issuetype",
    "project",
    "labels",
    "updated",
];

pub(super) fn requested_fields(
    q: &BTreeMap<String, String>,
    default: &[&'static str],
) -> Vec<&'static str> {
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

/// A tiny JQL subset: `A AND B …` of `project = X`, `key in (A, B)`, `statusCategory = Done`,
/// `status = "X"`, with an optional `ORDER BY …`. `None` for anything else.
pub(super) type IssueTest = Box<dyn Fn(&Issue) -> bool>;

pub(super) fn matches_jql(jql: &str) -> Option<Vec<IssueTest>> {
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

pub(super) fn search(data: &Data, jql: &str) -> Result<Vec<Issue>, Box<Response>> {
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

/// One changelog entry as Jira writes it; the author's shape differs between Cloud
/// (`accountId`) and Data Center (`name`, `key`).
pub(super) fn history_entry(
    n: usize,
    (by, from, to): &StatusMove,
    data_center: bool,
) -> serde_json::Value {
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
