//! Lease-held background jobs: work that one replica at a time does (the review expiry sweep,
//! the audit sequencer and checkpoint signer, the ServiceNow and Jira review followers). One loop
//! for all of them: every `every` (or when woken) claim or renew the job's store lease; run a
//! round only while holding it; on stop, give the lease up at once so another replica need not
//! wait for it to lapse.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Gate, GateError};
use crate::clock::Clock;

/// One lease-held job.
#[derive(Debug, Clone)]
pub struct Job {
    /// The lease's name in the store (`review-expiry`, `audit-checkpoint`, …).
    pub name: &'static str,
    /// This replica's holder id.
    pub holder: String,
    /// How often a round runs.
    pub every: Duration,
    /// How long a claimed lease lasts without renewal: long enough to outlive a slow round,
    /// short enough that another replica takes over soon after a holder dies.
    pub ttl: Duration,
    /// Runs a round early when notified (a review was just opened).
    pub wake: Option<Arc<Notify>>,
    /// Rounds come `every` by this clock rather than by tokio's timer: a job whose rounds act
    /// on the clock's time (the review followers' polls) then runs when a test advances its
    /// manual clock, not on a real-time cadence.
    pub paced_by: Option<Arc<dyn Clock>>,
}

impl Job {
    /// A job whose lease outlives three rounds (at least 5 s).
    pub fn every(name: &'static str, holder: String, every: Duration) -> Self {
        Self {
            name,
            holder,
            every,
            ttl: every.saturating_mul(3).max(Duration::from_secs(5)),
            wake: None,
            paced_by: None,
        }
    }
}

impl Gate {
    /// Runs `round` under `job`'s lease until `stop` is cancelled, then releases the lease.
    pub async fn run_job<F, Fut>(self: Arc<Self>, job: Job, stop: CancellationToken, mut round: F)
    where
        F: FnMut(Arc<Gate>) -> Fut,
        Fut: Future<Output = Result<(), GateError>>,
    {
        let mut tick = tokio::time::interval(job.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut held = None;
        // By the pacing clock: when the next round is due (the first one at once).
        let mut next_at = None;
        loop {
            let paced = async {
                match (job.paced_by.as_deref(), next_at) {
                    (Some(clock), Some(at)) => clock.sleep_until(at).await,
                    (Some(_), None) => {}
                    (None, _) => {
                        tick.tick().await;
                    }
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = paced => {}
                () = woken(job.wake.as_deref()) => {}
            }
            next_at = job.paced_by.as_deref().map(|clock| {
                clock.now() + chrono::Duration::from_std(job.every).unwrap_or(chrono::Duration::MAX)
            });
            match self.store.try_claim(job.name, &job.holder, job.ttl).await {
                Ok(Some(lease)) => {
                    held = Some(lease);
                    if let Err(e) = round(Arc::clone(&self)).await {
                        warn!(
                            job = job.name,
                            reason_code = e.reason_code(),
                            "background job round failed: {e}"
                        );
                    }
                }
                Ok(None) => held = None,
                Err(e) => warn!(
                    job = job.name,
                    reason_code = e.reason_code(),
                    "cannot claim the job's lease: {e}"
                ),
            }
        }
        if let Some(lease) = held {
            if let Err(e) = self.store.release(&lease).await {
                warn!(job = job.name, "could not hand the job's lease over: {e}");
            }
        }
    }
}

async fn woken(wake: Option<&Notify>) {
    match wake {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}
