//! How a `Decision` (and a policy version's text) becomes a database row and back, shared by every
//! backend.
//!
//! The row is the whole decision as JSON in `body`, plus copies of the fields that lists filter
//! and order on. The serde derives in `domain` *are* the stored format: renaming a field there
//! changes what is written here. `schema_version` records which shape a body has, so a later
//! shape can be read by migrating old bodies (in a migration or on read) instead of failing.
//! `body` is the source of truth; the other columns are projections written from the same value
//! in the same statement, so they cannot drift.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::{Decision, DecisionEvent, PolicyVersion, PolicyVersionRecord};

use super::{RuleOutcomeFilter, StoreError};

/// The shape of `body` this build writes and reads.
pub(crate) const SCHEMA_VERSION: i64 = 1;

/// Column values for one decision, borrowed from it.
///
/// Times are INTEGER unix milliseconds rather than RFC 3339 text: numbers compare and index the
/// same way in SQLite and PostgreSQL (`BIGINT`), while RFC 3339 text sorts wrongly once
/// fractional seconds vary in length (`…:00Z` sorts after `…:00.5Z`) and each database would
/// format it differently. The full-precision times stay in `body`.
#[derive(Debug)]
pub(crate) struct DecisionRow<'a> {
    pub(crate) id: &'a str,
    /// The unique slot: the caller's key for generation 0, `<key> #<n>` for re-evaluation `n`
    /// (a space never occurs in a caller's key, so slots cannot collide with keys).
    pub(crate) idempotency_key: Option<String>,
    /// The caller's key, shared by every generation.
    pub(crate) idempotency_base: Option<&'a str>,
    pub(crate) idempotency_generation: i64,
    pub(crate) principal: Option<&'a str>,
    pub(crate) request_fingerprint: &'a str,
    pub(crate) application: &'a str,
    pub(crate) environment: &'a str,
    pub(crate) verdict: &'static str,
    pub(crate) status: &'static str,
    pub(crate) caller_kind: &'static str,
    pub(crate) policy_version: &'a str,
    pub(crate) created_at_ms: i64,
    pub(crate) decided_at_ms: Option<i64>,
    pub(crate) schema_version: i64,
    pub(crate) body: String,
    /// When a review expires (`review_deadline`, migration 0013): what the expiry sweeper's
    /// index is ordered by.
    pub(crate) review_deadline_ms: Option<i64>,
    /// The system of the ticket a review waits on (`review_ticket.system`, migration 0013):
    /// what a review follower reads without the body.
    pub(crate) review_system: Option<&'a str>,
}

impl<'a> DecisionRow<'a> {
    pub(crate) fn new(decision: &'a Decision, fingerprint: &'a str) -> Result<Self, StoreError> {
        // Canonical (keys sorted), the decision's text inside its created event too, so one
        // writing serves both (`created_event_text`).
        let body = crate::audit::chain::canonical_json(decision).map_err(|e| {
            // Unreachable with today's types (string-keyed maps only); kept as an error so a
            // future field that cannot be encoded fails the write rather than the process.
            StoreError::Corrupt(format!(
                "decision `{}` could not be encoded: {e}",
                decision.id
            ))
        })?;
        let request = &decision.request;
        Ok(Self {
            id: decision.id.as_str(),
            idempotency_key: request
                .idempotency_key
                .as_ref()
                .map(|k| slot(k.as_str(), decision.key_generation)),
            idempotency_base: request.idempotency_key.as_ref().map(|k| k.as_str()),
            idempotency_generation: i64::from(decision.key_generation),
            principal: decision.principal.as_deref(),
            request_fingerprint: fingerprint,
            application: request.application.as_str(),
            environment: request.environment.as_str(),
            verdict: decision.verdict.as_str(),
            status: decision.status.as_str(),
            caller_kind: request.caller.kind.as_str(),
            policy_version: &decision.policy_version,
            created_at_ms: millis(decision.created_at),
            decided_at_ms: decision.decided_at.map(millis),
            schema_version: SCHEMA_VERSION,
            body,
            review_deadline_ms: decision.review_deadline.map(millis),
            review_system: decision.review_ticket.as_ref().map(|t| t.system.as_str()),
        })
    }
}

/// The `decision_rules` rows of `decision` as two parallel columns (rule ids, `failed` /
/// `passed`), one per rule id: a rule listed twice (no valid policy set does that) is `failed`
/// if any of its results is, as migration 0008's SQL does it.
pub(crate) fn rule_rows(decision: &Decision) -> (Vec<&str>, Vec<&'static str>) {
    let mut rows: BTreeMap<&str, RuleOutcomeFilter> = BTreeMap::new();
    for result in &decision.rule_results {
        let outcome = RuleOutcomeFilter::of(result);
        rows.entry(result.rule_id.as_str())
            .and_modify(|o| {
                if outcome == RuleOutcomeFilter::Failed {
                    *o = outcome;
                }
            })
            .or_insert(outcome);
    }
    rows.into_iter().map(|(id, o)| (id, o.as_str())).unzip()
}

