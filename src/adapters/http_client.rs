//! The HTTP client every HTTP adapter shares: one place that enforces the deadline, retries only
//! what is safe to retry, caps what it reads, and turns every outcome into JSON or a classified
//! `AdapterError` with no credential in it.
//!
//! Adapters describe a call as an [`HttpRequest`] and get back an [`HttpResponse`] (parsed JSON,
//! an excerpt for the audit trail, the URL without credentials). They never touch `reqwest`.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use rand::Rng as _;
use reqwest::Url;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};

use super::called;
use super::redact::{Redactor, redact_url};
use super::{AdapterBuildError, AdapterError};
use crate::clock::{Clock, SystemClock};

/// Largest response body read. A gate answers within seconds; a tool answering with more than
/// this is misconfigured (wrong endpoint, missing filter) and reading it would only burn memory.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// How much of a response body is kept for the audit trail.
pub const EXCERPT_BYTES: usize = 2048;
/// How much of an error body is quoted in an error message.
const ERROR_BODY_CHARS: usize = 200;
/// First backoff step; each retry doubles it, with full jitter, up to `BACKOFF_MAX`.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// `portcullis/<version>`, so tool operators can see who calls them.
pub const USER_AGENT: &str = concat!("portcullis/", env!("CARGO_PKG_VERSION"));

/// How one adapter instance's client behaves.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Adapter instance name, for logs and build errors.
    pub adapter: String,
    /// Retries after the first attempt, for retryable faults only and only within the deadline.
    pub retries: u32,
    /// Calls in flight at once from this instance; more wait (within their deadline).
    pub max_concurrency: usize,
    pub max_response_bytes: usize,
    pub connect_timeout: Duration,
    /// What the client trusts (system roots plus `ca_file`) and presents (mTLS).
    pub tls: crate::tls::ClientTlsConfig,
    /// What a `Retry-After` date is measured against, and what waits before a retry; the
    /// deadline stays a monotonic `Instant`.
    pub clock: Arc<dyn Clock>,
}

impl ClientSettings {
    pub fn new(adapter: impl Into<String>) -> Self {
        Self {
            adapter: adapter.into(),
            retries: 2,
            max_concurrency: 16,
            max_response_bytes: MAX_RESPONSE_BYTES,
            connect_timeout: Duration::from_secs(3),
            tls: crate::tls::ClientTlsConfig::default(),
            clock: Arc::new(SystemClock),
        }
    }
}

/// One call, as an adapter describes it. `Debug` shows the URL without credentials and leaves
/// bodies out (a login or token request carries the password).
#[derive(Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: Url,
    /// Mark credential values with `HeaderValue::set_sensitive`; the client also scrubs any
    /// header whose name looks secret (see `redact::is_secret_name`).
    pub headers: HeaderMap,
    pub body: Option<serde_json::Value>,
    /// Whether repeating the call is harmless. Defaults to the method's HTTP semantics; set it
    /// for read-only POSTs (search endpoints) to allow retries on 502/503/504.
    pub idempotent: bool,
    /// Statuses that count as an answer. `None` means any 2xx.
    pub expect_status: Option<Vec<u16>>,
    /// Credentials sent in the body (a login's password): scrubbed like header credentials.
    pub body_secrets: Vec<crate::secret::Secret>,
    /// An `application/x-www-form-urlencoded` body (OAuth token requests), when `body` is unset.
    pub form: Option<Vec<(String, String)>>,
    /// The `Accept` header; `None` sends `application/json`. OCI registries decide by it what a
    /// manifest request returns.
    pub accept: Option<HeaderValue>,
    /// Keep the body as bytes instead of parsing JSON (`HttpResponse::bytes`; `json` is null):
    /// content-addressed APIs hash exactly what was received. An empty body is then an answer.
    pub raw: bool,
}

impl std::fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("has_body", &(self.body.is_some() || self.form.is_some()))
            .finish_non_exhaustive()
    }
}

impl HttpRequest {
    pub fn new(method: Method, url: Url) -> Self {
        let idempotent = method.is_idempotent();
        Self {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            idempotent,
            expect_status: None,
            body_secrets: Vec::new(),
            form: None,
            accept: None,
            raw: false,
        }
    }

    pub fn get(url: Url) -> Self {
        Self::new(Method::GET, url)
    }
}

