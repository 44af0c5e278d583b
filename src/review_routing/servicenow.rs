//! Reviews routed to ServiceNow: when a decision in a routed environment goes pending, a normal
//! change request is opened for it (or the change the check names is attached), and the review
//! follows that change's **approval** — `approved` → approve, `rejected` → reject — by polling
//! with backoff in a background task that one replica at a time runs under the
//! `review-servicenow` lease, and on an authenticated callback from ServiceNow.
//!
//! Polling and the callback run the same code (`follower.rs`, shared with Jira): read the change
//! from ServiceNow (`read` here; the callback body is a hint, never the authority), name the
//! approver from the approval history, and resolve through `Gate::resolve_by_channel` with
//! channel `servicenow`; whichever comes second finds the decision final and does nothing.
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

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::time::Instant;
use tracing::warn;

use super::follower::{Links, TicketState, TicketSystem};
use super::{FollowError, ReviewRoute, RoutingError, describe, route_adapter};
use crate::adapters::servicenow::ChangeDraft;
use crate::adapters::{AdapterConfig, ServiceNowAdapter};
use crate::clock::Clock;
use crate::domain::{Channel, Decision, ReviewTicket};
use crate::gate::ReviewAnswer;

pub use super::follower::APPROVER_UNKNOWN;

/// The channel (and ticket system) of ServiceNow resolutions.
pub const CHANNEL: &str = "servicenow";

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

/// One environment's ServiceNow route: its configuration and the adapter it calls.
#[derive(Debug)]
pub struct ServiceNowRouted {
    config: ServiceNowRoute,
    adapter: Arc<ServiceNowAdapter>,
}

/// ServiceNow as a system that decides reviews.
#[derive(Debug, Default)]
pub struct ServiceNow;

fn failed(e: &crate::adapters::AdapterError) -> FollowError {
    FollowError::from_adapter(CHANNEL, e)
}

#[async_trait]
impl TicketSystem for ServiceNow {
    type Route = ServiceNowRouted;
    const CHANNEL: Channel = Channel::Servicenow;
    const JOB: &'static str = "review-servicenow";
    const FOLLOWER: &'static str = "servicenow-follower";
    const TICKET: &'static str = "a ServiceNow change";

    fn routes(
        &self,
        routes: &BTreeMap<String, ReviewRoute>,
        adapters: &[AdapterConfig],
        clock: &Arc<dyn Clock>,
    ) -> Result<BTreeMap<String, ServiceNowRouted>, RoutingError> {
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
            built.insert(
                environment.clone(),
                ServiceNowRouted {
                    config: sn.clone(),
                    adapter,
                },
            );
        }
        Ok(built)
    }

    fn adapter(route: &ServiceNowRouted) -> &str {
        &route.config.adapter
    }

    fn poll(route: &ServiceNowRouted) -> (Duration, Duration) {
        (route.config.poll_interval, route.config.max_poll_interval)
    }

    /// Opens a change for `d`, or attaches to the one the check names.
    async fn open(
        &self,
        d: &Decision,
        route: &ServiceNowRouted,
        links: &Links,
        now: DateTime<Utc>,
    ) -> Result<ReviewTicket, FollowError> {
        let deadline = Instant::now() + CALL_DEADLINE;
        let config = &route.config;
        // When ServiceNow itself asked (change-check), the review is that change's approval,
        // whatever `attach` says: opening another change for it would ask the CAB twice.
        let asked_by_servicenow = d.request.caller.kind == crate::domain::CallerKind::Servicenow;
        let named = d
            .request
            .change_refs
            .servicenow_changes
            .first()
            .map(|n| n.as_str().to_string())
            .filter(|_| config.attach || asked_by_servicenow);
        let (status, opened) = match named {
            Some(number) => (route.adapter.find_change(&number, deadline).await, false),
            None => (
                route
                    .adapter
                    .open_change(&draft(d, config, links, now), deadline)
                    .await,
                true,
            ),
        };
        let status = status.map_err(|e| failed(&e))?;
        if !status.ignored.is_empty() {
            warn!(number = status.number.as_str(), ignored = ?status.ignored, "ServiceNow dropped fields of the opened change");
        }
        Ok(ReviewTicket {
            system: CHANNEL.to_string(),
            adapter: config.adapter.clone(),
            number: status.number,
            id: status.sys_id,
            opened_by_gate: opened,
            at: now,
        })
    }

    /// Reads the change's raw `approval` and, once final, who decided from the approval
    /// history.
    async fn read(
        &self,
        ticket: &ReviewTicket,
        route: &ServiceNowRouted,
    ) -> Result<TicketState, FollowError> {
        let deadline = Instant::now() + CALL_DEADLINE;
        let status = route
            .adapter
            .change_status(&ticket.id, deadline)
            .await
            .map_err(|e| failed(&e))?;
        let answer = match status.approval.as_str() {
            "approved" => ReviewAnswer::Approve,
            "rejected" => ReviewAnswer::Reject,
            _ => {
                return Ok(TicketState::Waiting {
                    detail: format!("approval `{}`", status.approval),
                });
            }
        };
        let found = match route
            .adapter
            .approver(&ticket.id, &status.approval, deadline)
            .await
        {
            Ok(Some(found)) => Ok(found),
            Ok(None) => Err("its approval history names no approver".to_string()),
            Err(e) => Err(format!("who approved it cannot be read ({e})")),
        };
        let (by, note) = match found {
            Ok((by, note)) => (Ok(by), note),
            Err(why) => (Err(why), String::new()),
        };
        Ok(TicketState::Decided {
            answer,
            by,
            summary: format!("ServiceNow change {} {}", status.number, status.approval),
            note,
        })
    }
}

/// The change opened for `d`.
fn draft(d: &Decision, route: &ServiceNowRoute, links: &Links, now: DateTime<Utc>) -> ChangeDraft {
    let mut description = describe(d, links);
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