/// `decision`'s rule ids that failed and those that passed, each sorted, by the same rule as
/// `rule_rows` (PostgreSQL's `failed_rules` and `passed_rules`, migration 0014).
pub(crate) fn rule_sets(decision: &Decision) -> (Vec<&str>, Vec<&str>) {
    let (ids, outcomes) = rule_rows(decision);
    let mut failed = Vec::new();
    let mut passed = Vec::new();
    for (id, outcome) in ids.into_iter().zip(outcomes) {
        if outcome == RuleOutcomeFilter::Failed.as_str() {
            failed.push(id);
        } else {
            passed.push(id);
        }
    }
    (failed, passed)
}

/// The image digests `decision`'s request names, each once, in order: its `decision_images`
/// rows (migration 0003), as its SQL did it.
pub(crate) fn image_digests(decision: &Decision) -> Vec<&str> {
    let mut digests: Vec<&str> = Vec::new();
    for digest in decision
        .request
        .images
        .iter()
        .filter_map(|i| i.digest.as_ref())
    {
        if !digests.contains(&digest.as_str()) {
            digests.push(digest.as_str());
        }
    }
    digests
}

/// The unique idempotency slot of generation `generation` of `key`.
pub(crate) fn slot(key: &str, generation: u32) -> String {
    if generation == 0 {
        key.to_string()
    } else {
        format!("{key} #{generation}")
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// What reads select: enough to rebuild and cross-check a decision.
///
/// Column types are those both backends decode into the same Rust types (`TEXT`, and `INTEGER`
/// in SQLite / `BIGINT` in PostgreSQL for `i64`).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StoredDecision {
    pub(crate) id: String,
    pub(crate) schema_version: i64,
    pub(crate) body: String,
    /// SQLite's packed body (`store/packed.rs`); PostgreSQL selects none.
    #[sqlx(default)]
    pub(crate) packed: Option<Vec<u8>>,
    /// The text of the decision's `created` event, selected only when the row's body is empty:
    /// a decision is stored once, in that event, until a later event changes it
    /// (`created_body` in `store/list.rs`).
    #[sqlx(default)]
    pub(crate) created_body: Option<String>,
    /// That event's packed text (SQLite, `store/packed.rs`).
    #[sqlx(default)]
    pub(crate) created_packed: Option<Vec<u8>>,
}

impl StoredDecision {
    pub(crate) fn into_decision(self) -> Result<Decision, StoreError> {
        if self.schema_version != SCHEMA_VERSION {
            // Only a newer build writes other versions; reading its bodies as ours could
            // silently drop fields from an audit record.
            return Err(StoreError::Corrupt(format!(
                "decision `{}` has schema version {}, this build reads {SCHEMA_VERSION}",
                self.id, self.schema_version
            )));
        }
        let id = self.id;
        let body = if self.body.is_empty() && self.packed.is_none() {
            // Stored once, in its `created` event.
            let Some(event) = self.created_body else {
                return Err(StoreError::Corrupt(format!(
                    "decision `{id}` has an empty body and no `created` event to read it from"
                )));
            };
            let event = super::packed::unpack(event, self.created_packed, || {
                format!("the created event of decision `{id}`")
            })?;
            match super::decision_text_of_created(&event) {
                Some(text) => text.to_string(),
                None => {
                    return Err(StoreError::Corrupt(format!(
                        "the created event of decision `{id}` does not hold a decision"
                    )));
                }
            }
        } else {
            super::packed::unpack(self.body, self.packed, || format!("decision `{id}`"))?
        };
        let decision: Decision = serde_json::from_str(&body).map_err(|e| {
            StoreError::Corrupt(format!(
                "decision `{id}` is not a valid stored decision: {e}"
            ))
        })?;
        if decision.id.as_str() != id {
            return Err(StoreError::Corrupt(format!(
                "row `{id}` holds the body of decision `{}`",
                decision.id
            )));
        }
        Ok(decision)
    }
}

/// A pending review due by some time, with its place in the sweeper's order (migration 0013).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StoredDue {
    #[sqlx(flatten)]
    pub(crate) stored: StoredDecision,
    pub(crate) review_deadline: i64,
}

/// A pending review as a follower first sees it: no body (migration 0013).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PendingRow {
    pub(crate) id: String,
    pub(crate) review_system: Option<String>,
}

