//! Review notifications: a generic outbound webhook, HMAC signed, sent when a review opens, ends
//! or is about to expire — enough to wire Slack, Teams or a paging tool.
//!
//! Sending never blocks or fails the check or resolution that caused it: each delivery runs in
//! its own task with a bounded number of attempts, and a failure is logged and counted
//! (`portcullis_notifications_total{event,outcome}`), nothing more.
//!
//! The body is JSON (see [`Payload`]); `X-Portcullis-Signature: sha256=<hex>` is the
//! HMAC-SHA256 of the exact body bytes under the target's secret, and `X-Portcullis-Event` names
//! the event.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tracing::{debug, warn};

use crate::domain::{Decision, DecisionId, DecisionStatus};
use crate::gate::ReviewObserver;
use crate::metrics::Metrics;
use crate::secret::{Secret, SecretError, SecretSource};

/// Header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "X-Portcullis-Signature";
/// Header naming the event (`review_opened`, `review_resolved`, `review_expiring`).
pub const EVENT_HEADER: &str = "X-Portcullis-Event";

/// Attempts per delivery (the first one included).
const ATTEMPTS: u32 = 3;
/// Bound on one attempt, connection included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before the first retry; doubled before each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// Default of `expiring_within`.
const DEFAULT_EXPIRING_WITHIN: Duration = Duration::from_secs(15 * 60);

/// A review event a target can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewEvent {
    /// A check went to manual review (the decision is pending).
    ReviewOpened,
    /// A review ended: approved, rejected, expired or canceled.
    ReviewResolved,
    /// A pending review's deadline is within the target's `expiring_within`. Sent once per
    /// review by the replica holding the expiry lease.
    ReviewExpiring,
}

impl ReviewEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewEvent::ReviewOpened => "review_opened",
            ReviewEvent::ReviewResolved => "review_resolved",
            ReviewEvent::ReviewExpiring => "review_expiring",
        }
    }

    const ALL: [ReviewEvent; 3] = [
        ReviewEvent::ReviewOpened,
        ReviewEvent::ReviewResolved,
        ReviewEvent::ReviewExpiring,
    ];
}

/// One `notifications[]` entry in configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationTarget {
    /// Where to `POST` the JSON body.
    pub url: String,
    /// The HMAC key (`{env: …}` or `{file: …}`).
    pub secret: SecretSource,
    /// The events sent to this target; all of them when omitted.
    #[serde(default = "all_events")]
    pub events: Vec<ReviewEvent>,
    /// How long before a review's deadline `review_expiring` is sent (default 15m).
    #[serde(default, with = "humantime_serde")]
    pub expiring_within: Option<Duration>,
}

fn all_events() -> Vec<ReviewEvent> {
    ReviewEvent::ALL.to_vec()
}

/// Why notifications could not be set up (at start-up).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notifications[{index}].url `{url}` is not an http(s) URL")]
    BadUrl { index: usize, url: String },
    #[error("notifications[{index}].secret: {source}")]
    Secret {
        index: usize,
        #[source]
        source: SecretError,
    },
    #[error("cannot build the notification HTTP client: {0}")]
    Client(String),
}

impl NotifyError {
    pub fn reason_code(&self) -> &'static str {
        match self {
            NotifyError::BadUrl { .. } => "notify.bad_url",
            NotifyError::Secret { .. } => "notify.secret",
            NotifyError::Client(_) => "notify.client",
        }
    }
}

/// The JSON body of every notification. Flat, string-valued at the top where it can be, so
/// Slack Workflow Builder and Teams workflows can map fields directly.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Payload {
    pub event: ReviewEvent,
    /// One line for chat tools (`Slack` incoming webhooks show `text`).
    pub text: String,
    pub decision_id: String,
    pub application: String,
    pub environment: String,
    /// `manual_review` while pending; `continue` / `terminate` once resolved.
    pub verdict: String,
    /// `pending` or `final`.
    pub status: String,
    pub summary: String,
    pub triggered_by: Option<String>,
    pub review_deadline: Option<DateTime<Utc>>,
    pub failing_rules: Vec<FailingRule>,
    /// Present on `review_resolved`: `approved`, `rejected`, `expired` or `canceled`, with who.
    pub resolution: Option<ResolutionBody>,
    pub links: Links,
    pub sent_at: DateTime<Utc>,
}

/// A rule that asked for more than `continue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailingRule {
    pub rule_id: String,
    pub title: String,
    pub effect: String,
    pub outcome: String,
    pub reason: String,
    pub remediation: String,
}

/// How the review ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolutionBody {
    pub outcome: String,
    pub by: String,
    pub at: DateTime<Utc>,
    pub comment: String,
    pub channel: String,
}

