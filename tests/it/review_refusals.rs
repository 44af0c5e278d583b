//! Refused review attempts are recorded on the decision with who, when, why and the channel:
//! separation of duties, approver groups and a repeated approval; the review stays pending.

use portcullis::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::fixtures::good_check;

const REVIEW: &str = "rules:\n  - id: needs-review\n    title: Needs a human\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n";

async fn review(app: &TestApp, token: &str, id: &str) -> (u16, Value) {
    app.review(
        Some(token),
        id,
        &json!({"resolution": "approve", "comment": "lgtm"}),
    )
    .await
    .parts()
}

#[tokio::test]
async fn refusals_are_recorded_with_who_when_why_and_channel() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .token("ci", "pc_pipeline", vec![Role::Pipeline])
        .token_in_groups("alice", "pc_alice", vec![Role::Approver], &["release"])
        .token_in_groups("bob", "pc_bob", vec![Role::Approver], &["release"])
        .token("mallory", "pc_mallory", vec![Role::Approver])
        .approvals("prod", 2, &["release"])
        .spawn()
        .await;
    // alice triggered it.
    let d: Value = app
        .post_check(&good_check("refusals-1"))
        .await
        .json()
        .await
        .unwrap();
    let id = d["id"].as_str().unwrap();
    assert_eq!(d["refused_attempts"], json!([]));

    assert_eq!(review(&app, "pc_alice", id).await.0, 403);
    assert_eq!(review(&app, "pc_mallory", id).await.0, 403);
    assert_eq!(review(&app, "pc_bob", id).await.0, 200);
    assert_eq!(review(&app, "pc_bob", id).await.0, 409);

    let d: Value = app
        .get(&format!("/v1/decisions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d["status"], "pending", "{d}");
    let refused = d["refused_attempts"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = refused
        .iter()
        .map(|r| {
            (
                r["by"].as_str().unwrap(),
                r["reason_code"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("alice", "review.separation_of_duties"),
            ("mallory", "review.not_in_approver_group"),
            ("bob", "review.already_approved"),
        ],
        "{d}"
    );
    for r in refused {
        assert_eq!(r["channel"], "api");
        assert!(r["at"].is_string());
        assert!(!r["reason"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn the_commit_author_cannot_approve_where_known() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .token("ci", "pc_pipeline", vec![Role::Pipeline])
        .token("bob", "pc_bob", vec![Role::Approver])
        .token("carol", "pc_carol", vec![Role::Approver])
        .spawn()
        .await;
    let mut body = good_check("refusals-author");
    body["sources"][0]["author"] = json!("bob");
    let d = app.check(&body).await.json_with(StatusCode::CREATED);
    let id = d["id"].as_str().unwrap();
    assert_eq!(d["request"]["sources"][0]["author"], "bob", "{d}");
    assert_eq!(d["evidence"]["request"]["sources"][0]["author"], "bob");

    let (status, p) = review(&app, "pc_bob", id).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["reason_code"], "review.separation_of_duties");
    assert!(
        p["detail"].as_str().unwrap().contains("authored a commit"),
        "{p}"
    );
    let (status, d) = review(&app, "pc_carol", id).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["verdict"], "continue");
}
