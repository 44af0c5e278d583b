//! Every change to a decision as a value: `DecisionEvent` (created, approval recorded, refusal
//! recorded, review ticket attached, resolved …) and the one pure function `apply` that turns a
//! decision and an event into the next decision, or into a typed `Refusal` saying why that
//! change may not happen. No store and no clock but the `now` passed in, so the same code
//! decides in the gate and replays in a verifier.
//!
//! Adding a kind of change is one `EventKind` variant and one arm of `apply`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{
    Approval, Decision, DecisionId, DecisionStatus, RefusedAttempt, Resolution, ResolutionOutcome,
    ReviewTicket, RuleResult, Verdict,
};

/// Refused attempts kept on one decision; later ones are only logged.
pub const MAX_REFUSALS: usize = 50;

/// One change to one decision, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionEvent {
    pub decision_id: DecisionId,
    /// When the gate made the change (its injected clock).
    pub at: DateTime<Utc>,
    pub change: EventKind,
}

impl DecisionEvent {
    pub fn new(decision_id: DecisionId, at: DateTime<Utc>, change: EventKind) -> Self {
        Self {
            decision_id,
            at,
            change,
        }
    }
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A check was decided: the whole decision as first stored (request, evidence and sources,
    /// rule results, verdict, policy version, the authenticated principal).
    Created { decision: Box<Decision> },
    /// A decision stored before decisions had events, recorded as it stood when it first
    /// changed afterwards (not as it was created: that was never recorded).
    Adopted { decision: Box<Decision> },
    /// One approver's approval of a pending review that needs `required` distinct approvers.
    ApprovalRecorded {
        approval: Approval,
        required: u32,
        /// The approver groups that may approve here, and the approver's own; absent when any
        /// approver may.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        groups: Option<GroupRule>,
    },
    /// A refused attempt to resolve the review, kept on the decision. With `dedupe`, the same
    /// reason twice in a row is kept once (a poller sees the same refusal every round).
    RefusalRecorded {
        attempt: RefusedAttempt,
        #[serde(default)]
        dedupe: bool,
    },
    /// The outside ticket (a ServiceNow change, a Jira issue) the review waits on.
    ReviewTicketAttached { ticket: ReviewTicket },
    /// The review ended (approved, rejected, expired, canceled).
    Resolved {
        resolution: Resolution,
        /// For a resolution that only some approver groups may make.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        groups: Option<GroupRule>,
        /// Rules that passed when the review opened but fail at approval time (re-evaluated by
        /// the gate when the approval lands): the approved decision terminates on them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        newly_blocking: Vec<RuleResult>,
    },
}

impl EventKind {
    /// The kind as stored next to the event (`created`, `approval_recorded` …).
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Created { .. } => "created",
            EventKind::Adopted { .. } => "adopted",
            EventKind::ApprovalRecorded { .. } => "approval_recorded",
            EventKind::RefusalRecorded { .. } => "refusal_recorded",
            EventKind::ReviewTicketAttached { .. } => "review_ticket_attached",
            EventKind::Resolved { .. } => "resolved",
        }
    }
}

/// Which approver groups may act, and which the actor belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRule {
    pub any_of: Vec<String>,
    pub member_of: Vec<String>,
}

impl GroupRule {
    fn admits(&self) -> bool {
        self.member_of.iter().any(|g| self.any_of.contains(g))
    }
}

