//! Ending a pending decision: an approver approves or rejects it, or its caller withdraws it.
//! Each ending is a compare-and-set on the stored status, so of two racing resolutions (two
//! approvers, two replicas, an approval and a cancel) exactly one wins and the other gets a
//! conflict.
//!
//! Separation of duties: whoever triggered the deploy, or (where known) wrote a commit in it,
//! cannot approve it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tracing::{info, warn};

use super::{Gate, GateError, require};
use crate::auth::{Principal, Role};
use crate::domain::{
    Approval, Decision, DecisionId, DecisionStatus, IdempotencyKey, RefusedAttempt, Resolution,
    ResolutionOutcome,
};
use crate::domain::{FailureReason, RuleResult, SourceStatus, Tier, Verdict};
use crate::policy::EvalInput;
use crate::store::{DecisionFilter, MAX_PAGE_SIZE};

/// Told about every review as it opens, while it waits and when it ends: notifications and
/// review routes (ServiceNow, Jira) hang off this one hook so the gate's logic stays readable.
/// Methods must return quickly (spawn any I/O) and cannot fail the operation that called them.
pub trait ReviewObserver: Send + Sync {
    /// A check stored a new pending decision.
    fn review_opened(&self, decision: &Decision);
    /// A pending decision became final (approved, rejected, expired, canceled).
    fn review_resolved(&self, decision: &Decision);
    /// A pending review is still waiting; called on each expiry sweep by the lease holder.
    fn review_waiting(&self, _decision: &Decision) {}
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
    /// Re-evaluates an approved decision at the moment of approval: a rule that passed when the
    /// review opened but fails now (the change window closed, a freeze began, evidence went
    /// stale) still stops the deploy, and the answer says which and why. The approval is recorded
    /// either way.
    fn recheck_on_resume(&self, next: &mut Decision, now: chrono::DateTime<Utc>) {
        let unavailable: BTreeMap<String, (FailureReason, String)> = next
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
            .tier_of(&next.request.environment)
            .unwrap_or(Tier::Production);
        let evaluation = policies.evaluate(&EvalInput {
            subject: next.request.subject(tier),
            document: &next.evidence.document,
            unavailable: &unavailable,
            now,
            no_rules_verdict: self.options.no_rules_verdict,
        });
        let was_clear = |rule: &str| {
            next.rule_results
                .iter()
                .any(|r| r.rule_id == rule && r.effect == Verdict::Continue)
        };
        let newly_blocking: Vec<RuleResult> = evaluation
            .results
            .iter()
            .filter(|r| r.effect != Verdict::Continue && was_clear(&r.rule_id))
            .cloned()
            .collect();
        if newly_blocking.is_empty() {
            return;
        }
        let names: Vec<&str> = newly_blocking.iter().map(|r| r.rule_id.as_str()).collect();
        next.verdict = Verdict::Terminate;
        next.summary = format!(
            "terminate: approved, but {} no longer holds at approval time ({})",
            names.join(", "),
            newly_blocking
                .iter()
                .map(|r| r.reason.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
        // The results now show what was true at approval time.
        for fresh in newly_blocking {
            if let Some(old) = next
                .rule_results
                .iter_mut()
                .find(|r| r.rule_id == fresh.rule_id)
            {
                *old = fresh;
            }
        }
    }
}

/// Why `who` may not approve `d`, if they may not: they triggered the deploy, or (where the
/// caller said who wrote the commits) authored a commit in it.
pub(super) fn conflict_of_duties(d: &Decision, who: &str) -> Option<&'static str> {
    if d.request.triggered_by.as_deref() == Some(who) {
        Some("triggered this deploy")
    } else if d
        .request
        .sources
        .iter()
        .any(|s| s.author.as_deref() == Some(who))
    {
        Some("authored a commit in this deploy")
    } else {
        None
    }
}

/// Who ends a review: `by` is the person or system recorded as resolving it, `principal` the
/// authenticated principal that caused it (the same for an API call; the relaying token or
/// follower for an outside channel).
#[derive(Debug, Clone, Copy)]
pub(super) struct Actor<'a> {
    pub(super) by: &'a str,
    pub(super) principal: &'a str,
}

impl<'a> Actor<'a> {
    pub(super) fn me(principal: &'a Principal) -> Self {
        Self {
            by: &principal.name,
            principal: &principal.name,
        }
    }

    /// The gate itself (expiry).
    pub(super) fn me_gate() -> Self {
        Self {
            by: "portcullis",
            principal: "portcullis",
        }
    }
}

