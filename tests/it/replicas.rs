//! Two service instances on one PostgreSQL schema, as two replicas behind a load balancer: what
//! one stores the other reads, the same idempotency key through both is one decision, a change
//! made elsewhere reaches a watcher, and one replica stopping leaves the other answering.

use std::time::Duration;

use futures::future::join_all;
use portcullis::pb;
use portcullis::store::{self, StoreOptions};
use serde_json::Value;
use tokio::time::Instant;

use crate::grpc::grpc_check;
use crate::http::good_check;
use crate::support::TestApp;
use crate::support::db::PgSchema;

const ALWAYS_REVIEW: &str = "rules:\n  - id: review\n    title: Review\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n";

async fn replica(schema: &PgSchema) -> TestApp {
    TestApp::builder().store_url(&schema.url()).spawn().await
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn checks_through_either_replica_are_read_through_both() {
    let schema = PgSchema::create().await;
    let (a, b) = (replica(&schema).await, replica(&schema).await);

    let mut ids = Vec::new();
    for (i, app) in [&a, &b, &a, &b].into_iter().enumerate() {
        let resp = app.post_check(&good_check(&format!("rep-{i}"))).await;
        assert_eq!(resp.status(), 201);
        let d: Value = resp.json().await.unwrap();
        ids.push(d["id"].as_str().unwrap().to_string());
    }
    for app in [&a, &b] {
        for id in &ids {
            let resp = app.get(&format!("/v1/decisions/{id}")).await;
            assert_eq!(resp.status(), 200, "{id}");
        }
        let list: Value = app.get("/v1/decisions").await.json().await.unwrap();
        assert_eq!(list["decisions"].as_array().unwrap().len(), ids.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_key_through_both_replicas_is_one_decision() {
    let schema = PgSchema::create().await;
    let (a, b) = (replica(&schema).await, replica(&schema).await);

    // Clients alternating between the replicas, all at once, all retrying one deploy.
    let body = good_check("exec-both");
    let calls = (0..12).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        let body = body.clone();
        async move {
            let resp = app.post_check(&body).await;
            let status = resp.status().as_u16();
            let d: Value = resp.json().await.unwrap();
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
    let list: Value = a.get("/v1/decisions").await.json().await.unwrap();
    assert_eq!(list["decisions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_decision_changed_elsewhere_reaches_a_watcher_on_the_other_replica() {
    let schema = PgSchema::create().await;
    let spawn = || {
        TestApp::builder()
            .policies(&[("p.yaml", ALWAYS_REVIEW)])
            .store_url(&schema.url())
            .spawn()
    };
    let (a, b) = (spawn().await, spawn().await);

    let pending = a
        .grpc()
        .check(grpc_check("exec-review"), soon())
        .await
        .unwrap();
    assert_eq!(pending.status, pb::DecisionStatus::Pending as i32);

    let mut watcher = b.grpc();
    let id = pending.id.clone();
    let watch = tokio::spawn(async move { watcher.wait_final(&id, soon(), |_| {}).await });

    // The review lifecycle is not built yet; resolve the way it will, through the store's
    // compare-and-set, from outside both replicas (neither has it in its in-process broadcast).
    let outside = store::open(&schema.url(), &StoreOptions::default())
        .await
        .unwrap();
    let decision_id = portcullis::domain::DecisionId::parse(&pending.id).unwrap();
    let mut resolved = outside.get_decision(&decision_id).await.unwrap().unwrap();
    resolved.status = portcullis::domain::DecisionStatus::Final;
    resolved.verdict = portcullis::domain::Verdict::Terminate;
    resolved.decided_at = Some(chrono::Utc::now());
    resolved.summary = "rejected by bob".into();
    assert!(
        outside
            .update_decision(&resolved, portcullis::domain::DecisionStatus::Pending)
            .await
            .unwrap()
    );

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
    let schema = PgSchema::create().await;
    let (a, b) = (replica(&schema).await, replica(&schema).await);
    let resp = a.post_check(&good_check("exec-before")).await;
    assert_eq!(resp.status(), 201);
    let before: Value = resp.json().await.unwrap();
    a.stop().await;

    // Orca retries the same check against whichever replica answers: same decision.
    let resp = b.post_check(&good_check("exec-before")).await;
    assert_eq!(resp.status(), 200);
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again["id"], before["id"]);
    assert_eq!(b.post_check(&good_check("exec-after")).await.status(), 201);
    assert_eq!(b.get("/readyz").await.status(), 200);
}
