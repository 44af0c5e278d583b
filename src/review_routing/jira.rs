//! Reviews routed to Jira: when a decision in a routed environment goes pending, the gate
//! creates an issue (ADF description on Cloud v3) with the failing rules, and the review ends
//! when the issue reaches one of the configured statuses — `approved_statuses` → approve,
//! `rejected_statuses` → reject — by polling with backoff under the `review-jira` lease, and
//! at once on `POST /v1/jira/webhook` (the issue is read back; the body is only a hint).
//!
//! Status names are per workflow and editable, and an "Approved" status may sit in any category
//! (contract §2.4), so only the statuses named here count, by name (case-insensitive) or id;
//! the category alone never decides. Who moved the issue is read from its changelog and
//! recorded as who resolved the review, so separation of duties applies to it: the deploy's
//! trigger or commit author cannot approve by moving the issue. A move into an approved status
//! whose author cannot be read does not approve (the review stays pending, with the reason in
//! `refused_attempts`); a rejection stands whoever made it.
//!
//! ```yaml
//! review:
//!   routes:
//!     staging:
//!       jira:
//!         adapter: jira
//!         project: REL
//!         issue_type: Task
//!         labels: [portcullis]
//!         approved_statuses: [Approved]
//!         rejected_statuses: [Rejected, "Won't Do"]
//!         poll_interval: 15s
//!         max_poll_interval: 5m
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{
    Backoff, FollowError, ReviewRoute, RoutingError, Wake, describe, route_adapter, run_claimed,
    ticket_for,
};
use crate::adapters::{AdapterConfig, JiraAdapter};
use crate::auth::{Principal, Role};
use crate::clock::Clock;
use crate::domain::{Channel, Decision, ReviewTicket};
use crate::gate::{Gate, GateError, ReviewAnswer, ReviewObserver};

/// The channel (and ticket system) of Jira resolutions.
pub const CHANNEL: &str = "jira";

/// The lease under which one replica at a time creates and polls issues.
const JOB: &str = "review-jira";

/// Bound on the Jira calls for one review in one round.
const CALL_DEADLINE: Duration = Duration::from_secs(15);

/// A review decided by a Jira issue's status.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraRoute {
    /// The `kind: jira` adapter whose site and credentials are used.
    #[serde(default = "default_adapter")]
    pub adapter: String,
    pub project: String,
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    #[serde(default)]
    pub labels: Vec<String>,
    /// Status names or ids that approve the review.
    pub approved_statuses: Vec<String>,
    /// Status names or ids that reject it.
    pub rejected_statuses: Vec<String>,
    #[serde(default = "default_poll", with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(default = "default_max_poll", with = "humantime_serde")]
    pub max_poll_interval: Duration,
}

fn default_adapter() -> String {
    "jira".into()
}
fn default_issue_type() -> String {
    "Task".into()
}
fn default_poll() -> Duration {
    Duration::from_secs(15)
}
fn default_max_poll() -> Duration {
    Duration::from_secs(300)
}

impl JiraRoute {
    /// What the issue's status says about the review, if anything.
    fn answer(&self, issue: &Value) -> Option<ReviewAnswer> {
        let name = issue["status"]["name"].as_str().unwrap_or_default();
        let id = issue["status"]["id"].as_str().unwrap_or_default();
        let matches = |list: &[String]| {
            list.iter()
                .any(|s| s.eq_ignore_ascii_case(name) || (!id.is_empty() && s == id))
        };
        // Rejection wins if a status is (mis)configured as both.
        if matches(&self.rejected_statuses) {
            Some(ReviewAnswer::Reject)
        } else if matches(&self.approved_statuses) {
            Some(ReviewAnswer::Approve)
        } else {
            None
        }
    }
}

/// Creates and follows Jira issues for routed reviews.
pub struct JiraRouting {
    routes: BTreeMap<String, (JiraRoute, Arc<JiraAdapter>)>,
    public_url: Option<String>,
    wake: Arc<Notify>,
    polls: Backoff,
    follower: Principal,
}

