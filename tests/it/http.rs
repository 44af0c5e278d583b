//! The HTTP/JSON API, end to end.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::fixtures::good_check;
use crate::support::spawn_app;

#[tokio::test]
async fn a_check_is_decided_stored_and_readable() {
    let app = spawn_app().await;
    let resp = app
        .check(&good_check("http-1"))
        .await
        .expect(StatusCode::CREATED);
    let location = resp.header("location").to_string();
    let d = resp.json_with(StatusCode::CREATED);
    assert!(["continue", "manual_review", "terminate"].contains(&d["verdict"].as_str().unwrap()));
    assert!(d["policy_version"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        location,
        format!("/v1/decisions/{}", d["id"].as_str().unwrap())
    );

    let again = app.get_as(None, &location).await.json_with(StatusCode::OK);
    assert_eq!(again["id"], d["id"]);
    assert_eq!(again["rule_results"], d["rule_results"]);
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_decision() {
    let app = spawn_app().await;
    let first = app
        .check(&good_check("same-key"))
        .await
        .json_with(StatusCode::CREATED);
    let second = app
        .check(&good_check("same-key"))
        .await
        .json_with(StatusCode::OK);
    assert_eq!(first["id"], second["id"]);

    let list = app
        .decisions(None, "?application=payments")
        .await
        .json_with(StatusCode::OK);
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
    let p = app.check(&other).await.json_with(StatusCode::CONFLICT);
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
    let staging = app
        .decisions(None, "?environment=staging")
        .await
        .json_with(StatusCode::OK);
    assert_eq!(staging["decisions"].as_array().unwrap().len(), 3);

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let query = match &token {
            Some(t) => format!("?page_size=2&page_token={t}"),
            None => "?page_size=2".to_string(),
        };
        let page = app.decisions(None, &query).await.json_with(StatusCode::OK);
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
    let ready = app.readyz().await.json_with(StatusCode::OK);
    assert_eq!(ready["status"], "ready");
    app.post_check(&good_check("m")).await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains("portcullis_decisions_total"), "{metrics}");
    assert!(
        metrics.contains("portcullis_check_duration_seconds"),
        "{metrics}"
    );
}
