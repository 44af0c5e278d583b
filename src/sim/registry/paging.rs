//! The registry simulator's listings: tags paged with `Link` (at most `PAGE` a page, whatever `n`
//! asks) and the OCI 1.1 referrers of a digest, filtered by `artifactType`.

use std::collections::HashMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{INDEX, PAGE, Repo};

pub(super) fn tags(name: &str, repo: &Repo, q: &HashMap<String, String>) -> Response {
    let n: usize = q.get("n").and_then(|n| n.parse().ok()).unwrap_or(100);
    let page = n.min(PAGE);
    let after = q.get("last").cloned();
    let rest: Vec<&String> = repo
        .tags
        .keys()
        .filter(|t| after.as_ref().is_none_or(|a| *t > a))
        .collect();
    let chosen: Vec<&String> = rest.iter().take(page).copied().collect();
    let mut r = axum::Json(json!({"name": name, "tags": chosen})).into_response();
    if rest.len() > chosen.len()
        && let Some(last) = chosen.last()
    {
        let link = format!("</v2/{name}/tags/list?n={n}&last={last}>; rel=\"next\"");
        if let Ok(v) = HeaderValue::from_str(&link) {
            r.headers_mut().insert(header::LINK, v);
        }
    }
    r
}

pub(super) fn referrers(repo: &Repo, digest: &str, q: &HashMap<String, String>) -> Response {
    let filter = q.get("artifactType").cloned();
    let mut list = Vec::new();
    let mut ids: Vec<&String> = repo.manifests.keys().collect();
    ids.sort();
    for d in ids {
        let (media, bytes) = &repo.manifests[d];
        let Ok(doc) = serde_json::from_slice::<Value>(bytes) else {
            continue;
        };
        if doc["subject"]["digest"].as_str() != Some(digest) {
            continue;
        }
        let artifact = doc["artifactType"]
            .as_str()
            .or_else(|| doc["config"]["mediaType"].as_str())
            .unwrap_or("")
            .to_string();
        if filter.as_ref().is_some_and(|f| *f != artifact) {
            continue;
        }
        let mut desc =
            json!({"mediaType": media, "digest": d, "size": bytes.len(), "artifactType": artifact});
        if doc["annotations"].is_object() {
            desc["annotations"] = doc["annotations"].clone();
        }
        list.push(desc);
    }
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, INDEX)],
        json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": list}).to_string(),
    )
        .into_response();
    if filter.is_some() {
        r.headers_mut().insert(
            header::HeaderName::from_static("oci-filters-applied"),
            HeaderValue::from_static("artifactType"),
        );
    }
    r
}