impl std::fmt::Debug for JiraRouting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraRouting")
            .field("environments", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl JiraRouting {
    /// `None` when no environment routes reviews to Jira.
    pub fn build(
        routes: &BTreeMap<String, ReviewRoute>,
        adapters: &[AdapterConfig],
        public_url: Option<String>,
        clock: &Arc<dyn Clock>,
    ) -> Result<Option<Self>, RoutingError> {
        let mut built = BTreeMap::new();
        for (environment, route) in routes {
            let Some(jira) = &route.jira else {
                continue;
            };
            if route.servicenow.is_some() {
                return Err(RoutingError::TwoSystems {
                    environment: environment.clone(),
                });
            }
            if jira.approved_statuses.is_empty() || jira.rejected_statuses.is_empty() {
                return Err(RoutingError::Jira {
                    environment: environment.clone(),
                    message:
                        "name at least one status in `approved_statuses` and in `rejected_statuses`"
                            .into(),
                });
            }
            let adapter = route_adapter(
                environment,
                CHANNEL,
                &jira.adapter,
                adapters,
                |a| match a {
                    AdapterConfig::Jira(c) if c.name == jira.adapter => Some(c),
                    _ => None,
                },
                |c| JiraAdapter::build(c, Arc::clone(clock)),
            )?;
            built.insert(environment.clone(), (jira.clone(), adapter));
        }
        if built.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            routes: built,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            wake: Arc::new(Notify::new()),
            polls: Backoff::default(),
            follower: Principal::new("jira-follower", vec![Role::Approver]),
        }))
    }

    /// The gate hook that wakes the follower when a review opens.
    pub fn observer(&self) -> Arc<dyn ReviewObserver> {
        Arc::new(Wake(Arc::clone(&self.wake)))
    }

    /// Creates issues for new routed reviews and polls open ones until `stop`, while this
    /// replica holds the `review-jira` lease.
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

    /// One pass over the pending reviews: create what has no issue yet, poll what is due.
    pub async fn round(&self, gate: &Arc<Gate>) -> Result<(), GateError> {
        let pending = gate.pending_reviews().await?;
        self.polls.keep_only(&pending);
        for d in pending {
            let Some((route, adapter)) = self.routes.get(d.request.environment.as_str()) else {
                continue;
            };
            let Some(ticket) = ticket_for(&d, CHANNEL, "a Jira issue", || {
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
                .follow(gate, &self.follower, &d, &ticket, route, adapter)
                .await
            {
                Ok(true) => self.polls.done(&d.id),
                Ok(false) => self
                    .polls
                    .again(&d.id, route.poll_interval, route.max_poll_interval),
                Err(e) => {
                    warn!(
                        check.id = d.id.as_str(),
                        key = ticket.number.as_str(),
                        reason_code = e.reason_code(),
                        "cannot follow the review's issue: {e}"
                    );
                    self.polls
                        .again(&d.id, route.poll_interval, route.max_poll_interval);
                }
            }
        }
        Ok(())
    }

    /// Reads the issue; resolves the review when its status is a configured one. `true` when
    /// the review is final.
    async fn follow(
        &self,
        gate: &Arc<Gate>,
        principal: &Principal,
        d: &Decision,
        ticket: &ReviewTicket,
        route: &JiraRoute,
        adapter: &JiraAdapter,
    ) -> Result<bool, FollowError> {
        let deadline = Instant::now() + CALL_DEADLINE;
        // By id: a moved issue keeps its id and answers under its new key.
        let issue = adapter
            .issue_status(&ticket.id, deadline)
            .await
            .map_err(|e| FollowError::System {
                system: CHANNEL,
                message: e.to_string(),
            })?;
        let Some(answer) = route.answer(&issue) else {
            return Ok(false);
        };
        let comment = format!(
            "Jira issue {} reached status `{}`",
            issue["key"].as_str().unwrap_or(ticket.number.as_str()),
            issue["status"]["name"].as_str().unwrap_or_default()
        );
        let status_id = issue["status"]["id"].as_str().unwrap_or_default();
        let mover = adapter
            .status_changed_by(&ticket.id, status_id, deadline)
            .await
            .map_err(|e| format!("its changelog cannot be read ({e})"))
            .and_then(|m| {
                m.ok_or_else(|| "its changelog names nobody who moved it there".to_string())
            });
        let by = match (mover, answer) {
            (Ok(by), _) => by,
            (Err(why), ReviewAnswer::Approve) => {
                let reason = format!(
                    "Jira issue {} reached status `{}`, but {why}; the review stays pending until who approved can be read",
                    issue["key"].as_str().unwrap_or(ticket.number.as_str()),
                    issue["status"]["name"].as_str().unwrap_or_default()
                );
                gate.note_unaccepted_resolution(
                    &d.id,
                    Channel::Jira,
                    crate::review_routing::servicenow::APPROVER_UNKNOWN,
                    &reason,
                )
                .await;
                return Ok(false);
            }
            (Err(_), ReviewAnswer::Reject) => CHANNEL.to_string(),
        };
        gate.resolve_by_channel(principal, &d.id, answer, &by, &comment, Channel::Jira)
            .await?;
        Ok(true)
    }

    /// An inbound Jira webhook (or Automation "send web request") about issue `key` / `id`:
    /// the issue is read back and the review resolved if its status decides it. `Ok(None)`: no
    /// pending review waits on that issue, or its status decides nothing yet.
    pub async fn webhook(
        &self,
        gate: &Arc<Gate>,
        principal: &Principal,
        key: &str,
        id: &str,
    ) -> Result<Option<Decision>, FollowError> {
        let mut found = None;
        for handle in [key, id].into_iter().filter(|h| !h.trim().is_empty()) {
            found = gate
                .find_by_review_ticket(principal, CHANNEL, handle)
                .await?;
            if found.is_some() {
                break;
            }
        }
        let Some(d) = found else {
            return Ok(None);
        };
        let (Some(ticket), Some((route, adapter))) = (
            d.review_ticket.clone(),
            self.routes.get(d.request.environment.as_str()),
        ) else {
            return Ok(None);
        };
        if self
            .follow(gate, principal, &d, &ticket, route, adapter)
            .await?
        {
            self.polls.done(&d.id);
            return Ok(Some(gate.get(principal, &d.id).await?));
        }
        Ok(None)
    }

    /// Creates the review issue for `d` and records it.
    async fn open(
        &self,
        gate: &Arc<Gate>,
        d: &Decision,
        route: &JiraRoute,
        adapter: &JiraAdapter,
    ) -> Result<ReviewTicket, FollowError> {
        let base = self.public_url.as_deref().unwrap_or("");
        let mut description = describe(d, base);
        description.push_str(&format!(
            "Move this issue to {} to approve the deploy, or to {} to reject it.",
            route.approved_statuses.join(" / "),
            route.rejected_statuses.join(" / ")
        ));
        let summary: String = format!(
            "Review: deploy {} to {} (Portcullis)",
            d.request.application, d.request.environment
        )
        .chars()
        .take(250)
        .collect();
        let created = adapter
            .create_issue(
                &route.project,
                &route.issue_type,
                &summary,
                &description,
                &route.labels,
                Instant::now() + CALL_DEADLINE,
            )
            .await
            .map_err(|e| FollowError::System {
                system: CHANNEL,
                message: e.to_string(),
            })?;
        let ticket = ReviewTicket {
            system: CHANNEL.to_string(),
            adapter: route.adapter.clone(),
            number: created.key.clone(),
            id: created.id.clone(),
            opened_by_gate: true,
            at: gate.now(),
        };
        info!(
            check.id = d.id.as_str(),
            key = created.key.as_str(),
            "review follows a Jira issue"
        );
        self.polls.start(&d.id, route.poll_interval);
        let stored = gate.attach_review_ticket(&d.id, ticket.clone()).await?;
        Ok(stored.review_ticket.unwrap_or(ticket))
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_the_named_statuses_decide() {
        let route: JiraRoute = serde_json::from_value(json!({
            "project": "REL", "approved_statuses": ["Approved", "10100"],
            "rejected_statuses": ["Rejected"],
        }))
        .unwrap();
        let issue = |name: &str, id: &str, cat: &str| json!({"status": {"name": name, "id": id, "category_key": cat}});
        assert_eq!(
            route.answer(&issue("approved", "1", "indeterminate")),
            Some(ReviewAnswer::Approve)
        );
        assert_eq!(
            route.answer(&issue("Renamed", "10100", "indeterminate")),
            Some(ReviewAnswer::Approve)
        );
        assert_eq!(
            route.answer(&issue("Rejected", "2", "done")),
            Some(ReviewAnswer::Reject)
        );
        // Done by category alone decides nothing.
        assert_eq!(route.answer(&issue("Done", "10001", "done")), None);
    }
}
