//! Bad input gets a clear 4xx problem (what, where, how to fix), stores nothing, and never
//! panics the service.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::fixtures::good_check;
use crate::support::spawn_app;

async fn assert_nothing_stored(app: &crate::support::TestApp) {
    let list = app.decisions(None, "").await.json_with(StatusCode::OK);
    assert!(list["decisions"].as_array().unwrap().is_empty(), "{list}");
}

#[tokio::test]
async fn malformed_json_is_a_400_problem() {
    let app = spawn_app().await;
    let resp = app
        .post_body_as(None, "/v1/checks", "{\"application\": ")
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(resp.header("content-type"), "application/problem+json");
    let p = resp.json_with(StatusCode::BAD_REQUEST);
    assert!(
        p["detail"].as_str().unwrap().contains("malformed JSON"),
        "{p}"
    );
    assert!(p["help"].is_string());
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn missing_and_invalid_fields_name_the_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({"environment": "prod"}), "application"),
        (json!({"application": "a"}), "environment"),
        (
            json!({"application": "a", "environment": "Prod!"}),
            "environment",
        ),
        (
            json!({"application": "a", "environment": "prod", "images": ["ghcr.io/a/b@sha256:abc"]}),
            "images[0].reference.digest",
        ),
        (
            json!({"application": "a", "environment": "prod", "images": [7]}),
            "images[0]",
        ),
        (
            json!({"application": "a", "environment": "prod", "caller": {"kind": "jenkins"}}),
            "caller.kind",
        ),
        (
            json!({"application": "a", "environment": "prod", "colour": "red"}),
            "",
        ),
    ];
    for (body, field) in cases {
        let p = app.check(&body).await.json_with(StatusCode::BAD_REQUEST);
        assert_eq!(p["reason_code"], "request.invalid", "{p}");
        if !field.is_empty() {
            assert_eq!(p["field"], field, "{p}");
        }
    }
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let app = spawn_app().await;
    let mut body = good_check("big");
    body["labels"] = json!({"padding": "x".repeat(2 * 1024 * 1024)});
    let resp = app.post_check(&body).await;
    assert_eq!(resp.status(), 413);
    assert_nothing_stored(&app).await;
}

#[tokio::test]
async fn unknown_routes_and_bad_ids_are_problems() {
    let app = spawn_app().await;
    let resp = app.get("/v1/nope").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    let resp = app.get("/v1/decisions/not-an-id").await;
    assert_eq!(resp.status(), 400);
    let resp = app.get("/v1/decisions?verdict=maybe").await;
    assert_eq!(resp.status(), 400);
    let resp = app.get("/v1/decisions?page_token=%21%21").await;
    assert_eq!(resp.status(), 400);
}