/// A successful call.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    /// The parsed body, with any credential the call sent scrubbed out.
    pub json: serde_json::Value,
    /// The first `EXCERPT_BYTES` of the body, scrubbed.
    pub excerpt: String,
    /// The URL called, without user info or secret query values.
    pub url: String,
    /// The response headers (paging links, totals); never copied into facts wholesale.
    pub headers: HeaderMap,
    /// The body exactly as received, for `raw` requests (empty otherwise).
    pub bytes: Vec<u8>,
}

/// A reqwest client plus the policies around it. Cheap to clone; clones share the limit.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    settings: std::sync::Arc<ClientSettings>,
    permits: std::sync::Arc<Semaphore>,
}

/// What one attempt produced, and whether another attempt may help.
struct Attempt {
    status: Option<u16>,
    outcome: Result<HttpResponse, AdapterError>,
    retry: Retry,
}

enum Retry {
    No,
    /// Retry, after the server's `Retry-After` if it gave one.
    Yes(Option<Duration>),
}

impl HttpClient {
    /// The clock this client waits on, for an adapter's own waits between calls (a poll).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.settings.clock
    }

    pub fn new(settings: ClientSettings) -> Result<Self, AdapterBuildError> {
        // reqwest is built without HTTP/2 here, so ALPN offers HTTP/1.1 only.
        let tls = crate::tls::client_config(&settings.tls, &[b"http/1.1"]).map_err(|e| {
            AdapterBuildError::Invalid {
                name: settings.adapter.clone(),
                message: format!("`tls`: {e}"),
            }
        })?;
        let inner = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .user_agent(USER_AGENT)
            .connect_timeout(settings.connect_timeout)
            // No redirects at all. An API that redirects is sending us to a login or SSO page,
            // or to a URL the operator did not configure; following it would either carry the
            // credential there (reqwest keeps `Authorization` on same-host redirects) or read an
            // HTML page as evidence. A 3xx is reported so the operator configures the final URL.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| AdapterBuildError::Invalid {
                name: settings.adapter.clone(),
                message: format!(
                    "cannot build the http client: {}",
                    error_chain(&e.without_url())
                ),
            })?;
        let permits = std::sync::Arc::new(Semaphore::new(settings.max_concurrency.max(1)));
        Ok(Self {
            inner,
            settings: std::sync::Arc::new(settings),
            permits,
        })
    }

    /// Makes the call, retrying retryable faults while the deadline allows. Never returns after
    /// `deadline`: every attempt, wait for a permit and backoff is bounded by it.
    /// Notes the URL (without credentials) in the adapter call's [`called`](super::called) slot,
    /// and which one failed, for the evidence record.
    pub async fn send(
        &self,
        request: &HttpRequest,
        deadline: Instant,
    ) -> Result<HttpResponse, AdapterError> {
        let shown_url = redact_url(&request.url);
        called::started(&shown_url);
        let outcome = self.send_within(request, deadline, &shown_url).await;
        if outcome.is_err() {
            called::failed(&shown_url);
        }
        outcome
    }

    async fn send_within(
        &self,
        request: &HttpRequest,
        deadline: Instant,
        shown_url: &str,
    ) -> Result<HttpResponse, AdapterError> {
        let started = Instant::now();
        let budget_ms = millis(deadline.saturating_duration_since(started));
        let redactor = Redactor::default()
            .with_headers(&request.headers)
            .with_url(&request.url)
            .with(request.body_secrets.iter().map(|s| s.expose().to_string()));
        let attempts = self.settings.retries.saturating_add(1);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let t0 = Instant::now();
            let result = timeout_at(deadline, self.attempt(request, &redactor, shown_url)).await;
            let duration_ms = millis(t0.elapsed());
            let Ok(Attempt {
                status,
                outcome,
                retry,
            }) = result
            else {
                tracing::debug!(
                    adapter = %self.settings.adapter, attempt, status = Option::<u16>::None,
                    duration_ms, url = %shown_url, outcome = "adapter.timeout",
                    "http attempt"
                );
                return Err(AdapterError::Timeout {
                    timeout_ms: budget_ms,
                });
            };
            tracing::debug!(
                adapter = %self.settings.adapter, attempt, status, duration_ms, url = %shown_url,
                outcome = outcome.as_ref().map_or_else(AdapterError::reason_code, |_| "ok"),
                "http attempt"
            );
            let (error, hint) = match (outcome, retry) {
                (Ok(response), _) => return Ok(response),
                (Err(e), Retry::No) => return Err(e),
                (Err(e), Retry::Yes(_)) if attempt >= attempts => return Err(e),
                (Err(e), Retry::Yes(hint)) => (e, hint),
            };
            let delay = hint.unwrap_or_else(|| backoff(attempt));
            // A wait that would end at or after the deadline cannot lead to an answer in time:
            // give the caller the fault now rather than a timeout later.
            if Instant::now() + delay >= deadline {
                return Err(error);
            }
            tracing::debug!(
                adapter = %self.settings.adapter, attempt, wait_ms = millis(delay),
                url = %shown_url, "http retry wait"
            );
            self.settings.clock.sleep(delay).await;
        }
    }

    async fn attempt(
        &self,
        request: &HttpRequest,
        redactor: &Redactor,
        shown_url: &str,
    ) -> Attempt {
        let fail = |error: AdapterError, retry: Retry| Attempt {
            status: None,
            outcome: Err(error),
            retry,
        };
        // The permit is held for one attempt only, so a call sleeping in backoff does not block
        // the others.
        let Ok(_permit) = self.permits.acquire().await else {
            return fail(
                AdapterError::Unreachable {
                    detail: "the http client is shut down".into(),
                },
                Retry::No,
            );
        };
        let mut builder = self
            .inner
            .request(request.method.clone(), request.url.clone())
            .headers(request.headers.clone())
            .header(
                header::ACCEPT,
                request
                    .accept
                    .clone()
                    .unwrap_or_else(|| HeaderValue::from_static("application/json")),
            );
        if let Some(body) = &request.body {
            builder = builder.json(body);
        } else if let Some(form) = &request.form {
            builder = builder.form(form);
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                // A certificate problem is named, not retried: the next handshake would fail
                // the same way.
                if let Some(problem) = crate::tls::classify(&e) {
                    return fail(
                        AdapterError::Tls {
                            problem: problem.as_str(),
                            help: problem.help(),
                        },
                        Retry::No,
                    );
                }
                let connect = e.is_connect();
                let detail = redactor.scrub(&error_chain(&e.without_url()));
                // A connection that was never made carried no request, so retrying it is safe
                // whatever the method.
                let retry = if connect { Retry::Yes(None) } else { Retry::No };
                return fail(AdapterError::Unreachable { detail }, retry);
            }
        };
        let status = response.status();
        let code = status.as_u16();
        let expected = match &request.expect_status {
            Some(list) => list.contains(&code),
            None => status.is_success(),
        };
        let with_status = |outcome, retry| Attempt {
            status: Some(code),
            outcome,
            retry,
        };
        // A rate limit (GitHub answers its primary limit with 403 or 429, `x-ratelimit-remaining:
        // 0` and the reset time; its secondary limit and GitLab with `Retry-After`) is retryable
        // whatever the expected statuses; a plain 403 is a refusal.
        let now = self.settings.clock.now();
        if matches!(code, 403 | 429)
            && let Some(hint) = rate_limit_wait(response.headers(), now)
        {
            let error = AdapterError::RateLimited {
                retry_after_s: hint.map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
            };
            return with_status(Err(error), Retry::Yes(hint));
        }
        if expected {
            let outcome = if request.raw {
                self.read_raw(response, code, redactor, shown_url).await
            } else {
                self.read_json(response, code, redactor, shown_url).await
            };
            return with_status(outcome, Retry::No);
        }
        let retry_after = retry_after(response.headers(), now);
        let (error, retry) = match code {
            401 | 403 => (AdapterError::Auth { status: code }, Retry::No),
            404 => (
                AdapterError::NotFound {
                    detail: format!("HTTP 404 from `{shown_url}`"),
                },
                Retry::No,
            ),
            // 429 means the tool did not act on the request, so it is retryable for any method.
            429 => (
                AdapterError::RateLimited {
                    retry_after_s: retry_after
                        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0)),
                },
                Retry::Yes(retry_after),
            ),
            300..=399 => {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| request.url.join(l).ok())
                    .map(|u| format!(" to `{}`", redact_url(&u)))
                    .unwrap_or_default();
                let detail = format!(
                    "HTTP {code} from `{shown_url}` redirects{location}, and redirects are not followed: configure the final url"
                );
                (AdapterError::BadResponse { detail }, Retry::No)
            }
            _ => {
                let retry = if matches!(code, 502..=504) && request.idempotent {
                    Retry::Yes(retry_after)
                } else {
                    Retry::No
                };
                let body = self.error_body(response, redactor).await;
                let detail = if status.is_success() {
                    format!("unexpected HTTP {code} from `{shown_url}`{body}")
                } else {
                    format!("HTTP {code} from `{shown_url}`{body}")
                };
                (AdapterError::BadResponse { detail }, retry)
            }
        };
        with_status(Err(error), retry)
    }

    async fn read_raw(
        &self,
        response: reqwest::Response,
        status: u16,
        redactor: &Redactor,
        shown_url: &str,
    ) -> Result<HttpResponse, AdapterError> {
        let headers = response.headers().clone();
        let bytes = read_capped(response, self.settings.max_response_bytes, redactor).await?;
        let text = redactor.scrub(&String::from_utf8_lossy(&bytes));
        Ok(HttpResponse {
            status,
            json: serde_json::Value::Null,
            excerpt: excerpt(&text).to_string(),
            url: shown_url.to_string(),
            headers,
            bytes,
        })
    }

    async fn read_json(
        &self,
        response: reqwest::Response,
        status: u16,
        redactor: &Redactor,
        shown_url: &str,
    ) -> Result<HttpResponse, AdapterError> {
        let headers = response.headers().clone();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_capped(response, self.settings.max_response_bytes, redactor).await?;
        let text = redactor.scrub(&String::from_utf8_lossy(&body));
        let excerpt = excerpt(&text).to_string();
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(AdapterError::BadResponse {
                detail: format!("HTTP {status} from `{shown_url}` has an empty body"),
            });
        }
        let mut json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            let ct = content_type
                .map(|c| format!(" (content type `{c}`)"))
                .unwrap_or_default();
            AdapterError::BadResponse {
                detail: format!("response from `{shown_url}`{ct} is not json: {e}"),
            }
        })?;
        redactor.scrub_json(&mut json);
        Ok(HttpResponse {
            status,
            json,
            excerpt,
            url: shown_url.to_string(),
            headers,
            bytes: Vec::new(),
        })
    }

    /// The start of an error body, for the message (`: {...}`), or nothing if it is empty or
    /// cannot be read. Tools put the useful part of a 400 or 500 there.
    async fn error_body(&self, response: reqwest::Response, redactor: &Redactor) -> String {
        let Ok(body) = read_capped(response, EXCERPT_BYTES * 4, redactor).await else {
            return String::new();
        };
        let text = redactor.scrub(&String::from_utf8_lossy(&body));
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return String::new();
        }
        let mut quoted: String = text.chars().take(ERROR_BODY_CHARS).collect();
        if text.chars().count() > ERROR_BODY_CHARS {
            quoted.push('…');
        }
        format!(": {quoted}")
    }
}

