//! Ending a pending decision: an approver approves or rejects it, or its caller withdraws it,
//! or its deadline passes. Each operation says which events to record and goes through the one
//! write path (`gate/ledger.rs`), so of two racing resolutions (two approvers, two replicas, an
//! approval and a cancel) exactly one wins and the other gets a conflict naming the winner.
//!
//! The rules themselves (separation of duties: whoever triggered the deploy, or where known
//! wrote a commit in it, cannot approve it; approver groups; N distinct approvers) are
//! `domain::apply`'s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::ledger::{Recorded, refusal_error};
use super::{Gate, GateError, require};
use crate::auth::{Principal, Role};
use crate::domain::{
    Approval, Channel, Decision, DecisionId, DecisionStatus, EventKind, GroupRule, IdempotencyKey,
    RefusedAttempt, Resolution, ResolutionOutcome, apply,
};
use crate::domain::{DecisionEvent, FailureReason, RuleResult, SourceStatus, Tier, Verdict};
use crate::policy::EvalInput;
use crate::store::MAX_PAGE_SIZE;

/// Told about every review as it opens, while it waits and when it ends: notifications and
/// review routes (ServiceNow, Jira) hang off this one hook so the gate's logic stays readable.
/// Methods must return quickly (spawn any I/O) and cannot fail the operation that called them.
pub trait ReviewObserver: Send + Sync {
    /// A check stored a new pending decision.
    fn review_opened(&self, decision: &Decision);
    /// A pending decision became final (approved, rejected, expired, canceled).
    fn review_resolved(&self, decision: &Decision);
    /// A pending review is still waiting and its deadline is within the longest
    /// `reminder_window` of the observers; called on each expiry sweep by the lease holder.
    fn review_waiting(&self, _decision: &Decision) {}
    /// How long before a review's deadline this observer wants `review_waiting` calls (zero:
    /// none). The sweeper reads only the pending reviews due within the longest window, so
    /// reviews far from their deadline cost it nothing.
    fn reminder_window(&self) -> Duration {
        Duration::ZERO
    }
    /// A check stored a new decision (final or pending); called once, by the replica that
    /// stored it, never for a replayed answer.
    fn check_decided(&self, _decision: &Decision) {}
}

/// What an approver decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewAnswer {
    Approve,
    Reject,
}

impl ReviewAnswer {
    /// Parses `approve` / `reject` (what the APIs accept).
    pub fn parse(s: &str) -> Result<Self, crate::domain::ValidationError> {
        match s.trim() {
            "approve" | "approved" => Ok(ReviewAnswer::Approve),
            "reject" | "rejected" => Ok(ReviewAnswer::Reject),
            other => Err(crate::domain::ValidationError::new(
                "resolution",
                format!("unknown resolution `{other}`"),
                "use `approve` or `reject`",
            )),
        }
    }
}

impl Gate {
    /// Re-evaluates a decision at the moment of its approval: the rules that passed when the
    /// review opened but fail now (the change window closed, a freeze began, evidence went
    /// stale). They go into the `resolved` event, and the approved decision terminates on them.
    fn newly_blocking(&self, d: &Decision, now: DateTime<Utc>) -> Vec<RuleResult> {
        let unavailable: BTreeMap<String, (FailureReason, String)> = d
            .evidence
            .sources
            .iter()
            .filter(|s| s.status == SourceStatus::Unavailable)
            .map(|s| {
                (
                    s.name.clone(),
                    (
                        s.reason.unwrap_or(FailureReason::BadResponse),
                        s.message.clone(),
                    ),
                )
            })
            .collect();
        let policies = self.policies.current();
        // The environment was declared when the check was made; if it no longer is, the
        // strictest tier re-checks the most rules.
        let tier = self
            .options
            .environments
            .tier_of(&d.request.environment)
            .unwrap_or(Tier::Production);
        let evaluation = policies.evaluate(&EvalInput {
            subject: d.request.subject(tier),
            document: &d.evidence.document,
            unavailable: &unavailable,
            now,
            no_rules_verdict: self.options.no_rules_verdict,
        });
        let was_clear = |rule: &str| {
            d.rule_results
                .iter()
                .any(|r| r.rule_id == rule && r.effect == Verdict::Continue)
        };
        evaluation
            .results
            .into_iter()
            .filter(|r| r.effect != Verdict::Continue && was_clear(&r.rule_id))
            .collect()
    }
}

/// The lease that makes one replica at a time sweep for expired reviews.
const EXPIRY_JOB: &str = "review-expiry";

/// Longest review comment kept; the rest is cut.
const MAX_COMMENT: usize = 2000;

fn comment_of(text: &str) -> String {
    text.chars().take(MAX_COMMENT).collect()
}