/// Why an event may not apply to a decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("`{principal}` {why} and cannot approve it (separation of duties)")]
    SeparationOfDuties {
        principal: String,
        why: &'static str,
    },
    #[error("`{principal}` is not in an approver group for this environment (one of: {groups})")]
    NotInApproverGroup { principal: String, groups: String },
    #[error(
        "`{principal}` has already approved this review ({have} of {need} approvals): another approver is needed"
    )]
    AlreadyApproved {
        principal: String,
        have: usize,
        need: usize,
    },
    #[error("it was already {} by {by} at {}", outcome.as_str(), at.to_rfc3339())]
    AlreadyResolved {
        outcome: ResolutionOutcome,
        by: String,
        at: DateTime<Utc>,
    },
    #[error("it is final: it never awaited a review")]
    NeverPending,
    #[error("its review is not due to expire until {}", deadline.map_or_else(|| "never".to_string(), |d| d.to_rfc3339()))]
    NotYetDue { deadline: Option<DateTime<Utc>> },
    #[error("it already waits on a review ticket")]
    TicketAlreadyAttached,
    #[error("it already holds {MAX_REFUSALS} refused attempts")]
    TooManyRefusals,
    #[error("the same refusal is already the last one recorded")]
    RepeatedRefusal,
    #[error("it already exists")]
    AlreadyCreated,
    #[error("it does not exist yet")]
    NotCreated,
    #[error("the event is for decision `{event}`, not `{decision}`")]
    WrongDecision { event: String, decision: String },
}

impl Refusal {
    pub fn reason_code(&self) -> &'static str {
        match self {
            Refusal::SeparationOfDuties { .. } => "review.separation_of_duties",
            Refusal::NotInApproverGroup { .. } => "review.not_in_approver_group",
            Refusal::AlreadyApproved { .. } => "review.already_approved",
            Refusal::AlreadyResolved { .. } | Refusal::NeverPending => "review.conflict",
            Refusal::NotYetDue { .. } => "review.not_due",
            Refusal::TicketAlreadyAttached => "review.ticket_attached",
            Refusal::TooManyRefusals => "review.too_many_refusals",
            Refusal::RepeatedRefusal => "review.repeated_refusal",
            Refusal::AlreadyCreated => "decision.already_created",
            Refusal::NotCreated => "decision.not_created",
            Refusal::WrongDecision { .. } => "decision.wrong_event",
        }
    }
}

/// The decision after `event`, or why `event` may not happen to `decision` (`None`: nothing
/// recorded yet). `now` is the time the change is judged at (the event's own time on replay).
pub fn apply(
    decision: Option<&Decision>,
    event: &DecisionEvent,
    now: DateTime<Utc>,
) -> Result<Decision, Refusal> {
    let current = match (&event.change, decision) {
        (EventKind::Created { decision } | EventKind::Adopted { decision }, None) => {
            return if decision.id == event.decision_id {
                Ok(decision.as_ref().clone())
            } else {
                Err(Refusal::WrongDecision {
                    event: event.decision_id.to_string(),
                    decision: decision.id.to_string(),
                })
            };
        }
        (EventKind::Created { .. } | EventKind::Adopted { .. }, Some(_)) => {
            return Err(Refusal::AlreadyCreated);
        }
        (_, None) => return Err(Refusal::NotCreated),
        (_, Some(d)) if d.id != event.decision_id => {
            return Err(Refusal::WrongDecision {
                event: event.decision_id.to_string(),
                decision: d.id.to_string(),
            });
        }
        (_, Some(d)) => d,
    };
    let mut next = current.clone();
    match &event.change {
        EventKind::Created { .. } | EventKind::Adopted { .. } => {
            return Err(Refusal::AlreadyCreated);
        }
        EventKind::ApprovalRecorded {
            approval,
            required,
            groups,
        } => {
            if let Some(why) = current.conflict_of_duties(&approval.by) {
                return Err(Refusal::SeparationOfDuties {
                    principal: approval.by.clone(),
                    why,
                });
            }
            admitted(groups.as_ref(), &approval.by)?;
            pending(current)?;
            if current.approvals.iter().any(|a| a.by == approval.by) {
                return Err(Refusal::AlreadyApproved {
                    principal: approval.by.clone(),
                    have: current.approvals.len(),
                    need: *required as usize,
                });
            }
            next.approvals.push(approval.clone());
            let by: Vec<&str> = next.approvals.iter().map(|a| a.by.as_str()).collect();
            next.summary = format!(
                "manual review: {} of {} approvals ({})",
                next.approvals.len(),
                required,
                by.join(", ")
            );
        }
        EventKind::RefusalRecorded { attempt, dedupe } => {
            pending(current)?;
            if current.refused_attempts.len() >= MAX_REFUSALS {
                return Err(Refusal::TooManyRefusals);
            }
            let repeated = *dedupe
                && current.refused_attempts.last().is_some_and(|last| {
                    last.reason_code == attempt.reason_code && last.reason == attempt.reason
                });
            if repeated {
                return Err(Refusal::RepeatedRefusal);
            }
            next.refused_attempts.push(attempt.clone());
        }
        EventKind::ReviewTicketAttached { ticket } => {
            pending(current)?;
            if current.review_ticket.is_some() {
                return Err(Refusal::TicketAlreadyAttached);
            }
            next.review_ticket = Some(ticket.clone());
        }
        EventKind::Resolved {
            resolution,
            groups,
            newly_blocking,
        } => {
            admitted(groups.as_ref(), &resolution.by)?;
            pending(current)?;
            match resolution.outcome {
                ResolutionOutcome::Approved => {
                    if let Some(why) = current.conflict_of_duties(&resolution.by) {
                        return Err(Refusal::SeparationOfDuties {
                            principal: resolution.by.clone(),
                            why,
                        });
                    }
                }
                ResolutionOutcome::Expired => {
                    if current.review_deadline.is_none_or(|d| d > now) {
                        return Err(Refusal::NotYetDue {
                            deadline: current.review_deadline,
                        });
                    }
                }
                ResolutionOutcome::Rejected | ResolutionOutcome::Canceled => {}
            }
            resolve(&mut next, resolution, newly_blocking);
        }
    }
    Ok(next)
}

