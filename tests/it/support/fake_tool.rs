//! A fake evidence tool on 127.0.0.1:0 whose routes each behave one way: answer, fail with a
//! status, rate-limit, hang, return garbage, or count calls. Bound before it is served, so there
//! is nothing to wait for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

#[derive(Clone, Default)]
pub struct Calls(Arc<AtomicUsize>);

impl Calls {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct FakeTool {
    pub addr: SocketAddr,
    pub calls: Calls,
}

impl FakeTool {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

pub async fn spawn() -> FakeTool {
    let calls = Calls::default();
    let app = Router::new()
        .route("/freeze/{env}", get(freeze))
        .route("/status/{code}", get(status))
        .route("/ratelimit", get(ratelimit))
        .route("/hang", get(hang))
        .route("/slow/{env}", get(slow))
        .route("/garbage", get(garbage))
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    FakeTool { addr, calls }
}

/// An address where nothing listens: bound, then released.
pub async fn refused_addr() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

async fn freeze(State(calls): State<Calls>, Path(env): Path<String>) -> Response {
    calls.0.fetch_add(1, Ordering::SeqCst);
    axum::Json(serde_json::json!({ "environment": env, "frozen": env == "prod-frozen", "open_incidents": 0 }))
        .into_response()
}

async fn status(State(calls): State<Calls>, Path(code): Path<u16>) -> Response {
    calls.0.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::from_u16(code).unwrap(),
        axum::Json(serde_json::json!({"error": "boom"})),
    )
        .into_response()
}

async fn ratelimit(State(calls): State<Calls>) -> Response {
    calls.0.fetch_add(1, Ordering::SeqCst);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [("retry-after", "120")],
        "slow down",
    )
        .into_response()
}

async fn hang(State(calls): State<Calls>) -> Response {
    calls.0.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    "too late".into_response()
}

async fn garbage(State(calls): State<Calls>) -> Response {
    calls.0.fetch_add(1, Ordering::SeqCst);
    ([("content-type", "application/json")], "{not json").into_response()
}

/// Answers like `/freeze/{env}` after 300 ms: long enough to stop the service mid-check.
async fn slow(State(calls): State<Calls>, Path(env): Path<String>) -> Response {
    calls.0.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    axum::Json(serde_json::json!({ "environment": env, "frozen": false })).into_response()
}
