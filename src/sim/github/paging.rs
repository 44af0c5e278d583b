//! GitHub's list paging in the simulator: `per_page` (default 30, at most 100) and `page`, a
//! `Link` header with `next` and `last` while pages remain, wrapped lists (`check_runs`,
//! `statuses`) with `total_count`; with `truncate_pagination`, pages after the first come back
//! empty and without links or counts.

use std::collections::HashMap;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::Sim;

impl Sim {
    /// One page of `items` as GitHub pages lists: `per_page` (default 30, at most 100) and
    /// `page`, a `Link` header with `next` and `last` while pages remain; `wrap` puts the page
    /// under that key with `total_count`.
    pub(super) fn page(
        &self,
        items: Vec<Value>,
        q: &HashMap<String, String>,
        headers: &HeaderMap,
        uri: &Uri,
        wrap: Option<&str>,
    ) -> Response {
        let per_page = q
            .get("per_page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(30)
            .clamp(1, 100);
        let page = q
            .get("page")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let truncated = page > 1 && self.control.truncate_pagination();
        let pages = items.len().div_ceil(per_page).max(1);
        let slice: Vec<Value> = if truncated {
            Vec::new()
        } else {
            items
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .cloned()
                .collect()
        };
        let body = match wrap {
            None => json!(slice),
            Some(key) if truncated => json!({ key: slice }),
            Some(key) => json!({"total_count": items.len(), key: slice}),
        };
        let mut response = Json(body).into_response();
        if page < pages && !truncated {
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
            let link = format!(
                "<{}>; rel=\"next\", <{}>; rel=\"last\"",
                link_to(page + 1),
                link_to(pages)
            );
            if let Ok(v) = HeaderValue::from_str(&link) {
                response.headers_mut().insert(header::LINK, v);
            }
        }
        response
    }
}
