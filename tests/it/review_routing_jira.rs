//! Reviews routed to Jira, over the simulator: the gate creates an issue (ADF on Cloud) with the
//! failing rules, and the review ends when the issue reaches a configured status.

use std::sync::Arc;
use std::time::Duration;

use portcullis::auth::Role;
use portcullis::clock::{Clock, ManualClock};
use portcullis::review_routing::ReviewRoute;
use portcullis::sim::{self, Sims};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::fixtures::good_check;
use crate::support::poll::eventually;

const REVIEW: &str = "rules:\n  - id: needs-review\n    title: Needs a human\n    category: test\n    severity: high\n    remediation: Ask release management.\n    condition: { path: $.request.application, op: absent }\n";

/// How often the follower reads an issue: by the app's manual clock, so a read happens when a
/// test advances it ([`polled`]), never on a real-time cadence.
const POLL: chrono::Duration = chrono::Duration::minutes(1);

/// An app routing prod reviews to the simulated Jira, on `clock`.
async fn app(sims: &Sims, clock: &Arc<ManualClock>) -> TestApp {
    let builder = TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .token("ci", "pc_pipeline", vec![Role::Pipeline])
        .adapter(json!({
            "kind": "jira", "name": "jira", "base_url": sims.jira.base_url,
            "auth": {"type": "basic", "username": sim::jira::EMAIL,
                     "password": {"value": sim::jira::API_TOKEN}},
        }));
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let settings = {
        let mut s = builder.settings(dir.path());
        let route: ReviewRoute = serde_json::from_value(json!({"jira": {
            "adapter": "jira", "project": "REL", "labels": ["portcullis"],
            "approved_statuses": ["Approved"], "rejected_statuses": ["Rejected"],
            "poll_interval": "1m", "max_poll_interval": "1m",
        }}))
        .unwrap();
        s.review.routes.insert("prod".into(), route);
        // Far beyond the polls the tests advance the clock by: no review expires meanwhile.
        s.review.timeout = Duration::from_secs(365 * 24 * 3600);
        s
    };
    crate::support::app::start_with_clock(
        settings,
        dir,
        Some("pc_pipeline".into()),
        Arc::clone(clock) as Arc<dyn Clock>,
    )
    .await
}

/// [`eventually`], advancing the clock by a poll interval before each look: the follower reads
/// the issue once per advance.
async fn polled<T, Fut>(clock: &ManualClock, what: &str, mut f: impl FnMut() -> Fut) -> T
where
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually(Duration::from_secs(10), what, || {
        clock.advance(POLL);
        f()
    })
    .await
}

async fn decision(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/decisions/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn issue_for(app: &TestApp, key: &str) -> (String, String) {
    let d = app
        .check(&good_check(key))
        .await
        .json_with(StatusCode::CREATED);
    assert_eq!(d["status"], "pending", "{d}");
    let id = d["id"].as_str().unwrap().to_string();
    let issue = eventually(Duration::from_secs(10), "the review issue", || async {
        let d = decision(app, &id).await;
        (d["review_ticket"]["system"] == "jira")
            .then(|| d["review_ticket"]["number"].as_str().unwrap().to_string())
    })
    .await;
    (id, issue)
}

/// The release manager moves the issue (recorded in its changelog).
async fn move_issue(sims: &Sims, key: &str, status: &str) {
    move_issue_as(sims, key, status, json!("rita@acme.example")).await;
}

/// Moves the issue as `by` (`null`: the changelog names nobody).
async fn move_issue_as(sims: &Sims, key: &str, status: &str, by: Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/_sim/issues/{key}/status", sims.jira.base_url))
        .json(&json!({"status": status, "by": by}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

/// Polls (by advancing `clock`) until the review is final.
async fn final_decision(app: &TestApp, clock: &ManualClock, id: &str) -> Value {
    polled(clock, "the review to end", || async {
        let d = decision(app, id).await;
        (d["status"] == "final").then_some(d)
    })
    .await
}

#[tokio::test]
async fn an_issue_reaching_an_approved_status_approves_the_review() {
    let sims = sim::start(0).await.unwrap();
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock).await;
    let (id, key) = issue_for(&app, "jira-route-1").await;
    assert!(key.starts_with("REL-"), "{key}");

    // The issue carries the failing rule (the simulator refuses a non-ADF description on v3).
    let issue: Value = reqwest::Client::new()
        .get(format!("{}/rest/api/3/issue/{key}", sims.jira.base_url))
        .basic_auth(sim::jira::EMAIL, Some(sim::jira::API_TOKEN))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        issue["fields"]["summary"]
            .as_str()
            .unwrap()
            .contains("payments"),
        "{issue}"
    );

    // Done by category alone decides nothing: after two more polls it is still pending.
    move_issue(&sims, &key, "Done").await;
    let before = sims.jira.control.requests();
    polled(&clock, "two more polls", || async {
        (sims.jira.control.requests() >= before + 2).then_some(())
    })
    .await;
    assert_eq!(decision(&app, &id).await["status"], "pending");
    move_issue(&sims, &key, "Approved").await;
    let d = final_decision(&app, &clock, &id).await;
    assert_eq!(d["verdict"], "continue", "{d}");
    assert_eq!(d["resolution"]["outcome"], "approved");
    assert_eq!(d["resolution"]["channel"], "jira");
    assert!(
        d["resolution"]["comment"]
            .as_str()
            .unwrap()
            .contains("Approved")
    );
}

#[tokio::test]
async fn an_issue_reaching_a_rejected_status_rejects_the_review() {
    let sims = sim::start(0).await.unwrap();
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock).await;
    let (id, key) = issue_for(&app, "jira-route-2").await;
    move_issue(&sims, &key, "Rejected").await;
    let d = final_decision(&app, &clock, &id).await;
    assert_eq!(d["verdict"], "terminate", "{d}");
    assert_eq!(d["resolution"]["outcome"], "rejected");
    assert_eq!(d["resolution"]["channel"], "jira");
}

#[tokio::test]
async fn a_webhook_resolves_at_once_and_is_only_a_hint() {
    let sims = sim::start(0).await.unwrap();
    // The clock stands still, so no poll comes: only the webhook can resolve it.
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock).await;
    let (id, key) = issue_for(&app, "jira-route-3").await;
    let hook = |key: String| {
        let app = &app;
        async move {
            app.jira_webhook(
                Some("pc_pipeline"),
                &json!({"webhookEvent": "jira:issue_updated", "issue": {"key": key}}),
            )
            .await
            .parts()
        }
    };
    // A call while the status decides nothing resolves nothing.
    let (status, a) = hook(key.clone()).await;
    assert_eq!((status, a["resolved"].clone()), (200, json!(false)), "{a}");
    assert_eq!(decision(&app, &id).await["status"], "pending");

    move_issue(&sims, &key, "Approved").await;
    let (status, a) = hook(key.clone()).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["resolved"], true);
    assert_eq!(a["verdict"], "continue");
    let d = decision(&app, &id).await;
    assert_eq!(d["resolution"]["channel"], "jira");

    let (status, again) = hook(key).await;
    assert_eq!((status, again["resolved"].clone()), (200, json!(false)));
}

