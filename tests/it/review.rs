//! Manual review: approve / reject by an approver, separation of duties, first resolution wins,
//! and a waiting client sees the approval.

use std::time::Duration;

use portcullis::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::fixtures::good_check;
use crate::support::poll::eventually;

const REVIEW: &str = "rules:\n  - id: needs-review\n    title: Needs a human\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n";

async fn app() -> TestApp {
    TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .token("ci", "pc_pipeline", vec![Role::Pipeline])
        .token("bob", "pc_bob", vec![Role::Approver])
        .token("alice", "pc_alice", vec![Role::Approver])
        .spawn()
        .await
}

async fn review(app: &TestApp, token: &str, id: &str, body: Value) -> (u16, Value) {
    app.review(Some(token), id, &body).await.parts()
}

async fn pending(app: &TestApp, key: &str) -> String {
    let d = app
        .check(&good_check(key))
        .await
        .json_with(StatusCode::CREATED);
    assert_eq!(
        (d["verdict"].as_str(), d["status"].as_str()),
        (Some("manual_review"), Some("pending")),
        "{d}"
    );
    d["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_approver_approves_and_the_first_resolution_wins() {
    let app = app().await;
    let id = pending(&app, "r1").await;
    let (status, d) = review(
        &app,
        "pc_bob",
        &id,
        json!({"resolution": "approve", "comment": "looked at the scan"}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (d["verdict"].as_str(), d["status"].as_str()),
        (Some("continue"), Some("final"))
    );
    assert_eq!(d["resolution"]["by"], "bob");
    assert_eq!(d["resolution"]["outcome"], "approved");
    assert_eq!(d["resolution"]["comment"], "looked at the scan");

    let (status, p) = review(&app, "pc_alice", &id, json!({"resolution": "reject"})).await;
    assert_eq!(status, 409, "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("already approved by bob"),
        "{p}"
    );
}

#[tokio::test]
async fn a_rejection_terminates() {
    let app = app().await;
    let id = pending(&app, "r2").await;
    let (status, d) = review(
        &app,
        "pc_alice",
        &id,
        json!({"resolution": "reject", "comment": "no change ticket"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(d["verdict"], "terminate");
    assert_eq!(d["resolution"]["outcome"], "rejected");
}

#[tokio::test]
async fn whoever_triggered_the_deploy_cannot_approve_it() {
    let app = app().await;
    let mut body = good_check("r3");
    body["triggered_by"] = json!("bob");
    let d = app.check(&body).await.json_with(StatusCode::CREATED);
    let id = d["id"].as_str().unwrap();
    let (status, p) = review(&app, "pc_bob", id, json!({"resolution": "approve"})).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["reason_code"], "review.separation_of_duties");
    // Still pending: the refusal changed nothing.
    let d: Value = app
        .get(&format!("/v1/decisions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["status"], "pending");
}

#[tokio::test]
async fn pipelines_cannot_approve_and_bad_answers_are_refused() {
    let app = app().await;
    let id = pending(&app, "r4").await;
    let (status, _) = review(&app, "pc_pipeline", &id, json!({"resolution": "approve"})).await;
    assert_eq!(status, 403);
    let (status, p) = review(&app, "pc_bob", &id, json!({"resolution": "maybe"})).await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(p["field"], "resolution");
}

#[tokio::test]
async fn a_waiting_check_client_exits_0_once_approved() {
    let app = app().await;
    let server = app.grpc_url();
    let image = format!("ghcr.io/acme/payments@{}", crate::support::app::digest('f'));
    let cli = tokio::spawn(async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args([
                "check",
                "--server",
                &server,
                "-a",
                "payments",
                "-e",
                "prod",
                "--image",
                &image,
                "--deadline",
                "30s",
            ])
            .env("PORTCULLIS_TOKEN", "pc_pipeline")
            .output()
            .await
            .unwrap()
    });
    let id = eventually(
        Duration::from_secs(15),
        "the CLI's pending decision",
        || async {
            let list: Value = app
                .get("/v1/decisions?status=pending")
                .await
                .json()
                .await
                .ok()?;
            list["decisions"][0]["id"].as_str().map(str::to_string)
        },
    )
    .await;
    let (status, _) = review(&app, "pc_alice", &id, json!({"resolution": "approve"})).await;
    assert_eq!(status, 200);
    let out = cli.await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("verdict:  continue"));
}

#[tokio::test]
async fn a_review_nobody_resolves_expires_and_terminates() {
    let clock = crate::support::clock_at_t0();
    let app = TestApp::builder()
        .clock(clock.clone())
        .policies(&[("p.yaml", REVIEW)])
        .token("ci", "pc_pipeline", vec![Role::Pipeline])
        .review_timeout(Duration::from_secs(3600))
        .spawn()
        .await;
    let d: Value = app
        .post_check(&good_check("exp"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["status"], "pending");
    assert!(
        d["review_deadline"].is_string(),
        "a pending review carries its deadline: {d}"
    );
    let id = d["id"].as_str().unwrap().to_string();
    clock.advance(chrono::Duration::hours(1));
    // The sweeper (or a read past the deadline) expires it.
    let expired = eventually(Duration::from_secs(10), "the review to expire", || async {
        let d: Value = app
            .get(&format!("/v1/decisions/{id}"))
            .await
            .json()
            .await
            .ok()?;
        (d["status"] == "final").then_some(d)
    })
    .await;
    assert_eq!(expired["verdict"], "terminate");
    assert_eq!(expired["resolution"]["outcome"], "expired");
    assert_eq!(expired["resolution"]["by"], "portcullis");
}

/// The ids of the decisions `/v1/decisions?status={status}` lists (one page of up to 500).
async fn listed(app: &TestApp, status: &str) -> Vec<String> {
    let page = app
        .decisions(None, &format!("?status={status}&page_size=500"))
        .await
        .json_with(StatusCode::OK);
    page["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_sweeper_expires_the_one_due_review_among_many_pending() {
    let clock = crate::support::clock_at_t0();
    let app = TestApp::builder()
        .clock(clock.clone())
        .policies(&[("p.yaml", REVIEW)])
        .review_timeout(Duration::from_secs(3600))
        .spawn()
        .await;
    let due = pending(&app, "due").await;
    // Half an hour later, 200 more: due half an hour after the first.
    clock.advance(chrono::Duration::minutes(30));
    let mut far = Vec::new();
    for i in 0..200 {
        far.push(pending(&app, &format!("far-{i}")).await);
    }
    clock.advance(chrono::Duration::minutes(30));
    // Lists never expire anything themselves (a read of the decision would): only the sweeper
    // can make it final.
    let finals = eventually(
        Duration::from_secs(10),
        "the due review to expire",
        || async {
            let finals = listed(&app, "final").await;
            (!finals.is_empty()).then_some(finals)
        },
    )
    .await;
    assert_eq!(finals, [due.as_str()]);
    let expired = app.decision(&due).await.json_with(StatusCode::OK);
    assert_eq!(expired["resolution"]["outcome"], "expired");
    let mut still = listed(&app, "pending").await;
    still.sort();
    far.sort();
    assert_eq!(still, far, "the reviews not due yet stay pending");
}

#[tokio::test]
async fn a_watching_client_sees_the_expiry() {
    let clock = crate::support::clock_at_t0();
    let app = TestApp::builder()
        .clock(clock.clone())
        .policies(&[("p.yaml", REVIEW)])
        .review_timeout(Duration::from_secs(3600))
        .spawn()
        .await;
    // Once the client's check is pending, its deadline passes; the sweeper expires it by the
    // clock, and the watching client hears of it (or reads it expired, if it watches later).
    let deadline_passes = async {
        eventually(Duration::from_secs(10), "the client's check", || async {
            let list: Value = app.get("/v1/decisions").await.json().await.ok()?;
            (!list["decisions"].as_array()?.is_empty()).then_some(())
        })
        .await;
        clock.advance(chrono::Duration::hours(1));
    };
    let server = app.grpc_url();
    let image = format!("ghcr.io/acme/payments@{}", crate::support::app::digest('9'));
    let args = [
        "check",
        "--server",
        &server,
        "-a",
        "payments",
        "-e",
        "prod",
        "--image",
        &image,
        "--deadline",
        "30s",
    ];
    let (out, ()) = tokio::join!(crate::support::fixtures::portcullis(&args), deadline_passes);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "an expired review is a terminate: {text}"
    );
    assert!(text.contains("expired"), "{text}");
}

/// Passes while the scan is younger than 2 s: at check time it is, at approval time it is not.
const FRESH_SCAN: &str = "rules:\n  - id: needs-review\n    title: Needs a human\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n  - id: scan-fresh\n    title: The scan is recent\n    category: test\n    severity: critical\n    condition: { path: $.request.labels.scanned_at, op: newer_than, value: 2s }\n";

#[tokio::test]
async fn time_bound_rules_are_checked_again_when_approved() {
    let clock = crate::support::clock_at_t0();
    let app = TestApp::builder()
        .clock(clock.clone())
        .policies(&[("p.yaml", FRESH_SCAN)])
        .token("ci", "pc_pipeline", vec![Role::Pipeline])
        .token("bob", "pc_bob", vec![Role::Approver])
        .spawn()
        .await;
    let scanned = crate::support::t0() - chrono::Duration::milliseconds(1500);
    let mut body = good_check("fresh");
    body["labels"]["scanned_at"] = json!(scanned.to_rfc3339());
    let d = app.check(&body).await.json_with(StatusCode::CREATED);
    assert_eq!(d["status"], "pending", "{d}");
    let scan_rule = d["rule_results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == "scan-fresh")
        .unwrap()
        .clone();
    assert_eq!(scan_rule["outcome"], "pass", "{d}");

    // The approver answers once the scan has aged past 2 s.
    clock.advance(chrono::Duration::milliseconds(600));

    let (status, after) = review(
        &app,
        "pc_bob",
        d["id"].as_str().unwrap(),
        json!({"resolution": "approve"}),
    )
    .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["verdict"], "terminate", "{after}");
    assert_eq!(
        after["resolution"]["outcome"], "approved",
        "the approval itself is recorded"
    );
    assert!(
        after["summary"].as_str().unwrap().contains("scan-fresh"),
        "{after}"
    );
    let rule = after["rule_results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == "scan-fresh")
        .unwrap()
        .clone();
    assert_eq!(rule["outcome"], "fail");
}

async fn two_person_app() -> TestApp {
    TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .token("ci", "pc_pipeline", vec![Role::Pipeline])
        .token_in_groups("bob", "pc_bob", vec![Role::Approver], &["release-managers"])
        .token_in_groups(
            "carol",
            "pc_carol",
            vec![Role::Approver],
            &["release-managers"],
        )
        .token_in_groups("dave", "pc_dave", vec![Role::Approver], &["developers"])
        .approvals("prod", 2, &["release-managers"])
        .spawn()
        .await
}

#[tokio::test]
async fn prod_needs_two_distinct_approvers_from_the_named_group() {
    let app = two_person_app().await;
    let id = pending(&app, "n1").await;

    // An approver outside the group is refused, and nothing changes.
    let (status, p) = review(&app, "pc_dave", &id, json!({"resolution": "approve"})).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["reason_code"], "review.not_in_approver_group");

    let (status, d) = review(
        &app,
        "pc_bob",
        &id,
        json!({"resolution": "approve", "comment": "scan ok"}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["status"], "pending", "one of two: {d}");
    assert_eq!(d["approvals"].as_array().unwrap().len(), 1);
    assert!(d["summary"].as_str().unwrap().contains("1 of 2"), "{d}");

    // The same person twice does not count twice.
    let (status, p) = review(&app, "pc_bob", &id, json!({"resolution": "approve"})).await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["reason_code"], "review.already_approved");

    let (status, d) = review(&app, "pc_carol", &id, json!({"resolution": "approve"})).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        (d["status"].as_str(), d["verdict"].as_str()),
        (Some("final"), Some("continue")),
        "{d}"
    );
    let by: Vec<&str> = d["approvals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["bob", "carol"]);
}

#[tokio::test]
async fn concurrent_approvals_by_two_people_are_both_counted() {
    let app = two_person_app().await;
    let id = pending(&app, "n2").await;
    let (a, b) = tokio::join!(
        review(&app, "pc_bob", &id, json!({"resolution": "approve"})),
        review(&app, "pc_carol", &id, json!({"resolution": "approve"}))
    );
    assert_eq!((a.0, b.0), (200, 200), "{} {}", a.1, b.1);
    let d: Value = app
        .get(&format!("/v1/decisions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (d["status"].as_str(), d["verdict"].as_str()),
        (Some("final"), Some("continue")),
        "{d}"
    );
    assert_eq!(
        d["approvals"].as_array().unwrap().len(),
        2,
        "no approval lost: {d}"
    );
}

#[tokio::test]
async fn staging_keeps_the_default_single_approver() {
    let app = two_person_app().await;
    let mut body = good_check("n3");
    body["environment"] = json!("staging");
    let d = app.check(&body).await.json_with(StatusCode::CREATED);
    let (status, d) = review(
        &app,
        "pc_dave",
        d["id"].as_str().unwrap(),
        json!({"resolution": "approve"}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["verdict"], "continue");
}
