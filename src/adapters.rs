//! Evidence sources behind one trait. Each adapter turns one tool's API into facts under its own
//! namespace of the evidence document, and classifies every failure into an `AdapterError`.
//!
//! The contract every adapter MUST honour:
//! - finish (successfully or not) before the deadline it is given; never retry past it;
//! - classify every failure (timeout, refused, 5xx, 429, 401/403, 404, malformed JSON,
//!   pagination ending early) into an `AdapterError` variant;
//! - never put a credential in a fact, an error message, a URL it reports or a log line;
//! - follow pagination to the end or fail.
//!
//! The fan-out (concurrency, deadlines, turning an error into "evidence unavailable") lives once,
//! in `gate`, not here.
//!
//! STUB: being written (adapters helper). The public interface below is fixed.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::time::Instant;

use crate::domain::{CheckRequest, FailureReason};

/// Facts one adapter gathered for one check.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The adapter's namespace of the evidence document.
    pub document: serde_json::Value,
    /// The URL called, without credentials.
    pub url: Option<String>,
    /// The first bytes of the response, for the audit trail.
    pub excerpt: Option<String>,
}

#[async_trait]
pub trait Adapter: Send + Sync + std::fmt::Debug {
    /// The configured instance name; also its evidence namespace.
    fn name(&self) -> &str;
    /// The adapter kind, as in configuration (`http`, `sonarqube` …).
    fn kind(&self) -> &'static str;
    /// Gathers facts for one deploy. Must return before `deadline`.
    async fn collect(&self, request: &CheckRequest, deadline: Instant) -> Result<Facts, AdapterError>;
}

/// Why an adapter could not produce facts. Messages never contain credentials.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdapterError {
    #[error("no answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    #[error("could not connect: {detail}")]
    Unreachable { detail: String },
    #[error("the tool refused the credentials (HTTP {status})")]
    Auth { status: u16 },
    #[error("rate limited (HTTP 429){}", retry_after_s.map(|s| format!(", retry after {s} s")).unwrap_or_default())]
    RateLimited { retry_after_s: Option<u64> },
    #[error("unusable response: {detail}")]
    BadResponse { detail: String },
    #[error("not found: {detail}")]
    NotFound { detail: String },
}

impl AdapterError {
    pub fn reason(&self) -> FailureReason {
        match self {
            AdapterError::Timeout { .. } => FailureReason::Timeout,
            AdapterError::Unreachable { .. } => FailureReason::Unreachable,
            AdapterError::Auth { .. } => FailureReason::Auth,
            AdapterError::RateLimited { .. } => FailureReason::RateLimited,
            AdapterError::BadResponse { .. } => FailureReason::BadResponse,
            AdapterError::NotFound { .. } => FailureReason::NotFound,
        }
    }
}

/// One configured adapter instance. The set of kinds is closed: a new tool is a new variant.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdapterConfig {
    Http(serde_json::Value),
}

#[derive(Debug, thiserror::Error)]
pub enum AdapterBuildError {
    #[error("adapter `{name}`: {message}")]
    Invalid { name: String, message: String },
}

/// Builds the configured adapters. Names must be unique and must not be `request`.
pub fn build(configs: &[AdapterConfig]) -> Result<Vec<Arc<dyn Adapter>>, AdapterBuildError> {
    let _ = configs;
    Ok(Vec::new())
}
