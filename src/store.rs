//! Durable decisions, the policy texts that made them, and leases. The `Store` trait is what the rest of the crate sees;
//! `store/sqlite.rs` is the embedded default for one replica and `store/postgres.rs` the backend
//! for several, chosen by the URL scheme in `open`.
//!
//! Architecture invariant: no module but `store` runs SQL.
//!
//! Layout: `row.rs` turns a `Decision` into column values and back (shared by every backend),
//! `page.rs` is the page token, `list.rs` the list query above its FROM clause, `errors.rs` maps
//! sqlx errors, and each backend keeps its SQL in its own file (`sqlite.rs`, `postgres.rs`) with
//! its migrations under `migrations/<backend>/`.
//! The one suite in `tests.rs` runs against both, which is what keeps their behaviour equal.

/// The columns a decision is read from (`row::StoredDecision`), for a query naming its decisions
/// table `d`: SQLite's. A decision is stored once: until a later event changes it, its row's
/// body is empty and its text is in its `created` event (index 0), selected only then.
macro_rules! sqlite_decision_columns {
    () => {
        "d.id, d.schema_version, d.body, d.packed, \
         (SELECT c.body FROM decision_events AS c WHERE c.decision_id = d.id AND c.idx = 0 \
          AND d.body = '' AND d.packed IS NULL) AS created_body, \
         (SELECT c.packed FROM decision_events AS c WHERE c.decision_id = d.id AND c.idx = 0 \
          AND d.body = '' AND d.packed IS NULL) AS created_packed"
    };
}

/// The same for PostgreSQL, which packs only `created` events (migration 0015): a decision
/// row's later body is compressed by its own storage.
macro_rules! postgres_decision_columns {
    () => {
        "d.id, d.schema_version, d.body, \
         (SELECT c.body FROM decision_events AS c WHERE c.decision_id = d.id AND c.idx = 0 \
          AND d.body = '') AS created_body, \
         (SELECT c.packed FROM decision_events AS c WHERE c.decision_id = d.id AND c.idx = 0 \
          AND d.body = '') AS created_packed"
    };
}

mod errors;
mod ledger_rows;
mod list;
mod pack_dictionary;
mod packed;
mod page;
mod postgres;
mod row;
mod sqlite;
#[cfg(test)]
mod test_schema;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::audit::checkpoint::SignedCheckpoint;
use crate::audit::merkle::Node;

use chrono::{DateTime, Utc};

use crate::domain::{
    Application, CallerKind, Decision, DecisionEvent, DecisionId, DecisionStatus, Digest,
    Environment, IdempotencyKey, PolicyVersionRecord, RuleOutcome, RuleResult, ValidationError,
    Verdict,
};

/// The canonical text of the event that records `decision` being created (what
/// `insert_decision` appends), the same text as `DecisionEvent { change: EventKind::Created { .. }
/// }` would give, built around `body`, the decision's own canonical text (its stored body): keys
/// in code-point order are `at`, `change` (`decision`, `kind`), `decision_id`, so the decision is
/// written once for both.
fn created_event_text(decision: &Decision, body: &str) -> Result<String, StoreError> {
    let encode = |e: serde_json::Error| {
        StoreError::Corrupt(format!(
            "the created event of decision `{}` could not be encoded: {e}",
            decision.id
        ))
    };
    let at = serde_json::to_string(&decision.created_at).map_err(encode)?;
    let id = serde_json::to_string(&decision.id).map_err(encode)?;
    let mut text = String::with_capacity(body.len() + at.len() + id.len() + 64);
    text.push_str("{\"at\":");
    text.push_str(&at);
    text.push_str(",\"change\":{\"decision\":");
    text.push_str(body);
    text.push_str(",\"kind\":\"created\"},\"decision_id\":");
    text.push_str(&id);
    text.push('}');
    Ok(text)
}

