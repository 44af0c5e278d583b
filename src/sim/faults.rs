//! The one fault model for fake tools: a middleware in front of a tool's API that delays, never
//! answers, fails the next N calls with a status, answers 429 with `Retry-After`, redirects to a
//! sign-in page, or sends a malformed, empty, HTML, oversized or cut-off body, or cuts paged lists
//! short after their first page; plus the generic part of the control API (`/_sim/faults`,
//! `/_sim/stats`). The simulators and the tests' own fake tools ([`wrap`] any router, with
//! [`json_error`] when the tool has no error shape of its own) share it, so a fault means the
//! same thing everywhere.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How a tool writes an error of its own for a status (and a `Retry-After` for 429).
pub type ErrorRenderer = fn(StatusCode, Option<u64>) -> Response;

/// The control API's fault document; every key is optional and keys left out keep their value.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSettings {
    /// Delay before every API answer.
    #[serde(default)]
    pub delay_ms: Option<u64>,
    /// Answer the next `count` API calls with `status` (the tool's own error shape).
    #[serde(default)]
    pub fail_next: Option<FailNext>,
    /// Answer the next `count` API calls with 429 and `Retry-After: retry_after_s`.
    #[serde(default)]
    pub rate_limit_next: Option<RateLimitNext>,
    /// Answer the next N API calls with 200 and a truncated JSON body.
    #[serde(default)]
    pub malformed_next: Option<u32>,
    /// Answer the next N API calls with 200 and an empty body.
    #[serde(default)]
    pub empty_next: Option<u32>,
    /// Answer the next N API calls with 200 and an HTML sign-in page (`text/html`), as a
    /// hibernating instance or a single sign-on proxy does.
    #[serde(default)]
    pub wrong_type_next: Option<u32>,
    /// Answer the next N API calls with 200 and a body larger than any adapter reads (8 MiB,
    /// streamed without a length).
    #[serde(default)]
    pub huge_next: Option<u32>,
    /// Answer the next N API calls with 200 and a body that stops mid-transfer (the connection
    /// is cut).
    #[serde(default)]
    pub truncated_next: Option<u32>,
    /// Answer the next N API calls with `302 Found` to [`REDIRECT_LOCATION`], a sign-in page
    /// whose URL carries a token: what an SSO proxy in front of a tool does.
    #[serde(default)]
    pub redirect_next: Option<u32>,
    /// Never answer the next N API calls (the connection stays open): a hung tool.
    #[serde(default)]
    pub hang_next: Option<u32>,
    /// Paged lists end early: every page after the first comes back empty and without the paging
    /// headers or counts, although the first page announced more.
    #[serde(default)]
    pub truncate_pagination: Option<bool>,
    /// Every credential (tokens and passwords) is refused with the tool's 401.
    #[serde(default)]
    pub credentials_expired: Option<bool>,
    /// Session tokens issued so far expire (Aqua: a fresh login works again).
    #[serde(default)]
    pub tokens_expired: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailNext {
    pub count: u32,
    pub status: u16,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitNext {
    pub count: u32,
    pub retry_after_s: u64,
}

#[derive(Debug, Default)]
struct FaultState {
    delay: Duration,
    fail: FailNext,
    rate_limit: RateLimitNext,
    malformed: u32,
    empty: u32,
    wrong_type: u32,
    huge: u32,
    truncated: u32,
    redirect: u32,
    hang: u32,
    truncate_pagination: bool,
    credentials_expired: bool,
}

/// One simulator's fault knobs and counters.
#[derive(Debug)]
pub struct Control {
    pub tool: &'static str,
    state: Mutex<FaultState>,
    requests: AtomicU64,
    /// Bumped by `tokens_expired`; tools that issue tokens remember the epoch they issued in.
    token_epoch: AtomicU64,
}

enum Injected {
    Fail(u16),
    RateLimit(u64),
    Malformed,
    Empty,
    WrongType,
    Huge,
    Truncated,
    Redirect,
    Hang,
}

/// Where [`FaultSettings::redirect_next`] sends a client. The query carries a marker that must
/// never come back out of an adapter (an SSO redirect's URL may hold a token).
pub const REDIRECT_LOCATION: &str = "https://sso.example/login?token=redirect-leak-9f3e";

/// Size of the oversized body: twice the adapters' response cap.
const HUGE_BYTES: usize = 8 * 1024 * 1024;

impl Control {
    pub fn new(tool: &'static str) -> Self {
        Self {
            tool,
            state: Mutex::new(FaultState::default()),
            requests: AtomicU64::new(0),
            token_epoch: AtomicU64::new(0),
        }
    }

    /// Applies the keys present in `settings`.
    pub fn apply(&self, settings: &FaultSettings) {
        let mut s = self.lock();
        if let Some(ms) = settings.delay_ms {
            s.delay = Duration::from_millis(ms);
        }
        if let Some(f) = settings.fail_next {
            s.fail = f;
        }
        if let Some(r) = settings.rate_limit_next {
            s.rate_limit = r;
        }
        if let Some(n) = settings.malformed_next {
            s.malformed = n;
        }
        if let Some(n) = settings.empty_next {
            s.empty = n;
        }
        if let Some(n) = settings.wrong_type_next {
            s.wrong_type = n;
        }
        if let Some(n) = settings.huge_next {
            s.huge = n;
        }
        if let Some(n) = settings.truncated_next {
            s.truncated = n;
        }
        if let Some(n) = settings.redirect_next {
            s.redirect = n;
        }
        if let Some(n) = settings.hang_next {
            s.hang = n;
        }
        if let Some(t) = settings.truncate_pagination {
            s.truncate_pagination = t;
        }
        if let Some(e) = settings.credentials_expired {
            s.credentials_expired = e;
        }
        if settings.tokens_expired == Some(true) {
            self.token_epoch.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Clears every fault (the request counter keeps counting).
    pub fn clear(&self) {
        *self.lock() = FaultState::default();
    }

    /// API requests received so far, faulted ones included.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Whether paged lists end after their first page (the tools' list handlers ask).
    pub fn truncate_pagination(&self) -> bool {
        self.lock().truncate_pagination
    }

    pub fn credentials_expired(&self) -> bool {
        self.lock().credentials_expired
    }

    /// The current token epoch; a token issued in an older epoch has expired.
    pub fn token_epoch(&self) -> u64 {
        self.token_epoch.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FaultState> {
        // A poisoned lock only means a panicking handler; the fault state is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_fault(&self) -> (Duration, Option<Injected>) {
        let mut guard = self.lock();
        let s = &mut *guard;
        let delay = s.delay;
        if s.fail.count > 0 {
            s.fail.count -= 1;
            return (delay, Some(Injected::Fail(s.fail.status)));
        }
        if s.rate_limit.count > 0 {
            s.rate_limit.count -= 1;
            return (delay, Some(Injected::RateLimit(s.rate_limit.retry_after_s)));
        }
        let counters = [
            (&mut s.malformed, Injected::Malformed),
            (&mut s.empty, Injected::Empty),
            (&mut s.wrong_type, Injected::WrongType),
            (&mut s.huge, Injected::Huge),
            (&mut s.truncated, Injected::Truncated),
            (&mut s.redirect, Injected::Redirect),
            (&mut s.hang, Injected::Hang),
        ];
        for (count, fault) in counters {
            if *count > 0 {
                *count -= 1;
                return (delay, Some(fault));
            }
        }
        (delay, None)
    }
}

/// Puts the fault middleware in front of `api` (any router: a simulator's or a test's fake tool)
/// and adds the generic control routes.
pub fn wrap(api: Router, control: Arc<Control>, render: ErrorRenderer) -> Router {
    api.layer(middleware::from_fn_with_state(
        (Arc::clone(&control), render),
        inject,
    ))
    .merge(
        Router::new()
            .route("/_sim/faults", post(set_faults).get(get_faults))
            .route("/_sim/stats", get(stats))
            .with_state(control),
    )
}

/// The error shape of a tool without one of its own: `{"error": "..."}` with the status, and
/// `Retry-After` for a 429.
pub fn json_error(status: StatusCode, retry_after_s: Option<u64>) -> Response {
    let body = Json(serde_json::json!({"error": format!("HTTP {}", status.as_u16())}));
    match retry_after_s {
        Some(s) => (status, [(header::RETRY_AFTER, s.to_string())], body).into_response(),
        None => (status, body).into_response(),
    }
}

async fn inject(
    State((control, render)): State<(Arc<Control>, ErrorRenderer)>,
    request: Request,
    next: Next,
) -> Response {
    control.requests.fetch_add(1, Ordering::SeqCst);
    let (delay, fault) = control.next_fault();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match fault {
        None => next.run(request).await,
        Some(Injected::Fail(status)) => render(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            None,
        ),
        Some(Injected::RateLimit(seconds)) => render(StatusCode::TOO_MANY_REQUESTS, Some(seconds)),
        Some(Injected::Malformed) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Body::from("{\"result\": [{\"number\": \"CHG"),
        )
            .into_response(),
        Some(Injected::Empty) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            Body::empty(),
        )
            .into_response(),
        Some(Injected::WrongType) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
            Body::from(
                "<!DOCTYPE html><html><head><title>Sign in</title></head><body><form action=\"/login\"></form></body></html>",
            ),
        )
            .into_response(),
        Some(Injected::Huge) => {
            let chunk = bytes::Bytes::from(vec![b' '; 64 * 1024]);
            let chunks = std::iter::repeat_n(chunk, HUGE_BYTES / (64 * 1024))
                .map(Ok::<_, std::io::Error>);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(futures::stream::iter(chunks)),
            )
                .into_response()
        }
        Some(Injected::Truncated) => {
            let parts = [
                Ok(bytes::Bytes::from_static(b"{\"result\": [{\"number\": ")),
                Err(std::io::Error::other("the simulator cut the connection")),
            ];
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(futures::stream::iter(parts)),
            )
                .into_response()
        }
        Some(Injected::Redirect) => (
            StatusCode::FOUND,
            [(header::LOCATION, REDIRECT_LOCATION)],
            Body::empty(),
        )
            .into_response(),
        Some(Injected::Hang) => std::future::pending().await,
    }
}

async fn set_faults(
    State(control): State<Arc<Control>>,
    Json(settings): Json<FaultSettings>,
) -> StatusCode {
    control.apply(&settings);
    StatusCode::NO_CONTENT
}

async fn get_faults(State(control): State<Arc<Control>>) -> Json<serde_json::Value> {
    let s = control.lock();
    Json(serde_json::json!({
        "delay_ms": u64::try_from(s.delay.as_millis()).unwrap_or(u64::MAX),
        "fail_next": s.fail,
        "rate_limit_next": s.rate_limit,
        "malformed_next": s.malformed,
        "empty_next": s.empty,
        "wrong_type_next": s.wrong_type,
        "huge_next": s.huge,
        "truncated_next": s.truncated,
        "redirect_next": s.redirect,
        "hang_next": s.hang,
        "truncate_pagination": s.truncate_pagination,
        "credentials_expired": s.credentials_expired,
    }))
}

async fn stats(State(control): State<Arc<Control>>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"tool": control.tool, "requests": control.requests()}))
}
