//! Reviews routed to an outside system (a ServiceNow change, a Jira issue): the gate-side
//! operations the followers in `review_routing` use — record which ticket a review waits on,
//! find a review by its ticket, list what is pending (ids only), and resolve on the system's word.
//!
//! Resolution by a channel differs from an approver's API call in two ways: the outside
//! system's approval is the whole approval (the change process is the authority, so N-of-M
//! does not apply), and a second resolution through the channel is a no-op returning the
//! decision as it stands — polling and callbacks both report the same approval.

use std::sync::Arc;

use tracing::warn;

use super::ledger::{Recorded, refusal_error};
use super::review::{resolution, resolved};
use super::{Gate, GateError, ReviewAnswer, require};
use crate::auth::{Principal, Role};
use crate::domain::{
    Channel, Decision, DecisionId, DecisionStatus, EventKind, Refusal, RefusedAttempt,
    ResolutionOutcome, ReviewTicket,
};
use crate::store::{MAX_PAGE_SIZE, PendingReview};

impl Gate {
    /// Records the ticket a pending review waits on. Returns the decision as stored: unchanged
    /// if it is no longer pending or already has a ticket (the first one recorded wins).
    pub async fn attach_review_ticket(
        &self,
        id: &DecisionId,
        ticket: ReviewTicket,
    ) -> Result<Decision, GateError> {
        let recorded = self
            .record(id, |_, _| {
                Ok(vec![EventKind::ReviewTicketAttached {
                    ticket: ticket.clone(),
                }])
            })
            .await?;
        Ok(match recorded {
            Recorded::Applied(d) => *d,
            Recorded::Refused { current, .. } => *current,
        })
    }

    /// The pending reviews of `environment`, oldest first: ids and ticket systems, no bodies
    /// (the store's index of pending rows), so a follower decodes only the reviews it acts on.
    pub async fn pending_reviews_in(
        &self,
        environment: &str,
    ) -> Result<Vec<PendingReview>, GateError> {
        let mut out: Vec<PendingReview> = Vec::new();
        loop {
            let page = self
                .store
                .pending_in_environment(environment, out.last().map(|r| &r.id), MAX_PAGE_SIZE)
                .await?;
            let last_page = page.len() < MAX_PAGE_SIZE as usize;
            out.extend(page);
            if last_page {
                return Ok(out);
            }
        }
    }

    /// Decision `id` if it is still a pending review.
    pub async fn pending_review(&self, id: &DecisionId) -> Result<Option<Decision>, GateError> {
        Ok(self
            .store
            .get_decision(id)
            .await?
            .filter(|d| d.status == DecisionStatus::Pending))
    }

    /// The pending review waiting on ticket `number` (or id) of `system`, if any (`principal` must be
    /// allowed to read decisions): one indexed store lookup, whatever the number of pending reviews.
    pub async fn find_by_review_ticket(
        &self,
        principal: &Principal,
        system: &str,
        number: &str,
    ) -> Result<Option<Decision>, GateError> {
        require(principal, super::READERS)?;
        Ok(self.store.find_pending_by_ticket(system, number).await?)
    }

    /// Resolves a review on an outside system's word (`channel`, e.g. `servicenow`), recorded
    /// as resolved `by` the person that system names. Separation of duties still holds where
    /// `by` is known. Already final: a no-op that returns the decision as it stands.
    pub async fn resolve_by_channel(
        self: &Arc<Self>,
        principal: &Principal,
        id: &DecisionId,
        answer: ReviewAnswer,
        by: &str,
        comment: &str,
        channel: Channel,
    ) -> Result<Decision, GateError> {
        require(principal, &[Role::Approver, Role::Pipeline])?;
        let outcome = match answer {
            ReviewAnswer::Approve => ResolutionOutcome::Approved,
            ReviewAnswer::Reject => ResolutionOutcome::Rejected,
        };
        let recorded = self
            .record(id, |_, now| {
                Ok(vec![resolved(resolution(
                    outcome,
                    by,
                    &principal.name,
                    comment,
                    channel,
                    now,
                ))])
            })
            .await?;
        match recorded {
            Recorded::Applied(d) => Ok(*d),
            Recorded::Refused {
                refusal: refusal @ Refusal::SeparationOfDuties { .. },
                ..
            } => {
                let refused = refusal_error(id, refusal);
                self.record_refusal(id, by, &principal.name, channel, &refused)
                    .await;
                Err(refused)
            }
            // Already final (another report of the same resolution, or another channel won).
            Recorded::Refused { current, .. } => Ok(*current),
        }
    }

    /// Records on a pending decision that its outside channel decided but the decision cannot
    /// be accepted yet (`reason_code` says why, e.g. `approver_unknown`), so the reason is
    /// visible in `refused_attempts` while the review stays pending. Best effort.
    pub async fn note_unaccepted_resolution(
        &self,
        id: &DecisionId,
        channel: Channel,
        reason_code: &str,
        reason: &str,
    ) {
        warn!(
            check.id = id.as_str(),
            channel = channel.as_str(),
            reason_code,
            "outside resolution not accepted: {reason}"
        );
        let attempt = RefusedAttempt {
            by: channel.as_str().to_string(),
            // The channel's follower noticed it; no caller's principal is involved.
            principal: None,
            at: self.clock.now(),
            channel,
            reason_code: reason_code.to_string(),
            reason: reason.to_string(),
        };
        self.push_attempt(id, attempt, true).await;
    }
}
