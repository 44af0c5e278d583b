//! A fake evidence tool on 127.0.0.1:0 with the simulators' fault model
//! (`portcullis::sim::faults`): its routes answer well, and faults (a status, 429, a hang, a
//! redirect, a bad body …) are set through its `Control`, exactly as on a simulator. Bound before
//! it is served, so there is nothing to wait for.
//!
//! Routes:
//! - `GET /freeze/{env}`: a change-freeze service, `{"environment", "frozen", "open_incidents"}`;
//! - `GET|POST /api/{application}`: a generic scanner answer for `payments-api` (404 for anything
//!   else), only to a request carrying [`TOKEN`] in some header (401 otherwise, and when the
//!   control says the credentials expired); the request's headers are echoed into the body, so
//!   an adapter that leaks what a tool echoes is caught.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use portcullis::sim::faults::{self, Control};
use portcullis::sim::{self, FaultSettings, SimHandle};

/// The credential the fake's `/api` routes require; it must never come back out of an adapter.
pub const TOKEN: &str = "s3cr3t-fake-tool-t0ken";

/// The scanner answer of `/api/payments-api` (before the echo of the request is added).
pub fn scan_body() -> serde_json::Value {
    serde_json::json!({
        "status": "OK",
        "summary": {"critical": 0, "high": 2},
        "findings": [{"id": "CVE-1"}, {"id": "CVE-2"}],
    })
}

pub struct FakeTool {
    pub handle: SimHandle,
}

impl FakeTool {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.handle.base_url)
    }

    /// Requests received so far, faulted ones included.
    pub fn requests(&self) -> u64 {
        self.handle.control.requests()
    }

    pub fn control(&self) -> Arc<Control> {
        Arc::clone(&self.handle.control)
    }

    pub fn faults(&self, settings: FaultSettings) {
        self.handle.control.apply(&settings);
    }
}

pub async fn spawn() -> FakeTool {
    FakeTool {
        handle: sim::serve("fake", 0, router).await.unwrap(),
    }
}

/// The fake's routes behind the shared fault middleware.
pub fn router(control: Arc<Control>) -> Router {
    let api = Router::new()
        .route("/freeze/{env}", get(freeze))
        .route("/api/{application}", get(scan).post(scan))
        .with_state(Arc::clone(&control));
    faults::wrap(api, control, faults::json_error)
}

/// An address where nothing listens, for the rest of the test run: a socket bound there but
/// never listening refuses every connection, and, unlike a port bound and released, no other
/// test can be handed the port meanwhile.
pub async fn refused_addr() -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    // Held open until the test binary exits; a handful per run.
    std::mem::forget(socket);
    addr
}

async fn freeze(Path(env): Path<String>) -> Response {
    axum::Json(serde_json::json!({ "environment": env, "frozen": env == "prod-frozen", "open_incidents": 0 }))
        .into_response()
}

async fn scan(
    State(control): State<Arc<Control>>,
    Path(application): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let authorised = headers
        .values()
        .any(|v| v.to_str().unwrap_or("").contains(TOKEN));
    if !authorised || control.credentials_expired() {
        return faults::json_error(StatusCode::UNAUTHORIZED, None);
    }
    if application != "payments-api" {
        return faults::json_error(StatusCode::NOT_FOUND, None);
    }
    let echo: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").into()))
        .collect();
    let mut body = scan_body();
    body["_echo"] = serde_json::json!({"uri": uri.to_string(), "headers": echo});
    axum::Json(body).into_response()
}
