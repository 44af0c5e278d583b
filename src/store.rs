//! Durable decisions. The `Store` trait is what the rest of the crate sees; `store/sqlite.rs` is
//! the embedded default and PostgreSQL arrives as another implementation of the same trait.
//!
//! Architecture invariant: no module but `store` runs SQL.
//!
//! Layout: `row.rs` turns a `Decision` into column values and back (shared by every backend),
//! `page.rs` is the page token, `errors.rs` maps sqlx errors, and each backend keeps its SQL in
//! its own file (`sqlite.rs`) with its migrations under `migrations/<backend>/`.

mod errors;
mod page;
mod row;
mod sqlite;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{
    Application, CallerKind, Decision, DecisionId, DecisionStatus, Environment, IdempotencyKey,
    Verdict,
};

/// Outcome of inserting a decision that may carry an idempotency key.
#[derive(Debug, Clone)]
pub enum Inserted {
    /// Stored now.
    Created,
    /// A decision with the same idempotency key already existed; it is returned with the
    /// fingerprint of the request that created it, and nothing was written.
    Existing {
        decision: Box<Decision>,
        fingerprint: String,
    },
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

/// Page size used when a caller asks for 0 (unset in protobuf and query strings).
pub const DEFAULT_PAGE_SIZE: u32 = 50;
/// Largest page a caller gets, whatever it asks for: a page is decoded in memory at once.
pub const MAX_PAGE_SIZE: u32 = 500;

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
    /// A write broke a uniqueness rule other than the idempotency key (which is not an error but
    /// `Inserted::Existing`), e.g. a decision id stored twice.
    #[error("conflicting write: {0}")]
    Conflict(String),
    /// The schema could not be brought to this build's version. Unlike `Unavailable`, retrying
    /// does not help: an operator has to act (restore, or run the newer build that wrote it).
    #[error("database migration failed: {0}")]
    Migration(String),
}

impl StoreError {
    pub fn reason_code(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "store.unavailable",
            StoreError::UnsupportedUrl(_) => "store.unsupported_url",
            StoreError::InvalidPageToken => "store.invalid_page_token",
            StoreError::Corrupt(_) => "store.corrupt",
            StoreError::Conflict(_) => "store.conflict",
            StoreError::Migration(_) => "store.migration",
        }
    }
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Stores a decision. With an idempotency key already present, stores nothing and returns
    /// the existing decision (a unique constraint decides, not a read-then-write).
    async fn insert_decision(
        &self,
        decision: &Decision,
        fingerprint: &str,
    ) -> Result<Inserted, StoreError>;
    async fn get_decision(&self, id: &DecisionId) -> Result<Option<Decision>, StoreError>;
    /// The decision stored under `key`, with the fingerprint of the request that created it.
    /// A fast path that lets a retried check skip evaluation; it decides nothing, since two
    /// callers can both find nothing here; `insert_decision` is what settles a race.
    async fn find_by_idempotency_key(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<(Decision, String)>, StoreError>;
    /// `page_size` is clamped to 1..=500; `page_token` comes from a previous page.
    async fn list_decisions(
        &self,
        filter: &DecisionFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<DecisionPage, StoreError>;
    /// Replaces the stored decision with the same id, but only while its status is still
    /// `expected_status` (compare-and-set, decided by the database). Returns whether it applied:
    /// `false` when another writer changed the status first or the id is unknown. This is how a
    /// manual review moves a pending decision to final without two reviewers both winning.
    async fn update_decision(
        &self,
        decision: &Decision,
        expected_status: DecisionStatus,
    ) -> Result<bool, StoreError>;
    /// Cheap round trip for readiness.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Opens the store named by `url` (`sqlite://path`, `sqlite::memory:`) and runs its migrations.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        let store = sqlite::SqliteStore::open(url, options).await?;
        return Ok(Arc::new(store));
    }
    // `postgres://` lands here too until its backend exists.
    Err(StoreError::UnsupportedUrl(redact_url(url)))
}

/// The URL without what may be a secret, for error messages: user info (`user:password@`) and
/// the query (PostgreSQL accepts `?password=`) are replaced by `…`.
fn redact_url(url: &str) -> String {
    let (base, had_query) = match url.find(['?', '#']) {
        Some(i) => (&url[..i], true),
        None => (url, false),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://…@{host}{path}"),
                None => base.to_string(),
            }
        }
        None => base.to_string(),
    };
    if had_query {
        out.push_str("?…");
    }
    // Bounded, so a megabyte of configuration junk does not become a megabyte of error.
    if out.chars().count() > 200 {
        out = out.chars().take(200).chain(std::iter::once('…')).collect();
    }
    out
}
