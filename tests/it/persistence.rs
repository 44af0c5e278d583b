//! Restarts lose nothing: decisions live in the store, not in memory.

use serde_json::Value;

use crate::http::good_check;
use crate::support::app::start;
use crate::support::spawn_app;

#[tokio::test]
async fn decisions_survive_a_restart() {
    let app = spawn_app().await;
    let d: Value = app.post_check(&good_check("persist")).await.json().await.unwrap();
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
