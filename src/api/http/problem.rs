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
        let code = e.reason_code();
        match &e {
            GateError::Invalid(v) => Problem::invalid(v),
            GateError::Forbidden { .. } => Problem::new(StatusCode::FORBIDDEN, code, e.to_string())
                .with_help("use a token that holds the role, or ask an admin to grant it"),
            GateError::OutOfScope { .. } | GateError::EvidenceOutOfScope { .. } => {
                Problem::new(StatusCode::FORBIDDEN, code, e.to_string()).with_help(
                    "use a token whose `scopes` cover this application, environment, image and caller kind, or ask an admin to widen them",
                )
            }
            GateError::NotOwner { .. } => Problem::new(StatusCode::FORBIDDEN, code, e.to_string())
                .with_help(
                    "use the token that requested the check, or one with `scopes.read_others` (reading) or the approver role (canceling)",
                ),
            GateError::KeyOfAnotherPrincipal { .. } => {
                Problem::new(StatusCode::CONFLICT, code, e.to_string())
                    .with_help("use an idempotency key of your own for this deploy")
            }
            GateError::NotFound(_) => Problem::new(StatusCode::NOT_FOUND, code, e.to_string()),
            GateError::IdempotencyConflict { .. } => {
                Problem::new(StatusCode::CONFLICT, code, e.to_string())
                    .with_help("use a new idempotency key for a different deploy")
            }
            GateError::Unavailable(StoreError::InvalidPageToken) => {
                Problem::new(StatusCode::BAD_REQUEST, code, e.to_string())
                    .with_help("pass `page_token` exactly as a previous page returned it")
            }
            GateError::Unavailable(_) | GateError::ShuttingDown => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                code,
                e.to_string(),
            )
            .with_help(
                "retry shortly; no decision was made, and a deploy must not proceed without one",
            ),
            GateError::Conflict { .. } => Problem::new(StatusCode::CONFLICT, code, e.to_string())
                .with_help("read the decision: it has already been resolved"),
            GateError::AlreadyApproved { .. } => {
                Problem::new(StatusCode::CONFLICT, code, e.to_string())
                    .with_help("a different approver has to approve as well")
            }
            GateError::NotInApproverGroup { .. } => {
                Problem::new(StatusCode::FORBIDDEN, code, e.to_string()).with_help(
                    "ask a member of the listed groups, or add the group to the approver's token",
                )
            }
            GateError::SeparationOfDuties { .. } => {
                Problem::new(StatusCode::FORBIDDEN, code, e.to_string())
                    .with_help("ask another approver: whoever triggered a deploy cannot approve it")
            }
            GateError::Unimplemented(_) => {
                Problem::new(StatusCode::NOT_IMPLEMENTED, code, e.to_string())
            }
            GateError::Audit(_) => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, code, e.to_string())
            }
        }
    }
}

impl From<AuthError> for Problem {
    fn from(e: AuthError) -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "auth.unauthenticated",
            e.to_string(),
        )
        .with_help("send `Authorization: Bearer <token>` with a token configured in `auth.tokens`")
    }
}
