//! Reviews routed to an outside system (a ServiceNow change, a Jira issue): the gate-side
//! operations the followers in `review_routing` use — record which ticket a review waits on,
//! find a review by its ticket, list what is pending, and resolve on the system's word.
//!
//! Resolution by a channel differs from an approver's API call in two ways: the outside
//! system's approval is the whole approval (the change process is the authority, so N-of-M
//! does not apply), and a second resolution through the channel is a no-op returning the
//! decision as it stands — polling and callbacks both report the same approval.

use std::sync::Arc;

use tracing::{info, warn};

use super::{Gate, GateError, ReviewAnswer, require};
use crate::auth::{Principal, Role};
use crate::domain::{
    Decision, DecisionId, DecisionStatus, RefusedAttempt, ResolutionOutcome, ReviewTicket,
};
use crate::store::{DecisionFilter, Lease, MAX_PAGE_SIZE, StoreError};

/// How often a write re-reads and retries after losing a race to another writer.
const CAS_ATTEMPTS: usize = 5;

impl Gate {
    /// Records the ticket a pending review waits on. Returns the decision as stored: unchanged
    /// if it is no longer pending or already has a ticket (the first one recorded wins).
    pub async fn attach_review_ticket(
        &self,
        id: &DecisionId,
        ticket: ReviewTicket,
    ) -> Result<Decision, GateError> {
        for _ in 0..CAS_ATTEMPTS {
            let current = self
                .store
                .get_decision(id)
                .await?
                .ok_or_else(|| GateError::NotFound(id.clone()))?;
            if current.status != DecisionStatus::Pending || current.review_ticket.is_some() {
                return Ok(current);
            }
            let mut next = current.clone();
            next.review_ticket = Some(ticket.clone());
            if self.store.replace_decision(&current, &next).await? {
                info!(
                    check.id = next.id.as_str(),
                    system = ticket.system.as_str(),
                    number = ticket.number.as_str(),
                    opened = ticket.opened_by_gate,
                    "review routed"
                );
                self.updates.publish(&next);
                return Ok(next);
            }
        }
        Err(GateError::Conflict {
            id: id.clone(),
            message: "it kept changing while its review ticket was being recorded".into(),
        })
    }

    /// Every pending decision, oldest pages last (as the store lists them).
    pub async fn pending_reviews(&self) -> Result<Vec<Decision>, GateError> {
        let filter = DecisionFilter {
            status: Some(DecisionStatus::Pending),
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .store
                .list_decisions(&filter, MAX_PAGE_SIZE, token.as_deref())
                .await?;
            out.extend(
                page.decisions
                    .into_iter()
                    .filter(|d| d.status == DecisionStatus::Pending),
            );
            match page.next_page_token {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// The pending review waiting on ticket `number` (or id) of `system`, if any (`principal` must be
    /// allowed to read decisions).
    pub async fn find_by_review_ticket(
        &self,
        principal: &Principal,
        system: &str,
        number: &str,
    ) -> Result<Option<Decision>, GateError> {
        require(principal, super::READERS)?;
        Ok(self.pending_reviews().await?.into_iter().find(|d| {
            d.review_ticket.as_ref().is_some_and(|t| {
                t.system == system && (t.number.eq_ignore_ascii_case(number) || t.id == number)
            })
        }))
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
        channel: &str,
    ) -> Result<Decision, GateError> {
        require(principal, &[Role::Approver, Role::Pipeline])?;
        let outcome = match answer {
            ReviewAnswer::Approve => ResolutionOutcome::Approved,
            ReviewAnswer::Reject => ResolutionOutcome::Rejected,
        };
        for _ in 0..CAS_ATTEMPTS {
            let current = self
                .store
                .get_decision(id)
                .await?
                .ok_or_else(|| GateError::NotFound(id.clone()))?;
            if current.status != DecisionStatus::Pending {
                return Ok(current);
            }
            if let (ReviewAnswer::Approve, Some(why)) =
                (answer, super::review::conflict_of_duties(&current, by))
            {
                let refused = GateError::SeparationOfDuties {
                    principal: by.to_string(),
                    why,
                };
                self.record_refusal(id, by, &principal.name, channel, &refused)
                    .await;
                return Err(refused);
            }
            let actor = super::review::Actor {
                by,
                principal: &principal.name,
            };
            match self.finish(current, outcome, actor, comment, channel).await {
                Err(GateError::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(GateError::Conflict {
            id: id.clone(),
            message: "it kept changing while this resolution was being written".into(),
        })
    }

    /// Records on a pending decision that its outside channel decided but the decision cannot
    /// be accepted yet (`reason_code` says why, e.g. `approver_unknown`), so the reason is
    /// visible in `refused_attempts` while the review stays pending. Best effort.
    pub async fn note_unaccepted_resolution(
        &self,
        id: &DecisionId,
        channel: &str,
        reason_code: &str,
        reason: &str,
    ) {
        warn!(
            check.id = id.as_str(),
            channel, reason_code, "outside resolution not accepted: {reason}"
        );
        let attempt = RefusedAttempt {
            by: channel.to_string(),
            // The channel's follower noticed it; no caller's principal is involved.
            principal: None,
            at: chrono::Utc::now(),
            channel: channel.to_string(),
            reason_code: reason_code.to_string(),
            reason: reason.to_string(),
        };
        self.push_attempt(id, attempt, true).await;
    }

    /// Claims (or renews) the named background job for `holder`; `None` when another replica
    /// holds it.
    pub async fn claim_job(
        &self,
        job: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<Lease>, StoreError> {
        self.store.try_claim(job, holder, ttl).await
    }

    /// Gives a held job up (at shutdown), so another replica need not wait for it to lapse.
    pub async fn release_job(&self, lease: &Lease) -> Result<bool, StoreError> {
        self.store.release(lease).await
    }
}
