//! Reviews decided outside the gate: per environment, a pending review can be routed to a
//! ServiceNow change (`servicenow.rs`: the CAB's approval decides) or a Jira issue (`jira.rs`:
//! reaching a configured status decides). Each follower opens or attaches the ticket, records it
//! on the decision (`review_ticket`), and polls it with backoff in a background task that one
//! replica at a time runs under its own store lease; resolutions go through
//! `Gate::resolve_by_channel` with the system's name as channel, so a second report of the same
//! outcome is a no-op.
//!
//! ```yaml
//! review:
//!   routes:
//!     prod:
//!       servicenow: {adapter: servicenow, assignment_group: CAB Approval}
//!     staging:
//!       jira: {adapter: jira, project: REL, approved_statuses: [Approved], rejected_statuses: [Rejected]}
//! ```

pub mod jira;
pub mod servicenow;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::adapters::AdapterBuildError;
use crate::adapters::AdapterConfig;
use crate::domain::{Decision, DecisionId, ReviewTicket};
use crate::gate::jobs::Job;
use crate::gate::{Gate, GateError, ReviewObserver};

pub use jira::{JiraRoute, JiraRouting};
pub use servicenow::{ServiceNowRoute, ServiceNowRouting};

/// Where reviews of one environment go (`review.routes.<env>`): one of `servicenow`, `jira`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRoute {
    pub servicenow: Option<ServiceNowRoute>,
    pub jira: Option<JiraRoute>,
}

/// Why routes cannot be set up (at start-up).
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error(
        "review.routes.{environment}.{kind}.adapter: no `kind: {kind}` adapter is named `{adapter}`"
    )]
    NoAdapter {
        environment: String,
        kind: &'static str,
        adapter: String,
    },
    #[error("review.routes.{environment}.{kind}: {source}")]
    Adapter {
        environment: String,
        kind: &'static str,
        #[source]
        source: AdapterBuildError,
    },
    #[error("review.routes.{environment}: route to one system, `servicenow` or `jira`, not both")]
    TwoSystems { environment: String },
    #[error("review.routes.{environment}.jira: {message}")]
    Jira {
        environment: String,
        message: String,
    },
}

/// Why a routed review could not be opened, followed or resolved.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error("{system} cannot be reached right now: {message}")]
    System {
        system: &'static str,
        message: String,
    },
    #[error("change `{number}` is not approved or rejected in ServiceNow (approval `{approval}`)")]
    NotDecided { number: String, approval: String },
}

impl FollowError {
    pub fn reason_code(&self) -> &'static str {
        match self {
            FollowError::Gate(e) => e.reason_code(),
            FollowError::System { .. } => "review_route.unavailable",
            FollowError::NotDecided { .. } => "servicenow.not_decided",
        }
    }
}

