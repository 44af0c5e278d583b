//! Review notifications: a generic outbound webhook, HMAC signed, sent when a review opens, ends
//! or is about to expire, and (opt-in) when a check is terminated — enough to wire Slack, Teams
//! or a paging tool.
//!
//! Sending never blocks or fails the check or resolution that caused it: each delivery runs in
//! its own task with a bounded number of attempts, and a failure is logged and counted
//! (`portcullis_notifications_total{event,outcome}`), nothing more.
//!
//! The body is JSON (see [`Payload`]); `X-Portcullis-Signature: t=<unix seconds>,v1=<hex>` is
//! the HMAC-SHA256 of `<t>.<exact body bytes>` under the target's secret (the Stripe scheme), so
//! a receiver can refuse a replayed delivery by its age; `X-Portcullis-Event` names the event.
//! Each target may trust its own CA bundle and present a client certificate (`tls`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tracing::{debug, warn};

use crate::clock::{Clock, SystemClock};
use crate::domain::{Decision, DecisionId, DecisionStatus};
use crate::gate::ReviewObserver;
use crate::metrics::Metrics;
use crate::secret::{Secret, SecretError, SecretSource};

/// Header carrying `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub const SIGNATURE_HEADER: &str = "X-Portcullis-Signature";
/// How far a receiver should let a signature's timestamp be from its own clock (documented;
/// [`verify`] takes it as a parameter).
pub const SIGNATURE_TOLERANCE: Duration = Duration::from_secs(5 * 60);
/// Header naming the event (`review_opened`, `review_resolved`, `review_expiring`,
/// `check_terminated`).
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
    /// A check was answered `terminate` at once (a review ending in rejection is
    /// `review_resolved`). Opt-in: sent only to targets that list it.
    CheckTerminated,
}

impl ReviewEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewEvent::ReviewOpened => "review_opened",
            ReviewEvent::ReviewResolved => "review_resolved",
            ReviewEvent::ReviewExpiring => "review_expiring",
            ReviewEvent::CheckTerminated => "check_terminated",
        }
    }

    /// What a target without `events` gets: the review events. `check_terminated` is opt-in,
    /// so adding it did not change what existing targets receive.
    const DEFAULT: [ReviewEvent; 3] = [
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
    /// The events sent to this target; the three review events when omitted.
    #[serde(default = "default_events")]
    pub events: Vec<ReviewEvent>,
    /// How long before a review's deadline `review_expiring` is sent (default 15m).
    #[serde(default, with = "humantime_serde")]
    pub expiring_within: Option<Duration>,
    /// CAs trusted beyond the system roots, and a client certificate for mTLS.
    #[serde(default)]
    pub tls: Option<crate::tls::ClientTlsConfig>,
}

fn default_events() -> Vec<ReviewEvent> {
    ReviewEvent::DEFAULT.to_vec()
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
    #[error("notifications[{index}].tls: {source}")]
    Tls {
        index: usize,
        #[source]
        source: crate::tls::TlsError,
    },
    #[error("cannot build the notification HTTP client: {0}")]
    Client(String),
}

