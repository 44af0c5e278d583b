//! Review notifications: a local receiver checks the HMAC signature, the event header and the
//! body for review opened / resolved / expiring; a broken receiver never blocks a check.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, Mac};
use portcullis::auth::Role;
use portcullis::clock::{Clock, ManualClock};
use portcullis::notify::NotificationTarget;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::TestApp;
use crate::support::fixtures::good_check;
use crate::support::poll::eventually;

const REVIEW: &str = "rules:\n  - id: needs-review\n    title: Needs a human\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n";
const SECRET: &str = "hook-secret-1";

/// What the receiver got: (event header, body), for requests whose signature verified.
#[derive(Clone)]
struct Received {
    ok: Arc<Mutex<Vec<(String, Value)>>>,
    bad_signatures: Arc<Mutex<usize>>,
    fail_with: Option<StatusCode>,
    /// The app's clock: the receiver's "now" for the signature's freshness.
    clock: Arc<ManualClock>,
}

async fn hook(State(r): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if let Some(status) = r.fail_with {
        return status;
    }
    // Verified as the README tells receivers to, written here without the crate's `verify`:
    // `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, the timestamp within 5 minutes.
    let got = headers
        .get("x-portcullis-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let fields: std::collections::HashMap<&str, &str> =
        got.split(',').filter_map(|p| p.split_once('=')).collect();
    let t = fields.get("t").and_then(|t| t.parse::<i64>().ok());
    let fresh = t.is_some_and(|t| (r.clock.now().timestamp() - t).abs() <= 300);
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{}.", t.unwrap_or_default()).as_bytes());
    mac.update(&body);
    let signed = fields
        .get("v1")
        .and_then(|v| hex::decode(v).ok())
        .is_some_and(|v| mac.verify_slice(&v).is_ok());
    if !(fresh && signed) {
        *r.bad_signatures.lock().unwrap() += 1;
        return StatusCode::UNAUTHORIZED;
    }
    let event = headers["x-portcullis-event"].to_str().unwrap().to_string();
    r.ok.lock()
        .unwrap()
        .push((event, serde_json::from_slice(&body).unwrap()));
    StatusCode::NO_CONTENT
}

/// A receiver whose clock is `clock`, the app's.
async fn receiver(fail_with: Option<StatusCode>, clock: &Arc<ManualClock>) -> (String, Received) {
    let received = Received {
        ok: Arc::default(),
        bad_signatures: Arc::default(),
        fail_with,
        clock: Arc::clone(clock),
    };
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

async fn app_notifying(
    clock: &Arc<ManualClock>,
    url: &str,
    extra: Value,
    review_timeout: Option<Duration>,
) -> TestApp {
    let mut builder = TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .token("ci", "pc_pipeline", vec![Role::Pipeline])
        .token("bob", "pc_bob", vec![Role::Approver]);
    if let Some(t) = review_timeout {
        builder = builder.review_timeout(t);
    }
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = builder.settings(dir.path());
    settings.server.public_url = Some("https://gate.example.com".into());
    let mut target = json!({"url": url, "secret": {"value": SECRET}});
    if let (Some(t), Some(e)) = (target.as_object_mut(), extra.as_object()) {
        t.extend(e.clone());
    }
    settings.notifications = vec![serde_json::from_value::<NotificationTarget>(target).unwrap()];
    crate::support::app::start_with_clock(
        settings,
        dir,
        Some("pc_pipeline".into()),
        Arc::clone(clock) as Arc<dyn Clock>,
    )
    .await
}

fn events(r: &Received) -> Vec<(String, Value)> {
    r.ok.lock().unwrap().clone()
}

#[tokio::test]
async fn review_opened_and_resolved_are_signed_and_describe_the_decision() {
    let clock = crate::support::clock_at_t0();
    let (url, received) = receiver(None, &clock).await;
    let app = app_notifying(&clock, &url, json!({}), None).await;
    let d: Value = app
        .post_check(&good_check("n1"))
        .await
        .json()
        .await
        .unwrap();
    let id = d["id"].as_str().unwrap().to_string();
    assert_eq!(d["status"], "pending", "{d}");

    let opened = eventually(Duration::from_secs(5), "review_opened", || {
        let got = events(&received);
        async move { got.into_iter().find(|(e, _)| e == "review_opened") }
    })
    .await
    .1;
    assert_eq!(opened["event"], "review_opened");
    assert_eq!(opened["decision_id"], id.as_str());
    assert_eq!(opened["application"], "payments");
    assert_eq!(opened["environment"], "prod");
    assert_eq!(opened["verdict"], "manual_review");
    assert_eq!(opened["status"], "pending");
    assert_eq!(opened["failing_rules"][0]["rule_id"], "needs-review");
    assert_eq!(
        opened["links"]["decision"],
        format!("https://gate.example.com/v1/decisions/{id}")
    );
    assert!(opened["text"].as_str().unwrap().contains("needs a review"));

    let resp = app
        .http
        .post(app.url(&format!("/v1/decisions/{id}/review")))
        .bearer_auth("pc_bob")
        .json(&json!({"resolution": "approve", "comment": "ok"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resolved = eventually(Duration::from_secs(5), "review_resolved", || {
        let got = events(&received);
        async move { got.into_iter().find(|(e, _)| e == "review_resolved") }
    })
    .await
    .1;
    assert_eq!(resolved["verdict"], "continue");
    assert_eq!(resolved["resolution"]["outcome"], "approved");
    assert_eq!(resolved["resolution"]["by"], "bob");
    assert_eq!(*received.bad_signatures.lock().unwrap(), 0);
    // The secret is never part of what is sent.
    assert!(
        !serde_json::to_string(&events(&received))
            .unwrap()
            .contains(SECRET)
    );
}

#[tokio::test]
async fn only_subscribed_events_are_sent() {
    let clock = crate::support::clock_at_t0();
    let (url, received) = receiver(None, &clock).await;
    let app = app_notifying(&clock, &url, json!({"events": ["review_resolved"]}), None).await;
    let d: Value = app
        .post_check(&good_check("n2"))
        .await
        .json()
        .await
        .unwrap();
    let id = d["id"].as_str().unwrap();
    app.http
        .post(app.url(&format!("/v1/decisions/{id}/review")))
        .bearer_auth("pc_bob")
        .json(&json!({"resolution": "reject"}))
        .send()
        .await
        .unwrap();
    let got = eventually(Duration::from_secs(5), "review_resolved", || {
        let got = events(&received);
        async move { (!got.is_empty()).then_some(got) }
    })
    .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "review_resolved");
    assert_eq!(got[0].1["resolution"]["outcome"], "rejected");
}

#[tokio::test]
async fn a_review_near_its_deadline_is_announced_once_then_its_expiry() {
    let clock = crate::support::clock_at_t0();
    let (url, received) = receiver(None, &clock).await;
    let app = app_notifying(
        &clock,
        &url,
        json!({"expiring_within": "1h"}),
        Some(Duration::from_secs(2 * 3600)),
    )
    .await;
    let d: Value = app
        .post_check(&good_check("n3"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["status"], "pending", "{d}");
    // Received before the clock moves, so its signature is fresh by the receiver's clock.
    eventually(Duration::from_secs(10), "review_opened", || {
        let got = events(&received);
        async move { got.iter().any(|(e, _)| e == "review_opened").then_some(()) }
    })
    .await;
    // An hour later the deadline is within `expiring_within`: the sweeper announces it.
    clock.advance(chrono::Duration::hours(1));
    eventually(Duration::from_secs(10), "the expiring notification", || {
        let got = events(&received);
        async move {
            got.iter()
                .any(|(e, _)| e == "review_expiring")
                .then_some(())
        }
    })
    .await;
    // Another hour and the deadline has passed: the review expires.
    clock.advance(chrono::Duration::hours(1));
    let got = eventually(Duration::from_secs(10), "the expiry notification", || {
        let got = events(&received);
        async move {
            got.iter()
                .any(|(e, b)| e == "review_resolved" && b["resolution"]["outcome"] == "expired")
                .then_some(got)
        }
    })
    .await;
    let expiring: Vec<_> = got.iter().filter(|(e, _)| e == "review_expiring").collect();
    assert_eq!(expiring.len(), 1, "{got:?}");
    assert!(expiring[0].1["review_deadline"].is_string());
    assert_eq!(*received.bad_signatures.lock().unwrap(), 0);
}

#[tokio::test]
async fn a_failing_receiver_never_blocks_a_check_and_is_counted() {
    // The retries' backoff is waited on the manual clock: it moves, the test does not wait.
    let clock = crate::support::clock_at_t0();
    let (url, _received) = receiver(Some(StatusCode::INTERNAL_SERVER_ERROR), &clock).await;
    let app = app_notifying(&clock, &url, json!({}), None).await;
    let resp = app.post_check(&good_check("n4")).await;
    assert_eq!(resp.status(), 201);
    let d: Value = resp.json().await.unwrap();
    assert_eq!(d["status"], "pending");
    eventually(Duration::from_secs(10), "the failure metric", || async {
        let m = app.get("/metrics").await.text().await.unwrap();
        m.lines()
            .any(|l| {
                l.starts_with("portcullis_notifications_total")
                    && l.contains("event=\"review_opened\"")
                    && l.contains("outcome=\"failed\"")
                    && l.ends_with(" 1")
            })
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_terminated_check_notifies_targets_that_opt_in() {
    const DENY: &str = "rules:\n  - id: never\n    title: Never\n    category: test\n    severity: critical\n    condition: { path: $.request.application, op: absent }\n";
    let clock = crate::support::clock_at_t0();
    let (url, received) = receiver(None, &clock).await;
    let (quiet_url, quiet) = receiver(None, &clock).await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let builder = TestApp::builder().policies(&[("p.yaml", DENY)]).token(
        "ci",
        "pc_pipeline",
        vec![Role::Pipeline],
    );
    let mut settings = builder.settings(dir.path());
    settings.notifications = vec![
        serde_json::from_value::<NotificationTarget>(
            json!({"url": url, "secret": {"value": SECRET}, "events": ["check_terminated"]}),
        )
        .unwrap(),
        // No `events`: the review events only, as before `check_terminated` existed.
        serde_json::from_value::<NotificationTarget>(
            json!({"url": quiet_url, "secret": {"value": SECRET}}),
        )
        .unwrap(),
    ];
    let app = crate::support::app::start_with_clock(
        settings,
        dir,
        Some("pc_pipeline".into()),
        Arc::clone(&clock) as Arc<dyn Clock>,
    )
    .await;
    let resp = app.post_check(&good_check("n-term")).await;
    assert_eq!(resp.status(), 201);
    let d: Value = resp.json().await.unwrap();
    assert_eq!(d["verdict"], "terminate", "{d}");
    let got = eventually(Duration::from_secs(5), "check_terminated", || {
        let got = events(&received);
        async move { got.into_iter().find(|(e, _)| e == "check_terminated") }
    })
    .await
    .1;
    assert_eq!(got["decision_id"], d["id"]);
    assert_eq!(got["verdict"], "terminate");
    assert_eq!(got["status"], "final");
    assert_eq!(got["failing_rules"][0]["rule_id"], "never");
    assert!(got["text"].as_str().unwrap().contains("terminated"));
    assert_eq!(*received.bad_signatures.lock().unwrap(), 0);
    // A replay of the same check is not a second decision and sends nothing more.
    let again = app.post_check(&good_check("n-term")).await;
    assert_eq!(again.status(), 200);
    assert_eq!(events(&received).len(), 1);
    assert!(events(&quiet).is_empty());
}
