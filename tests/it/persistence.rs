//! Restarts lose nothing: decisions live in the store, not in memory; and a graceful stop hands
//! every background job's lease over at once.

use std::sync::Arc;
use std::time::Duration;

use portcullis::review_routing::ReviewRoute;
use portcullis::sim;
use portcullis::store::StoreOptions;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::app::start;
use crate::support::fake_tool;
use crate::support::fixtures::good_check;
use crate::support::poll::eventually;
use crate::support::{Answer, TestApp, spawn_app};

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
    let replay = app
        .check(&good_check("persist"))
        .await
        .json_with(StatusCode::OK);
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

    // The check in flight must complete during shutdown.
    let d = Answer::read("the check in flight at shutdown", in_flight.await.unwrap())
        .await
        .json_with(StatusCode::CREATED);
    assert_eq!(d["verdict"], "continue", "{d}");

    let app = start(settings, dir, None).await;
    let stored = app
        .get(&format!("/v1/decisions/{}", d["id"].as_str().unwrap()))
        .await;
    assert_eq!(stored.status(), 200);
}

/// Every lease-held background job gives its lease up before the service's `run` returns: right
/// after a graceful stop another replica claims each of them at once, instead of waiting for a
/// lease to lapse.
#[tokio::test]
async fn a_stopped_service_holds_no_job_lease() {
    const JOBS: [&str; 5] = [
        "review-expiry",
        "audit-checkpoint",
        "audit-retention",
        "review-servicenow",
        "review-jira",
    ];
    let sims = sim::start(0).await.unwrap();
    let builder = TestApp::builder()
        .adapter(json!({
            "kind": "servicenow", "name": "servicenow", "base_url": sims.servicenow.base_url,
            "auth": {"type": "basic", "username": sim::servicenow::USER,
                     "password": {"value": sim::servicenow::PASSWORD}},
        }))
        .adapter(json!({
            "kind": "jira", "name": "jira", "base_url": sims.jira.base_url,
            "auth": {"type": "basic", "username": sim::jira::EMAIL,
                     "password": {"value": sim::jira::API_TOKEN}},
        }));
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = builder.settings(dir.path());
    settings.audit.retention = Some(Duration::from_secs(365 * 24 * 3600));
    let routes = [
        (
            "prod",
            json!({"servicenow": {"adapter": "servicenow", "assignment_group": "CAB Approval"}}),
        ),
        (
            "staging",
            json!({"jira": {"adapter": "jira", "project": "REL",
                            "approved_statuses": ["Approved"], "rejected_statuses": ["Rejected"]}}),
        ),
    ];
    for (environment, route) in routes {
        let route: ReviewRoute = serde_json::from_value(route).unwrap();
        settings.review.routes.insert(environment.into(), route);
    }
    let app = start(settings, dir, None).await;

    // Stop only once every job holds its lease (a released lease has `expires_at = 0`).
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&app.settings.store.url)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "every job to hold its lease",
        || {
            let pool = pool.clone();
            async move {
                let held: Vec<String> =
                    sqlx::query_scalar("SELECT job FROM leases WHERE expires_at > 0")
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                JOBS.iter()
                    .all(|job| held.iter().any(|h| h == job))
                    .then_some(())
            }
        },
    )
    .await;
    pool.close().await;
    let (settings, _dir) = app.stop().await;

    let store = portcullis::store::open(&settings.store.url, &StoreOptions::default())
        .await
        .unwrap();
    for job in JOBS {
        let lease = store
            .try_claim(job, "another-replica", Duration::from_secs(60))
            .await
            .unwrap();
        assert!(
            lease.is_some(),
            "`{job}` is still held after the service stopped"
        );
    }
}