#[tokio::test]
async fn who_moved_the_issue_approves_and_separation_of_duties_applies_to_them() {
    let sims = sim::start(0).await.unwrap();
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock).await;

    // The deploy's trigger (`alice` in the check) moves the issue to Approved: refused.
    let (id, key) = issue_for(&app, "jira-route-sod").await;
    move_issue_as(&sims, &key, "Approved", json!("alice")).await;
    let d = polled(&clock, "the refusal", || async {
        let d = decision(&app, &id).await;
        d["refused_attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
            .then_some(d)
    })
    .await;
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(d["refused_attempts"][0]["by"], "alice", "{d}");
    assert_eq!(d["refused_attempts"][0]["channel"], "jira", "{d}");

    // Nobody in the changelog: not an approval either, and the reason says so.
    let (id, key) = issue_for(&app, "jira-route-unknown").await;
    move_issue_as(&sims, &key, "Approved", Value::Null).await;
    let d = polled(&clock, "the note", || async {
        let d = decision(&app, &id).await;
        d["refused_attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
            .then_some(d)
    })
    .await;
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(
        d["refused_attempts"][0]["reason_code"], "approver_unknown",
        "{d}"
    );
    assert!(
        d["refused_attempts"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("names nobody"),
        "{d}"
    );

    // Someone else moves it: approved, by them.
    move_issue(&sims, &key, "Approved").await;
    let d = final_decision(&app, &clock, &id).await;
    assert_eq!(d["resolution"]["outcome"], "approved", "{d}");
    assert_eq!(d["resolution"]["by"], "rita@acme.example", "{d}");
}

#[tokio::test]
async fn an_issue_jira_refuses_to_create_is_noted_on_the_review_and_backed_off() {
    let sims = sim::start(0).await.unwrap();
    let builder = TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .token("ci", "pc_pipeline", vec![Role::Pipeline])
        .adapter(json!({
            "kind": "jira", "name": "jira", "base_url": sims.jira.base_url,
            "auth": {"type": "basic", "username": sim::jira::EMAIL,
                     "password": {"value": sim::jira::API_TOKEN}},
        }));
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = builder.settings(dir.path());
    // No project: Jira answers the create with 400 and a field error.
    let route: ReviewRoute = serde_json::from_value(json!({"jira": {
        "adapter": "jira", "project": "",
        "approved_statuses": ["Approved"], "rejected_statuses": ["Rejected"],
        "poll_interval": "1h", "max_poll_interval": "1h",
    }}))
    .unwrap();
    settings.review.routes.insert("prod".into(), route);
    let app = crate::support::app::start(settings, dir, Some("pc_pipeline".into())).await;

    let first: Value = app
        .post_check(&good_check("jira-refused-1"))
        .await
        .json()
        .await
        .unwrap();
    let d = noted(&app, first["id"].as_str().unwrap()).await;
    assert_eq!(d["status"], "pending", "{d}");
    assert!(d["review_ticket"].is_null(), "{d}");
    let attempt = &d["refused_attempts"][0];
    assert_eq!(attempt["reason_code"], "review_route.refused", "{d}");
    assert_eq!(attempt["channel"], "jira", "{d}");
    let reason = attempt["reason"].as_str().unwrap();
    assert!(reason.contains("HTTP 400"), "{reason}");
    assert!(!reason.contains("cannot be reached"), "{reason}");

    // Two more reviews wake the follower for two more rounds; each opens its own issue once,
    // and the first review, backed off for an hour, is not retried in them.
    let before = sims.jira.control.requests();
    for key in ["jira-refused-2", "jira-refused-3"] {
        let d = app
            .check(&good_check(key))
            .await
            .json_with(StatusCode::CREATED);
        noted(&app, d["id"].as_str().unwrap()).await;
    }
    assert_eq!(sims.jira.control.requests(), before + 2);
    let d = decision(&app, first["id"].as_str().unwrap()).await;
    assert_eq!(d["refused_attempts"].as_array().unwrap().len(), 1, "{d}");
}

/// Waits until the review has a refused attempt on it; returns the decision.
async fn noted(app: &TestApp, id: &str) -> Value {
    eventually(
        Duration::from_secs(10),
        "the refusal on the review",
        || async {
            let d = decision(app, id).await;
            d["refused_attempts"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
                .then_some(d)
        },
    )
    .await
}