/// Reads at most `max` bytes; more is a `BadResponse`, checked before reading when the length is
/// announced and while streaming otherwise.
async fn read_capped(
    mut response: reqwest::Response,
    max: usize,
    redactor: &Redactor,
) -> Result<Vec<u8>, AdapterError> {
    let too_large = || AdapterError::BadResponse {
        detail: format!("response is larger than the limit of {} KiB", max / 1024),
    };
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) => {
                return Err(AdapterError::Unreachable {
                    detail: format!(
                        "connection failed while reading the response: {}",
                        redactor.scrub(&error_chain(&e.without_url()))
                    ),
                });
            }
        }
    }
}

/// `Retry-After` as a duration: delay-seconds or an HTTP date (RFC 9110 §10.2.3) measured from
/// `now`. A date in the past means "now".
pub fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let delta = at.with_timezone(&chrono::Utc) - now;
    Some(delta.to_std().unwrap_or(Duration::ZERO))
}

/// Whether a 403/429 is a rate limit, and how long it asks to wait: `Retry-After`, else (with
/// `x-ratelimit-remaining: 0` or GitLab's `RateLimit-Remaining: 0`) the reset time, an epoch in
/// seconds, taken relative to the response's own `Date` so no local clock is read (`None` wait
/// when the server sends no `Date`). `None` when the answer is not a rate limit. `now` is only
/// for a `Retry-After` date.
pub fn rate_limit_wait(
    headers: &HeaderMap,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<Option<Duration>> {
    if let Some(d) = retry_after(headers, now) {
        return Some(Some(d));
    }
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    let exhausted = ["x-ratelimit-remaining", "ratelimit-remaining"]
        .iter()
        .any(|h| number(h) == Some(0));
    if !exhausted {
        return None;
    }
    let reset = number("x-ratelimit-reset").or_else(|| number("ratelimit-reset"));
    let date = headers
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v.trim()).ok())
        .map(|d| d.timestamp());
    let wait = match (reset, date) {
        (Some(reset), Some(now)) => Some(Duration::from_secs(
            u64::try_from(reset.saturating_sub(now)).unwrap_or(0),
        )),
        _ => None,
    };
    Some(wait)
}