/// Every event of one decision applied in order, each judged at its own time: the state its
/// record implies. The first event must create it.
pub fn replay<'a>(
    events: impl IntoIterator<Item = &'a DecisionEvent>,
) -> Result<Decision, Refusal> {
    let mut state: Option<Decision> = None;
    for event in events {
        state = Some(apply(state.as_ref(), event, event.at)?);
    }
    state.ok_or(Refusal::NotCreated)
}

fn pending(d: &Decision) -> Result<(), Refusal> {
    if d.status == DecisionStatus::Pending {
        return Ok(());
    }
    Err(match &d.resolution {
        Some(r) => Refusal::AlreadyResolved {
            outcome: r.outcome,
            by: r.by.clone(),
            at: r.at,
        },
        None => Refusal::NeverPending,
    })
}

fn admitted(groups: Option<&GroupRule>, who: &str) -> Result<(), Refusal> {
    match groups {
        Some(rule) if !rule.any_of.is_empty() && !rule.admits() => {
            Err(Refusal::NotInApproverGroup {
                principal: who.to_string(),
                groups: rule.any_of.join(", "),
            })
        }
        _ => Ok(()),
    }
}

/// Ends the review on `next` as `resolution` says; an approval with rules that no longer hold
/// terminates on them, and the results show what was true at approval time.
fn resolve(next: &mut Decision, resolution: &Resolution, newly_blocking: &[RuleResult]) {
    let outcome = resolution.outcome;
    next.status = DecisionStatus::Final;
    next.verdict = outcome.verdict();
    next.decided_at = Some(resolution.at);
    next.summary = format!(
        "{} (review {} by {})",
        next.verdict,
        outcome.as_str(),
        resolution.by
    );
    next.resolution = Some(resolution.clone());
    if outcome != ResolutionOutcome::Approved || newly_blocking.is_empty() {
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
    for fresh in newly_blocking {
        if let Some(old) = next
            .rule_results
            .iter_mut()
            .find(|r| r.rule_id == fresh.rule_id)
        {
            *old = fresh.clone();
        }
    }
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
