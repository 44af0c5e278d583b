//! Ending a pending decision: an approver approves or rejects it, or its caller withdraws it.
//! Each ending is a compare-and-set on the stored status, so of two racing resolutions (two
//! approvers, two replicas, an approval and a cancel) exactly one wins and the other gets a
//! conflict.
//!
//! Separation of duties: whoever triggered the deploy cannot approve it.

use std::sync::Arc;

use chrono::Utc;
use tracing::info;

use super::{Gate, GateError, require};
use crate::auth::{Principal, Role};
use crate::domain::{
    Decision, DecisionId, DecisionStatus, IdempotencyKey, Resolution, ResolutionOutcome,
};

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

/// Longest review comment kept; the rest is cut.
const MAX_COMMENT: usize = 2000;

impl Gate {
    /// Approves or rejects a decision awaiting manual review.
    pub async fn resolve_review(
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
        if answer == ReviewAnswer::Approve
            && current.request.triggered_by.as_deref() == Some(principal.name.as_str())
        {
            return Err(GateError::SeparationOfDuties {
                principal: principal.name.clone(),
            });
        }
        let outcome = match answer {
            ReviewAnswer::Approve => ResolutionOutcome::Approved,
            ReviewAnswer::Reject => ResolutionOutcome::Rejected,
        };
        self.finish(current, outcome, &principal.name, comment, channel)
            .await
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
        if current.status == DecisionStatus::Final {
            return Ok(Some(current));
        }
        match self
            .finish(
                current,
                ResolutionOutcome::Canceled,
                &principal.name,
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

    async fn finish(
        &self,
        current: Decision,
        outcome: ResolutionOutcome,
        by: &str,
        comment: &str,
        channel: &str,
    ) -> Result<Decision, GateError> {
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
        let mut next = current.clone();
        next.status = DecisionStatus::Final;
        next.verdict = outcome.verdict();
        next.decided_at = Some(now);
        next.summary = format!("{} (review {} by {by})", next.verdict, outcome.as_str());
        next.resolution = Some(Resolution {
            outcome,
            by: by.to_string(),
            at: now,
            comment: comment.chars().take(MAX_COMMENT).collect(),
            channel: channel.to_string(),
        });
        if !self
            .store
            .update_decision(&next, DecisionStatus::Pending)
            .await?
        {
            let latest = self.store.get_decision(&current.id).await?;
            return Err(GateError::Conflict {
                id: current.id,
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
        Ok(next)
    }
}
