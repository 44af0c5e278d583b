//! Caller contracts: the exact request and response shapes external tools use (Argo Rollouts'
//! `web` metric provider, Spinnaker's Webhook stage, ServiceNow's change approval, Jira webhooks,
//! Kubernetes admission), each translated onto the one
//! [`crate::gate::Gate`]. Like `api`, a contract never decides; it maps shapes and statuses.
//! Both stand on the HTTP edge (`crate::edge`: state, caller, problem+json and its one error
//! mapping, body decoding, base URL); neither names the other.

pub mod admission;
mod fields;
pub mod jira;
pub mod rollouts;
pub mod servicenow;
pub mod spinnaker;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};

use crate::admission::Admission;
use crate::auth::Authenticator;
use crate::edge::HttpState;
use crate::review_routing::ReviewFollowers;

/// What the contracts' handlers reach, each part through `State<…>` (`FromRef`): the HTTP
/// state every route shares, the review followers (`None` per system where nothing routes to
/// it) and admission (`None` when disabled).
#[derive(Clone)]
pub struct ContractState {
    pub http: HttpState,
    pub reviews: ReviewFollowers,
    pub admission: Option<Arc<Admission>>,
}

impl FromRef<ContractState> for HttpState {
    fn from_ref(s: &ContractState) -> Self {
        s.http.clone()
    }
}

impl FromRef<ContractState> for Arc<Authenticator> {
    fn from_ref(s: &ContractState) -> Self {
        Arc::clone(&s.http.auth)
    }
}

impl FromRef<ContractState> for ReviewFollowers {
    fn from_ref(s: &ContractState) -> Self {
        s.reviews.clone()
    }
}

impl FromRef<ContractState> for Option<Arc<Admission>> {
    fn from_ref(s: &ContractState) -> Self {
        s.admission.clone()
    }
}

/// The contract routes, with their state applied, merged with `api::http::routes()` by `serve`
/// (which applies the body limit, the fallback and the shared `HttpState`).
pub fn routes(state: ContractState) -> Router<HttpState> {
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
        .with_state(state)
}

/// The router of `admission.listener`: `POST /v1/admission` and nothing else, with the same
/// body limit as the main port. The caller's TLS peer reaches the handler as `ConnectInfo`.
pub fn admission_routes(state: ContractState, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/admission", post(admission::review))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}