impl PendingRow {
    pub(crate) fn into_pending(self) -> Result<super::PendingReview, StoreError> {
        Ok(super::PendingReview {
            id: crate::domain::DecisionId::parse(&self.id)
                .map_err(|_| StoreError::Corrupt(format!("decision `{}`: bad id", self.id)))?,
            review_system: self.review_system,
        })
    }
}

/// A page of due reviews from rows read in the sweeper's order, `limit` asked for: the next
/// page starts after the last row when this one is full.
pub(crate) fn due_page(rows: Vec<StoredDue>, limit: i64) -> Result<super::DuePage, StoreError> {
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
    let next = rows.last().filter(|_| full).map(|last| super::DueCursor {
        deadline_ms: last.review_deadline,
        id: last.stored.id.clone(),
    });
    let decisions = rows
        .into_iter()
        .map(|r| r.stored.into_decision())
        .collect::<Result<_, _>>()?;
    Ok(super::DuePage { decisions, next })
}

/// A stored decision and the fingerprint of the request that created it, for idempotent replays.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StoredWithFingerprint {
    #[sqlx(flatten)]
    pub(crate) stored: StoredDecision,
    pub(crate) request_fingerprint: String,
}

/// The columns of a decision that naming an image digest answers with (`Store::decisions_for_image`):
/// no body, so the admission webhook's lookup decodes a few short strings, not evidence.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ImageDecisionRow {
    pub(crate) id: String,
    pub(crate) application: String,
    pub(crate) verdict: String,
    pub(crate) status: String,
    pub(crate) created_at: i64,
    pub(crate) decided_at: Option<i64>,
}

impl ImageDecisionRow {
    pub(crate) fn into_summary(self) -> Result<super::ImageDecision, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("decision `{}`: {what}", self.id));
        let time = |ms: i64| {
            DateTime::<Utc>::from_timestamp_millis(ms)
                .ok_or_else(|| corrupt("a time is out of range"))
        };
        Ok(super::ImageDecision {
            id: crate::domain::DecisionId::parse(&self.id).map_err(|_| corrupt("bad id"))?,
            application: self.application.clone(),
            verdict: crate::domain::Verdict::parse(&self.verdict)
                .map_err(|_| corrupt("unknown verdict"))?,
            status: crate::domain::DecisionStatus::parse(&self.status)
                .map_err(|_| corrupt("unknown status"))?,
            created_at: time(self.created_at)?,
            decided_at: self.decided_at.map(time).transpose()?,
        })
    }
}

/// Column values for one event of a decision: its position among the decision's events, its
/// time, its kind and the whole event as JSON.
#[derive(Debug)]
pub(crate) struct EventRow {
    pub(crate) decision_id: String,
    pub(crate) idx: i64,
    pub(crate) at_ms: i64,
    pub(crate) kind: &'static str,
    pub(crate) body: String,
}

impl EventRow {
    pub(crate) fn new(event: &DecisionEvent, idx: u64) -> Result<Self, StoreError> {
        let body = crate::audit::chain::event_text(event).map_err(|e| {
            StoreError::Corrupt(format!(
                "an event of decision `{}` could not be encoded: {e}",
                event.decision_id
            ))
        })?;
        Ok(Self {
            decision_id: event.decision_id.as_str().to_string(),
            idx: i64::try_from(idx).unwrap_or(i64::MAX),
            at_ms: millis(event.at),
            kind: event.change.as_str(),
            body,
        })
    }

    /// The row of the `created` event of the decision whose row is `row`.
    pub(crate) fn created(decision: &Decision, row: &DecisionRow<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            decision_id: decision.id.as_str().to_string(),
            idx: 0,
            at_ms: millis(decision.created_at),
            kind: "created",
            body: super::created_event_text(decision, &row.body)?,
        })
    }

    /// The rows of `events` appended after `already` earlier ones.
    pub(crate) fn all(events: &[DecisionEvent], already: u64) -> Result<Vec<Self>, StoreError> {
        events
            .iter()
            .zip(already..)
            .map(|(e, idx)| Self::new(e, idx))
            .collect()
    }
}

/// A decision with its event count (`decisions.event_count`), the token of a compare-and-set.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StoredVersioned {
    #[sqlx(flatten)]
    pub(crate) stored: StoredDecision,
    pub(crate) event_count: i64,
}

impl StoredVersioned {
    pub(crate) fn into_versioned(self) -> Result<(Decision, u64), StoreError> {
        let count = u64::try_from(self.event_count).map_err(|_| {
            StoreError::Corrupt(format!(
                "decision `{}` has a negative event count",
                self.stored.id
            ))
        })?;
        Ok((self.stored.into_decision()?, count))
    }
}

