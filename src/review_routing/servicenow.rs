//! Reviews routed to ServiceNow: when a decision in a routed environment goes pending, a normal
//! change request is opened for it (or the change the check names is attached), and the review
//! follows that change's **approval** — `approved` → approve, `rejected` → reject — by polling
//! with backoff in a background task that one replica at a time runs under the
//! `review-servicenow` lease, and on an authenticated callback from ServiceNow.
//!
//! Polling and the callback run the same code (`follow`): read the change from ServiceNow (the
//! callback body is a hint, never the authority), name the approver from the approval history,
//! and resolve through `Gate::resolve_by_channel` with channel `servicenow`; whichever comes
//! second finds the decision final and does nothing.
//!
//! ```yaml
//! review:
//!   routes:
//!     prod:
//!       servicenow:
//!         adapter: servicenow          # a `kind: servicenow` adapter: its base_url and auth
//!         assignment_group: CAB Approval
//!         cmdb_ci: 0c1b…               # optional CI sys_id for the opened change
//!         attach: true                 # use a change named in the check instead of opening one
//!         planned_window: 4h           # the opened change's planned window, from now
//!         poll_interval: 10s           # first poll; doubles up to max_poll_interval
//!         max_poll_interval: 5m
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    Backoff, FollowError, ReviewRoute, RoutingError, Wake, describe, route_adapter, run_claimed,
    ticket_for,
};
use crate::adapters::servicenow::{ChangeDraft, ChangeStatus};
use crate::adapters::{AdapterConfig, ServiceNowAdapter};
use crate::auth::{Principal, Role};
use crate::clock::Clock;
use crate::domain::{Channel, Decision, DecisionId, ReviewTicket};
use crate::gate::{Gate, GateError, ReviewAnswer, ReviewObserver};

/// The channel (and ticket system) of ServiceNow resolutions.
pub const CHANNEL: &str = "servicenow";

/// The lease under which one replica at a time opens changes and polls them.
const JOB: &str = "review-servicenow";

/// Bound on one round of ServiceNow calls for one review.
const CALL_DEADLINE: Duration = Duration::from_secs(15);

/// A review decided by a ServiceNow change's approval.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowRoute {
    /// The `kind: servicenow` adapter whose instance and credentials are used.
    #[serde(default = "default_adapter")]
    pub adapter: String,
    pub assignment_group: Option<String>,
    /// The configuration item's sys_id for opened changes.
    pub cmdb_ci: Option<String>,
    /// Attach to the first ServiceNow change the check names rather than opening one.
    #[serde(default = "yes")]
    pub attach: bool,
    #[serde(default = "default_window", with = "humantime_serde")]
    pub planned_window: Duration,
    #[serde(default = "default_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(default = "default_max_poll", with = "humantime_serde")]
    pub max_poll_interval: Duration,
}

/// `reason_code` of an approval whose approver cannot be read.
pub const APPROVER_UNKNOWN: &str = "approver_unknown";

fn default_adapter() -> String {
    "servicenow".into()
}
fn yes() -> bool {
    true
}
fn default_window() -> Duration {
    Duration::from_secs(4 * 3600)
}
fn default_poll() -> Duration {
    Duration::from_secs(10)
}
fn default_max_poll() -> Duration {
    Duration::from_secs(300)
}

/// What one look at a routed review found.
#[derive(Debug)]
pub enum Followed {
    /// Still awaiting the change's approval.
    Waiting(ChangeStatus),
    /// Resolved now, or found already final.
    Resolved(Box<Decision>),
}

/// Opens and follows ServiceNow changes for routed reviews.
pub struct ServiceNowRouting {
    routes: BTreeMap<String, (ServiceNowRoute, Arc<ServiceNowAdapter>)>,
    public_url: Option<String>,
    wake: Arc<Notify>,
    polls: Backoff,
    follower: Principal,
}