/// Where to read and resolve the decision (absolute when `server.public_url` is set).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Links {
    pub decision: String,
    pub review: String,
}

/// Sends review notifications to the configured targets.
pub struct Notifier {
    targets: Vec<Target>,
    client: reqwest::Client,
    public_url: Option<String>,
    metrics: Arc<Metrics>,
    /// Reviews already announced as expiring, by target index. Per replica: after a lease
    /// handover a review may be announced once more.
    expiring_sent: Mutex<HashSet<(usize, DecisionId)>>,
}

struct Target {
    url: String,
    secret: Secret,
    events: Vec<ReviewEvent>,
    expiring_within: Duration,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("targets", &self.targets.len())
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// Reads every target's secret now, so a missing one fails start-up, not a review.
    pub fn build(
        targets: &[NotificationTarget],
        public_url: Option<String>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, NotifyError> {
        let mut built = Vec::with_capacity(targets.len());
        for (index, t) in targets.iter().enumerate() {
            if !(t.url.starts_with("http://") || t.url.starts_with("https://")) {
                return Err(NotifyError::BadUrl {
                    index,
                    url: t.url.clone(),
                });
            }
            let secret = t
                .secret
                .resolve()
                .map_err(|source| NotifyError::Secret { index, source })?;
            built.push(Target {
                url: t.url.clone(),
                secret,
                events: t.events.clone(),
                expiring_within: t.expiring_within.unwrap_or(DEFAULT_EXPIRING_WITHIN),
            });
        }
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::Client(e.to_string()))?;
        Ok(Self {
            targets: built,
            client,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            metrics,
            expiring_sent: Mutex::new(HashSet::new()),
        })
    }

    /// Whether any target is configured.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The body for `event` about `decision`.
    pub fn payload(&self, event: ReviewEvent, d: &Decision) -> Payload {
        let base = self.public_url.as_deref().unwrap_or("");
        let decision_link = format!("{base}/v1/decisions/{}", d.id);
        let text = match (&d.resolution, event) {
            (Some(r), ReviewEvent::ReviewResolved) => format!(
                "Portcullis: review of {} → {} {} by {}: {}",
                d.request.application,
                d.request.environment,
                r.outcome.as_str(),
                r.by,
                d.summary
            ),
            (_, ReviewEvent::ReviewExpiring) => format!(
                "Portcullis: review of {} → {} expires at {}: {} ({decision_link})",
                d.request.application,
                d.request.environment,
                d.review_deadline
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default(),
                d.summary
            ),
            _ => format!(
                "Portcullis: {} → {} needs a review: {} ({decision_link})",
                d.request.application, d.request.environment, d.summary
            ),
        };
        Payload {
            event,
            text,
            decision_id: d.id.to_string(),
            application: d.request.application.to_string(),
            environment: d.request.environment.to_string(),
            verdict: d.verdict.as_str().to_string(),
            status: d.status.as_str().to_string(),
            summary: d.summary.clone(),
            triggered_by: d.request.triggered_by.clone(),
            review_deadline: d.review_deadline,
            failing_rules: d
                .blocking_results()
                .into_iter()
                .map(|r| FailingRule {
                    rule_id: r.rule_id.clone(),
                    title: r.title.clone(),
                    effect: r.effect.as_str().to_string(),
                    outcome: r.outcome.as_str().to_string(),
                    reason: r.reason.clone(),
                    remediation: r.remediation.clone(),
                })
                .collect(),
            resolution: d.resolution.as_ref().map(|r| ResolutionBody {
                outcome: r.outcome.as_str().to_string(),
                by: r.by.clone(),
                at: r.at,
                comment: r.comment.clone(),
                channel: r.channel.clone(),
            }),
            links: Links {
                review: format!("{decision_link}/review"),
                decision: decision_link,
            },
            sent_at: Utc::now(),
        }
    }

