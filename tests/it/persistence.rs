//! Restarts lose nothing: decisions live in the store, not in memory.

use serde_json::Value;

use crate::http::good_check;
use std::time::Duration;

use crate::support::app::start;
use crate::support::fake_tool;
use crate::support::poll::eventually;
use crate::support::{TestApp, spawn_app};

#[tokio::test]
async fn decisions_survive_a_restart() {
    let app = spawn_app().await;
    let d: Value = app
        .post_check(&good_check("persist"))
        .await
        .json()
        .await
        .unwrap();
    let (settings, dir) = app.stop().await;

    let app = start(settings, dir, None).await;
    let again: Value = app
        .get(&format!("/v1/decisions/{}", d["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["id"], d["id"]);
    assert_eq!(again["verdict"], d["verdict"]);
    // The idempotency key still answers with the stored decision after the restart.
    let replay = app.post_check(&good_check("persist")).await;
    assert_eq!(replay.status(), 200);
    let replay: Value = replay.json().await.unwrap();
    assert_eq!(replay["id"], d["id"]);
}

#[tokio::test]
async fn shutdown_drains_a_check_in_flight() {
    let tool = fake_tool::spawn().await;
    // Slow enough to stop the service mid-check.
    tool.faults(portcullis::sim::FaultSettings {
        delay_ms: Some(300),
        ..Default::default()
    });
    let policy = "rules:\n  - id: not-frozen\n    title: Not frozen\n    category: test\n    severity: critical\n    condition: { path: $.freeze.frozen, op: \"==\", value: false }\n";
    let app = TestApp::builder()
        .policies(&[("p.yaml", policy)])
        .adapter(serde_json::json!({"kind": "http", "name": "freeze", "url": tool.url("/freeze/{environment}"), "extract": {"frozen": "$.frozen"}}))
        .spawn()
        .await;
    let client = app.http.clone();
    let url = app.url("/v1/checks");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&good_check("drain"))
            .send()
            .await
            .unwrap()
    });
    // Stop only once the check is inside the gate, waiting on its evidence.
    let control = tool.control();
    eventually(
        Duration::from_secs(5),
        "the check to reach the adapter",
        || {
            let n = control.requests();
            async move { (n > 0).then_some(()) }
        },
    )
    .await;
    let (settings, dir) = app.stop().await;

    let resp = in_flight.await.unwrap();
    assert_eq!(
        resp.status(),
        201,
        "the in-flight check must complete during shutdown"
    );
    let d: Value = resp.json().await.unwrap();
    assert_eq!(d["verdict"], "continue", "{d}");

    let app = start(settings, dir, None).await;
    let stored = app
        .get(&format!("/v1/decisions/{}", d["id"].as_str().unwrap()))
        .await;
    assert_eq!(stored.status(), 200);
}
