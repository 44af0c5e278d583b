//! The service's own absolute base URL, for the links routes answer with (Spinnaker's status
//! URL, ServiceNow's decision URL, Rollouts' `reviewUrl`).

use axum::http::{HeaderMap, header};

use super::HttpState;

/// The absolute base URL links are built on: `server.public_url` when set, else the request's
/// `Host` (with `X-Forwarded-Proto` when it says `http` or `https`), else `localhost`. Absolute
/// because callers such as Orca fail on a relative status URL.
pub fn base_url(s: &HttpState, headers: &HeaderMap) -> String {
    if let Some(base) = &s.public_url {
        return base.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}
