//! The sequencer and signed checkpoints of the decision log: one replica at a time (the
//! `audit-checkpoint` lease), every `audit.checkpoint_interval` while events arrive, numbers and
//! chains the events appended since its last round, then signs the Merkle root of every event
//! so far, chained to the checkpoint before. Tests call `checkpoint_now` after
//! advancing the injected clock instead of waiting for the interval.

use std::sync::Arc;
use std::time::Duration;

use tracing::info;

use super::{Gate, GateError};
use crate::audit::checkpoint::{Checkpoint, CheckpointSigner, SignedCheckpoint};
use crate::audit::{hash_from_hex, hex, merkle};

/// Events numbered per sequencer transaction.
const SEQUENCE_BATCH: u32 = 1000;

/// The lease that makes one replica at a time sign checkpoints.
const CHECKPOINT_JOB: &str = "audit-checkpoint";

/// How many times `checkpoint_now` signs again after another signer stored the index it was
/// signing first. Each loss means a newer checkpoint exists, so this is only ever reached when
/// signers keep racing.
const SIGN_ATTEMPTS: usize = 8;

/// One attempt at signing the next checkpoint.
enum Signing {
    Signed(SignedCheckpoint),
    /// The latest checkpoint already covers every event (or there is none, or no key).
    UpToDate,
    /// Another signer stored this index first; its checkpoint may end before this one's head.
    Lost,
}

impl Gate {
    /// Signs checkpoints with `signer`.
    pub fn with_signer(mut self, signer: Arc<CheckpointSigner>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// The checkpoint signing key's id and public key (SPKI PEM), if the gate has one.
    pub fn audit_public_key(&self) -> Result<Option<(String, String)>, GateError> {
        match &self.signer {
            Some(s) => Ok(Some((s.key_id().to_string(), s.public_pem()?))),
            None => Ok(None),
        }
    }

    /// Signs and stores a checkpoint over every event recorded so far, if any arrived since the
    /// last one; `None` when there is nothing new or no key. When it returns, the latest stored
    /// checkpoint covers every event recorded before the call (an export and a proof rely on
    /// it): another signer storing the next index first — the lease holder's round, an export,
    /// a proof — makes it sign again over what that one left.
    pub async fn checkpoint_now(&self) -> Result<Option<SignedCheckpoint>, GateError> {
        for _ in 0..SIGN_ATTEMPTS {
            match self.sign_next().await? {
                Signing::Signed(signed) => return Ok(Some(signed)),
                Signing::UpToDate => return Ok(None),
                Signing::Lost => continue,
            }
        }
        Err(GateError::Unavailable(
            crate::store::StoreError::Unavailable(format!(
                "other signers stored {SIGN_ATTEMPTS} checkpoints while this one was signing; try again"
            )),
        ))
    }

    async fn sign_next(&self) -> Result<Signing, GateError> {
        let Some(signer) = &self.signer else {
            return Ok(Signing::UpToDate);
        };
        // Number and hash what was appended since the last round (one sequencer at a time holds
        // the head; this runs under the checkpoint lease, so normally only here).
        while self.store.sequence_events(SEQUENCE_BATCH).await? == u64::from(SEQUENCE_BATCH) {}
        let (head, _) = self.store.ledger_head().await?;
        let latest = self.store.latest_checkpoint().await?;
        if latest
            .as_ref()
            .is_some_and(|l| l.checkpoint.tree_size >= head)
            || head == 0
        {
            return Ok(Signing::UpToDate);
        }
        // The tree's right edge is kept between rounds, so only new events are read. It is
        // used again only if the log still holds the event it ended at, with the same hash; a
        // new lease holder, or a log renumbered under it, starts from the first event.
        let cached = self.frontier.lock().map(|f| f.clone()).unwrap_or_default();
        let mut frontier = match cached {
            Some((f, last)) if f.size() <= head && f.size() > 0 => {
                let still = self.store.ledger_hashes(f.size(), f.size()).await?;
                if still.first().map(|(_, h)| h) == Some(&last) {
                    f
                } else {
                    merkle::Frontier::default()
                }
            }
            _ => merkle::Frontier::default(),
        };
        let from = frontier.size() + 1;
        let mut nodes = Vec::new();
        let mut last_event_hash = None;
        let mut next = from;
        while next <= head {
            let to = head.min(next + u64::from(crate::store::LEDGER_PAGE) - 1);
            let hashes = self.store.ledger_hashes(next, to).await?;
            for (_, hash) in &hashes {
                let leaf = merkle::leaf_hash(&hash_from_hex(hash, "an event hash")?);
                frontier.push_keeping(leaf, merkle::STORED_MIN_LEVEL, &mut nodes);
            }
            if hashes.len() as u64 != to - next + 1 {
                break;
            }
            last_event_hash = hashes.last().map(|(_, h)| h.clone());
            next = to + 1;
        }
        if frontier.size() != head {
            return Err(GateError::Unavailable(crate::store::StoreError::Corrupt(
                format!(
                    "the log's head is at {head} but events {from}..={head} are not all stored"
                ),
            )));
        }
        // The subtree roots first: a proof may be asked for as soon as the checkpoint exists.
        self.store.insert_ledger_nodes(&nodes).await?;
        let last_event_hash = match last_event_hash {
            Some(h) => h,
            None => self.store.ledger_head().await?.1,
        };
        let checkpoint = Checkpoint {
            index: latest.as_ref().map_or(1, |l| l.checkpoint.index + 1),
            tree_size: head,
            root: hex(&frontier.root()),
            last_event_hash,
            previous: match &latest {
                Some(l) => l.checkpoint.hash()?,
                None => hex(&[0u8; 32]),
            },
            at: self.clock.now(),
            key_id: signer.key_id().to_string(),
        };
        let signed = signer.sign(checkpoint)?;
        if let Ok(mut cached) = self.frontier.lock() {
            *cached = Some((frontier, signed.checkpoint.last_event_hash.clone()));
        }
        if !self.store.insert_checkpoint(&signed).await? {
            return Ok(Signing::Lost);
        }
        info!(
            checkpoint = signed.checkpoint.index,
            tree_size = signed.checkpoint.tree_size,
            key_id = signed.checkpoint.key_id.as_str(),
            "audit checkpoint signed"
        );
        Ok(Signing::Signed(signed))
    }

    /// Signs a checkpoint every `interval` while holding the `audit-checkpoint` lease, until
    /// `stop` is cancelled, and gives the lease up then.
    pub async fn run_checkpointer(
        self: Arc<Self>,
        holder: String,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let job = super::jobs::Job::every(CHECKPOINT_JOB, holder, interval);
        self.run_job(job, stop, |gate| async move {
            gate.checkpoint_now().await.map(|_| ())
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]

    use chrono::{Duration as ChronoDuration, TimeZone, Utc};

    use super::*;
    use crate::audit::checkpoint::{public_key_from_pem, signature_holds};
    use crate::clock::{Clock, ManualClock};
    use crate::gate::test_gate::{check, gate};

    /// Signers racing (the lease holder's round, exports, proofs): one that loses the next
    /// index to another signs again, so whenever `checkpoint_now` returns, the latest
    /// checkpoint covers every event recorded before it was called. A stress test: the losing
    /// interleaving (the other signer read the head before the last check and stored after
    /// this one read the latest checkpoint) needs the other signer to stall, which a loaded CI
    /// machine produced in `audit_report` and this loop only sometimes does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_signer_that_loses_the_race_signs_again_over_what_the_winner_left() {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap(),
        ));
        let (gate, _dir) = gate(clock).await;
        // Another signer, signing all the time (as the lease holder does every few seconds).
        let stop = tokio_util::sync::CancellationToken::new();
        let other = {
            let (gate, stop) = (Arc::clone(&gate), stop.clone());
            tokio::spawn(async move {
                while !stop.is_cancelled() {
                    gate.checkpoint_now().await.unwrap();
                    tokio::task::yield_now().await;
                }
            })
        };
        for _ in 0..150 {
            check(&gate).await;
            let (head, _) = gate.store.ledger_head().await.unwrap();
            gate.checkpoint_now().await.unwrap();
            let latest = gate.store.latest_checkpoint().await.unwrap().unwrap();
            assert!(
                latest.checkpoint.tree_size >= head,
                "checkpoint {} covers {} of {head} events",
                latest.checkpoint.index,
                latest.checkpoint.tree_size
            );
        }
        stop.cancel();
        other.await.unwrap();
    }