/// The resolution `by` (for `principal`) records through `channel` at `now`.
pub(super) fn resolution(
    outcome: ResolutionOutcome,
    by: &str,
    principal: &str,
    comment: &str,
    channel: Channel,
    now: DateTime<Utc>,
) -> Resolution {
    Resolution {
        outcome,
        by: by.to_string(),
        principal: Some(principal.to_string()),
        at: now,
        comment: comment_of(comment),
        channel,
    }
}

/// A `resolved` event without group rule or re-check.
pub(super) fn resolved(resolution: Resolution) -> EventKind {
    EventKind::Resolved {
        resolution,
        groups: None,
        newly_blocking: Vec::new(),
    }
}

impl Gate {
    /// Approves or rejects a decision awaiting manual review. A refusal (separation of duties,
    /// approver groups, a repeated approval) is recorded on the decision and logged.
    pub async fn resolve_review(
        self: &Arc<Self>,
        principal: &Principal,
        id: &DecisionId,
        answer: ReviewAnswer,
        comment: &str,
        channel: Channel,
    ) -> Result<Decision, GateError> {
        require(principal, &[Role::Approver])?;
        let recorded = self
            .record(id, |current, now| {
                let policy = self
                    .options
                    .approval_policy_for(current.request.environment.as_str());
                let groups = (!policy.groups.is_empty()).then(|| GroupRule {
                    any_of: policy.groups.clone(),
                    member_of: principal.groups().to_vec(),
                });
                let mine = |outcome| {
                    resolution(
                        outcome,
                        &principal.name,
                        &principal.name,
                        comment,
                        channel,
                        now,
                    )
                };
                match answer {
                    ReviewAnswer::Reject => Ok(vec![EventKind::Resolved {
                        resolution: mine(ResolutionOutcome::Rejected),
                        groups,
                        newly_blocking: Vec::new(),
                    }]),
                    ReviewAnswer::Approve => {
                        let approval = EventKind::ApprovalRecorded {
                            approval: Approval {
                                by: principal.name.clone(),
                                principal: Some(principal.name.clone()),
                                at: now,
                                comment: comment_of(comment),
                                channel,
                            },
                            required: policy.required,
                            groups,
                        };
                        let after = apply(
                            Some(current),
                            &DecisionEvent::new(id.clone(), now, approval.clone()),
                            now,
                        )?;
                        let mut changes = vec![approval];
                        // The approval that completes the quorum ends the review.
                        if after.approvals.len() >= policy.required as usize {
                            changes.push(EventKind::Resolved {
                                resolution: mine(ResolutionOutcome::Approved),
                                groups: None,
                                newly_blocking: self.newly_blocking(&after, now),
                            });
                        }
                        Ok(changes)
                    }
                }
            })
            .await;
        match recorded {
            Ok(Recorded::Applied(d)) => Ok(*d),
            Ok(Recorded::Refused { refusal, .. }) => {
                let e = refusal_error(id, refusal);
                self.record_refusal(id, &principal.name, &principal.name, channel, &e)
                    .await;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Records a refused review attempt on the decision (best effort: a failure to record is
    /// logged, never turned into another error) and in the log. Other errors are ignored.
    pub(super) async fn record_refusal(
        &self,
        id: &DecisionId,
        by: &str,
        principal: &str,
        channel: Channel,
        error: &GateError,
    ) {
        if !matches!(
            error,
            GateError::SeparationOfDuties { .. }
                | GateError::NotInApproverGroup { .. }
                | GateError::AlreadyApproved { .. }
        ) {
            return;
        }
        let attempt = RefusedAttempt {
            by: by.to_string(),
            principal: Some(principal.to_string()),
            at: self.clock.now(),
            channel,
            reason_code: error.reason_code().to_string(),
            reason: error.to_string(),
        };
        warn!(
            check.id = id.as_str(),
            by,
            channel = channel.as_str(),
            reason_code = attempt.reason_code.as_str(),
            "review attempt refused: {}",
            attempt.reason
        );
        self.push_attempt(id, attempt, false).await;
    }

    /// Records `attempt` in a pending decision's `refused_attempts` (best effort, at most
    /// `MAX_REFUSALS`; with `dedupe`, the same reason twice in a row is kept once, so a poller
    /// seeing the same refusal every round does not fill the list).
    pub(super) async fn push_attempt(
        &self,
        id: &DecisionId,
        attempt: RefusedAttempt,
        dedupe: bool,
    ) {
        let recorded = self
            .record(id, |_, now| {
                let mut attempt = attempt.clone();
                attempt.at = now;
                Ok(vec![EventKind::RefusalRecorded { attempt, dedupe }])
            })
            .await;
        // A refusal (no longer pending, full, repeated) means there is nothing to keep.
        if let Err(e) = recorded {
            warn!(
                check.id = id.as_str(),
                "cannot record a refused review attempt: {e}"
            );
        }
    }

    /// Withdraws the pending decision made for `key` (the caller gave up, e.g. a Spinnaker
    /// pipeline was canceled). Idempotent: an unknown key or a decision that is already final is
    /// left alone and returned as it is.
    pub async fn cancel_pending(
        self: &Arc<Self>,
        principal: &Principal,
        key: &IdempotencyKey,
        reason: &str,
        channel: Channel,
    ) -> Result<Option<Decision>, GateError> {
        require(principal, &[Role::Pipeline])?;
        let Some((current, _)) = self.store.find_by_idempotency_key(key).await? else {
            return Ok(None);
        };
        // Only who asked (or an approver, who could reject it anyway) may withdraw a check.
        if current.principal.as_deref() != Some(principal.name.as_str())
            && !principal.has_any(&[Role::Approver])
        {
            return Err(GateError::NotOwner {
                principal: principal.name.clone(),
                id: current.id,
                action: "cancel",
            });
        }
        if current.status == DecisionStatus::Final {
            return Ok(Some(current));
        }
        let recorded = self
            .record(&current.id, |_, now| {
                Ok(vec![resolved(resolution(
                    ResolutionOutcome::Canceled,
                    &principal.name,
                    &principal.name,
                    reason,
                    channel,
                    now,
                ))])
            })
            .await?;
        // Someone resolved it first: cancel is then a no-op by contract.
        Ok(Some(match recorded {
            Recorded::Applied(d) => *d,
            Recorded::Refused { current, .. } => *current,
        }))
    }

    /// Expires `d` if it is a pending review past its deadline; returns the decision as it now
    /// stands. Losing the race to another resolution is fine: the winner's version is returned.
    pub(super) async fn expire_if_due(&self, d: Decision) -> Result<Decision, GateError> {
        let due = d.status == DecisionStatus::Pending
            && d.review_deadline
                .is_some_and(|deadline| deadline <= self.clock.now());
        if !due {
            return Ok(d);
        }
        let recorded = self
            .record(&d.id, |_, now| {
                Ok(vec![resolved(resolution(
                    ResolutionOutcome::Expired,
                    "portcullis",
                    "portcullis",
                    "nobody resolved the review before its deadline",
                    Channel::Expiry,
                    now,
                ))])
            })
            .await?;
        Ok(match recorded {
            Recorded::Applied(d) => *d,
            Recorded::Refused { current, .. } => *current,
        })
    }

    /// Expires every pending review past its deadline and tells the observers about those
    /// still waiting within their reminder window; returns how many expired. Called by the
    /// sweeper while it holds the `review-expiry` lease, so one replica does it at a time.
    ///
    /// Reads only the reviews due by now plus the longest reminder window (the store's index
    /// of pending deadlines): a sweep over 100,000 pending reviews that are not due decodes
    /// none of them.
    pub async fn expire_due_reviews(&self) -> Result<usize, GateError> {
        let window = self
            .observers
            .iter()
            .map(|o| o.reminder_window())
            .max()
            .unwrap_or(Duration::ZERO);
        let now = self.clock.now();
        // A window too long to add is "every deadline", not an error.
        let before = chrono::Duration::from_std(window)
            .ok()
            .and_then(|w| now.checked_add_signed(w))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut expired = 0;
        let mut after = None;
        loop {
            let page = self
                .store
                .pending_due(before, after.as_ref(), MAX_PAGE_SIZE)
                .await?;
            for d in page.decisions {
                let was_pending = d.status == DecisionStatus::Pending;
                let stands = self.expire_if_due(d).await?;
                if stands.status == DecisionStatus::Pending {
                    self.observers
                        .iter()
                        .for_each(|o| o.review_waiting(&stands));
                }
                if was_pending
                    && stands
                        .resolution
                        .as_ref()
                        .is_some_and(|r| r.outcome == ResolutionOutcome::Expired)
                {
                    expired += 1;
                }
            }
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(expired)
    }

    /// Runs the expiry sweep every `interval` until `stop` is cancelled. Each round first claims
    /// the `review-expiry` lease, so N replicas neither duplicate nor drop the work, and a
    /// replica that died is replaced once its lease lapses.
    pub async fn run_expiry_sweeper(
        self: Arc<Self>,
        holder: String,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let job = super::jobs::Job::every(EXPIRY_JOB, holder, interval);
        self.run_job(job, stop, |gate| async move {
            match gate.expire_due_reviews().await? {
                0 => {}
                n => info!(expired = n, "expired reviews past their deadline"),
            }
            Ok(())
        })
        .await;
    }
}
