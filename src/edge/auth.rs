//! The authenticated caller as an extractor: `Authed` reads `Authorization: Bearer …` and asks
//! the authenticator; a refusal is a 401 problem with help. Any state that yields the
//! authenticator (`FromRef`) can use it.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;

use super::problem::Problem;
use crate::auth::{Authenticator, Principal};

/// The authenticated caller, from `Authorization: Bearer …`.
pub struct Authed(pub Principal);

impl<S> FromRequestParts<S> for Authed
where
    Arc<Authenticator>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = Arc::<Authenticator>::from_ref(state);
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Ok(Authed(auth.authenticate(header)?))
    }
}
