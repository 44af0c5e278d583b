//! What every HTTP handler reaches through `State<…>`: the gate, the authenticator and the
//! configured public URL. Parts only some routes need (review followers, admission) live in the
//! state of the routes that need them (`contracts::ContractState`), reached through `FromRef`.

use std::sync::Arc;

use axum::extract::FromRef;

use crate::auth::Authenticator;
use crate::gate::Gate;

#[derive(Clone)]
pub struct HttpState {
    pub gate: Arc<Gate>,
    pub auth: Arc<Authenticator>,
    /// `server.public_url`, for absolute links; `None` derives them from the request.
    pub public_url: Option<String>,
}

impl FromRef<HttpState> for Arc<Authenticator> {
    fn from_ref(s: &HttpState) -> Self {
        Arc::clone(&s.auth)
    }
}