/// The decision's canonical text inside the text of its `created` event: the inverse of
/// `created_event_text`. A decision is stored once: until a later event changes it, its row's
/// body is empty and its text is read from its `created` event (`store/row.rs`). `None` when
/// `event` is not a `created` event's text.
fn decision_text_of_created(event: &str) -> Option<&str> {
    // `at` is a JSON string holding a time and the id one holding an id: neither can contain
    // the markers, so the first and the last occurrences are the ones the writer put there.
    const OPEN: &str = ",\"change\":{\"decision\":";
    const CLOSE: &str = ",\"kind\":\"created\"},\"decision_id\":";
    let rest = event.strip_prefix("{\"at\":\"")?;
    let start = rest.find(OPEN)? + OPEN.len();
    let end = rest.rfind(CLOSE)?;
    let tail = &rest[end + CLOSE.len()..];
    (tail.starts_with('"') && tail.ends_with("\"}") && start <= end).then(|| &rest[start..end])
}

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

/// One event as the log holds it: its global sequence number, its chain hash (hex), the
/// decision it belongs to and its canonical text (the bytes that were hashed). An event pruned
/// by retention keeps only its place: `decision_id` and `body` are `None`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerEntry {
    pub seq: i64,
    pub hash: String,
    pub decision_id: Option<String>,
    pub body: Option<String>,
}

/// The log's entries in pages of this many rows (exports, proofs).
pub const LEDGER_PAGE: u32 = 2000;

/// A decision that names an image digest, as `Store::decisions_for_image` returns it: the
/// indexed columns only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDecision {
    pub id: DecisionId,
    pub application: String,
    pub verdict: Verdict,
    pub status: DecisionStatus,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub decided_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Most decisions `decisions_for_image` returns: the newest ones decide.
pub const MAX_IMAGE_DECISIONS: u32 = 20;

/// Filters for listing decisions; `None` means any. Set filters all apply (AND).
#[derive(Debug, Clone, Default)]
pub struct DecisionFilter {
    pub application: Option<Application>,
    pub environment: Option<Environment>,
    pub verdict: Option<Verdict>,
    pub status: Option<DecisionStatus>,
    pub caller_kind: Option<CallerKind>,
    /// Only decisions this principal requested (set by the gate for principals that may not
    /// read others' decisions).
    pub principal: Option<String>,
    /// Only decisions whose request names this image digest (`decision_images`).
    pub image_digest: Option<Digest>,
    /// Only decisions that evaluated this rule, optionally only where it failed or passed
    /// (`decision_rules`).
    pub rule: Option<RuleFilter>,
    /// Only decisions created at or after this time (inclusive).
    pub created_from: Option<DateTime<Utc>>,
    /// Only decisions created before this time (exclusive).
    pub created_until: Option<DateTime<Utc>>,
}

impl DecisionFilter {
    /// Refuses a time range that cannot hold anything (`created_from` not before
    /// `created_until`): a caller who swapped the bounds should hear so, not get an empty list.
    pub fn validate(&self) -> Result<(), ValidationError> {
        match (self.created_from, self.created_until) {
            (Some(from), Some(until)) if from >= until => Err(ValidationError::new(
                "created_until",
                format!(
                    "`{}` is not after `created_from` `{}`",
                    until.to_rfc3339(),
                    from.to_rfc3339()
                ),
                "give a range whose end (exclusive) is after its start (inclusive)",
            )),
            _ => Ok(()),
        }
    }

    /// Times are stored and compared in whole milliseconds (`row.rs`); so are the bounds.
    fn created_range_millis(&self) -> (Option<i64>, Option<i64>) {
        (
            self.created_from.map(|t| t.timestamp_millis()),
            self.created_until.map(|t| t.timestamp_millis()),
        )
    }
}

/// Whether one rule failed or passed in a decision, as lists filter on it.
///
/// Read from the rule's stored result (`domain::RuleResult::outcome`): `pass` is passed; `fail`
/// is failed, and so is `missing`: the condition was never shown to hold, even where the rule
/// says `on_missing: continue` and its effect let the deploy through (that effect is in the
/// decision; a list of "decisions that passed rule X" holds only decisions where X was checked
/// and held). A result replaced when a review is approved (a time-bound rule that no longer
/// holds) is what counts from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleOutcomeFilter {
    Failed,
    Passed,
}

