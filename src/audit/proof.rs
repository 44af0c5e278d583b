//! The documents a verifier is handed: the proof of one decision (`DecisionProof`, served by
//! `GET /v1/decisions/{id}/proof`) and the records of an audit export (`ExportRecord`, one per
//! line of its JSON Lines). Their fields are the format of `docs/audit.md`; `audit/verify.rs`
//! checks them with nothing but the public key.

use serde::{Deserialize, Serialize};

use super::checkpoint::SignedCheckpoint;
use crate::domain::PolicyVersion;

/// `format` of a decision proof.
pub const PROOF_FORMAT: &str = "portcullis.decision-proof/1";
/// `format` of an export's first record.
pub const EXPORT_FORMAT: &str = "portcullis.audit-export/1";

/// Everything needed to check one decision against a signed checkpoint, offline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionProof {
    pub format: String,
    pub decision_id: String,
    /// The decision as the gate stores it; replaying `events` must give exactly this.
    pub decision: serde_json::Value,
    /// The decision's events in order, each with its place in the log.
    pub events: Vec<ProvenEvent>,
    /// A checkpoint whose tree covers every event above.
    pub checkpoint: SignedCheckpoint,
}

/// One event of a proof: its canonical text, chain hashes and audit path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProvenEvent {
    /// Its place in the log: 1, 2, 3, …
    pub seq: u64,
    /// The chain hash of event `seq - 1` (64 zeros for the first).
    pub previous_hash: String,
    /// `SHA-256(previous_hash || event)`, hex.
    pub hash: String,
    /// The event's canonical text: the bytes that were hashed.
    pub event: String,
    /// The RFC 9162 audit path of leaf `seq - 1` in the checkpoint's tree, bottom first, hex.
    pub inclusion: Vec<String>,
}

/// One line of an audit export. The order in the file: `export`; the log's skeleton — every
/// `event` from 1 with each `checkpoint` right after the event it ends at; then, for each
/// selected decision, the `event_text` of each of its events followed by its `decision`; then
/// the `policy_version`s those decisions name; then `end`. The skeleton lets a verifier check
/// the whole tree against the signed checkpoints; the texts are checked against the skeleton's
/// hashes, and each decision's stored state against its replayed events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum ExportRecord {
    Export(ExportHeader),
    /// An event's place in the log: its number and chain hash.
    Event {
        seq: u64,
        hash: String,
        /// Set when retention removed the event (its text and decision are gone).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pruned: bool,
    },
    Checkpoint(SignedCheckpoint),
    /// The canonical text of event `seq`, of a selected decision.
    EventText {
        seq: u64,
        decision_id: String,
        event: String,
    },
    /// A selected decision as the gate stores it, after its events' texts.
    Decision {
        decision: serde_json::Value,
    },
    /// The text of a policy version a selected decision names.
    PolicyVersion(PolicyVersion),
    End(ExportEnd),
}

/// The first line: what was exported and how it was selected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportHeader {
    pub format: String,
    pub exported_at: chrono::DateTime<chrono::Utc>,
    /// The filters as given (`application=payments`, …), for the reader.
    pub filters: Vec<String>,
    /// Events 1..=tree_size are in the file (the tree of its last checkpoint).
    pub tree_size: u64,
}

/// The last line: counts, so a truncated file is told from a complete one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportEnd {
    pub events: u64,
    pub checkpoints: u64,
    pub event_texts: u64,
    pub decisions: u64,
    pub policy_versions: u64,
}
