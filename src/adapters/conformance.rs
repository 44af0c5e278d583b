//! The fail-closed conformance test every adapter must pass: one generic function runs the whole
//! fault list of the adapter contract against a fake tool with fault knobs, and each adapter's
//! tests call it in one line, so no adapter can skip a fault.
//!
//! The fake is a real HTTP server on `127.0.0.1:0`, bound before it is spawned, so tests never
//! wait for it to be ready. It answers 401 to any request that does not carry `TEST_SECRET` in
//! some header, and echoes the request's headers into its bodies, so an adapter that leaks what
//! a tool echoes is caught. The adapter reads a manual clock, so a `Retry-After` is waited for by
//! moving that clock, not in real time; the deadline fault runs on tokio's paused time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::Response;
use tokio::time::Instant;

use super::template::tests::request;
use super::{Adapter, AdapterError};
use crate::clock::{Clock, ManualClock};

/// The credential `make` must configure; it must never come back out of the adapter.
pub(crate) const TEST_SECRET: &str = "s3cr3t-conformance-t0ken";

/// The fake tool's answer to a successful call (the echo of the request is added to it).
pub(crate) fn ok_body() -> serde_json::Value {
    serde_json::json!({
        "status": "OK",
        "summary": {"critical": 0, "high": 2},
        "findings": [{"id": "CVE-1"}, {"id": "CVE-2"}],
    })
}

/// What the fake answers to one request.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    status: u16,
    delay: Duration,
    retry_after: Option<&'static str>,
    location: Option<&'static str>,
    body: Payload,
}

#[derive(Debug, Clone, Copy)]
enum Payload {
    /// `ok_body()` for 2xx, a JSON error otherwise; both with the echo.
    Json,
    /// HTML that quotes the request headers.
    Garbage,
    /// Five MiB, streamed without a length.
    Huge,
}

impl Step {
    pub(crate) fn ok() -> Self {
        Self::status(200)
    }

    pub(crate) fn status(status: u16) -> Self {
        Self {
            status,
            delay: Duration::ZERO,
            retry_after: None,
            location: None,
            body: Payload::Json,
        }
    }

    pub(crate) fn retry_after(mut self, value: &'static str) -> Self {
        self.retry_after = Some(value);
        self
    }

    fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    fn body(mut self, body: Payload) -> Self {
        self.body = body;
        self
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) body: serde_json::Value,
}

struct Shared {
    /// Answers in order; the last one repeats.
    steps: Vec<Step>,
    hits: AtomicUsize,
    seen: Mutex<Vec<Seen>>,
}

/// A running fake tool. The server task ends with the test's runtime.
pub(crate) struct FakeTool {
    pub(crate) base: String,
    shared: Arc<Shared>,
}