impl RuleOutcomeFilter {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleOutcomeFilter::Failed => "failed",
            RuleOutcomeFilter::Passed => "passed",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "failed" => Ok(RuleOutcomeFilter::Failed),
            "passed" => Ok(RuleOutcomeFilter::Passed),
            _ => Err(ValidationError::new(
                "rule_outcome",
                format!("unknown rule outcome `{}`", clip(s, 40)),
                "use failed or passed",
            )),
        }
    }

    /// The one definition (migration 0008's SQL mirrors it for rows written by SQL).
    pub fn of(result: &RuleResult) -> Self {
        match result.outcome {
            RuleOutcome::Pass => RuleOutcomeFilter::Passed,
            RuleOutcome::Fail | RuleOutcome::Missing => RuleOutcomeFilter::Failed,
        }
    }
}

/// Decisions that evaluated rule `rule_id`, optionally only those where it failed or passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFilter {
    pub rule_id: String,
    pub outcome: Option<RuleOutcomeFilter>,
}

impl RuleFilter {
    /// From a list request's `rule_id` and `rule_outcome`: an outcome means something only for
    /// a rule, and a rule id has the shape policy files give it (1 to 64 lower-case letters,
    /// digits and `-`), so a typo is refused rather than answered with an empty list.
    pub fn parse(
        rule_id: Option<&str>,
        outcome: Option<RuleOutcomeFilter>,
    ) -> Result<Option<Self>, ValidationError> {
        let Some(rule_id) = rule_id else {
            return match outcome {
                Some(o) => Err(ValidationError::new(
                    "rule_outcome",
                    format!("`{}` is given without `rule_id`", o.as_str()),
                    "name the rule with `rule_id`, or leave `rule_outcome` out",
                )),
                None => Ok(None),
            };
        };
        let valid = !rule_id.is_empty()
            && rule_id.len() <= 64
            && rule_id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            return Err(ValidationError::new(
                "rule_id",
                format!("`{}` is not a rule id", clip(rule_id, 80)),
                "use the rule's `id` from its policy file: 1 to 64 lower-case letters, digits and `-`",
            ));
        }
        Ok(Some(Self {
            rule_id: rule_id.to_string(),
            outcome,
        }))
    }
}

/// At most `max` characters of caller input, for an error message.
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max).chain(std::iter::once('…')).collect()
    }
}

/// One page of decisions, newest first.
#[derive(Debug, Clone)]
pub struct DecisionPage {
    pub decisions: Vec<Decision>,
    /// Opaque token for the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}

/// Where a page of `Store::pending_due` ended: the next page starts after this review in the
/// sweeper's order (deadline, then id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueCursor {
    deadline_ms: i64,
    id: String,
}

impl DueCursor {
    /// Before every review: where the first page starts.
    fn start() -> Self {
        Self {
            deadline_ms: i64::MIN,
            id: String::new(),
        }
    }
}

/// One page of `Store::pending_due`.
#[derive(Debug, Clone)]
pub struct DuePage {
    /// Pending reviews due by the time asked, deadline first.
    pub decisions: Vec<Decision>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<DueCursor>,
}

/// A pending review as `Store::pending_in_environment` lists it: its id and the system of the
/// ticket it waits on, if it was routed; no body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingReview {
    pub id: DecisionId,
    pub review_system: Option<String>,
}

/// A claim on a named piece of background work (e.g. "poll pending reviews"), held by one
/// replica until it lapses, unless its holder claims it again (which extends it). See `Store::try_claim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub job: String,
    pub holder: String,
    /// Goes up by one every time the job changes hands or lapses (a fencing token): work tagged
    /// with an older generation was done by a holder that had already lost the lease.
    pub generation: i64,
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// Bounds every wait on the database: acquiring a pooled connection, and for PostgreSQL each
    /// statement (server-side `statement_timeout` plus a client-side deadline for a stalled
    /// network). Startup waits `STARTUP_WAIT_FACTOR` times this for the database to come up.
    pub connect_timeout: Duration,
    /// SQLite: after how many stored decisions without a pack dictionary the store trains one
    /// from its newest `created` events (`store/pack_dictionary.rs`), and retrains after a
    /// hundred times as many. PostgreSQL compresses in its own storage and ignores it.
    pub pack_dictionary_after: u64,
}

