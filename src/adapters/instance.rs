//! What every tool adapter instance shares in configuration: the defaults (timeout, retries,
//! concurrency, cache TTL), the base URL check, the client, and the per-call deadline. Each
//! tool's config struct repeats the keys (serde `flatten` would silently disable
//! `deny_unknown_fields`), and calls these.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use tokio::time::Instant;

use super::AdapterBuildError;
use super::http_client::{ClientSettings, HttpClient};
use crate::clock::Clock;

pub fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

pub fn default_retries() -> u32 {
    2
}

pub fn default_max_concurrency() -> usize {
    16
}

pub fn default_cache_ttl() -> Duration {
    Duration::from_secs(30)
}

/// The error for `field` of adapter `name`.
pub fn invalid(name: &str, field: &str, message: impl std::fmt::Display) -> AdapterBuildError {
    AdapterBuildError::Invalid {
        name: name.to_string(),
        message: format!("`{field}`: {message}"),
    }
}

/// Parses a base URL (http or https, no credentials, no query), with a trailing `/` so that
/// joining keeps a context path (`https://host/sonar/`).
pub fn base_url(name: &str, text: &str) -> Result<Url, AdapterBuildError> {
    let bad = |m: &str| invalid(name, "base_url", m);
    let mut url = Url::parse(text).map_err(|e| bad(&format!("is not a url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("must be an http or https url"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            "must not carry credentials; put them under `auth` (from env or a file)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query or a fragment"));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// `base` joined with a relative API path (`api/ce/task`); the path is a constant of the adapter.
pub fn endpoint(base: &Url, path: &str) -> Result<Url, super::AdapterError> {
    base.join(path)
        .map_err(|e| super::AdapterError::BadResponse {
            detail: format!("cannot build the url for `{path}`: {e}"),
        })
}

/// Builds the shared client for one instance.
pub fn client(
    name: &str,
    timeout: Duration,
    retries: u32,
    max_concurrency: usize,
    tls: Option<&crate::tls::ClientTlsConfig>,
    clock: Arc<dyn Clock>,
) -> Result<HttpClient, AdapterBuildError> {
    if timeout.is_zero() {
        return Err(invalid(name, "timeout", "must be longer than zero"));
    }
    if max_concurrency == 0 {
        return Err(invalid(name, "max_concurrency", "must be at least 1"));
    }
    let mut settings = ClientSettings::new(name);
    settings.retries = retries;
    settings.max_concurrency = max_concurrency;
    settings.tls = tls.cloned().unwrap_or_default();
    settings.clock = clock;
    HttpClient::new(settings)
}

/// The earlier of the gate's deadline and this instance's own timeout from now.
pub fn call_deadline(deadline: Instant, timeout: Duration) -> Instant {
    deadline.min(Instant::now() + timeout)
}
