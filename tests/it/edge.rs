//! The HTTP edge's one JSON decoder, over HTTP on the contracts' routes: a body that is not JSON
//! is a 400 naming `body` and the line and column, a wrong-typed or missing field is a 400
//! naming that field, and no answer says "invalid ``" (an empty field name).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::app::digest;
use crate::support::{Answer, TestApp};

const CONTINUE: &str = "rules:\n  - id: always\n    title: Always\n    category: test\n    severity: low\n    condition: { path: $.request.application, op: exists }\n";

async fn app() -> TestApp {
    // No tokens: the loopback-only anonymous admin may call every route.
    TestApp::builder()
        .policies(&[("p.yaml", CONTINUE)])
        .spawn()
        .await
}

/// `POST path` with `body` sent as it is, labelled JSON.
async fn post_text(app: &TestApp, path: &str, body: &str) -> Answer {
    let resp = app
        .http
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    Answer::read(format!("POST {path} {body}"), resp).await
}

fn rollouts_measurement() -> Value {
    json!({
        "app": "payments",
        "environment": "prod",
        "namespace": "payments",
        "rollout": "payments-api",
        "image": format!("ghcr.io/acme/payments@{}", digest('e')),
        "podTemplateHash": "7d9f8c",
        "rolloutRevision": "1",
    })
}

fn spinnaker_payload() -> Value {
    json!({
        "requestId": "exec-edge-1",
        "application": "payments",
        "environment": "prod",
        "images": format!("ghcr.io/acme/payments@{}", digest('e')),
    })
}

/// The field and the text a caller reads, from a problem+json body or Spinnaker's
/// `{error, message, field}`.
fn field_and_text(body: &Value) -> (String, String) {
    let text = body["detail"]
        .as_str()
        .or_else(|| body["message"].as_str())
        .unwrap_or_default()
        .to_string();
    (body["field"].as_str().unwrap_or_default().to_string(), text)
}

#[tokio::test]
async fn a_json_syntax_error_names_the_body_and_the_place_on_every_contract() {
    let app = app().await;
    // Single-quoted keys: JSON that does not parse before any field is reached.
    let broken = "{'app': 'payments'}";
    for path in [
        "/v1/analysis",
        "/v1/spinnaker/gates",
        "/v1/spinnaker/gates/cancel",
        "/v1/servicenow/change-check",
        "/v1/servicenow/callback",
        "/v1/jira/webhook",
    ] {
        let body = post_text(&app, path, broken)
            .await
            .json_with(StatusCode::BAD_REQUEST);
        let (field, text) = field_and_text(&body);
        assert_eq!(field, "body", "{path}: {body}");
        assert!(
            text.contains("not valid JSON at line 1, column 2"),
            "{path}: {body}"
        );
        assert!(!text.contains("``"), "{path}: {body}");
    }
    // The problem+json routes keep their reason code and help.
    let p = post_text(&app, "/v1/analysis", "{\"app\": ")
        .await
        .json_with(StatusCode::BAD_REQUEST);
    assert_eq!(p["reason_code"], "request.invalid", "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .starts_with("invalid `body`: malformed JSON"),
        "{p}"
    );
    assert!(
        p["help"].as_str().unwrap().contains("analysis-template"),
        "{p}"
    );
}

#[tokio::test]
async fn a_wrong_typed_field_is_named_on_rollouts_and_spinnaker() {
    let app = app().await;

    let mut m = rollouts_measurement();
    m["namespace"] = json!(7);
    let p = app.analysis(&m).await.json_with(StatusCode::BAD_REQUEST);
    assert_eq!(p["field"], "namespace", "{p}");
    let detail = p["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("invalid `namespace`: invalid type: integer `7`"),
        "{p}"
    );
    assert!(!detail.contains("at line"), "the field says where: {p}");
    let mut m = rollouts_measurement();
    m["changeRefs"] = json!(["CHG0030001", 7]);
    let p = app.analysis(&m).await.json_with(StatusCode::BAD_REQUEST);
    assert_eq!(p["field"], "changeRefs[1]", "{p}");
    let mut m = rollouts_measurement();
    m.as_object_mut().unwrap().remove("rollout");
    let p = app.analysis(&m).await.json_with(StatusCode::BAD_REQUEST);
    assert_eq!(p["field"], "rollout", "{p}");
    assert_eq!(p["detail"], "invalid `rollout`: is required", "{p}");

    let mut s = spinnaker_payload();
    s["labels"] = json!({"team": 7});
    let body = app
        .post_as(None, "/v1/spinnaker/gates", &s)
        .await
        .json_with(StatusCode::BAD_REQUEST);
    let (field, text) = field_and_text(&body);
    assert_eq!(field, "labels.team", "{body}");
    assert!(
        text.starts_with("invalid `labels.team`: invalid type: integer `7`"),
        "{body}"
    );
    assert_eq!(body["error"], "request.invalid", "{body}");
    let mut s = spinnaker_payload();
    s["requestId"] = json!(42);
    let body = app
        .post_as(None, "/v1/spinnaker/gates", &s)
        .await
        .json_with(StatusCode::BAD_REQUEST);
    assert_eq!(body["field"], "requestId", "{body}");

    // The same well-formed bodies are accepted: the errors above were the fields'.
    app.analysis(&rollouts_measurement())
        .await
        .expect(StatusCode::OK);
    app.post_as(None, "/v1/spinnaker/gates", &spinnaker_payload())
        .await
        .expect(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn servicenow_and_jira_name_the_wrong_field_too() {
    let app = app().await;
    let p = app
        .post_as(
            None,
            "/v1/servicenow/change-check",
            &json!({"number": "CHG0030001", "application": "payments", "environment": "prod",
                    "labels": "team=payments"}),
        )
        .await
        .json_with(StatusCode::BAD_REQUEST);
    assert_eq!(p["field"], "labels", "{p}");
    let p = app
        .post_as(
            None,
            "/v1/servicenow/change-check",
            &json!({"number": "CHG0030001", "colour": "red"}),
        )
        .await
        .json_with(StatusCode::BAD_REQUEST);
    assert_eq!(p["field"], "colour", "{p}");
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{p}"
    );
    let p = app
        .post_as(None, "/v1/jira/webhook", &json!({"issue": {"key": 7}}))
        .await
        .json_with(StatusCode::BAD_REQUEST);
    assert_eq!(p["field"], "issue.key", "{p}");
    for body in ["", "null", "\"x\"", "{\"issue\": "] {
        for path in ["/v1/servicenow/callback", "/v1/jira/webhook"] {
            let p = post_text(&app, path, body)
                .await
                .json_with(StatusCode::BAD_REQUEST);
            assert_eq!(p["field"], "body", "{path} {body:?}: {p}");
            assert!(!p["detail"].as_str().unwrap().contains("``"), "{p}");
        }
    }
}