/// How many `connect_timeout`s `open` waits for a PostgreSQL server that is not up yet (one
/// minute with the default 10 s): long enough for a database pod started alongside, short enough
/// that a wrong URL ends in a clear error instead of a pod that never gets ready.
pub const STARTUP_WAIT_FACTOR: u32 = 6;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
            pack_dictionary_after: 1_000,
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
    /// Stores a decision and its `created` event, in one transaction. With an idempotency key
    /// already present at the decision's `key_generation`, stores nothing (no decision, no event)
    /// and returns the decision stored there (a unique constraint on key and generation decides,
    /// not a read-then-write).
    async fn insert_decision(
        &self,
        decision: &Decision,
        fingerprint: &str,
    ) -> Result<Inserted, StoreError>;
    async fn get_decision(&self, id: &DecisionId) -> Result<Option<Decision>, StoreError>;
    /// The newest decision stored under `key` (the highest generation: re-evaluations of a key
    /// are stored as its next generation), with the fingerprint of the request that created it.
    /// A fast path that lets a retried check skip evaluation; it decides nothing, since two
    /// callers can both find nothing here; `insert_decision` is what settles a race.
    async fn find_by_idempotency_key(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<(Decision, String)>, StoreError>;
    /// The decisions `filter` selects, newest first (by id). `page_size` is clamped to
    /// 1..=500; `page_token` comes from a previous page and continues below the last decision
    /// it saw (it is not bound to a filter: sent with another one, it pages that one from
    /// there). Rule and image filters read `decision_rules` / `decision_images`, never bodies
    /// (migration 0008 says which index serves what on each backend); times compare in whole
    /// milliseconds.
    async fn list_decisions(
        &self,
        filter: &DecisionFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<DecisionPage, StoreError>;
    /// A decision with the number of events recorded for it: the token `append_events`
    /// compares against.
    async fn get_decision_versioned(
        &self,
        id: &DecisionId,
    ) -> Result<Option<(Decision, u64)>, StoreError>;
    /// The one way a stored decision changes: appends `events` after the `expected_events`
    /// already recorded for `next.id` and stores `next` (the state they lead to), in one
    /// transaction, only if the decision still has exactly `expected_events` events
    /// (compare-and-set on its last event, decided by the database). `false` when another
    /// writer appended first or the id is unknown; nothing is written then.
    async fn append_events(
        &self,
        next: &Decision,
        expected_events: u64,
        events: &[DecisionEvent],
    ) -> Result<bool, StoreError>;
    /// Numbers and hashes up to `max` events that have none yet, in the order they were
    /// stored, after the log's head, and moves the head; returns how many. One sequencer at a
    /// time wins the head (a row lock); the lease holder runs it before each checkpoint.
    async fn sequence_events(&self, max: u32) -> Result<u64, StoreError>;
    /// The log's head: the last sequence number (0 for an empty log) and its hash (hex).
    async fn ledger_head(&self) -> Result<(u64, String), StoreError>;
    /// The sequenced log entries with sequence numbers `from..=to`, in order, pruned ones
    /// included (with their hash only).
    async fn ledger_entries(&self, from: u64, to: u64) -> Result<Vec<LedgerEntry>, StoreError>;
    /// The chain hashes (hex) of events `from..=to`, pruned ones included, in order.
    async fn ledger_hashes(&self, from: u64, to: u64) -> Result<Vec<(u64, String)>, StoreError>;
    /// Stores roots of perfect subtrees of the log's Merkle tree (an existing one is kept).
    async fn insert_ledger_nodes(&self, nodes: &[Node]) -> Result<(), StoreError>;
    /// The stored subtree roots among `wanted` (level, index); absent ones are left out.
    async fn ledger_nodes(&self, wanted: &[(u32, u64)]) -> Result<Vec<Node>, StoreError>;
    /// Up to `limit` signed checkpoints with index `from_index` and up, in order.
    async fn checkpoints(
        &self,
        from_index: u64,
        limit: u32,
    ) -> Result<Vec<SignedCheckpoint>, StoreError>;
    /// Retention: removes up to `limit` final decisions decided before `before` whose events
    /// are all numbered at or below `through_seq`, with their events, keeping each event's
    /// sequence number and hash (`ledger_pruned`) so the log still verifies. Returns how many
    /// decisions went.
    async fn prune_decisions(
        &self,
        through_seq: u64,
        before: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<u64, StoreError>;
    /// The sequenced log entries of decision `id`, in order.
    async fn decision_entries(&self, id: &DecisionId) -> Result<Vec<LedgerEntry>, StoreError>;
    /// The newest signed checkpoint.
    async fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, StoreError>;
    /// Stores a signed checkpoint; `false` when one with its index already exists (another
    /// signer won).
    async fn insert_checkpoint(&self, checkpoint: &SignedCheckpoint) -> Result<bool, StoreError>;
    /// Cheap round trip for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores the text of a policy version under its version, unless it is already stored
    /// (insert-or-ignore on the version: replicas storing it at once keep one row, the first
    /// `stored_at`). `true` when this call stored it. A text that does not hash to its version
    /// is refused (`Corrupt`), since the row would stand for that version for good.
    async fn put_policy_version(&self, record: &PolicyVersionRecord) -> Result<bool, StoreError>;
    /// The stored text of policy version `version`, checked to still hash to it.
    async fn get_policy_version(
        &self,
        version: &str,
    ) -> Result<Option<PolicyVersionRecord>, StoreError>;

    /// The decisions whose request names the image `digest` for `environment`, newest first, at
    /// most `limit` (clamped to `MAX_IMAGE_DECISIONS`): one indexed lookup (`decision_images`,
    /// filled by a trigger on insert), for the admission webhook.
    async fn decisions_for_image(
        &self,
        digest: &Digest,
        environment: &Environment,
        limit: u32,
    ) -> Result<Vec<ImageDecision>, StoreError>;

    /// Claims `job` for `holder` for `ttl`, decided by the database (one upsert, the database's
    /// clock): succeeds when nobody holds it, its lease has lapsed, or `holder` already holds it
    /// (which extends it). `None` means another holder has it. This is how background work is
    /// shared between replicas: each replica tries to claim, exactly one runs the job, and if it
    /// dies its lease lapses and another takes over.
    async fn try_claim(
        &self,
        job: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError>;
    /// Gives the lease up early so another holder need not wait for it to lapse. `false` when it
    /// was no longer held.
    async fn release(&self, lease: &Lease) -> Result<bool, StoreError>;

    /// The pending reviews whose deadline is at or before `before`, in deadline order (then
    /// id), from after `after` (the previous page's `next`), at most `limit` (clamped to
    /// 1..=`MAX_PAGE_SIZE`). Served by a partial index of pending rows by deadline (migration
    /// 0013): pending reviews not due by `before` are neither read nor decoded, however many
    /// there are. Pending decisions without a deadline never are.
    async fn pending_due(
        &self,
        before: DateTime<Utc>,
        after: Option<&DueCursor>,
        limit: u32,
    ) -> Result<DuePage, StoreError>;

    /// The pending reviews of `environment`, by id from after `after`, at most `limit`
    /// (clamped to 1..=`MAX_PAGE_SIZE`): ids and ticket systems only, from a partial index of
    /// pending rows (migration 0013), so a review follower decodes only the reviews it acts on.
    async fn pending_in_environment(
        &self,
        environment: &str,
        after: Option<&DecisionId>,
        limit: u32,
    ) -> Result<Vec<PendingReview>, StoreError>;

    /// The pending decision whose review waits on ticket `handle` of `system` (`servicenow`,
    /// `jira`): its number, matched without regard to ASCII case, or its id in that system,
    /// matched exactly. The newest if several wait on it. One indexed lookup
    /// (`decision_tickets`, migration 0011, filled when a ticket is attached), never a scan.
    async fn find_pending_by_ticket(
        &self,
        system: &str,
        handle: &str,
    ) -> Result<Option<Decision>, StoreError>;
}

/// Opens the store named by `url` (`sqlite://path`, `sqlite::memory:`, `postgres://…` or
/// `postgresql://…`) and runs its migrations. PostgreSQL is waited for (see
/// `STARTUP_WAIT_FACTOR`) with a log line per attempt.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        let store = sqlite::SqliteStore::open(url, options).await?;
        return Ok(Arc::new(store));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PostgresStore::open(url, options).await?;
        return Ok(Arc::new(store));
    }
    Err(StoreError::UnsupportedUrl(redact_url(url)))
}

/// A lease length in whole milliseconds, at least 1, for the `expires_at` arithmetic.
fn ttl_millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
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