/// Full-jitter exponential backoff: uniform in `[0, min(max, base·2^(attempt-1))]`. Jitter keeps
/// many gates that failed together from retrying together.
fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let cap = exp.min(BACKOFF_MAX);
    let ms = rand::rng().random_range(0..=millis(cap));
    Duration::from_millis(ms)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An error and its causes, `: `-joined, lower-case first letters, without reqwest's generic top
/// line when it has a more precise cause. The URL is removed by the caller (`without_url`).
fn error_chain(e: &reqwest::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.len() > 1 {
        parts.remove(0);
    }
    parts.dedup();
    parts
        .iter()
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_lowercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(": ")
}

/// The longest prefix of `s` that fits in `max` bytes and ends on a character boundary.
/// The excerpt an adapter records of a response body `text`: its first `EXCERPT_BYTES`, cut at a
/// character boundary (scrubbing credentials is the caller's).
pub fn excerpt(text: &str) -> &str {
    truncate_bytes(text, EXCERPT_BYTES)
}

fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Whether `code` is an HTTP status at all, for validating configured `expect_status` lists.
pub fn is_valid_status(code: u16) -> bool {
    // `StatusCode` accepts up to 999; nothing real lives above 599.
    StatusCode::from_u16(code).is_ok() && code <= 599
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// The tests' "now": 2015-10-21T07:28:00Z.
    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp(1_445_412_480, 0).unwrap()
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(7)));

        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:30:00 GMT"),
        );
        assert_eq!(retry_after(&h, now()), Some(Duration::from_secs(120)));

        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:27:00 GMT"),
        );
        assert_eq!(retry_after(&h, now()), Some(Duration::ZERO), "a past date");

        h.insert(header::RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now()), None);
    }

    #[tokio::test]
    async fn a_retry_after_date_is_waited_for_by_the_clients_clock() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use axum::response::IntoResponse;

        use crate::clock::ManualClock;

        // A 429 whose Retry-After is a date two seconds after the client's "now" (by the wall
        // clock, long past), then a 200. The fault model's 429 gives seconds only.
        let hits = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&hits);
        let app = axum::Router::new().fallback(move || {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    (
                        http::StatusCode::TOO_MANY_REQUESTS,
                        [(header::RETRY_AFTER, "Wed, 21 Oct 2015 07:28:02 GMT")],
                    )
                        .into_response()
                } else {
                    "{}".into_response()
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let clock = Arc::new(ManualClock::new(now()));
        let client = HttpClient::new(ClientSettings {
            clock: clock.clone(),
            ..ClientSettings::new("t")
        })
        .unwrap();
        let request = HttpRequest::get(Url::parse(&base).unwrap());
        let response = client
            .send(&request, Instant::now() + Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(clock.now() - now(), chrono::Duration::seconds(2));
    }

    #[test]
    fn rate_limits_are_told_from_refusals() {
        let mut h = HeaderMap::new();
        assert_eq!(rate_limit_wait(&h, now()), None, "a plain 403 is a refusal");
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("12"));
        assert_eq!(rate_limit_wait(&h, now()), None);
        h.insert("x-ratelimit-remaining", HeaderValue::from_static("0"));
        assert_eq!(
            rate_limit_wait(&h, now()),
            Some(None),
            "no Date: no wait known"
        );
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1445412482"));
        h.insert(
            header::DATE,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            rate_limit_wait(&h, now()),
            Some(Some(Duration::from_secs(2)))
        );
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        assert_eq!(
            rate_limit_wait(&h, now()),
            Some(Some(Duration::from_secs(60)))
        );
    }

    #[test]
    fn backoff_stays_within_its_cap() {
        for attempt in 1..20 {
            assert!(backoff(attempt) <= BACKOFF_MAX);
        }
        assert!(backoff(1) <= BACKOFF_BASE);
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_bytes("héllo", 2), "h");
        assert_eq!(truncate_bytes("abc", 10), "abc");
    }
}
