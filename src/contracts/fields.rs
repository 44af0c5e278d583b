//! Shapes every caller contract shares: a list sent either as one string or as an array, and the
//! service's own base URL for the links a contract answers with.

use axum::http::{HeaderMap, header};
use serde::Deserialize;

use crate::api::http::HttpState;

/// A list a caller may send as an array or as one comma- or newline-separated string (what
/// Spinnaker's SpEL and ServiceNow's scripts produce). Blank items, and SpEL that failed to
/// resolve (left as literal `${…}` text), are absent.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub(crate) enum StringList {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl StringList {
    pub(crate) fn items(&self) -> Vec<String> {
        let raw: Vec<&str> = match self {
            StringList::None => Vec::new(),
            StringList::One(s) => s.split([',', '\n']).collect(),
            StringList::Many(v) => v.iter().map(String::as_str).collect(),
        };
        raw.into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.starts_with("${"))
            .map(str::to_string)
            .collect()
    }
}

/// The absolute base URL links are built on: `server.public_url` when set, else the request's
/// `Host` (with `X-Forwarded-Proto` when it says `http` or `https`), else `localhost`. Absolute
/// because callers such as Orca fail on a relative status URL.
pub(crate) fn base_url(s: &HttpState, headers: &HeaderMap) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_come_as_arrays_or_separated_strings() {
        let one = StringList::One("a, b\nc,,${trigger.x}".into());
        assert_eq!(one.items(), ["a", "b", "c"]);
        let many = StringList::Many(vec![" a ".into(), String::new()]);
        assert_eq!(many.items(), ["a"]);
        assert!(StringList::None.items().is_empty());
    }
}
