//! Argo Rollouts `web` metric provider contract: always 200 with a verdict that maps onto
//! success / failure / inconclusive, one decision per rollout attempt (a rollback to an earlier
//! pod template included), recorded as caller kind `rollouts`.

use portcullis::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::app::digest;

const CONTINUE: &str = "rules:\n  - id: always\n    title: Always\n    category: test\n    severity: low\n    condition: { path: $.request.application, op: exists }\n";
const PINNED: &str = "rules:\n  - id: pinned\n    title: Pinned\n    category: test\n    severity: critical\n    condition: { path: \"$.request.images[*].pinned\", op: \"==\", value: true }\n";
const REVIEW: &str = "rules:\n  - id: review\n    title: Review\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n";

fn measurement(image: &str, hash: &str) -> Value {
    attempt(image, hash, "1")
}

/// One measurement of the rollout attempt with this `rollout.argoproj.io/revision`.
fn attempt(image: &str, hash: &str, revision: &str) -> Value {
    json!({
        "source": "argo-rollouts",
        "app": "payments",
        "environment": "prod",
        "namespace": "payments",
        "rollout": "payments-api",
        "image": image,
        "podTemplateHash": hash,
        "rolloutRevision": revision,
    })
}

async fn measure(app: &TestApp, body: &Value) -> Value {
    app.analysis(body).await.json_with(StatusCode::OK)
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
        let body = measure(&app, &measurement(image, "7d9f8c")).await;
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
    let first = measure(&app, &measurement(&image, "aaa111")).await;
    let second = measure(&app, &measurement(&image, "aaa111")).await;
    let first_id = first["decisionId"].as_str().unwrap();
    assert_eq!(second["decisionId"], first_id);
    let next_attempt = measure(&app, &attempt(&image, "bbb222", "2")).await;
    assert_ne!(next_attempt["decisionId"].as_str().unwrap(), first_id);
}

#[tokio::test]
async fn a_rollback_to_an_earlier_pod_template_is_checked_anew() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .token("rollouts", "pc_rollouts", vec![Role::Pipeline])
        .token("bob", "pc_bob", vec![Role::Approver])
        .spawn()
        .await;
    let image_a = format!("ghcr.io/acme/payments@{}", digest('3'));
    let image_b = format!("ghcr.io/acme/payments@{}", digest('4'));
    // Revision 1 (hash aaa111) waits for a review, and bob approves it.
    let a1 = measure(&app, &attempt(&image_a, "aaa111", "1")).await;
    assert_eq!(a1["verdict"], "manual-review", "{a1}");
    let id = a1["decisionId"].as_str().unwrap();
    app.post_as(
        Some("pc_bob"),
        &format!("/v1/decisions/{id}/review"),
        &json!({"resolution": "approve"}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        measure(&app, &attempt(&image_a, "aaa111", "1")).await["verdict"],
        "continue"
    );
    // Revision 2 rolls out another template; revision 3 rolls back to aaa111. The approval
    // of revision 1 is not an answer for revision 3.
    let b2 = measure(&app, &attempt(&image_b, "bbb222", "2")).await;
    assert_eq!(b2["verdict"], "manual-review", "{b2}");
    let a3 = measure(&app, &attempt(&image_a, "aaa111", "3")).await;
    assert_eq!(a3["verdict"], "manual-review", "{a3}");
    assert_ne!(a3["decisionId"].as_str().unwrap(), id);
}

#[tokio::test]
async fn checks_are_recorded_as_caller_kind_rollouts() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", CONTINUE)])
        .spawn()
        .await;
    let image = format!("ghcr.io/acme/payments@{}", digest('5'));
    let m = measure(&app, &attempt(&image, "ccc333", "7")).await;
    let id = m["decisionId"].as_str().unwrap();
    let d = app.decision(id).await.json_with(StatusCode::OK);
    assert_eq!(d["request"]["caller"]["kind"], "rollouts", "{d}");
    assert_eq!(
        d["request"]["caller"]["ids"]["rollout_revision"], "7",
        "{d}"
    );
    let page = app
        .get_as(None, "/v1/decisions?caller_kind=rollouts")
        .await
        .json_with(StatusCode::OK);
    assert_eq!(page["decisions"][0]["id"], id, "{page}");
    let argocd = app
        .get_as(None, "/v1/decisions?caller_kind=argocd")
        .await
        .json_with(StatusCode::OK);
    assert_eq!(argocd["decisions"], json!([]), "{argocd}");
}

#[tokio::test]
async fn a_measurement_without_the_rollout_revision_is_refused() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", CONTINUE)])
        .spawn()
        .await;
    let image = format!("ghcr.io/acme/payments@{}", digest('6'));
    for revision in [
        None,
        Some(""),
        Some("abc"),
        Some("{{ args.rollout-revision }}"),
    ] {
        let mut body = attempt(&image, "ddd444", "1");
        match revision {
            None => {
                body.as_object_mut().unwrap().remove("rolloutRevision");
            }
            Some(r) => body["rolloutRevision"] = json!(r),
        }
        let p = app.analysis(&body).await.json_with(StatusCode::BAD_REQUEST);
        assert_eq!(p["field"], "rolloutRevision", "{p}");
    }
}

#[tokio::test]
async fn malformed_measurements_are_4xx_not_a_verdict() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", CONTINUE)])
        .spawn()
        .await;
    app.analysis(&json!({"app": "payments"}))
        .await
        .expect(StatusCode::BAD_REQUEST);
    let mut bad = measurement("ghcr.io/acme/payments@sha256:nothex", "h");
    bad["environment"] = json!("prod");
    let body = app.analysis(&bad).await.json_with(StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "images[0].reference.digest");
}

#[tokio::test]
async fn the_review_url_is_absolute_on_the_same_base_as_every_contract_link() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .spawn()
        .await;
    let image = format!("ghcr.io/acme/payments@{}", digest('9'));
    let body = measure(&app, &measurement(&image, "5c6d7e")).await;
    let id = body["decisionId"].as_str().unwrap();
    // Without `server.public_url`, the base is the request's own host.
    assert_eq!(
        body["reviewUrl"],
        format!("http://{}/v1/decisions/{id}", app.http_addr),
        "{body}"
    );
}