/// The lease that makes one replica at a time sweep for expired reviews.
const EXPIRY_JOB: &str = "review-expiry";

/// How often one resolution re-reads and retries after losing a race to another writer.
const CAS_ATTEMPTS: usize = 5;

/// Refused attempts kept on one decision; later ones are only logged.
const MAX_REFUSALS: usize = 50;

/// Longest review comment kept; the rest is cut.
const MAX_COMMENT: usize = 2000;

impl Gate {
    /// Approves or rejects a decision awaiting manual review. A refusal (separation of duties,
    /// approver groups, a repeated approval) is recorded on the decision and logged.
    pub async fn resolve_review(
        self: &Arc<Self>,
        principal: &Principal,
        id: &DecisionId,
        answer: ReviewAnswer,
        comment: &str,
        channel: &str,
    ) -> Result<Decision, GateError> {
        let result = self
            .resolve_review_once(principal, id, answer, comment, channel)
            .await;
        if let Err(e) = &result {
            self.record_refusal(id, &principal.name, &principal.name, channel, e)
                .await;
        }
        result
    }

    /// Records a refused review attempt on the decision (best effort: a failure to record is
    /// logged, never turned into another error) and in the log. Other errors are ignored.
    pub(super) async fn record_refusal(
        &self,
        id: &DecisionId,
        by: &str,
        principal: &str,
        channel: &str,
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
            at: Utc::now(),
            channel: channel.to_string(),
            reason_code: error.reason_code().to_string(),
            reason: error.to_string(),
        };
        warn!(
            check.id = id.as_str(),
            by,
            channel,
            reason_code = attempt.reason_code.as_str(),
            "review attempt refused: {}",
            attempt.reason
        );
        self.push_attempt(id, attempt, false).await;
    }

    /// Appends `attempt` to a pending decision's `refused_attempts` by compare-and-set (best
    /// effort, at most `MAX_REFUSALS`); with `dedupe`, the same reason twice in a row is kept once,
    /// so a poller seeing the same refusal every round does not fill the list.
    pub(super) async fn push_attempt(
        &self,
        id: &DecisionId,
        attempt: RefusedAttempt,
        dedupe: bool,
    ) {
        for _ in 0..CAS_ATTEMPTS {
            let current = match self.store.get_decision(id).await {
                Ok(Some(d)) => d,
                Ok(None) => return,
                Err(e) => {
                    warn!(
                        check.id = id.as_str(),
                        "cannot record a refused review attempt: {e}"
                    );
                    return;
                }
            };
            let repeated = dedupe
                && current.refused_attempts.last().is_some_and(|last| {
                    last.reason_code == attempt.reason_code && last.reason == attempt.reason
                });
            if current.status != DecisionStatus::Pending
                || current.refused_attempts.len() >= MAX_REFUSALS
                || repeated
            {
                return;
            }
            let mut next = current.clone();
            next.refused_attempts.push(attempt.clone());
            match self.store.replace_decision(&current, &next).await {
                Ok(true) => {
                    self.updates.publish(&next);
                    return;
                }
                Ok(false) => {}
                Err(e) => {
                    warn!(
                        check.id = id.as_str(),
                        "cannot record a refused review attempt: {e}"
                    );
                    return;
                }
            }
        }
    }

    async fn resolve_review_once(
        self: &Arc<Self>,
        principal: &Principal,
        id: &DecisionId,
        answer: ReviewAnswer,
        comment: &str,
        channel: &str,
    ) -> Result<Decision, GateError> {
        require(principal, &[Role::Approver])?;
        let current = self
            .store
            .get_decision(id)
            .await?
            .ok_or_else(|| GateError::NotFound(id.clone()))?;
        if answer == ReviewAnswer::Approve {
            if let Some(why) = conflict_of_duties(&current, &principal.name) {
                return Err(GateError::SeparationOfDuties {
                    principal: principal.name.clone(),
                    why,
                });
            }
        }
        let policy = self
            .options
            .approval_policy_for(current.request.environment.as_str());
        if !policy.groups.is_empty() && !principal.in_any_group(&policy.groups) {
            return Err(GateError::NotInApproverGroup {
                principal: principal.name.clone(),
                groups: policy.groups.join(", "),
            });
        }
        let mut current = current;
        // Concurrent approvals of one review race on a compare-and-set of the whole decision;
        // the loser re-reads and tries again, so no approval is lost.
        for _ in 0..CAS_ATTEMPTS {
            let attempt = match answer {
                ReviewAnswer::Reject => {
                    self.finish(
                        current.clone(),
                        ResolutionOutcome::Rejected,
                        Actor::me(principal),
                        comment,
                        channel,
                    )
                    .await
                }
                ReviewAnswer::Approve => {
                    self.approve(&current, &policy, principal, comment, channel)
                        .await
                }
            };
            match attempt {
                Err(GateError::Conflict { .. }) => {
                    let latest = self
                        .store
                        .get_decision(id)
                        .await?
                        .ok_or_else(|| GateError::NotFound(id.clone()))?;
                    if latest.status != DecisionStatus::Pending {
                        // Someone else resolved it: report that, not a retry.
                        return self
                            .finish(
                                latest,
                                ResolutionOutcome::Rejected,
                                Actor::me(principal),
                                comment,
                                channel,
                            )
                            .await;
                    }
                    current = latest;
                }
                other => return other,
            }
        }
        Err(GateError::Conflict {
            id: id.clone(),
            message: "it kept changing while this approval was being written; try again".into(),
        })
    }

    /// Records one approval; the review ends approved once `policy.required` distinct
    /// approvers agree.
    async fn approve(
        &self,
        current: &Decision,
        policy: &super::ApprovalPolicy,
        principal: &Principal,
        comment: &str,
        channel: &str,
    ) -> Result<Decision, GateError> {
        if current.status != DecisionStatus::Pending {
            return self
                .finish(
                    current.clone(),
                    ResolutionOutcome::Approved,
                    Actor::me(principal),
                    comment,
                    channel,
                )
                .await;
        }
        if current.approvals.iter().any(|a| a.by == principal.name) {
            return Err(GateError::AlreadyApproved {
                principal: principal.name.clone(),
                have: current.approvals.len(),
                need: policy.required as usize,
            });
        }
        let mut next = current.clone();
        next.approvals.push(Approval {
            by: principal.name.clone(),
            principal: Some(principal.name.clone()),
            at: Utc::now(),
            comment: comment.chars().take(MAX_COMMENT).collect(),
            channel: channel.to_string(),
        });
        if next.approvals.len() >= policy.required as usize {
            // `finish` compares against `current`, so a concurrent change makes this a conflict.
            return self
                .finish_from(
                    current,
                    next,
                    ResolutionOutcome::Approved,
                    Actor::me(principal),
                    comment,
                    channel,
                )
                .await;
        }
        let by: Vec<&str> = next.approvals.iter().map(|a| a.by.as_str()).collect();
        next.summary = format!(
            "manual review: {} of {} approvals ({})",
            next.approvals.len(),
            policy.required,
            by.join(", ")
        );
        if !self.store.replace_decision(current, &next).await? {
            return Err(GateError::Conflict {
                id: current.id.clone(),
                message: "it changed while this approval was being written".into(),
            });
        }
        info!(
            check.id = next.id.as_str(),
            by = principal.name.as_str(),
            approvals = next.approvals.len(),
            required = policy.required,
            "review approval recorded"
        );
        self.updates.publish(&next);
        Ok(next)
    }

    /// Withdraws the pending decision made for `key` (the caller gave up, e.g. a Spinnaker
    /// pipeline was canceled). Idempotent: an unknown key or a decision that is already final is
    /// left alone and returned as it is.
    pub async fn cancel_pending(
        self: &Arc<Self>,
        principal: &Principal,
        key: &IdempotencyKey,
        reason: &str,
        channel: &str,
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
        match self
            .finish(
                current,
                ResolutionOutcome::Canceled,
                Actor::me(principal),
                reason,
                channel,
            )
            .await
        {
            Ok(d) => Ok(Some(d)),
            // Someone resolved it first; cancel is then a no-op by contract.
            Err(GateError::Conflict { .. }) => Ok(self
                .store
                .find_by_idempotency_key(key)
                .await?
                .map(|(d, _)| d)),
            Err(e) => Err(e),
        }
    }

    /// Expires `d` if it is a pending review past its deadline; returns the decision as it now
    /// stands. Losing the race to another resolution is fine: the winner's version is returned.
    pub(super) async fn expire_if_due(&self, d: Decision) -> Result<Decision, GateError> {
        let due = d.status == DecisionStatus::Pending
            && d.review_deadline
                .is_some_and(|deadline| deadline <= Utc::now());
        if !due {
            return Ok(d);
        }
        let id = d.id.clone();
        match self
            .finish(
                d,
                ResolutionOutcome::Expired,
                Actor::me_gate(),
                "nobody resolved the review before its deadline",
                "expiry",
            )
            .await
        {
            Ok(expired) => Ok(expired),
            Err(GateError::Conflict { .. }) => self
                .store
                .get_decision(&id)
                .await?
                .ok_or(GateError::NotFound(id)),
            Err(e) => Err(e),
        }
    }

    /// Expires every pending review past its deadline; returns how many. Called by the sweeper
    /// while it holds the `review-expiry` lease, so one replica does it at a time.
    pub async fn expire_due_reviews(&self) -> Result<usize, GateError> {
        let filter = DecisionFilter {
            status: Some(DecisionStatus::Pending),
            ..Default::default()
        };
        let mut expired = 0;
        let mut token: Option<String> = None;
        loop {
            let page = self
                .store
                .list_decisions(&filter, MAX_PAGE_SIZE, token.as_deref())
                .await?;
            for d in page.decisions {
                let was_pending = d.status == DecisionStatus::Pending;
                let after = self.expire_if_due(d).await?;
                if after.status == DecisionStatus::Pending {
                    self.observers.iter().for_each(|o| o.review_waiting(&after));
                }
                if was_pending
                    && after
                        .resolution
                        .as_ref()
                        .is_some_and(|r| r.outcome == ResolutionOutcome::Expired)
                {
                    expired += 1;
                }
            }
            match page.next_page_token {
                Some(t) => token = Some(t),
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
        // The lease outlives one round comfortably, and lapses soon after a holder dies.
        let ttl = interval.saturating_mul(3).max(Duration::from_secs(5));
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match self.store.try_claim(EXPIRY_JOB, &holder, ttl).await {
                Ok(Some(_lease)) => match self.expire_due_reviews().await {
                    Ok(0) => {}
                    Ok(n) => info!(expired = n, "expired reviews past their deadline"),
                    Err(e) => warn!(
                        reason_code = e.reason_code(),
                        "review expiry sweep failed: {e}"
                    ),
                },
                Ok(None) => {}
                Err(e) => warn!(
                    reason_code = e.reason_code(),
                    "cannot claim the review expiry lease: {e}"
                ),
            }
        }
    }

    pub(super) async fn finish(
        &self,
        current: Decision,
        outcome: ResolutionOutcome,
        by: Actor<'_>,
        comment: &str,
        channel: &str,
    ) -> Result<Decision, GateError> {
        let next = current.clone();
        self.finish_from(&current, next, outcome, by, comment, channel)
            .await
    }

    /// Ends the review: `next` (which may already carry an approval) becomes final with
    /// `outcome`, written only if the stored decision is still exactly `current`.
    async fn finish_from(
        &self,
        current: &Decision,
        next: Decision,
        outcome: ResolutionOutcome,
        actor: Actor<'_>,
        comment: &str,
        channel: &str,
    ) -> Result<Decision, GateError> {
        let by = actor.by;
        if current.status != DecisionStatus::Pending {
            return Err(GateError::Conflict {
                id: current.id.clone(),
                message: match &current.resolution {
                    Some(r) => format!(
                        "it was already {} by {} at {}",
                        r.outcome.as_str(),
                        r.by,
                        r.at.to_rfc3339()
                    ),
                    None => "it is final: it never awaited a review".to_string(),
                },
            });
        }
        let now = Utc::now();
        let mut next = next;
        next.status = DecisionStatus::Final;
        next.verdict = outcome.verdict();
        next.decided_at = Some(now);
        next.summary = format!("{} (review {} by {by})", next.verdict, outcome.as_str());
        next.resolution = Some(Resolution {
            outcome,
            by: by.to_string(),
            principal: Some(actor.principal.to_string()),
            at: now,
            comment: comment.chars().take(MAX_COMMENT).collect(),
            channel: channel.to_string(),
        });
        if outcome == ResolutionOutcome::Approved {
            self.recheck_on_resume(&mut next, now);
        }
        if !self.store.replace_decision(current, &next).await? {
            let latest = self.store.get_decision(&current.id).await?;
            return Err(GateError::Conflict {
                id: current.id.clone(),
                message: match latest.and_then(|d| d.resolution) {
                    Some(r) => format!("it was already {} by {}", r.outcome.as_str(), r.by),
                    None => "it changed while this resolution was being written".to_string(),
                },
            });
        }
        info!(
            check.id = next.id.as_str(),
            outcome = outcome.as_str(),
            by,
            channel,
            verdict = next.verdict.as_str(),
            "review resolved"
        );
        self.metrics.decision(next.verdict);
        self.updates.publish(&next);
        self.observers.iter().for_each(|o| o.review_resolved(&next));
        Ok(next)
    }
}
