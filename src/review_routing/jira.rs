//! Reviews routed to Jira: when a decision in a routed environment goes pending, the gate
//! creates an issue (ADF description on Cloud v3) with the failing rules, and the review ends
//! when the issue reaches one of the configured statuses — `approved_statuses` → approve,
//! `rejected_statuses` → reject — by polling with backoff under the `review-jira` lease, and
//! at once on `POST /v1/jira/webhook` (the issue is read back; the body is only a hint). Only
//! `open` and `read` live here; `follower.rs` does the rest, as for every system.
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

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use tokio::time::Instant;

use super::follower::{Links, TicketState, TicketSystem};
use super::{FollowError, ReviewRoute, RoutingError, describe, route_adapter};
use crate::adapters::{AdapterConfig, JiraAdapter};
use crate::clock::Clock;
use crate::domain::{Channel, Decision, ReviewTicket};
use crate::gate::ReviewAnswer;

/// The channel (and ticket system) of Jira resolutions.
pub const CHANNEL: &str = "jira";

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

/// One environment's Jira route: its configuration and the adapter it calls.
#[derive(Debug)]
pub struct JiraRouted {
    config: JiraRoute,
    adapter: Arc<JiraAdapter>,
}

/// Jira as a system that decides reviews.
#[derive(Debug, Default)]
pub struct Jira;

fn failed(e: &crate::adapters::AdapterError) -> FollowError {
    FollowError::from_adapter(CHANNEL, e)
}

#[async_trait]
impl TicketSystem for Jira {
    type Route = JiraRouted;
    const CHANNEL: Channel = Channel::Jira;
    const JOB: &'static str = "review-jira";
    const FOLLOWER: &'static str = "jira-follower";
    const TICKET: &'static str = "a Jira issue";

    fn routes(
        &self,
        routes: &BTreeMap<String, ReviewRoute>,
        adapters: &[AdapterConfig],
        clock: &Arc<dyn Clock>,
    ) -> Result<BTreeMap<String, JiraRouted>, RoutingError> {
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
            built.insert(
                environment.clone(),
                JiraRouted {
                    config: jira.clone(),
                    adapter,
                },
            );
        }
        Ok(built)
    }

    fn adapter(route: &JiraRouted) -> &str {
        &route.config.adapter
    }

    fn poll(route: &JiraRouted) -> (Duration, Duration) {
        (route.config.poll_interval, route.config.max_poll_interval)
    }

    /// Creates the review issue for `d`.
    async fn open(
        &self,
        d: &Decision,
        route: &JiraRouted,
        links: &Links,
        now: DateTime<Utc>,
    ) -> Result<ReviewTicket, FollowError> {
        let config = &route.config;
        let mut description = describe(d, links);
        description.push_str(&format!(
            "Move this issue to {} to approve the deploy, or to {} to reject it.",
            config.approved_statuses.join(" / "),
            config.rejected_statuses.join(" / ")
        ));
        let summary: String = format!(
            "Review: deploy {} to {} (Portcullis)",
            d.request.application, d.request.environment
        )
        .chars()
        .take(250)
        .collect();
        let created = route
            .adapter
            .create_issue(
                &config.project,
                &config.issue_type,
                &summary,
                &description,
                &config.labels,
                Instant::now() + CALL_DEADLINE,
            )
            .await
            .map_err(|e| failed(&e))?;
        Ok(ReviewTicket {
            system: CHANNEL.to_string(),
            adapter: config.adapter.clone(),
            number: created.key,
            id: created.id,
            opened_by_gate: true,
            at: now,
        })
    }

    /// Reads the issue (by id: a moved issue keeps its id and answers under its new key) and,
    /// when its status is a configured one, who moved it there, from its changelog.
    async fn read(
        &self,
        ticket: &ReviewTicket,
        route: &JiraRouted,
    ) -> Result<TicketState, FollowError> {
        let deadline = Instant::now() + CALL_DEADLINE;
        let issue = route
            .adapter
            .issue_status(&ticket.id, deadline)
            .await
            .map_err(|e| failed(&e))?;
        let status = issue["status"]["name"].as_str().unwrap_or_default();
        let Some(answer) = route.config.answer(&issue) else {
            return Ok(TicketState::Waiting {
                detail: format!("status `{status}`"),
            });
        };
        let summary = format!(
            "Jira issue {} reached status `{status}`",
            issue["key"].as_str().unwrap_or(ticket.number.as_str()),
        );
        let status_id = issue["status"]["id"].as_str().unwrap_or_default();
        let by = route
            .adapter
            .status_changed_by(&ticket.id, status_id, deadline)
            .await
            .map_err(|e| format!("its changelog cannot be read ({e})"))
            .and_then(|m| {
                m.ok_or_else(|| "its changelog names nobody who moved it there".to_string())
            });
        Ok(TicketState::Decided {
            answer,
            by,
            summary,
            note: String::new(),
        })
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
