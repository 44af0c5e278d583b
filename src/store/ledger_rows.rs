//! Log rows shared by both backends: Merkle subtree roots to and from their columns, stored
//! checkpoints read back, and the id lists retention works through.

use crate::audit::checkpoint::SignedCheckpoint;
use crate::audit::merkle::Node;
use crate::audit::{hash_from_hex, hex};

use super::StoreError;

/// A node as its columns: level, index, hex hash.
pub(super) fn node_columns(node: &Node) -> (i64, i64, String) {
    (
        i64::from(node.level),
        i64::try_from(node.index).unwrap_or(i64::MAX),
        hex(&node.hash),
    )
}

/// Nodes read back; a row that is not a node is corruption, named.
pub(super) fn nodes_from_rows(rows: Vec<(i64, i64, String)>) -> Result<Vec<Node>, StoreError> {
    rows.into_iter()
        .map(|(level, index, hash)| {
            let bad = || {
                StoreError::Corrupt(format!(
                    "the stored Merkle node at level {level}, index {index} is not valid"
                ))
            };
            Ok(Node {
                level: u32::try_from(level).map_err(|_| bad())?,
                index: u64::try_from(index).map_err(|_| bad())?,
                hash: hash_from_hex(&hash, "a Merkle node").map_err(|_| bad())?,
            })
        })
        .collect()
}

/// A stored checkpoint's body read back.
pub(super) fn checkpoint_from_body(body: &str) -> Result<SignedCheckpoint, StoreError> {
    serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt(format!("a stored checkpoint is not valid: {e}")))
}

/// `u64` → the `BIGINT` the databases hold, saturating (sequence numbers never get near).
pub(super) fn db_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// What retention runs for a batch of decision ids, each followed by ` (id, id, …)`, in this
/// order inside one transaction: the events' places are kept, then the rows that name the
/// decisions go before the decisions themselves (foreign keys). SQLite deletes its rule rows
/// before these (PostgreSQL keeps a decision's rules on its own row).
pub(super) const PRUNE_STATEMENTS: &[&str] = &[
    "INSERT INTO ledger_pruned (seq, hash) SELECT seq, hash FROM decision_events \
     WHERE seq IS NOT NULL AND decision_id IN",
    "DELETE FROM decision_events WHERE decision_id IN",
    "DELETE FROM decision_images WHERE decision_id IN",
    "DELETE FROM decisions WHERE id IN",
];