impl NotifyError {
    pub fn reason_code(&self) -> &'static str {
        match self {
            NotifyError::BadUrl { .. } => "notify.bad_url",
            NotifyError::Secret { .. } => "notify.secret",
            NotifyError::Tls { .. } => "notify.tls",
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
    public_url: Option<String>,
    metrics: Arc<Metrics>,
    /// Reviews already announced as expiring, by target index. Per replica: after a lease
    /// handover a review may be announced once more.
    expiring_sent: Mutex<HashSet<(usize, DecisionId)>>,
    /// The gate's clock: when a review expires and when a notification was sent.
    clock: Arc<dyn Clock>,
}

struct Target {
    url: String,
    /// Its own client: each target may trust its own CA and present its own certificate.
    client: reqwest::Client,
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
            let tls = crate::tls::client_config(&t.tls.clone().unwrap_or_default(), &[b"http/1.1"])
                .map_err(|source| NotifyError::Tls { index, source })?;
            let client = reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .timeout(ATTEMPT_TIMEOUT)
                .connect_timeout(ATTEMPT_TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| NotifyError::Client(e.to_string()))?;
            built.push(Target {
                client,
                url: t.url.clone(),
                secret,
                events: t.events.clone(),
                expiring_within: t.expiring_within.unwrap_or(DEFAULT_EXPIRING_WITHIN),
            });
        }
        Ok(Self {
            targets: built,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            metrics,
            expiring_sent: Mutex::new(HashSet::new()),
            clock: Arc::new(SystemClock),
        })
    }

    /// Reads the time from `clock` (the gate's) instead of the system.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
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
            (_, ReviewEvent::CheckTerminated) => format!(
                "Portcullis: {} → {} terminated: {} ({decision_link})",
                d.request.application, d.request.environment, d.summary
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
                channel: r.channel.to_string(),
            }),
            links: Links {
                review: format!("{decision_link}/review"),
                decision: decision_link,
            },
            sent_at: self.clock.now(),
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
                client: t.client.clone(),
                url: t.url.clone(),
                signature: sign(&t.secret, payload.sent_at.timestamp(), &body),
                event,
                body: body.clone(),
                metrics: Arc::clone(&self.metrics),
                decision: d.id.to_string(),
                clock: Arc::clone(&self.clock),
            };
            tokio::spawn(delivery.run());
        }
    }
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256 of "<timestamp>.<body>" under secret>`, the value of
/// [`SIGNATURE_HEADER`]. The timestamp is signed with the body, so it cannot be swapped for a
/// fresh one on a replayed delivery.
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

fn mac(secret: &Secret, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here; an empty MAC is
    // never produced because an empty secret is refused when it is resolved.
    match Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
        Ok(mut mac) => {
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    }
}

/// Why a receiver refuses a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is not `t=<unix seconds>,v1=<hex>`")]
    Malformed,
    #[error(
        "the signature was made {age_s} s from now, beyond the tolerance: a replay, or a clock is wrong"
    )]
    Stale { age_s: i64 },
    #[error("no `v1` signature matches the body under this secret")]
    Mismatch,
}

/// Checks a delivery as a receiver should: the header parses, its timestamp is within
/// `tolerance` of `now` (either side), and one `v1` value matches, compared in constant time.
/// Receivers in Rust can call this; the README shows the same steps in Python.
pub fn verify(
    secret: &Secret,
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => {
                timestamp = Some(t.parse::<i64>().map_err(|_| SignatureError::Malformed)?)
            }
            Some(("v1", v)) => {
                candidates.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?)
            }
            // Unknown schemes are skipped, so a future `v2` can be sent alongside.
            Some(_) => {}
            None => return Err(SignatureError::Malformed),
        }
    }
    let (Some(timestamp), false) = (timestamp, candidates.is_empty()) else {
        return Err(SignatureError::Malformed);
    };
    let age_s = now.timestamp().saturating_sub(timestamp);
    let tolerance_s = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if age_s.saturating_abs() > tolerance_s {
        return Err(SignatureError::Stale { age_s });
    }
    let expected = mac(secret, timestamp, body);
    let matched = candidates.iter().fold(subtle::Choice::from(0), |acc, c| {
        acc | subtle::ConstantTimeEq::ct_eq(c.as_slice(), expected.as_slice())
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

impl ReviewObserver for Notifier {
    fn review_opened(&self, d: &Decision) {
        self.send(ReviewEvent::ReviewOpened, d, None);
    }

    fn check_decided(&self, d: &Decision) {
        if d.status == DecisionStatus::Final && d.verdict == crate::domain::Verdict::Terminate {
            self.send(ReviewEvent::CheckTerminated, d, None);
        }
    }

    fn review_resolved(&self, d: &Decision) {
        self.send(ReviewEvent::ReviewResolved, d, None);
        if let Ok(mut sent) = self.expiring_sent.lock() {
            sent.retain(|(_, id)| id != &d.id);
        }
    }

    fn reminder_window(&self) -> Duration {
        self.targets
            .iter()
            .filter(|t| t.events.contains(&ReviewEvent::ReviewExpiring))
            .map(|t| t.expiring_within)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    fn review_waiting(&self, d: &Decision) {
        let (DecisionStatus::Pending, Some(deadline)) = (d.status, d.review_deadline) else {
            return;
        };
        let left = (deadline - self.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
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
    /// The gate's clock: the backoff between attempts is waited on it, so a test's manual
    /// clock moves instead of the test waiting.
    clock: Arc<dyn Clock>,
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
                self.clock.sleep(backoff).await;
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
                if let Some(problem) = crate::tls::classify(&e) {
                    // The next handshake would fail the same way.
                    return Failure::Permanent(format!(
                        "tls handshake failed ({problem}): {}",
                        problem.help()
                    ));
                }
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
        // RFC 4231 test case 2, with the message split as `<t>.<body>`.
        let s = sign(&Secret::new("Jefe"), 0, b"what do ya want for nothing?");
        assert!(s.starts_with("t=0,v1="), "{s}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"0.what do ya want for nothing?");
        assert_eq!(
            s,
            format!("t=0,v1={}", hex::encode(mac.finalize().into_bytes()))
        );
    }

    #[test]
    fn verification_refuses_replays_tampering_and_garbage() {
        let secret = Secret::new("k");
        let now = DateTime::parse_from_rfc3339("2026-03-12T16:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let t = now.timestamp();
        let header = sign(&secret, t, b"{}");
        let tol = SIGNATURE_TOLERANCE;
        assert_eq!(verify(&secret, &header, b"{}", now, tol), Ok(()));
        let later = now + chrono::Duration::minutes(6);
        assert!(matches!(
            verify(&secret, &header, b"{}", later, tol),
            Err(SignatureError::Stale { age_s: 360 })
        ));
        assert_eq!(
            verify(&secret, &header, b"{ }", now, tol),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed: moving it forward breaks the signature.
        let moved = header.replacen(&format!("t={t}"), &format!("t={}", t + 1), 1);
        assert_eq!(
            verify(&secret, &moved, b"{}", now, tol),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&secret, "sha256=abc", b"{}", now, tol),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify(&Secret::new("other"), &header, b"{}", now, tol),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn targets_parse_with_all_events_by_default() {
        let t: NotificationTarget =
            serde_norway::from_str("url: https://hooks.example.com/x\nsecret: {env: HOOK}\n")
                .unwrap();
        assert_eq!(t.events.len(), 3);
        assert!(!t.events.contains(&ReviewEvent::CheckTerminated));
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
