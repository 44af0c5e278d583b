//! Durable decisions. The `Store` trait is what the rest of the crate sees; `store/sqlite.rs` is
//! the embedded default and PostgreSQL arrives as another implementation of the same trait.
//!
//! Architecture invariant: no module but `store` runs SQL.
//!
//! STUB: being written (store helper). The public interface below is fixed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{CallerKind, Decision, DecisionId, DecisionStatus, Environment, Application, Verdict};

/// Outcome of inserting a decision that may carry an idempotency key.
#[derive(Debug, Clone)]
pub enum Inserted {
    /// Stored now.
    Created,
    /// A decision with the same idempotency key already existed; it is returned with the
    /// fingerprint of the request that created it, and nothing was written.
    Existing { decision: Box<Decision>, fingerprint: String },
}

/// Filters for listing decisions; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    pub application: Option<Application>,
    pub environment: Option<Environment>,
    pub verdict: Option<Verdict>,
    pub status: Option<DecisionStatus>,
    pub caller_kind: Option<CallerKind>,
}

/// One page of decisions, newest first.
#[derive(Debug, Clone)]
pub struct DecisionPage {
    pub decisions: Vec<Decision>,
    /// Opaque token for the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("unsupported store url `{0}`: use `sqlite://PATH` or `postgres://…`")]
    UnsupportedUrl(String),
    #[error("invalid page token")]
    InvalidPageToken,
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn reason_code(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "store.unavailable",
            StoreError::UnsupportedUrl(_) => "store.unsupported_url",
            StoreError::InvalidPageToken => "store.invalid_page_token",
            StoreError::Corrupt(_) => "store.corrupt",
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a decision. With an idempotency key already present, stores nothing and returns
    /// the existing decision (a unique constraint decides, not a read-then-write).
    async fn insert_decision(&self, decision: &Decision, fingerprint: &str) -> Result<Inserted, StoreError>;
    async fn get_decision(&self, id: &DecisionId) -> Result<Option<Decision>, StoreError>;
    /// `page_size` is clamped to 1..=500; `page_token` comes from a previous page.
    async fn list_decisions(
        &self,
        filter: &DecisionFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<DecisionPage, StoreError>;
    /// Cheap round trip for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the store named by `url` (`sqlite://path`, `sqlite::memory:`) and runs its migrations.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    let _ = options;
    Err(StoreError::UnsupportedUrl(url.to_string()))
}
