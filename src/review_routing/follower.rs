//! The one follower of routed reviews, generic over the system that decides them
//! ([`TicketSystem`]: ServiceNow, Jira). A system only opens a ticket for a decision and reads
//! a ticket's state; [`Follower`] owns everything else, once for every system: which
//! environments route to it, the lease-held loop and its wake-ups, the rounds over pending
//! reviews, backoff by the injected clock, resolving through `Gate::resolve_by_channel`, and
//! the inbound hint (ServiceNow's callback, Jira's webhook), which reads the ticket back and
//! never trusts the body.
//!
//! One rule for what goes wrong, whatever the system: a failed open, a failed read and a
//! refused resolution all back off (the interval doubles up to the route's maximum); a failed
//! open is also recorded on the decision's `refused_attempts` (`review_route.refused` when the
//! system answered with a 4xx or an unusable body, `review_route.unavailable` when it did not
//! answer), so the reason is visible where the review waits, not only in a log.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::{FollowError, ReviewRoute, RoutingError};
use crate::adapters::AdapterConfig;
use crate::auth::{Principal, Role};
use crate::clock::Clock;
use crate::domain::{Channel, Decision, DecisionId, ReviewTicket};
use crate::gate::jobs::Job;
use crate::gate::{Gate, GateError, ReviewAnswer, ReviewObserver};

/// `reason_code` of an approval whose approver cannot be read.
pub const APPROVER_UNKNOWN: &str = "approver_unknown";

/// What a ticket says about its review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketState {
    /// Nothing decided yet; `detail` says what the ticket shows (e.g. "approval `requested`").
    Waiting { detail: String },
    /// The ticket decided the review.
    Decided {
        answer: ReviewAnswer,
        /// Who decided, or why that cannot be read (an approval by nobody known does not
        /// approve; a rejection stands whoever made it).
        by: Result<String, String>,
        /// What the ticket shows, for people: "ServiceNow change CHG0040001 approved".
        summary: String,
        /// The decider's own words, if any, appended to the resolution's comment.
        note: String,
    },
}

/// The absolute links a ticket's text carries (`server.public_url`).
#[derive(Debug, Clone)]
pub struct Links {
    base: String,
}

impl Links {
    /// Where to read decision `id`.
    pub fn decision(&self, id: &DecisionId) -> String {
        format!("{}/v1/decisions/{id}", self.base)
    }
}

/// A system that decides reviews: everything that differs between ServiceNow and Jira.
#[async_trait]
pub trait TicketSystem: Send + Sync + Sized + 'static {
    /// One environment's route: its configuration and the adapter it calls.
    type Route: Send + Sync + 'static;
    /// The channel (and ticket system) of its resolutions.
    const CHANNEL: Channel;
    /// The lease under which one replica at a time follows its tickets.
    const JOB: &'static str;
    /// The principal its follower resolves as.
    const FOLLOWER: &'static str;
    /// What its tickets are called in messages ("a ServiceNow change").
    const TICKET: &'static str;

    /// The routes of the environments that route reviews to this system (`review.routes`).
    fn routes(
        &self,
        routes: &BTreeMap<String, ReviewRoute>,
        adapters: &[AdapterConfig],
        clock: &Arc<dyn Clock>,
    ) -> Result<BTreeMap<String, Self::Route>, RoutingError>;
    /// The route's adapter instance (a ticket records it).
    fn adapter(route: &Self::Route) -> &str;
    /// The first poll interval and the longest backoff.
    fn poll(route: &Self::Route) -> (Duration, Duration);
    /// Opens (or attaches) the ticket for `d`; the follower records it.
    async fn open(
        &self,
        d: &Decision,
        route: &Self::Route,
        links: &Links,
        now: DateTime<Utc>,
    ) -> Result<ReviewTicket, FollowError>;
    /// Reads what `ticket` says now.
    async fn read(
        &self,
        ticket: &ReviewTicket,
        route: &Self::Route,
    ) -> Result<TicketState, FollowError>;
}

/// What an inbound hint found.
#[derive(Debug)]
pub enum Inbound {
    /// No pending review waits on that ticket (already resolved, or never routed): a no-op.
    NoReview,
    /// The ticket does not decide the review yet.
    Waiting { ticket: String, detail: String },
    /// Resolved now, or found already final.
    Resolved(Box<Decision>),
}

/// Opens and follows the tickets of one system for routed reviews.
pub struct Follower<S: TicketSystem> {
    system: S,
    routes: BTreeMap<String, S::Route>,
    links: Links,
    wake: Arc<Notify>,
    polls: Backoff,
    follower: Principal,
}