/// An event the sequencer has not numbered yet: its row id and canonical text.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct Unsequenced {
    pub(crate) id: i64,
    pub(crate) body: String,
    /// SQLite's packed body (`store/packed.rs`); unpacked into `body` before it is hashed.
    #[sqlx(default)]
    pub(crate) packed: Option<Vec<u8>>,
}

/// A sequence number and its chain hash (hex).
pub(crate) type Link = (i64, String);

/// The sequence number and chain hash of each of `rows` (in order) after the log's head
/// (`head_seq`, `head_hash`), and the new head.
pub(crate) fn link_rows(
    rows: &[Unsequenced],
    head_seq: i64,
    head_hash: &str,
) -> Result<(Vec<Link>, Link), StoreError> {
    let mut previous = crate::audit::hash_from_hex(head_hash, "ledger_head.hash")
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut seq = head_seq;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        seq += 1;
        previous = crate::audit::chain::link(&previous, &row.body);
        out.push((seq, crate::audit::hex(&previous)));
    }
    Ok((out, (seq, crate::audit::hex(&previous))))
}

/// Column values for one policy version: its name, when it was first stored, and its text as
/// JSON (`{"version", "files"}`, files sorted by path).
#[derive(Debug)]
pub(crate) struct PolicyVersionRow<'a> {
    pub(crate) version: &'a str,
    pub(crate) created_at_ms: i64,
    pub(crate) body: String,
}

impl<'a> PolicyVersionRow<'a> {
    /// Refuses a text that does not hash to its version: the row is written once and never
    /// replaced, so a wrong text stored under a version would stand for it for good.
    pub(crate) fn new(record: &'a PolicyVersionRecord) -> Result<Self, StoreError> {
        let policy = &record.policy;
        if !policy.is_intact() {
            return Err(StoreError::Corrupt(format!(
                "the text given for policy version `{}` hashes to `{}`",
                policy.version,
                policy.digest()
            )));
        }
        // Files sorted by path, as the stored format says (a set's own text already is).
        let body = if policy.files.is_sorted_by(|a, b| a.path <= b.path) {
            serde_json::to_string(policy)
        } else {
            serde_json::to_string(&PolicyVersion::from_files(policy.files.clone()))
        }
        .map_err(|e| {
            StoreError::Corrupt(format!(
                "policy version `{}` could not be encoded: {e}",
                policy.version
            ))
        })?;
        Ok(Self {
            version: &policy.version,
            created_at_ms: millis(record.stored_at),
            body,
        })
    }
}

/// One stored policy version as read back.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct StoredPolicyVersion {
    pub(crate) version: String,
    pub(crate) created_at: i64,
    pub(crate) body: String,
}

impl StoredPolicyVersion {
    /// The record, checked: the body is the text of the row's version and still hashes to it.
    pub(crate) fn into_record(self) -> Result<PolicyVersionRecord, StoreError> {
        let corrupt = |what: String| {
            StoreError::Corrupt(format!("policy version `{}`: {what}", self.version))
        };
        let policy: PolicyVersion = serde_json::from_str(&self.body)
            .map_err(|e| corrupt(format!("not a valid stored policy text: {e}")))?;
        if policy.version != self.version {
            return Err(corrupt(format!(
                "the row holds the text of `{}`",
                policy.version
            )));
        }
        if !policy.is_intact() {
            return Err(corrupt(format!(
                "its text hashes to `{}`: it was altered after it was stored",
                policy.digest()
            )));
        }
        let stored_at = DateTime::<Utc>::from_timestamp_millis(self.created_at)
            .ok_or_else(|| corrupt("its time is out of range".into()))?;
        Ok(PolicyVersionRecord { policy, stored_at })
    }
}

/// A log entry as stored: a `created` event's text may be packed (`store/packed.rs`).
#[derive(sqlx::FromRow)]
pub(crate) struct StoredEntry {
    pub(crate) seq: i64,
    pub(crate) hash: String,
    pub(crate) decision_id: Option<String>,
    pub(crate) body: Option<String>,
    pub(crate) packed: Option<Vec<u8>>,
}

impl StoredEntry {
    pub(crate) fn unpack(self) -> Result<super::LedgerEntry, StoreError> {
        let seq = self.seq;
        let body = match self.body {
            Some(body) => Some(super::packed::unpack(body, self.packed, || {
                format!("the event at place {seq}")
            })?),
            None => None,
        };
        Ok(super::LedgerEntry {
            seq,
            hash: self.hash,
            decision_id: self.decision_id,
            body,
        })
    }
}
