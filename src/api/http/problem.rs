//! Errors as `application/problem+json` (RFC 9457): what went wrong, where, and how to fix it.
//! `From<GateError>` is the one place gate errors become HTTP statuses.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::AuthError;
use crate::domain::ValidationError;
use crate::gate::GateError;
use crate::store::StoreError;

#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Machine-readable cause, stable across releases (`request.invalid`, `store.unavailable` …).
    pub reason_code: String,
    /// The offending field, for input errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, reason_code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("https://portcullis.dev/problems/{reason_code}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            reason_code: reason_code.to_string(),
            field: None,
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn invalid(e: &ValidationError) -> Self {
        let mut p = Problem::new(
            StatusCode::BAD_REQUEST,
            "request.invalid",
            format!("invalid `{}`: {}", e.field, e.message),
        );
        p.field = Some(e.field.clone());
        p.help = Some(e.help.clone());
        p
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        resp
    }
}

impl From<GateError> for Problem {
    fn from(e: GateError) -> Self {
        let status = match &e {
            GateError::Invalid(v) => return Problem::invalid(v),
            GateError::Forbidden { .. }
            | GateError::OutOfScope { .. }
            | GateError::EvidenceOutOfScope { .. }
            | GateError::NotOwner { .. }
            | GateError::NotInApproverGroup { .. }
            | GateError::SeparationOfDuties { .. } => StatusCode::FORBIDDEN,
            GateError::KeyOfAnotherPrincipal { .. }
            | GateError::IdempotencyConflict { .. }
            | GateError::Conflict { .. }
            | GateError::AlreadyApproved { .. } => StatusCode::CONFLICT,
            GateError::NotFound(_) | GateError::PolicyVersionUnknown(_) => StatusCode::NOT_FOUND,
            GateError::Unavailable(StoreError::InvalidPageToken) => StatusCode::BAD_REQUEST,
            GateError::Unavailable(_) | GateError::ShuttingDown => StatusCode::SERVICE_UNAVAILABLE,
            GateError::Audit(_) | GateError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut p = Problem::new(status, e.reason_code(), e.to_string());
        p.help = e.help();
        p
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        Problem::new(StatusCode::UNAUTHORIZED, e.reason_code(), e.to_string()).with_help(e.help())
    }
}
