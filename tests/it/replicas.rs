//! Two service instances on one PostgreSQL schema, as two replicas behind a load balancer: what
//! one stores the other reads, the same idempotency key through both is one decision, a change
//! made elsewhere reaches a watcher, and one replica stopping leaves the other answering.

use std::time::Duration;

use futures::future::join_all;
use portcullis::pb;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use crate::support::TestApp;
use crate::support::db::PgSchema;
use crate::support::fixtures::good_check;
use crate::support::fixtures::grpc_check;

const ALWAYS_REVIEW: &str = "rules:\n  - id: review\n    title: Review\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n";

/// A replica whose policy sends every deploy to manual review.
async fn reviewing_replica(schema: &PgSchema) -> TestApp {
    TestApp::builder()
        .policies(&[("p.yaml", ALWAYS_REVIEW)])
        .store_url(&schema.url())
        .spawn()
        .await
}

async fn replica(schema: &PgSchema) -> TestApp {
    TestApp::builder().store_url(&schema.url()).spawn().await
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn checks_through_either_replica_are_read_through_both() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let (a, b) = (replica(&schema).await, replica(&schema).await);

    let mut ids = Vec::new();
    for (i, app) in [&a, &b, &a, &b].into_iter().enumerate() {
        let d = app
            .check(&good_check(&format!("rep-{i}")))
            .await
            .json_with(StatusCode::CREATED);
        ids.push(d["id"].as_str().unwrap().to_string());
    }
    for app in [&a, &b] {
        for id in &ids {
            let resp = app.get(&format!("/v1/decisions/{id}")).await;
            assert_eq!(resp.status(), 200, "{id}");
        }
        let list = app.decisions(None, "").await.json_with(StatusCode::OK);
        assert_eq!(list["decisions"].as_array().unwrap().len(), ids.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_key_through_both_replicas_is_one_decision() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let (a, b) = (replica(&schema).await, replica(&schema).await);

    // Clients alternating between the replicas, all at once, all retrying one deploy.
    let body = good_check("exec-both");
    let calls = (0..12).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let body = body.clone();
        async move {
            let (status, d) = app.check(&body).await.parts();
            (status, d["id"].as_str().unwrap().to_string())
        }
    });
    let results = join_all(calls).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "{results:?}");
    assert!(results.iter().all(|(s, _)| *s == 201 || *s == 200));
    let first = &results[0].1;
    assert!(results.iter().all(|(_, id)| id == first), "{results:?}");

    // gRPC on the other replica answers with the same decision too.
    let grpc = b
        .grpc()
        .check(grpc_check("exec-both"), soon())
        .await
        .unwrap();
    assert_eq!(&grpc.id, first);
    let list = a.decisions(None, "").await.json_with(StatusCode::OK);
    assert_eq!(list["decisions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_decision_changed_elsewhere_reaches_a_watcher_on_the_other_replica() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let (a, b) = (
        reviewing_replica(&schema).await,
        reviewing_replica(&schema).await,
    );

    let pending = a
        .grpc()
        .check(grpc_check("exec-review"), soon())
        .await
        .unwrap();
    assert_eq!(pending.status, pb::DecisionStatus::Pending as i32);

    let mut watcher = b.grpc();
    let id = pending.id.clone();
    let watch = tokio::spawn(async move { watcher.wait_final(&id, soon(), |_| {}).await });

    // An approver rejects through replica A; the watcher on B learns it from the database
    // (A's in-process broadcast never reaches B).
    let resp = a
        .http
        .post(a.url(&format!("/v1/decisions/{}/review", pending.id)))
        .json(&serde_json::json!({"resolution": "reject", "comment": "not today"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let fin = watch.await.unwrap().unwrap();
    assert_eq!(fin.id, pending.id);
    assert_eq!(fin.status, pb::DecisionStatus::Final as i32);
    assert_eq!(fin.verdict, pb::Verdict::Terminate as i32);
    let via_a: Value = a
        .get(&format!("/v1/decisions/{}", pending.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(via_a["verdict"], "terminate");
}

#[tokio::test]
async fn when_one_replica_stops_the_other_keeps_answering() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let (a, b) = (replica(&schema).await, replica(&schema).await);
    let before = a
        .check(&good_check("exec-before"))
        .await
        .json_with(StatusCode::CREATED);
    a.stop().await;

    // Orca retries the same check against whichever replica answers: same decision.
    let again = b
        .check(&good_check("exec-before"))
        .await
        .json_with(StatusCode::OK);
    assert_eq!(again["id"], before["id"]);
    assert_eq!(b.post_check(&good_check("exec-after")).await.status(), 201);
    assert_eq!(b.get("/readyz").await.status(), 200);
}

#[tokio::test]
async fn two_replicas_resolving_the_same_review_agree_on_one_winner() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let (a, b) = (
        reviewing_replica(&schema).await,
        reviewing_replica(&schema).await,
    );
    let pending = a
        .grpc()
        .check(grpc_check("exec-race"), soon())
        .await
        .unwrap();
    let approve = |app: &TestApp, answer: &'static str| {
        let req = app
            .http
            .post(app.url(&format!("/v1/decisions/{}/review", pending.id)))
            .json(&serde_json::json!({"resolution": answer}));
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let (ra, rb) = tokio::join!(approve(&a, "approve"), approve(&b, "reject"));
    let mut codes = [ra, rb];
    codes.sort_unstable();
    assert_eq!(codes, [200, 409], "exactly one resolution wins");
    let via_a: Value = a
        .get(&format!("/v1/decisions/{}", pending.id))
        .await
        .json()
        .await
        .unwrap();
    let via_b: Value = b
        .get(&format!("/v1/decisions/{}", pending.id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(via_a["verdict"], via_b["verdict"]);
    assert_eq!(via_a["resolution"], via_b["resolution"]);
}

#[tokio::test]
async fn a_replica_killed_mid_review_leaves_the_other_to_finish_it() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let (a, b) = (
        reviewing_replica(&schema).await,
        reviewing_replica(&schema).await,
    );
    let pending = a
        .grpc()
        .check(grpc_check("exec-kill"), soon())
        .await
        .unwrap();
    a.kill();
    // The client's retry lands on B (the same idempotency key finds the same decision) ...
    let again = b
        .grpc()
        .check(grpc_check("exec-kill"), soon())
        .await
        .unwrap();
    assert_eq!(again.id, pending.id);
    // ... where an approver finishes the review.
    let resp = b
        .http
        .post(b.url(&format!("/v1/decisions/{}/review", pending.id)))
        .json(&serde_json::json!({"resolution": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let fin = b
        .grpc()
        .wait_final(&pending.id, soon(), |_| {})
        .await
        .unwrap();
    assert_eq!(fin.verdict, pb::Verdict::Continue as i32);
}
