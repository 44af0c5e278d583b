//! Caller contracts: the exact request and response shapes external tools use (Argo Rollouts'
//! `web` metric provider today; Spinnaker and ServiceNow next), each translated onto the one
//! [`crate::gate::Gate`]. Like `api`, a contract never decides; it maps shapes and statuses.

pub mod rollouts;

use axum::Router;
use axum::routing::post;

use crate::api::http::HttpState;

/// The contract routes, merged into the HTTP router by `api::http::router`.
pub fn routes() -> Router<HttpState> {
    Router::new().route("/v1/analysis", post(rollouts::analysis))
}