impl std::fmt::Debug for ServiceNowRouting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNowRouting")
            .field("environments", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ServiceNowRouting {
    /// `None` when no environment routes reviews to ServiceNow.
    pub fn build(
        routes: &BTreeMap<String, ReviewRoute>,
        adapters: &[AdapterConfig],
        public_url: Option<String>,
        clock: &Arc<dyn Clock>,
    ) -> Result<Option<Self>, RoutingError> {
        let mut built = BTreeMap::new();
        for (environment, route) in routes {
            let Some(sn) = &route.servicenow else {
                continue;
            };
            if route.jira.is_some() {
                return Err(RoutingError::TwoSystems {
                    environment: environment.clone(),
                });
            }
            let adapter = route_adapter(
                environment,
                CHANNEL,
                &sn.adapter,
                adapters,
                |a| match a {
                    AdapterConfig::Servicenow(c) if c.name == sn.adapter => Some(c),
                    _ => None,
                },
                |c| ServiceNowAdapter::build(c, Arc::clone(clock)),
            )?;
            built.insert(environment.clone(), (sn.clone(), adapter));
        }
        if built.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            routes: built,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            wake: Arc::new(Notify::new()),
            polls: Backoff::default(),
            follower: Principal::new("servicenow-follower", vec![Role::Approver]),
        }))
    }

    /// The gate hook that wakes the follower when a review opens.
    pub fn observer(&self) -> Arc<dyn ReviewObserver> {
        Arc::new(Wake(Arc::clone(&self.wake)))
    }

    /// Opens changes for new routed reviews and polls open ones until `stop`, while this
    /// replica holds the `review-servicenow` lease.
    pub async fn run(self: Arc<Self>, gate: Arc<Gate>, holder: String, stop: CancellationToken) {
        let tick = self
            .routes
            .values()
            .map(|(r, _)| r.poll_interval)
            .min()
            .unwrap_or(Duration::from_secs(1));
        let wake = Arc::clone(&self.wake);
        run_claimed(gate, JOB, holder, tick, wake, stop, |gate| {
            let this = Arc::clone(&self);
            async move { this.round(&gate).await }
        })
        .await;
    }

    /// One pass over the pending reviews: open what has no change yet, poll what is due.
    pub async fn round(&self, gate: &Arc<Gate>) -> Result<(), GateError> {
        let pending = gate.pending_reviews().await?;
        self.polls.keep_only(&pending);
        for d in pending {
            let Some((route, adapter)) = self.routes.get(d.request.environment.as_str()) else {
                continue;
            };
            let Some(ticket) = ticket_for(&d, CHANNEL, "a ServiceNow change", || {
                self.open(gate, &d, route, adapter)
            })
            .await
            else {
                continue;
            };
            if !self.polls.due(&d.id) {
                continue;
            }
            match self
                .follow(gate, &self.follower, &d.id, &ticket, adapter)
                .await
            {
                Ok(Followed::Waiting(_)) => {
                    self.polls
                        .again(&d.id, route.poll_interval, route.max_poll_interval);
                }
                Err(e @ FollowError::System { .. }) => {
                    warn!(
                        check.id = d.id.as_str(),
                        number = ticket.number.as_str(),
                        "cannot read the review's change: {e}"
                    );
                    self.polls
                        .again(&d.id, route.poll_interval, route.max_poll_interval);
                }
                Ok(Followed::Resolved(_)) => self.polls.done(&d.id),
                Err(e) => {
                    // A refusal (separation of duties) stays refused: a person must decide.
                    warn!(
                        check.id = d.id.as_str(),
                        number = ticket.number.as_str(),
                        reason_code = e.reason_code(),
                        "the change's approval did not resolve the review: {e}"
                    );
                    self.polls.start(&d.id, route.max_poll_interval);
                }
            }
        }
        Ok(())
    }

    /// An inbound callback: ServiceNow says change `number` was decided. The change is read
    /// back from ServiceNow before anything is resolved. `Ok(None)`: no pending review waits on
    /// it (already resolved, or never routed) — a no-op.
    pub async fn callback(
        &self,
        gate: &Arc<Gate>,
        principal: &Principal,
        number: &str,
    ) -> Result<Option<Decision>, FollowError> {
        let Some(d) = gate
            .find_by_review_ticket(principal, CHANNEL, number)
            .await?
        else {
            return Ok(None);
        };
        let Some(ticket) = d.review_ticket.clone() else {
            return Ok(None);
        };
        let adapter = self
            .routes
            .get(d.request.environment.as_str())
            .map(|(_, a)| Arc::clone(a))
            .or_else(|| {
                self.routes
                    .values()
                    .find(|(r, _)| r.adapter == ticket.adapter)
                    .map(|(_, a)| Arc::clone(a))
            });
        let Some(adapter) = adapter else {
            return Ok(None);
        };
        match self
            .follow(gate, principal, &d.id, &ticket, &adapter)
            .await?
        {
            Followed::Resolved(d) => Ok(Some(*d)),
            Followed::Waiting(status) => Err(FollowError::NotDecided {
                number: status.number,
                approval: status.approval,
            }),
        }
    }

    /// Reads the change and resolves the review if its approval is final.
    async fn follow(
        &self,
        gate: &Arc<Gate>,
        principal: &Principal,
        id: &DecisionId,
        ticket: &ReviewTicket,
        adapter: &ServiceNowAdapter,
    ) -> Result<Followed, FollowError> {
        let deadline = Instant::now() + CALL_DEADLINE;
        let status = adapter
            .change_status(&ticket.id, deadline)
            .await
            .map_err(|e| FollowError::System {
                system: CHANNEL,
                message: e.to_string(),
            })?;
        let answer = match status.approval.as_str() {
            "approved" => ReviewAnswer::Approve,
            "rejected" => ReviewAnswer::Reject,
            _ => return Ok(Followed::Waiting(status)),
        };
        // Who decided, from the approval history. An approval whose approver cannot be read
        // does not approve: separation of duties could not see who it was. A rejection stands
        // whoever made it (recorded as `servicenow`).
        let unknown = match adapter
            .approver(&ticket.id, &status.approval, deadline)
            .await
        {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err("its approval history names no approver".to_string()),
            Err(e) => Err(format!("who approved it cannot be read ({e})")),
        };
        let (by, note) = match (unknown, answer) {
            (Ok(found), _) => found,
            (Err(why), ReviewAnswer::Approve) => {
                let reason = format!(
                    "ServiceNow change {} is approved, but {why}; the review stays pending until the approver can be read",
                    status.number
                );
                gate.note_unaccepted_resolution(id, Channel::Servicenow, APPROVER_UNKNOWN, &reason)
                    .await;
                return Ok(Followed::Waiting(status));
            }
            (Err(_), ReviewAnswer::Reject) => (CHANNEL.to_string(), String::new()),
        };
        let mut comment = format!("ServiceNow change {} {}", status.number, status.approval);
        if !note.trim().is_empty() {
            comment.push_str(": ");
            comment.push_str(note.trim());
        }
        let d = gate
            .resolve_by_channel(principal, id, answer, &by, &comment, Channel::Servicenow)
            .await?;
        Ok(Followed::Resolved(Box::new(d)))
    }

    /// Opens a change for `d` (or attaches to the one the check names) and records it.
    async fn open(
        &self,
        gate: &Arc<Gate>,
        d: &Decision,
        route: &ServiceNowRoute,
        adapter: &ServiceNowAdapter,
    ) -> Result<ReviewTicket, FollowError> {
        let deadline = Instant::now() + CALL_DEADLINE;
        // When ServiceNow itself asked (change-check), the review is that change's approval,
        // whatever `attach` says: opening another change for it would ask the CAB twice.
        let asked_by_servicenow = d.request.caller.kind == crate::domain::CallerKind::Servicenow;
        let named = d
            .request
            .change_refs
            .servicenow_changes
            .first()
            .map(|n| n.as_str().to_string())
            .filter(|_| route.attach || asked_by_servicenow);
        let (status, opened) = match named {
            Some(number) => (adapter.find_change(&number, deadline).await, false),
            None => (
                adapter
                    .open_change(&self.draft(d, route, gate.now()), deadline)
                    .await,
                true,
            ),
        };
        let status = status.map_err(|e| FollowError::System {
            system: CHANNEL,
            message: e.to_string(),
        })?;
        if !status.ignored.is_empty() {
            warn!(number = status.number.as_str(), ignored = ?status.ignored, "ServiceNow dropped fields of the opened change");
        }
        let ticket = ReviewTicket {
            system: CHANNEL.to_string(),
            adapter: route.adapter.clone(),
            number: status.number.clone(),
            id: status.sys_id.clone(),
            opened_by_gate: opened,
            at: gate.now(),
        };
        info!(
            check.id = d.id.as_str(),
            number = ticket.number.as_str(),
            opened,
            "review follows a ServiceNow change"
        );
        self.polls.start(&d.id, route.poll_interval);
        let stored = gate.attach_review_ticket(&d.id, ticket.clone()).await?;
        Ok(stored.review_ticket.unwrap_or(ticket))
    }

    fn draft(&self, d: &Decision, route: &ServiceNowRoute, now: DateTime<Utc>) -> ChangeDraft {
        let base = self.public_url.as_deref().unwrap_or("");
        let mut description = describe(d, base);
        description.push_str("Approving or rejecting this change resolves the review.");
        ChangeDraft {
            short_description: format!(
                "Deploy {} to {} (Portcullis review)",
                d.request.application, d.request.environment
            )
            .chars()
            .take(160)
            .collect(),
            description,
            assignment_group: route.assignment_group.clone(),
            cmdb_ci: route.cmdb_ci.clone(),
            start_date: now,
            end_date: now
                + chrono::Duration::from_std(route.planned_window)
                    .unwrap_or(chrono::Duration::hours(4)),
            correlation_id: d.id.to_string(),
        }
    }
}
