//! Retention of the decision log (`audit.retention`): final decisions decided before the cut
//! are removed with their events, in batches, by the replica holding the `audit-retention`
//! lease. Only events a signed checkpoint covers are removed, and each keeps its number and
//! hash (`ledger_pruned`), so the tree and every remaining proof verify against the same
//! checkpoints: the checkpoint anchors the cut.

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::{Gate, GateError};

/// The lease that makes one replica at a time prune.
const RETENTION_JOB: &str = "audit-retention";

/// Decisions removed per transaction, so the write lock is never held for long.
const PRUNE_BATCH: u32 = 500;

impl Gate {
    /// Removes final decisions decided more than `retention` ago and their events, up to the
    /// newest signed checkpoint; returns how many went.
    pub async fn prune_now(&self, retention: Duration) -> Result<u64, GateError> {
        let Some(anchor) = self.store.latest_checkpoint().await? else {
            return Ok(0);
        };
        let span = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let Some(cut) = self.clock.now().checked_sub_signed(span) else {
            return Ok(0);
        };
        let mut total = 0;
        loop {
            let n = self
                .store
                .prune_decisions(anchor.checkpoint.tree_size, cut, PRUNE_BATCH)
                .await?;
            total += n;
            if n < u64::from(PRUNE_BATCH) {
                break;
            }
        }
        if total > 0 {
            info!(
                pruned = total,
                anchor = anchor.checkpoint.index,
                cut = %cut,
                "audit retention removed decisions"
            );
        }
        Ok(total)
    }

    /// Prunes every `interval` while holding the `audit-retention` lease, until `stop`.
    pub async fn run_retention(
        self: Arc<Self>,
        holder: String,
        retention: Duration,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let job = super::jobs::Job::every(RETENTION_JOB, holder, interval);
        self.run_job(job, stop, move |gate| async move {
            gate.prune_now(retention).await.map(|_| ())
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use chrono::{Duration as ChronoDuration, TimeZone, Utc};

    use super::*;
    use crate::audit::checkpoint::public_key_from_pem;
    use crate::audit::verify::ExportVerifier;
    use crate::auth::{Principal, Role};
    use crate::clock::ManualClock;
    use crate::domain::DecisionStatus;
    use crate::gate::export::ExportSelection;
    use crate::gate::test_gate::{check, gate};

    async fn export_report(gate: &Arc<Gate>) -> crate::audit::verify::Report {
        let auditor = Principal::new("audit", vec![Role::Auditor]);
        let mut records = gate
            .audit_export(&auditor, ExportSelection::default())
            .await
            .unwrap();
        let (_, pem) = gate.audit_public_key().unwrap().unwrap();
        let key = public_key_from_pem(&pem).unwrap();
        let mut verifier = ExportVerifier::new(&key);
        while let Some(record) = records.recv().await {
            verifier.feed(&serde_json::to_string(&record.unwrap()).unwrap());
        }
        verifier.finish()
    }

    #[tokio::test]
    async fn pruned_decisions_leave_a_log_that_still_verifies() {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap(),
        ));
        let (gate, _dir) = gate(Arc::clone(&clock)).await;
        let old = [check(&gate).await, check(&gate).await];
        // Past the one-hour review deadline: whatever waited for a review expires, so both are
        // final.
        clock.advance(ChronoDuration::hours(2));
        gate.expire_due_reviews().await.unwrap();
        for id in &old {
            let d = gate.store.get_decision(id).await.unwrap().unwrap();
            assert_eq!(d.status, DecisionStatus::Final);
        }
        gate.checkpoint_now().await.unwrap().unwrap();
        let before = export_report(&gate).await;
        assert!(before.ok(), "{:?}", before.problems);
        assert_eq!(before.verified.decisions, 2);

        // Nothing is old enough yet.
        let year = Duration::from_secs(365 * 24 * 3600);
        assert_eq!(gate.prune_now(year).await.unwrap(), 0);

        clock.advance(ChronoDuration::days(400));
        // Decided this year: kept.
        let kept = check(&gate).await;
        gate.checkpoint_now().await.unwrap().unwrap();
        assert_eq!(gate.prune_now(year).await.unwrap(), 2);
        for id in &old {
            assert!(gate.store.get_decision(id).await.unwrap().is_none());
        }
        assert!(gate.store.get_decision(&kept).await.unwrap().is_some());

        // The log keeps every place: the same events, the removed ones as hashes only, and
        // what remains verifies against the same checkpoints.
        let after = export_report(&gate).await;
        assert!(after.ok(), "{:?}", after.problems);
        assert!(after.verified.events > before.verified.events);
        assert_eq!(after.verified.decisions, 1);
        let auditor = Principal::new("audit", vec![Role::Auditor]);
        let proof = gate.decision_proof(&auditor, &kept).await.unwrap();
        let (_, pem) = gate.audit_public_key().unwrap().unwrap();
        let report =
            crate::audit::verify::verify_proof(&proof, &public_key_from_pem(&pem).unwrap());
        assert!(report.ok(), "{:?}", report.problems);
    }
}
