//! Tokens and roles over both transports; no tokens means loopback only.

use portcullis::auth::Role;
use portcullis::serve::{App, ServeError};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::fixtures::good_check;
use crate::support::{Answer, TestApp};

#[tokio::test]
async fn requests_without_a_valid_token_are_refused() {
    let app = TestApp::builder()
        .token("ci", "pc_pipeline_token", vec![Role::Pipeline])
        .spawn()
        .await;
    let resp = app
        .http
        .post(app.url("/v1/checks"))
        .json(&good_check("a"))
        .send()
        .await
        .unwrap();
    let resp = Answer::read("POST /v1/checks without a token", resp).await;
    assert_eq!(resp.header("www-authenticate"), "Bearer");
    let p = resp.json_with(StatusCode::UNAUTHORIZED);
    assert_eq!(p["reason_code"], "auth.unauthenticated");
    assert!(p["help"].as_str().unwrap().contains("auth.tokens"), "{p}");
    let resp = app
        .http
        .post(app.url("/v1/checks"))
        .bearer_auth("wrong")
        .json(&good_check("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let body = resp.text().await.unwrap();
    assert!(
        !body.contains("wrong"),
        "the presented token must not be echoed: {body}"
    );
    let p: Value = serde_json::from_str(&body).unwrap();
    assert!(p["help"].as_str().unwrap().contains("auth.tokens"), "{p}");
    // gRPC callers see the same help in the status message.
    for token in [None, Some("wrong")] {
        let e = portcullis::client::GateClient::new(
            &app.grpc_url(),
            token,
            std::time::Duration::from_secs(5),
        )
        .unwrap()
        .check(
            crate::support::fixtures::grpc_check("a"),
            tokio::time::Instant::now() + std::time::Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        let portcullis::client::ClientError::Auth(message) = &e else {
            panic!("{e}");
        };
        assert!(message.contains("how to fix:"), "{message}");
        assert!(message.contains("auth.tokens"), "{message}");
        assert!(!message.contains("wrong"), "{message}");
    }
    // Health stays open for probes.
    assert_eq!(
        app.http
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // With the token, it works.
    assert_eq!(app.post_check(&good_check("a")).await.status(), 201);
}

#[tokio::test]
async fn roles_are_enforced() {
    let app = TestApp::builder()
        .token("auditor", "pc_auditor_token", vec![Role::Auditor])
        .spawn()
        .await;
    let p = app
        .check(&good_check("a"))
        .await
        .json_with(StatusCode::FORBIDDEN);
    assert_eq!(p["reason_code"], "auth.forbidden");
    assert_eq!(app.get("/v1/decisions").await.status(), 200);

    let mut client = app.grpc();
    let e = client
        .check(
            crate::support::fixtures::grpc_check("a"),
            tokio::time::Instant::now() + std::time::Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, portcullis::client::ClientError::Auth(_)), "{e}");
}

#[tokio::test]
async fn binding_beyond_loopback_without_tokens_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = TestApp::builder().settings(dir.path());
    settings.server.http_addr = "0.0.0.0:0".parse().unwrap();
    let err = App::build(settings).await.err().unwrap();
    assert!(matches!(err, ServeError::OpenNonLoopback { .. }), "{err}");
    assert!(err.to_string().contains("auth.tokens"));
}