impl FakeTool {
    #[expect(clippy::unwrap_used, reason = "tests")]
    pub(crate) async fn start(steps: Vec<Step>) -> Self {
        let shared = Arc::new(Shared {
            steps,
            hits: AtomicUsize::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(answer).with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { base, shared }
    }

    pub(crate) fn hits(&self) -> usize {
        self.shared.hits.load(Ordering::SeqCst)
    }

    #[expect(clippy::unwrap_used, reason = "tests")]
    pub(crate) fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

#[expect(clippy::unwrap_used, reason = "tests")]
async fn answer(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let n = shared.hits.fetch_add(1, Ordering::SeqCst);
    shared.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    let step = shared.steps[n.min(shared.steps.len() - 1)].clone();
    tokio::time::sleep(step.delay).await;

    let echo: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
        .collect();
    let echo = serde_json::json!({"uri": uri.to_string(), "headers": echo});
    let authorised = headers
        .values()
        .any(|v| v.to_str().unwrap_or("").contains(TEST_SECRET));
    let status = if authorised { step.status } else { 401 };

    let mut response = Response::builder().status(StatusCode::from_u16(status).unwrap());
    if let Some(ra) = step.retry_after {
        response = response.header(header::RETRY_AFTER, ra);
    }
    if let Some(location) = step.location {
        response = response.header(header::LOCATION, location);
    }
    let body = match step.body {
        Payload::Json => {
            let mut doc = if (200..300).contains(&status) {
                ok_body()
            } else {
                serde_json::json!({"error": format!("failure {status}")})
            };
            doc["_echo"] = echo;
            response = response.header(header::CONTENT_TYPE, "application/json");
            Body::from(doc.to_string())
        }
        Payload::Garbage => {
            response = response.header(header::CONTENT_TYPE, "text/html");
            Body::from(format!(
                "<html><body>Login required. You sent {echo}</body></html>"
            ))
        }
        Payload::Huge => {
            let chunk = Bytes::from(vec![b' '; 64 * 1024]);
            let chunks = (0..80).map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
            Body::from_stream(futures::stream::iter(chunks))
        }
    };
    response.body(body).unwrap()
}

fn within(seconds: f64) -> Instant {
    Instant::now() + Duration::from_secs_f64(seconds)
}

/// Runs the adapter contract's fault list. `make(base_url, clock)` builds the adapter under test
/// aimed at the fake tool, reading time from `clock` and sending `TEST_SECRET` as its credential;
/// `expected` is the facts document the adapter must extract from `ok_body()`.
#[expect(clippy::unwrap_used, reason = "tests")]
pub(crate) async fn run(
    make: impl Fn(&str, Arc<dyn Clock>) -> Arc<dyn Adapter>,
    expected: serde_json::Value,
) {
    let req = request();
    let t0 = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    // Every error message, excerpt and URL the adapter produced, for the leak check at the end.
    let mut reported: Vec<String> = Vec::new();
    // The result, the requests the fake saw, and how far the adapter's clock moved (the waits).
    let mut fault = async |steps: Vec<Step>, seconds: f64| {
        let tool = FakeTool::start(steps).await;
        let clock = Arc::new(ManualClock::new(t0));
        let result = make(&tool.base, clock.clone())
            .collect(&req, within(seconds))
            .await;
        match &result {
            Ok(f) => reported.extend([
                format!("{f:?}"),
                f.url.clone().unwrap_or_default(),
                f.excerpt.clone().unwrap_or_default(),
            ]),
            Err(e) => reported.extend([e.to_string(), format!("{e:?}")]),
        }
        (result, tool.hits(), clock.now() - t0)
    };

    // 200: facts extracted, trail recorded; success also proves the credential was sent (the
    // fake answers 401 otherwise).
    let (r, _, _) = fault(vec![Step::ok()], 3.0).await;
    let facts = r.unwrap();
    assert_eq!(facts.document, expected, "facts extracted from a 200");
    assert!(
        facts.url.is_some_and(|u| u.starts_with("http://127.0.0.1")),
        "url recorded"
    );
    let excerpt = facts.excerpt.unwrap();
    assert!(
        excerpt.contains("\"status\":\"OK\""),
        "excerpt recorded: {excerpt}"
    );

    let (r, hits, _) = fault(vec![Step::status(500)], 3.0).await;
    let e = r.unwrap_err();
    assert!(
        matches!(e, AdapterError::BadResponse { .. }) && e.to_string().contains("500"),
        "{e:?}"
    );
    assert_eq!(hits, 1, "a plain 500 is not retried");

    let (r, hits, _) = fault(vec![Step::status(503), Step::ok()], 3.0).await;
    assert_eq!(
        r.unwrap().document,
        expected,
        "503 then 200 succeeds by retrying"
    );
    assert_eq!(hits, 2);

    let (r, hits, waited) = fault(vec![Step::status(429).retry_after("1"), Step::ok()], 3.0).await;
    assert_eq!(
        r.unwrap().document,
        expected,
        "429 with a Retry-After that fits is retried"
    );
    assert_eq!(hits, 2);
    assert_eq!(
        waited,
        chrono::Duration::seconds(1),
        "the retry waits what Retry-After asks"
    );

    let (r, hits, _) = fault(vec![Step::status(429).retry_after("60"), Step::ok()], 3.0).await;
    let e = r.unwrap_err();
    assert!(
        matches!(
            e,
            AdapterError::RateLimited {
                retry_after_s: Some(60)
            }
        ),
        "{e:?}"
    );
    assert_eq!(hits, 1, "a Retry-After past the deadline is not waited for");

    for status in [401, 403] {
        let (r, hits, _) = fault(vec![Step::status(status)], 3.0).await;
        let e = r.unwrap_err();
        assert!(
            matches!(e, AdapterError::Auth { status: s } if s == status),
            "{e:?}"
        );
        assert_eq!(hits, 1, "auth failures are not retried");
    }

    let (r, _, _) = fault(vec![Step::status(404)], 3.0).await;
    let e = r.unwrap_err();
    assert!(matches!(e, AdapterError::NotFound { .. }), "{e:?}");

    // Paused, tokio's clock jumps to the deadline once nothing else can happen: the deadline is
    // kept without waiting for it.
    tokio::time::pause();
    let (r, _, _) = fault(vec![Step::ok().delay(Duration::from_secs(30))], 0.5).await;
    tokio::time::resume();
    let e = r.unwrap_err();
    assert!(matches!(e, AdapterError::Timeout { .. }), "{e:?}");

    let (r, _, _) = fault(vec![Step::ok().body(Payload::Garbage)], 3.0).await;
    let e = r.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e:?}");

    let (r, _, _) = fault(vec![Step::ok().body(Payload::Huge)], 3.0).await;
    let e = r.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e:?}");

    let mut redirect = Step::status(302);
    redirect.location = Some("https://sso.example/login?token=leak");
    let (r, hits, _) = fault(vec![redirect], 3.0).await;
    let e = r.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e:?}");
    assert!(!e.to_string().contains("leak"), "{e}");
    assert_eq!(hits, 1, "redirects are not followed");

    // Connection refused: a port that was bound and released has nobody listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = make(
        &format!("http://127.0.0.1:{port}"),
        Arc::new(ManualClock::new(t0)),
    )
    .collect(&req, within(3.0))
    .await
    .unwrap_err();
    assert!(matches!(e, AdapterError::Unreachable { .. }), "{e:?}");
    reported.push(e.to_string());

    for text in &reported {
        assert!(
            !text.contains(TEST_SECRET),
            "credential leaked into: {text}"
        );
    }
}
