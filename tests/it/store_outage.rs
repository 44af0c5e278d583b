//! The database connection path cut, stalled and restored under a running service (through
//! `support::proxy`): checks fail closed with 503 / `UNAVAILABLE`, never an answer, readiness
//! goes false, and the service recovers by itself; startup waits for a database that is late.

use std::time::Duration;

use portcullis::pb;
use serde_json::Value;

use crate::support::TestApp;
use crate::support::db::PgSchema;
use crate::support::fixtures::good_check;
use crate::support::fixtures::grpc_check;
use crate::support::poll::eventually;
use crate::support::proxy::{Mode, Proxy};

/// A service whose store reaches PostgreSQL only through `proxy`, with short store deadlines so
/// a fault shows within a second.
async fn app_behind(schema: &PgSchema, proxy: &Proxy) -> TestApp {
    TestApp::builder()
        .store_url(&schema.url_via(&proxy.addr().to_string()))
        .store_connect_timeout(Duration::from_millis(500))
        .spawn()
        .await
}

/// What a check and a readiness probe say while the database is unusable: never a decision.
async fn assert_fails_closed(app: &TestApp, key: &str) {
    let resp = app.post_check(&good_check(key)).await;
    assert_eq!(resp.status(), 503);
    let problem: Value = resp.json().await.unwrap();
    assert!(problem.get("verdict").is_none(), "{problem}");
    let detail = problem.to_string();
    assert!(detail.contains("database"), "{problem}");

    let mut grpc = pb::gate_client::GateClient::connect(app.grpc_url())
        .await
        .unwrap();
    let status = grpc.check(grpc_check(key)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

    assert_eq!(app.get("/readyz").await.status(), 503);
}

async fn ready(app: &TestApp) -> Option<()> {
    (app.get("/readyz").await.status() == 200).then_some(())
}

#[tokio::test]
async fn a_cut_connection_fails_checks_closed_and_the_service_recovers() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let proxy = Proxy::start(&schema.server_addr(), Mode::Pass).await;
    let app = app_behind(&schema, &proxy).await;
    let resp = app.post_check(&good_check("exec-before-cut")).await;
    assert_eq!(resp.status(), 201);
    let before: Value = resp.json().await.unwrap();

    proxy.set(Mode::Cut);
    assert_fails_closed(&app, "exec-during-cut").await;
    let id = before["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/v1/decisions/{id}")).await.status(), 503);

    proxy.set(Mode::Pass);
    eventually(Duration::from_secs(10), "readiness after the cut", || {
        ready(&app)
    })
    .await;
    // Nothing was stored during the cut, and what was stored before is intact.
    let resp = app.post_check(&good_check("exec-during-cut")).await;
    assert_eq!(resp.status(), 201);
    let resp = app.post_check(&good_check("exec-before-cut")).await;
    assert_eq!(resp.status(), 200);
    let again: Value = resp.json().await.unwrap();
    assert_eq!(again["id"], before["id"]);
}

#[tokio::test]
async fn a_stalled_database_fails_checks_closed_and_the_service_recovers() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let proxy = Proxy::start(&schema.server_addr(), Mode::Pass).await;
    let app = app_behind(&schema, &proxy).await;
    assert_eq!(app.post_check(&good_check("exec-1")).await.status(), 201);

    proxy.set(Mode::Stall);
    assert_fails_closed(&app, "exec-during-stall").await;

    proxy.set(Mode::Pass);
    eventually(Duration::from_secs(10), "readiness after the stall", || {
        ready(&app)
    })
    .await;
    let status = eventually(Duration::from_secs(10), "a check after the stall", || {
        let app = &app;
        async move {
            let status = app
                .post_check(&good_check("exec-after-stall"))
                .await
                .status();
            (status != 503).then_some(status)
        }
    })
    .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn startup_waits_for_a_database_that_comes_up_late() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let proxy = Proxy::start(&schema.server_addr(), Mode::Cut).await;
    let builder = TestApp::builder()
        .store_url(&schema.url_via(&proxy.addr().to_string()))
        .store_connect_timeout(Duration::from_secs(2));
    let starting = tokio::spawn(builder.spawn());

    // The service has tried and been turned away at least once before the database "comes up".
    eventually(Duration::from_secs(10), "a refused startup attempt", || {
        let refused = proxy.refused();
        async move { (refused > 0).then_some(()) }
    })
    .await;
    proxy.set(Mode::Pass);
    let app = starting.await.unwrap();
    assert_eq!(app.post_check(&good_check("exec-late")).await.status(), 201);
    assert_eq!(app.get("/readyz").await.status(), 200);
}
