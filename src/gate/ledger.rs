//! The gate's one write path for an existing decision: read it with its event count → ask the
//! caller which events to record → `domain::apply` them → append the events and store the new
//! decision in one transaction, conditional on the count read (compare-and-set) → on a lost
//! race re-read and try again, a bounded number of times → tell watchers, metrics and
//! observers. Every review operation (approve, reject, refuse, attach a ticket, resolve by a
//! channel, cancel, expire) is a short caller of `Gate::record`.

use chrono::{DateTime, Utc};
use tracing::info;

use super::{Gate, GateError};
use crate::domain::{Decision, DecisionEvent, DecisionId, EventKind, Refusal, apply};

/// How often one change re-reads and retries after losing a race to another writer.
const CAS_ATTEMPTS: usize = 5;

/// What became of a change.
#[derive(Debug)]
pub(super) enum Recorded {
    /// The events were recorded; the decision as it now stands.
    Applied(Box<Decision>),
    /// `apply` refused the change against the decision as it stands (`current`); nothing was
    /// written.
    Refused {
        current: Box<Decision>,
        refusal: Refusal,
    },
}

impl Gate {
    /// Records the events `plan` chooses for decision `id`. `plan` sees the decision as stored
    /// and the time of the change; it is called again after a lost race, with the winner's
    /// version. A refusal from `plan` or from `apply` ends it without a write.
    pub(super) async fn record<F>(
        &self,
        id: &DecisionId,
        mut plan: F,
    ) -> Result<Recorded, GateError>
    where
        F: FnMut(&Decision, DateTime<Utc>) -> Result<Vec<EventKind>, Refusal>,
    {
        for _ in 0..CAS_ATTEMPTS {
            let (current, count) = self
                .store
                .get_decision_versioned(id)
                .await?
                .ok_or_else(|| GateError::NotFound(id.clone()))?;
            let now = self.clock.now();
            let planned = plan(&current, now).and_then(|changes| {
                let mut events = Vec::with_capacity(changes.len() + 1);
                if count == 0 {
                    // Stored before decisions had events: record it as it stands first.
                    events.push(DecisionEvent::new(
                        id.clone(),
                        now,
                        EventKind::Adopted {
                            decision: Box::new(current.clone()),
                        },
                    ));
                }
                events.extend(
                    changes
                        .into_iter()
                        .map(|change| DecisionEvent::new(id.clone(), now, change)),
                );
                let mut next = current.clone();
                for event in &events {
                    let before =
                        (!matches!(event.change, EventKind::Adopted { .. })).then_some(&next);
                    next = apply(before, event, now)?;
                }
                Ok((events, next))
            });
            let (events, next) = match planned {
                Ok(planned) => planned,
                Err(refusal) => {
                    return Ok(Recorded::Refused {
                        current: Box::new(current),
                        refusal,
                    });
                }
            };
            if self.store.append_events(&next, count, &events).await? {
                self.recorded(&next, &events);
                return Ok(Recorded::Applied(Box::new(next)));
            }
        }
        Err(GateError::Conflict {
            id: id.clone(),
            message: "it kept changing while this change was being written; try again".into(),
        })
    }

    /// After a write: the log line per change, metrics, watchers and observers.
    fn recorded(&self, next: &Decision, events: &[DecisionEvent]) {
        for event in events {
            match &event.change {
                EventKind::ApprovalRecorded {
                    approval, required, ..
                } => info!(
                    check.id = next.id.as_str(),
                    by = approval.by.as_str(),
                    approvals = next.approvals.len(),
                    required,
                    "review approval recorded"
                ),
                EventKind::ReviewTicketAttached { ticket } => info!(
                    check.id = next.id.as_str(),
                    system = ticket.system.as_str(),
                    number = ticket.number.as_str(),
                    opened = ticket.opened_by_gate,
                    "review routed"
                ),
                EventKind::Resolved { resolution, .. } => {
                    info!(
                        check.id = next.id.as_str(),
                        outcome = resolution.outcome.as_str(),
                        by = resolution.by.as_str(),
                        channel = resolution.channel.as_str(),
                        verdict = next.verdict.as_str(),
                        "review resolved"
                    );
                    self.metrics.decision(next.verdict);
                }
                EventKind::Created { .. }
                | EventKind::Adopted { .. }
                | EventKind::RefusalRecorded { .. } => {}
            }
        }
        self.updates.publish(next);
        if events
            .iter()
            .any(|e| matches!(e.change, EventKind::Resolved { .. }))
        {
            self.observers.iter().for_each(|o| o.review_resolved(next));
        }
    }
}

/// The error a caller gets for a refused change to decision `id`.
pub(super) fn refusal_error(id: &DecisionId, refusal: Refusal) -> GateError {
    match refusal {
        Refusal::SeparationOfDuties { principal, why } => {
            GateError::SeparationOfDuties { principal, why }
        }
        Refusal::NotInApproverGroup { principal, groups } => {
            GateError::NotInApproverGroup { principal, groups }
        }
        Refusal::AlreadyApproved {
            principal,
            have,
            need,
        } => GateError::AlreadyApproved {
            principal,
            have,
            need,
        },
        other => GateError::Conflict {
            id: id.clone(),
            message: other.to_string(),
        },
    }
}
