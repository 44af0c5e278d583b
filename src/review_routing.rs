//! Reviews decided outside the gate: per environment, a pending review can be routed to a
//! ServiceNow change (`servicenow.rs`: the CAB's approval decides) or a Jira issue (`jira.rs`:
//! reaching a configured status decides). Each system only opens a ticket and reads its state
//! (`follower::TicketSystem`); the one generic `follower::Follower` opens or attaches the
//! ticket, records it on the decision (`review_ticket`), and polls it with backoff by the
//! injected clock in a background task that one replica at a time runs under the system's own
//! store lease, and answers the inbound hint (callback, webhook) by reading the ticket back;
//! resolutions go through `Gate::resolve_by_channel` with the system's name as channel, so a
//! second report of the same outcome is a no-op. Ticket links are absolute, so routing needs
//! `server.public_url`.
//!
//! ```yaml
//! review:
//!   routes:
//!     prod:
//!       servicenow: {adapter: servicenow, assignment_group: CAB Approval}
//!     staging:
//!       jira: {adapter: jira, project: REL, approved_statuses: [Approved], rejected_statuses: [Rejected]}
//! ```

pub mod follower;
pub mod jira;
pub mod servicenow;

use std::sync::Arc;

use serde::Deserialize;

use crate::adapters::{AdapterBuildError, AdapterConfig, AdapterError};
use crate::domain::Decision;
use crate::gate::GateError;

pub use follower::{Follower, Inbound, Links, TicketState, TicketSystem};
pub use jira::{Jira, JiraRoute};
pub use servicenow::{ServiceNow, ServiceNowRoute};

/// The follower of reviews routed to ServiceNow.
pub type ServiceNowRouting = Follower<ServiceNow>;
/// The follower of reviews routed to Jira.
pub type JiraRouting = Follower<Jira>;

/// The followers of every system, `None` where no environment routes to it: what the inbound
/// hints (the ServiceNow callback, the Jira webhook) reach through the HTTP state.
#[derive(Debug, Clone, Default)]
pub struct ReviewFollowers {
    pub servicenow: Option<Arc<ServiceNowRouting>>,
    pub jira: Option<Arc<JiraRouting>>,
}

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
    #[error(
        "review.routes.{environment}.{system}: routing reviews needs `server.public_url`, an absolute http(s) URL (the HTTP listener listens on every address, so its own address names no host): tickets link back to their decision, and people open those links from {system}"
    )]
    NoPublicUrl {
        environment: String,
        system: &'static str,
    },
}

/// Why a routed review could not be opened, followed or resolved.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Gate(#[from] GateError),
    /// No answer (timeout, connection, TLS, rate limit): worth trying again later.
    #[error("{system} cannot be reached right now: {message}")]
    System {
        system: &'static str,
        message: String,
    },
    /// The system answered, and said no (a 4xx such as a bad field or a missing permission,
    /// or an answer that cannot be used): the same request will not do better by itself.
    #[error("{system} refused the request: {message}")]
    Refused {
        system: &'static str,
        message: String,
    },
    /// An inbound hint about a ticket that does not decide its review yet.
    #[error("{system} ticket `{ticket}` does not decide the review yet ({detail})")]
    NotDecided {
        system: &'static str,
        ticket: String,
        detail: String,
    },
    /// An inbound hint for a system no environment routes reviews to.
    #[error("no environment routes reviews to {system}")]
    NotRouted { system: &'static str },
}

impl FollowError {
    /// The system's call failed: `Refused` when it answered, `System` when it did not.
    pub fn from_adapter(system: &'static str, e: &AdapterError) -> Self {
        let message = e.to_string();
        match e {
            AdapterError::Auth { .. }
            | AdapterError::BadResponse { .. }
            | AdapterError::NotFound { .. } => FollowError::Refused { system, message },
            AdapterError::Timeout { .. }
            | AdapterError::Unreachable { .. }
            | AdapterError::Tls { .. }
            | AdapterError::RateLimited { .. } => FollowError::System { system, message },
        }
    }

    pub fn reason_code(&self) -> &'static str {
        match self {
            FollowError::Gate(e) => e.reason_code(),
            FollowError::System { .. } => "review_route.unavailable",
            FollowError::Refused { .. } => "review_route.refused",
            FollowError::NotDecided { system, .. } => match *system {
                servicenow::CHANNEL => "servicenow.not_decided",
                _ => "jira.not_decided",
            },
            FollowError::NotRouted { system } => match *system {
                servicenow::CHANNEL => "servicenow.not_routed",
                _ => "jira.not_routed",
            },
        }
    }

    /// How to fix it, for people reading the error on either transport.
    pub fn help(&self) -> Option<String> {
        Some(match self {
            FollowError::Gate(e) => return e.help(),
            FollowError::System { system, .. } => {
                format!("polling resolves the review once {system} answers again")
            }
            FollowError::Refused { system, .. } => format!(
                "check the route in `review.routes` and the adapter's permissions in {system}; the follower backs off and tries again"
            ),
            FollowError::NotDecided { .. } => {
                "call back once the ticket is approved or rejected; polling will pick it up as well"
                    .into()
            }
            FollowError::NotRouted { system } => {
                format!("configure `review.routes.<environment>.{system}`")
            }
        })
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

/// The ticket text: what needs a review, the failing rules with their remediation, the evidence
/// sources, the images and the decision link.
fn describe(d: &Decision, links: &Links) -> String {
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
    text.push_str(&format!("\nDecision: {}\n", links.decision(&d.id)));
    text
}
