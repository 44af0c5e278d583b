//! The proof of one decision: its events with their places and hashes in the log, an audit
//! path for each up to a signed checkpoint, and the decision as stored — what a third party
//! needs to check that decision alone (`audit::verify::verify_proof`, `docs/audit.md`).
//! Events newer than the last checkpoint are numbered and signed on demand, so a proof is
//! available as soon as the decision is.

use std::collections::HashMap;

use super::{Gate, GateError, READERS, may_read, require};
use crate::audit::checkpoint::SignedCheckpoint;
use crate::audit::proof::{DecisionProof, PROOF_FORMAT, ProvenEvent};
use crate::audit::{hash_from_hex, hex, merkle};
use crate::auth::Principal;
use crate::domain::DecisionId;
use crate::store::{LedgerEntry, StoreError};

/// Rounds of "sign what is new, read again" before a proof gives up: each round loses only
/// to a concurrent change of the same decision or another replica's checkpoint.
const PROOF_ATTEMPTS: usize = 4;

impl Gate {
    /// The proof of decision `id`, for a principal that may read it.
    pub async fn decision_proof(
        &self,
        principal: &Principal,
        id: &DecisionId,
    ) -> Result<DecisionProof, GateError> {
        require(principal, READERS)?;
        for _ in 0..PROOF_ATTEMPTS {
            let (decision, count) = self
                .store
                .get_decision_versioned(id)
                .await?
                .ok_or_else(|| GateError::NotFound(id.clone()))?;
            may_read(principal, &decision)?;
            let entries = self.store.decision_entries(id).await?;
            let checkpoint = self.store.latest_checkpoint().await?;
            let covered = |c: &SignedCheckpoint| {
                entries.len() as u64 == count
                    && entries.last().is_some_and(|e| {
                        u64::try_from(e.seq).unwrap_or(u64::MAX) <= c.checkpoint.tree_size
                    })
            };
            match checkpoint {
                Some(c) if covered(&c) => {
                    let events = self.prove(&entries, c.checkpoint.tree_size).await?;
                    let decision = serde_json::to_value(&decision).map_err(|e| {
                        GateError::Internal(format!("decision `{id}` could not be encoded: {e}"))
                    })?;
                    return Ok(DecisionProof {
                        format: PROOF_FORMAT.to_string(),
                        decision_id: id.to_string(),
                        decision,
                        events,
                        checkpoint: c,
                    });
                }
                _ if count == 0 => {
                    // Stored before the log existed and unchanged since: it is recorded as it
                    // stands (`adopted`), through the one write path, and then proved.
                    self.record(id, |_, _| Ok(Vec::new())).await?;
                }
                _ => {
                    if self.signer.is_none() {
                        break;
                    }
                    self.checkpoint_now().await?;
                }
            }
        }
        Err(GateError::Unavailable(StoreError::Unavailable(format!(
            "no signed checkpoint covers decision `{id}` yet"
        ))))
    }

    /// The proven form of `entries` in the tree of `size` events.
    async fn prove(
        &self,
        entries: &[LedgerEntry],
        size: u64,
    ) -> Result<Vec<ProvenEvent>, GateError> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let seq = u64::try_from(e.seq).unwrap_or(0);
            let previous_hash = if seq <= 1 {
                hex(&crate::audit::chain::GENESIS)
            } else {
                self.store
                    .ledger_hashes(seq - 1, seq - 1)
                    .await?
                    .pop()
                    .map(|(_, h)| h)
                    .ok_or_else(|| missing(seq - 1))?
            };
            let inclusion = self
                .audit_path(seq - 1, size)
                .await?
                .iter()
                .map(|h| hex(h))
                .collect();
            out.push(ProvenEvent {
                seq,
                previous_hash,
                hash: e.hash.clone(),
                event: e.body.clone().unwrap_or_default(),
                inclusion,
            });
        }
        Ok(out)
    }

    /// The RFC 9162 audit path of leaf `index` in the tree of `size`: stored subtree roots
    /// where the checkpoint signer kept them, the leaves themselves below that.
    async fn audit_path(&self, index: u64, size: u64) -> Result<Vec<[u8; 32]>, GateError> {
        let groups = merkle::path_pieces(index, size);
        let wanted: Vec<(u32, u64)> = groups
            .iter()
            .flatten()
            .filter(|(level, _)| *level >= merkle::STORED_MIN_LEVEL)
            .copied()
            .collect();
        let stored: HashMap<(u32, u64), [u8; 32]> = self
            .store
            .ledger_nodes(&wanted)
            .await?
            .into_iter()
            .map(|n| ((n.level, n.index), n.hash))
            .collect();
        let mut path = Vec::with_capacity(groups.len());
        for group in &groups {
            let mut roots = Vec::with_capacity(group.len());
            for &(level, index) in group {
                let root = match stored.get(&(level, index)) {
                    Some(h) => *h,
                    None => self.subtree_root(level, index).await?,
                };
                roots.push(root);
            }
            path.push(merkle::fold_pieces(&roots));
        }
        Ok(path)
    }

    /// A perfect subtree's root from its leaves.
    async fn subtree_root(&self, level: u32, index: u64) -> Result<[u8; 32], GateError> {
        let width = 1u64 << level;
        let first = index * width + 1;
        let last = first + width - 1;
        let hashes = self.store.ledger_hashes(first, last).await?;
        if hashes.len() as u64 != width {
            return Err(missing(first));
        }
        let leaves = hashes
            .iter()
            .map(|(_, h)| Ok(merkle::leaf_hash(&hash_from_hex(h, "an event hash")?)))
            .collect::<Result<Vec<_>, GateError>>()?;
        Ok(merkle::root(&leaves))
    }
}

fn missing(seq: u64) -> GateError {
    GateError::Unavailable(StoreError::Corrupt(format!(
        "event {seq} of the decision log is not stored"
    )))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use std::sync::Arc;

    use chrono::{TimeZone, Utc};

    use crate::audit::checkpoint::public_key_from_pem;
    use crate::audit::verify::verify_proof;
    use crate::auth::{Principal, Role};
    use crate::clock::ManualClock;
    use crate::gate::test_gate::{check, gate};

    #[tokio::test]
    async fn proofs_in_a_tree_of_many_events_verify_from_stored_subtree_roots() {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap(),
        ));
        let (gate, _dir) = gate(clock).await;
        let mut ids = Vec::new();
        for _ in 0..37 {
            ids.push(check(&gate).await);
        }
        gate.checkpoint_now().await.unwrap().unwrap();
        // More events after the checkpoint: the proof of one of them signs them first.
        for _ in 0..5 {
            ids.push(check(&gate).await);
        }
        let (_, pem) = gate.audit_public_key().unwrap().unwrap();
        let key = public_key_from_pem(&pem).unwrap();
        let auditor = Principal::new("audit", vec![Role::Auditor]);
        for id in [&ids[0], &ids[16], &ids[31], &ids[36], &ids[41]] {
            let proof = gate.decision_proof(&auditor, id).await.unwrap();
            let newest = id == &ids[41];
            assert_eq!(
                proof.checkpoint.checkpoint.tree_size,
                if newest { 42 } else { 37 },
                "the newest checkpoint when it covers the decision, one signed for it otherwise"
            );
            let report = verify_proof(&proof, &key);
            assert!(report.ok(), "{id}: {:?}", report.problems);
        }
        let nobody = Principal::new("admission", vec![Role::Admission]);
        assert!(gate.decision_proof(&nobody, &ids[0]).await.is_err());
    }
}