    #[tokio::test]
    async fn a_checkpoint_covers_every_event_so_far_and_chains_to_the_one_before() {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap(),
        ));
        let (gate, _dir) = gate(Arc::clone(&clock)).await;
        assert!(
            gate.checkpoint_now().await.unwrap().is_none(),
            "no events yet"
        );

        check(&gate).await;
        check(&gate).await;
        let first = gate.checkpoint_now().await.unwrap().unwrap();
        assert_eq!(first.checkpoint.index, 1);
        assert_eq!(first.checkpoint.tree_size, 2);
        assert_eq!(first.checkpoint.previous, "0".repeat(64));
        assert_eq!(first.checkpoint.at, clock.now());
        let (key_id, pem) = gate.audit_public_key().unwrap().unwrap();
        assert_eq!(first.checkpoint.key_id, key_id);
        assert!(signature_holds(&first, &public_key_from_pem(&pem).unwrap()));
        assert!(
            gate.checkpoint_now().await.unwrap().is_none(),
            "nothing new, nothing signed"
        );

        clock.advance(ChronoDuration::seconds(5));
        check(&gate).await;
        let second = gate.checkpoint_now().await.unwrap().unwrap();
        assert_eq!(second.checkpoint.index, 2);
        assert_eq!(second.checkpoint.tree_size, 3);
        assert_eq!(second.checkpoint.previous, first.checkpoint.hash().unwrap());
        assert_eq!(second.checkpoint.at, clock.now());
        let entries = gate.store.ledger_entries(1, 3).await.unwrap();
        let leaves: Vec<_> = entries
            .iter()
            .map(|e| merkle::leaf_hash(&hash_from_hex(&e.hash, "hash").unwrap()))
            .collect();
        assert_eq!(second.checkpoint.root, hex(&merkle::root(&leaves)));
        assert_eq!(gate.store.latest_checkpoint().await.unwrap(), Some(second));
    }
}
