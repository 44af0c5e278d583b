//! Caller contracts: the exact request and response shapes external tools use (Argo Rollouts'
//! `web` metric provider, Spinnaker's Webhook stage, ServiceNow's change approval, Jira webhooks,
//! Kubernetes admission), each translated onto the one
//! [`crate::gate::Gate`]. Like `api`, a contract never decides; it maps shapes and statuses.

pub mod admission;
mod fields;
pub mod jira;
pub mod rollouts;
pub mod servicenow;
pub mod spinnaker;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::api::http::HttpState;

/// The contract routes, merged into the HTTP router by `api::http::router`.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1/analysis", post(rollouts::analysis))
        .route("/v1/spinnaker/gates", post(spinnaker::create))
        // Registered before `{id}` only for readability; axum prefers the literal segment.
        .route("/v1/spinnaker/gates/cancel", post(spinnaker::cancel))
        .route("/v1/spinnaker/gates/{id}", get(spinnaker::get_status))
        .route(
            "/v1/servicenow/change-check",
            post(servicenow::change_check),
        )
        .route("/v1/servicenow/callback", post(servicenow::callback))
        .route("/v1/jira/webhook", post(jira::webhook))
        .route("/v1/admission", post(admission::review))
}

/// The router of `admission.listener`: `POST /v1/admission` and nothing else, with the same
/// body limit as the main port. The caller's TLS peer reaches the handler as `ConnectInfo`.
pub fn admission_routes(state: HttpState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/admission", post(admission::review))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
