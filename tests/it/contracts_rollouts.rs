//! Argo Rollouts `web` metric provider contract: always 200 with a verdict that maps onto
//! success / failure / inconclusive, one decision per rollout attempt.

use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::app::digest;

const CONTINUE: &str = "rules:\n  - id: always\n    title: Always\n    category: test\n    severity: low\n    condition: { path: $.request.application, op: exists }\n";
const PINNED: &str = "rules:\n  - id: pinned\n    title: Pinned\n    category: test\n    severity: critical\n    condition: { path: \"$.request.images[*].pinned\", op: \"==\", value: true }\n";
const REVIEW: &str = "rules:\n  - id: review\n    title: Review\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n";

fn measurement(image: &str, hash: &str) -> Value {
    json!({
        "source": "argo-rollouts",
        "app": "payments",
        "environment": "prod",
        "namespace": "payments",
        "rollout": "payments-api",
        "image": image,
        "podTemplateHash": hash,
    })
}

async fn measure(app: &TestApp, body: &Value) -> (u16, Value) {
    let resp = app
        .http
        .post(app.url("/v1/analysis"))
        .json(body)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn verdicts_map_onto_success_failure_and_inconclusive() {
    let pinned = format!("ghcr.io/acme/payments@{}", digest('1'));
    for (policy, image, want) in [
        (CONTINUE, pinned.as_str(), "continue"),
        (PINNED, "ghcr.io/acme/payments:latest", "terminate"),
        (REVIEW, pinned.as_str(), "manual-review"),
    ] {
        let app = TestApp::builder()
            .policies(&[("p.yaml", policy)])
            .spawn()
            .await;
        let (status, body) = measure(&app, &measurement(image, "7d9f8c")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["verdict"], want, "{body}");
        assert!(body["decisionId"].as_str().unwrap().len() > 10);
        assert!(body["score"].as_u64().unwrap() <= 100);
    }
}

#[tokio::test]
async fn every_measurement_of_one_attempt_reads_the_same_decision() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .spawn()
        .await;
    let image = format!("ghcr.io/acme/payments@{}", digest('2'));
    let (_, first) = measure(&app, &measurement(&image, "aaa111")).await;
    let (_, second) = measure(&app, &measurement(&image, "aaa111")).await;
    assert_eq!(first["decisionId"], second["decisionId"]);
    let (_, next_attempt) = measure(&app, &measurement(&image, "bbb222")).await;
    assert_ne!(first["decisionId"], next_attempt["decisionId"]);
}

#[tokio::test]
async fn malformed_measurements_are_4xx_not_a_verdict() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", CONTINUE)])
        .spawn()
        .await;
    let (status, body) = measure(&app, &json!({"app": "payments"})).await;
    assert_eq!(status, 400, "{body}");
    let mut bad = measurement("ghcr.io/acme/payments@sha256:nothex", "h");
    bad["environment"] = json!("prod");
    let (status, body) = measure(&app, &bad).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "images[0].reference.digest");
}
