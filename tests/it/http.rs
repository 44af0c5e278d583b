//! The HTTP/JSON API, end to end.

use serde_json::{Value, json};

use crate::support::app::digest;
use crate::support::spawn_app;

pub fn good_check(key: &str) -> Value {
    json!({
        "application": "payments",
        "environment": "prod",
        "images": [format!("ghcr.io/acme/payments:1.4.2@{}", digest('a'))],
        "sources": [{"repository": "github.com/acme/payments", "commit": "0123456789abcdef0123456789abcdef01234567"}],
        "caller": {"kind": "spinnaker", "ids": {"execution_id": "01HX"}},
        "triggered_by": "alice",
        "change_refs": {"jira_keys": ["OPS-1"], "servicenow_changes": ["CHG0030001"]},
        "labels": {"team": "payments"},
        "idempotency_key": key,
    })
}

#[tokio::test]
async fn a_check_is_decided_stored_and_readable() {
    let app = spawn_app().await;
    let resp = app.post_check(&good_check("http-1")).await;
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let d: Value = resp.json().await.unwrap();
    assert!(["continue", "manual_review", "terminate"].contains(&d["verdict"].as_str().unwrap()));
    assert!(d["policy_version"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        location,
        format!("/v1/decisions/{}", d["id"].as_str().unwrap())
    );

    let again: Value = app.get(&location).await.json().await.unwrap();
    assert_eq!(again["id"], d["id"]);
    assert_eq!(again["rule_results"], d["rule_results"]);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_decision() {
    let app = spawn_app().await;
    let first = app.post_check(&good_check("same-key")).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = app.post_check(&good_check("same-key")).await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);

    let list: Value = app
        .get("/v1/decisions?application=payments")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        list["decisions"].as_array().unwrap().len(),
        1,
        "stored twice: {list}"
    );
}

#[tokio::test]
async fn an_idempotency_key_reused_for_another_deploy_is_a_conflict() {
    let app = spawn_app().await;
    assert_eq!(app.post_check(&good_check("k")).await.status(), 201);
    let mut other = good_check("k");
    other["environment"] = json!("staging");
    let resp = app.post_check(&other).await;
    assert_eq!(resp.status(), 409);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["reason_code"], "request.idempotency_conflict");
}

#[tokio::test]
async fn decisions_list_with_filters_and_pages() {
    let app = spawn_app().await;
    for i in 0..5 {
        let mut c = good_check(&format!("list-{i}"));
        if i % 2 == 0 {
            c["environment"] = json!("staging");
        }
        assert_eq!(app.post_check(&c).await.status(), 201);
    }
    let staging: Value = app
        .get("/v1/decisions?environment=staging")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(staging["decisions"].as_array().unwrap().len(), 3);

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("/v1/decisions?page_size=2&page_token={t}"),
            None => "/v1/decisions?page_size=2".to_string(),
        };
        let page: Value = app.get(&path).await.json().await.unwrap();
        for d in page["decisions"].as_array().unwrap() {
            seen.push(d["id"].as_str().unwrap().to_string());
        }
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!((seen.len(), dedup.len()), (5, 5));
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let ready: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    app.post_check(&good_check("m")).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("portcullis_decisions_total"), "{metrics}");
    assert!(
        metrics.contains("portcullis_check_duration_seconds"),
        "{metrics}"
    );
}