/// Finds the adapter named `name` that `pick` accepts among the configured ones, and builds it
/// for the route of `environment`.
fn route_adapter<'a, C: 'a, A>(
    environment: &str,
    kind: &'static str,
    name: &str,
    adapters: &'a [AdapterConfig],
    pick: impl Fn(&'a AdapterConfig) -> Option<&'a C>,
    build: impl FnOnce(&C) -> Result<A, AdapterBuildError>,
) -> Result<Arc<A>, RoutingError> {
    let config = adapters
        .iter()
        .find_map(pick)
        .ok_or_else(|| RoutingError::NoAdapter {
            environment: environment.to_string(),
            kind,
            adapter: name.to_string(),
        })?;
    build(config)
        .map(Arc::new)
        .map_err(|source| RoutingError::Adapter {
            environment: environment.to_string(),
            kind,
            source,
        })
}

/// The review's ticket in `system`: the one recorded on the decision, or a new one from `open`.
/// `None` when the review belongs to another system, or opening failed (logged as `what`).
async fn ticket_for<Fut>(
    d: &Decision,
    system: &str,
    what: &str,
    open: impl FnOnce() -> Fut,
) -> Option<ReviewTicket>
where
    Fut: Future<Output = Result<ReviewTicket, FollowError>>,
{
    match &d.review_ticket {
        Some(t) if t.system == system => Some(t.clone()),
        Some(_) => None,
        None => match open().await {
            Ok(t) => Some(t),
            Err(e) => {
                warn!(
                    check.id = d.id.as_str(),
                    reason_code = e.reason_code(),
                    "cannot open {what} for the review: {e}"
                );
                None
            }
        },
    }
}

/// Wakes a follower as soon as a review opens on this replica.
struct Wake(Arc<Notify>);

impl ReviewObserver for Wake {
    fn review_opened(&self, _decision: &Decision) {
        self.0.notify_one();
    }
    fn review_resolved(&self, _decision: &Decision) {}
}

/// Runs `round` every `tick` (and when woken) while this replica holds lease `job`, until
/// `stop`: the gate's one lease loop (`gate::jobs`).
async fn run_claimed<F, Fut>(
    gate: Arc<Gate>,
    job: &'static str,
    holder: String,
    tick: Duration,
    wake: Arc<Notify>,
    stop: CancellationToken,
    round: F,
) where
    F: FnMut(Arc<Gate>) -> Fut,
    Fut: Future<Output = Result<(), GateError>>,
{
    let job = Job {
        name: job,
        holder,
        every: tick.clamp(Duration::from_millis(20), Duration::from_secs(1)),
        // Long enough to outlive a slow round, short enough that another replica takes over soon.
        ttl: Duration::from_secs(15),
        wake: Some(wake),
    };
    gate.run_job(job, stop, round).await;
}

/// When to look at each routed review next. Per replica: a new lease holder starts afresh.
#[derive(Default)]
struct Backoff {
    next: Mutex<HashMap<DecisionId, (Instant, Duration)>>,
}

impl Backoff {
    fn due(&self, id: &DecisionId) -> bool {
        let now = Instant::now();
        self.next
            .lock()
            .map(|p| p.get(id).is_none_or(|(at, _)| *at <= now))
            .unwrap_or(true)
    }

    /// The first look, `first` from now.
    fn start(&self, id: &DecisionId, first: Duration) {
        if let Ok(mut p) = self.next.lock() {
            p.insert(id.clone(), (Instant::now() + first, first));
        }
    }

    /// Nothing yet: double the interval, up to `max`.
    fn again(&self, id: &DecisionId, first: Duration, max: Duration) {
        if let Ok(mut p) = self.next.lock() {
            let interval = p
                .get(id)
                .map_or(first, |(_, i)| i.saturating_mul(2))
                .min(max);
            p.insert(id.clone(), (Instant::now() + interval, interval));
        }
    }

    fn done(&self, id: &DecisionId) {
        if let Ok(mut p) = self.next.lock() {
            p.remove(id);
        }
    }

    /// Forgets reviews that are no longer pending.
    fn keep_only(&self, pending: &[Decision]) {
        if let Ok(mut p) = self.next.lock() {
            p.retain(|id, _| pending.iter().any(|d| &d.id == id));
        }
    }
}

/// The ticket text: what needs a review, the failing rules with their remediation, the evidence
/// sources, the images and the decision link.
fn describe(d: &Decision, base: &str) -> String {
    let mut text = format!(
        "Portcullis asks for a review of deploying {} to {}.\n{}\n\nFailing rules:\n",
        d.request.application, d.request.environment, d.summary
    );
    for r in d.blocking_results() {
        text.push_str(&format!(
            "- {} ({}): {}\n  Remediation: {}\n",
            r.rule_id,
            r.effect.as_str(),
            r.reason,
            r.remediation
        ));
    }
    text.push_str("\nEvidence:\n");
    for s in &d.evidence.sources {
        text.push_str(&format!(
            "- {} ({}): {}{}\n",
            s.name,
            s.kind,
            s.message,
            s.url
                .as_deref()
                .map(|u| format!(" <{u}>"))
                .unwrap_or_default()
        ));
    }
    for image in &d.request.images {
        text.push_str(&format!("- image {image}\n"));
    }
    text.push_str(&format!("\nDecision: {base}/v1/decisions/{}\n", d.id));
    text
}