impl<S: TicketSystem> std::fmt::Debug for Follower<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("system", &S::CHANNEL.as_str())
            .field("environments", &self.routes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<S: TicketSystem> Follower<S> {
    /// `None` when no environment routes reviews to this system. Links in tickets must be
    /// absolute (people open them from ServiceNow or Jira), so routing needs `public_url`.
    pub fn build(
        system: S,
        routes: &BTreeMap<String, ReviewRoute>,
        adapters: &[AdapterConfig],
        public_url: Option<&str>,
        clock: &Arc<dyn Clock>,
    ) -> Result<Option<Self>, RoutingError> {
        let built = system.routes(routes, adapters, clock)?;
        let Some(environment) = built.keys().next() else {
            return Ok(None);
        };
        let base = public_url
            .map(|u| u.trim().trim_end_matches('/'))
            .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            .ok_or_else(|| RoutingError::NoPublicUrl {
                environment: environment.clone(),
                system: S::CHANNEL.as_str(),
            })?;
        Ok(Some(Self {
            system,
            routes: built,
            links: Links {
                base: base.to_string(),
            },
            wake: Arc::new(Notify::new()),
            polls: Backoff::new(Arc::clone(clock)),
            follower: Principal::new(S::FOLLOWER, vec![Role::Approver]),
        }))
    }

    /// The gate hook that wakes the follower when a review opens.
    pub fn observer(&self) -> Arc<dyn ReviewObserver> {
        Arc::new(Wake(Arc::clone(&self.wake)))
    }

    /// Opens tickets for new routed reviews and polls open ones until `stop`, while this
    /// replica holds the system's lease: the gate's one lease loop (`gate::jobs`).
    pub async fn run(self: Arc<Self>, gate: Arc<Gate>, holder: String, stop: CancellationToken) {
        let tick = self
            .routes
            .values()
            .map(|r| S::poll(r).0)
            .min()
            .unwrap_or(Duration::from_secs(1));
        let job = Job {
            name: S::JOB,
            holder,
            every: tick.clamp(Duration::from_millis(20), Duration::from_secs(1)),
            // Long enough to outlive a slow round, short enough that another replica takes over soon.
            ttl: Duration::from_secs(15),
            wake: Some(Arc::clone(&self.wake)),
            // Polls are due by the injected clock, so rounds come by it too.
            paced_by: Some(self.polls.clock()),
        };
        gate.run_job(job, stop, |gate| {
            let this = Arc::clone(&self);
            async move { this.round(&gate).await }
        })
        .await;
    }

    /// One pass over the pending reviews of the routed environments: open what has no ticket
    /// yet, read what is due. Reviews are listed without their bodies; only those due now are
    /// read in full.
    pub async fn round(&self, gate: &Arc<Gate>) -> Result<(), GateError> {
        let mut pending = HashSet::new();
        for (environment, route) in &self.routes {
            let (first, max) = S::poll(route);
            for review in gate.pending_reviews_in(environment).await? {
                pending.insert(review.id.clone());
                if !self.polls.due(&review.id) {
                    continue;
                }
                // Routed elsewhere before the configuration changed: not ours.
                if review
                    .review_system
                    .as_deref()
                    .is_some_and(|s| s != S::CHANNEL.as_str())
                {
                    continue;
                }
                // Resolved since it was listed: nothing to do.
                let Some(d) = gate.pending_review(&review.id).await? else {
                    continue;
                };
                let ticket = match &d.review_ticket {
                    Some(t) if t.system == S::CHANNEL.as_str() => t.clone(),
                    Some(_) => continue,
                    None => {
                        if let Err(e) = self.open(gate, &d, route).await {
                            self.failed(gate, &d.id, None, &e).await;
                            self.polls.again(&d.id, first, max);
                        }
                        // The first read is `first` from now (or after the backoff).
                        continue;
                    }
                };
                match self.follow(gate, &self.follower, &d, &ticket, route).await {
                    Ok(Inbound::Resolved(_) | Inbound::NoReview) => self.polls.done(&d.id),
                    Ok(Inbound::Waiting { .. }) => self.polls.again(&d.id, first, max),
                    Err(e) => {
                        self.failed(gate, &d.id, Some(&ticket), &e).await;
                        self.polls.again(&d.id, first, max);
                    }
                }
            }
        }
        self.polls.keep_only(&pending);
        Ok(())
    }

    /// An inbound hint that ticket `handles` (its number or id, first found wins) changed:
    /// the ticket is read back and the review resolved if it decides it. The hint's body is
    /// never the authority, so a forged or repeated call changes nothing.
    pub async fn inbound(
        &self,
        gate: &Arc<Gate>,
        principal: &Principal,
        handles: &[&str],
    ) -> Result<Inbound, FollowError> {
        let mut found = None;
        for handle in handles.iter().map(|h| h.trim()).filter(|h| !h.is_empty()) {
            found = gate
                .find_by_review_ticket(principal, S::CHANNEL.as_str(), handle)
                .await?;
            if found.is_some() {
                break;
            }
        }
        let Some(d) = found else {
            return Ok(Inbound::NoReview);
        };
        let Some(ticket) = d.review_ticket.clone() else {
            return Ok(Inbound::NoReview);
        };
        // The environment's route; if the configuration changed since, any route through the
        // adapter instance the ticket lives in.
        let route = self.routes.get(d.request.environment.as_str()).or_else(|| {
            self.routes
                .values()
                .find(|r| S::adapter(r) == ticket.adapter)
        });
        let Some(route) = route else {
            return Ok(Inbound::NoReview);
        };
        let found = self.follow(gate, principal, &d, &ticket, route).await?;
        if let Inbound::Resolved(_) = found {
            self.polls.done(&d.id);
        }
        Ok(found)
    }

    /// Reads the ticket and resolves the review if it decides it.
    async fn follow(
        &self,
        gate: &Arc<Gate>,
        principal: &Principal,
        d: &Decision,
        ticket: &ReviewTicket,
        route: &S::Route,
    ) -> Result<Inbound, FollowError> {
        let (answer, by, summary, note) = match self.system.read(ticket, route).await? {
            TicketState::Waiting { detail } => {
                return Ok(Inbound::Waiting {
                    ticket: ticket.number.clone(),
                    detail,
                });
            }
            TicketState::Decided {
                answer,
                by,
                summary,
                note,
            } => (answer, by, summary, note),
        };
        let by = match (by, answer) {
            (Ok(by), _) => by,
            // Separation of duties cannot see who approved: not an approval (yet).
            (Err(why), ReviewAnswer::Approve) => {
                let reason = format!(
                    "{summary}, but {why}; the review stays pending until who approved can be read"
                );
                gate.note_unaccepted_resolution(&d.id, S::CHANNEL, APPROVER_UNKNOWN, &reason)
                    .await;
                return Ok(Inbound::Waiting {
                    ticket: ticket.number.clone(),
                    detail: reason,
                });
            }
            (Err(_), ReviewAnswer::Reject) => S::CHANNEL.as_str().to_string(),
        };
        let mut comment = summary;
        if !note.trim().is_empty() {
            comment.push_str(": ");
            comment.push_str(note.trim());
        }
        let resolved = gate
            .resolve_by_channel(principal, &d.id, answer, &by, &comment, S::CHANNEL)
            .await?;
        Ok(Inbound::Resolved(Box::new(resolved)))
    }

    /// Opens the ticket for `d` and records it on the decision.
    async fn open(
        &self,
        gate: &Arc<Gate>,
        d: &Decision,
        route: &S::Route,
    ) -> Result<ReviewTicket, FollowError> {
        let ticket = self.system.open(d, route, &self.links, gate.now()).await?;
        info!(
            check.id = d.id.as_str(),
            system = S::CHANNEL.as_str(),
            ticket = ticket.number.as_str(),
            opened = ticket.opened_by_gate,
            "review follows {}",
            S::TICKET
        );
        self.polls.start(&d.id, S::poll(route).0);
        let stored = gate.attach_review_ticket(&d.id, ticket.clone()).await?;
        Ok(stored.review_ticket.unwrap_or(ticket))
    }

    /// Logs what went wrong with review `id`; a failed open is also recorded on the decision.
    async fn failed(
        &self,
        gate: &Arc<Gate>,
        id: &DecisionId,
        ticket: Option<&ReviewTicket>,
        e: &FollowError,
    ) {
        let number = ticket.map_or("", |t| t.number.as_str());
        warn!(
            check.id = id.as_str(),
            system = S::CHANNEL.as_str(),
            ticket = number,
            reason_code = e.reason_code(),
            "cannot {} {}: {e}",
            if ticket.is_some() { "follow" } else { "open" },
            S::TICKET
        );
        // A review without its ticket says why on the decision, where people look for it
        // (deduplicated: the same reason again is kept once).
        if ticket.is_none() {
            let reason = format!("cannot open {} for the review: {e}", S::TICKET);
            gate.note_unaccepted_resolution(id, S::CHANNEL, e.reason_code(), &reason)
                .await;
        }
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

/// When to look at each routed review next, by the injected clock. Per replica: a new lease
/// holder starts afresh.
struct Backoff {
    clock: Arc<dyn Clock>,
    next: Mutex<HashMap<DecisionId, (DateTime<Utc>, Duration)>>,
}

impl Backoff {
    fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.clock)
    }

    fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            next: Mutex::new(HashMap::new()),
        }
    }

    fn after(&self, interval: Duration) -> DateTime<Utc> {
        self.clock.now() + chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX)
    }

    fn due(&self, id: &DecisionId) -> bool {
        let now = self.clock.now();
        self.next
            .lock()
            .map(|p| p.get(id).is_none_or(|(at, _)| *at <= now))
            .unwrap_or(true)
    }

    /// The first look, `first` from now.
    fn start(&self, id: &DecisionId, first: Duration) {
        let at = self.after(first);
        if let Ok(mut p) = self.next.lock() {
            p.insert(id.clone(), (at, first));
        }
    }

    /// Nothing yet, or it failed: double the interval, up to `max`.
    fn again(&self, id: &DecisionId, first: Duration, max: Duration) {
        if let Ok(mut p) = self.next.lock() {
            let interval = p
                .get(id)
                .map_or(first, |(_, i)| i.saturating_mul(2))
                .min(max);
            let at = self.after(interval);
            p.insert(id.clone(), (at, interval));
        }
    }

    fn done(&self, id: &DecisionId) {
        if let Ok(mut p) = self.next.lock() {
            p.remove(id);
        }
    }

    /// Forgets reviews that are no longer pending.
    fn keep_only(&self, pending: &HashSet<DecisionId>) {
        if let Ok(mut p) = self.next.lock() {
            p.retain(|id, _| pending.contains(id));
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn routed_to_jira() -> (BTreeMap<String, ReviewRoute>, Vec<AdapterConfig>) {
        let route: ReviewRoute = serde_json::from_value(serde_json::json!({"jira": {
            "project": "REL", "approved_statuses": ["Approved"], "rejected_statuses": ["Rejected"],
        }}))
        .unwrap();
        let adapter: AdapterConfig = serde_json::from_value(serde_json::json!({
            "kind": "jira", "name": "jira", "base_url": "https://acme.atlassian.net",
            "auth": {"type": "basic", "username": "u", "password": {"value": "p"}},
        }))
        .unwrap();
        (BTreeMap::from([("prod".to_string(), route)]), vec![adapter])
    }

    #[test]
    fn routing_reviews_needs_an_absolute_base_for_ticket_links() {
        let (routes, adapters) = routed_to_jira();
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        for base in [
            None,
            Some(""),
            Some("/portcullis"),
            Some("gate.example.com"),
        ] {
            let built = Follower::build(super::super::Jira, &routes, &adapters, base, &clock);
            assert!(
                matches!(built, Err(RoutingError::NoPublicUrl { .. })),
                "{base:?}: {built:?}"
            );
        }
        let built = Follower::build(
            super::super::Jira,
            &routes,
            &adapters,
            Some("https://gate.example.com/"),
            &clock,
        )
        .unwrap()
        .unwrap();
        let id = DecisionId::generate();
        assert_eq!(
            built.links.decision(&id),
            format!("https://gate.example.com/v1/decisions/{id}")
        );
        // Nothing routed to Jira: no follower, whatever the base.
        let none = Follower::build(
            super::super::Jira,
            &BTreeMap::new(),
            &adapters,
            None,
            &clock,
        );
        assert!(matches!(none, Ok(None)));
    }

    #[test]
    fn backoff_doubles_up_to_the_maximum_by_the_injected_clock() {
        let clock = Arc::new(ManualClock::new(
            DateTime::from_timestamp_millis(1_790_000_000_000).unwrap(),
        ));
        let polls = Backoff::new(clock.clone());
        let id = DecisionId::generate();
        let (first, max) = (Duration::from_secs(10), Duration::from_secs(35));
        assert!(polls.due(&id), "never seen: due at once");
        polls.start(&id, first);
        assert!(!polls.due(&id));
        clock.advance(chrono::Duration::seconds(10));
        assert!(polls.due(&id));
        // 20 s, then 35 s (the cap), then 35 s again.
        for wait in [20, 35, 35] {
            polls.again(&id, first, max);
            clock.advance(chrono::Duration::seconds(wait - 1));
            assert!(!polls.due(&id), "{wait}");
            clock.advance(chrono::Duration::seconds(1));
            assert!(polls.due(&id), "{wait}");
        }
        polls.done(&id);
        assert!(polls.due(&id));
    }
}