    /// Sends `event` to every target subscribed to it, each in its own task.
    fn send(&self, event: ReviewEvent, d: &Decision, only: Option<usize>) {
        let payload = self.payload(event, d);
        let body = match serde_json::to_vec(&payload) {
            Ok(b) => bytes::Bytes::from(b),
            Err(e) => {
                warn!(event = event.as_str(), "cannot encode a notification: {e}");
                return;
            }
        };
        for (index, t) in self.targets.iter().enumerate() {
            if !t.events.contains(&event) || only.is_some_and(|i| i != index) {
                continue;
            }
            let delivery = Delivery {
                client: self.client.clone(),
                url: t.url.clone(),
                signature: sign(&t.secret, &body),
                event,
                body: body.clone(),
                metrics: Arc::clone(&self.metrics),
                decision: d.id.to_string(),
            };
            tokio::spawn(delivery.run());
        }
    }
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`, the value of [`SIGNATURE_HEADER`].
pub fn sign(secret: &Secret, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here; an empty MAC is
    // never produced because an empty secret is refused when it is resolved.
    match Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mut mac) => {
            mac.update(body);
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        }
        Err(_) => String::new(),
    }
}

impl ReviewObserver for Notifier {
    fn review_opened(&self, d: &Decision) {
        self.send(ReviewEvent::ReviewOpened, d, None);
    }

    fn review_resolved(&self, d: &Decision) {
        self.send(ReviewEvent::ReviewResolved, d, None);
        if let Ok(mut sent) = self.expiring_sent.lock() {
            sent.retain(|(_, id)| id != &d.id);
        }
    }

    fn review_waiting(&self, d: &Decision) {
        let (DecisionStatus::Pending, Some(deadline)) = (d.status, d.review_deadline) else {
            return;
        };
        let left = (deadline - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        for (index, t) in self.targets.iter().enumerate() {
            if left > t.expiring_within || !t.events.contains(&ReviewEvent::ReviewExpiring) {
                continue;
            }
            let first = self
                .expiring_sent
                .lock()
                .map(|mut s| s.insert((index, d.id.clone())))
                .unwrap_or(false);
            if first {
                self.send(ReviewEvent::ReviewExpiring, d, Some(index));
            }
        }
    }
}

/// One notification to one target, with its retries.
struct Delivery {
    client: reqwest::Client,
    url: String,
    signature: String,
    event: ReviewEvent,
    body: bytes::Bytes,
    metrics: Arc<Metrics>,
    decision: String,
}

impl Delivery {
    async fn run(self) {
        let mut backoff = FIRST_BACKOFF;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            match self.attempt().await {
                Ok(()) => {
                    debug!(
                        event = self.event.as_str(),
                        check.id = self.decision.as_str(),
                        attempt,
                        "notification delivered"
                    );
                    self.metrics.notification(self.event.as_str(), "delivered");
                    return;
                }
                Err(Failure::Permanent(m)) => {
                    last = m;
                    break;
                }
                Err(Failure::Transient(m)) => last = m,
            }
            if attempt < ATTEMPTS {
                tokio::time::sleep(backoff).await;
                backoff = backoff.saturating_mul(2);
            }
        }
        // The URL may carry a token (Slack and Teams put one in the path): log only the host.
        let host = reqwest::Url::parse(&self.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        warn!(
            event = self.event.as_str(),
            check.id = self.decision.as_str(),
            target = host.as_str(),
            "notification not delivered: {last}"
        );
        self.metrics.notification(self.event.as_str(), "failed");
    }

    async fn attempt(&self) -> Result<(), Failure> {
        let resp = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::USER_AGENT, "portcullis-notify")
            .header(SIGNATURE_HEADER, &self.signature)
            .header(EVENT_HEADER, self.event.as_str())
            .body(self.body.clone())
            .send()
            .await
            .map_err(|e| {
                Failure::Transient(if e.is_timeout() {
                    "the target did not answer in time".to_string()
                } else if e.is_connect() {
                    "cannot connect to the target".to_string()
                } else {
                    "the request failed".to_string()
                })
            })?;
        let status = resp.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(Failure::Transient(format!("the target answered {status}")))
        } else {
            Err(Failure::Permanent(format!("the target answered {status}")))
        }
    }
}

enum Failure {
    Transient(String),
    Permanent(String),
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_a_known_hmac() {
        // RFC 4231 test case 2.
        let s = sign(&Secret::new("Jefe"), b"what do ya want for nothing?");
        assert_eq!(
            s,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn targets_parse_with_all_events_by_default() {
        let t: NotificationTarget =
            serde_norway::from_str("url: https://hooks.example.com/x\nsecret: {env: HOOK}\n")
                .unwrap();
        assert_eq!(t.events.len(), 3);
        let t: NotificationTarget = serde_norway::from_str(
            "url: https://h\nsecret: {env: H}\nevents: [review_opened]\nexpiring_within: 5m\n",
        )
        .unwrap();
        assert_eq!(t.events, vec![ReviewEvent::ReviewOpened]);
        assert_eq!(t.expiring_within, Some(Duration::from_secs(300)));
        assert!(
            serde_norway::from_str::<NotificationTarget>(
                "url: x\nsecret: {env: H}\nevents: [nope]\n"
            )
            .is_err()
        );
    }

    #[test]
    fn a_bad_url_is_refused_at_start_up() {
        let t: NotificationTarget =
            serde_norway::from_str("url: ftp://x\nsecret: {value: s}\n").unwrap();
        let e = Notifier::build(&[t], None, Arc::new(Metrics::new())).unwrap_err();
        assert_eq!(e.reason_code(), "notify.bad_url");
    }
}
