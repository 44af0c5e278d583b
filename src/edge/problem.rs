//! Errors as `application/problem+json` (RFC 9457): what went wrong, where, and how to fix it.
//! The one mapping of errors onto HTTP statuses, for every route: `From<GateError>`,
//! `From<AuthError>`, `From<FollowError>` (a routed review's inbound hint) and
//! `From<ValidationError>` (bad input, a 400 naming the field).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::AuthError;
use crate::domain::ValidationError;
use crate::gate::GateError;
use crate::review_routing::FollowError;
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

    /// A 400 naming the offending field. An error that names none (a whole value refused) says
    /// so without a field, never as "invalid ``".
    pub fn invalid(e: &ValidationError) -> Self {
        let (detail, field) = if e.field.is_empty() {
            (format!("invalid request: {}", e.message), None)
        } else {
            (
                format!("invalid `{}`: {}", e.field, e.message),
                Some(e.field.clone()),
            )
        };
        let mut p = Problem::new(StatusCode::BAD_REQUEST, "request.invalid", detail);
        p.field = field;
        p.help = Some(e.help.clone());
        p
    }
}

/// The fallback of the assembled router: a problem, never an empty 404.
pub async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "route.not_found", "no such route")
        .with_help("see /openapi.json for the routes this service has")
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

impl From<ValidationError> for Problem {
    fn from(e: ValidationError) -> Self {
        Problem::invalid(&e)
    }
}

/// A routed review's errors, for every inbound hint (ServiceNow's callback, Jira's webhook).
impl From<FollowError> for Problem {
    fn from(e: FollowError) -> Self {
        let status = match e {
            FollowError::Gate(e) => return e.into(),
            FollowError::System { .. } => StatusCode::SERVICE_UNAVAILABLE,
            FollowError::Refused { .. } => StatusCode::BAD_GATEWAY,
            FollowError::NotDecided { .. } => StatusCode::CONFLICT,
            FollowError::NotRouted { .. } => StatusCode::NOT_FOUND,
        };
        let problem = Problem::new(status, e.reason_code(), e.to_string());
        match e.help() {
            Some(help) => problem.with_help(help),
            None => problem,
        }
    }
}
