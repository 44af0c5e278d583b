//! The Spinnaker contract, driven by an Orca-faithful stage (support/orca.rs) against the real
//! service: every outcome Orca can reach.

use portcullis::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::app::digest;
use crate::support::orca::{Next, Outcome, Payload, Resolution, Stage};

const CONTINUE: &str = "rules:\n  - id: always\n    title: Always\n    category: test\n    severity: low\n    condition: { path: $.request.application, op: exists }\n";
const PINNED: &str = "rules:\n  - id: pinned\n    title: Images pinned by digest\n    category: test\n    severity: critical\n    remediation: Deploy by digest.\n    condition: { path: \"$.request.images[*].pinned\", op: \"==\", value: true }\n";
const REVIEW: &str = "rules:\n  - id: needs-review\n    title: Needs a human\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n";

async fn app(policy: &str) -> TestApp {
    TestApp::builder()
        .policies(&[("p.yaml", policy)])
        .token("spinnaker", "pc_spinnaker", vec![Role::Pipeline])
        .token("bob", "pc_bob", vec![Role::Approver])
        .spawn()
        .await
}

fn payload(request_id: &str, image: &str) -> Value {
    json!({
        "gate": "production",
        "environment": "prod",
        "requestId": request_id,
        "application": "payments",
        "pipeline": "deploy-prod",
        "executionId": "01HXEXEC",
        "triggeredBy": "alice",
        "images": image,
        "changeRefs": "CHG0030001, OPS-7",
    })
}

fn stage(app: &TestApp, request_id: &str, image: &str) -> Stage {
    Stage::portcullis(
        &app.url(""),
        Some("pc_spinnaker"),
        payload(request_id, image),
    )
}

fn pinned() -> String {
    format!("ghcr.io/acme/payments@{}", digest('5'))
}

async fn gate_status(app: &TestApp, run_url: &str) -> Value {
    app.http
        .get(run_url)
        .bearer_auth("pc_spinnaker")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn continue_succeeds_the_stage() {
    let app = app(CONTINUE).await;
    let run = stage(&app, "exec-1-production", &pinned())
        .run(|_, _| Next::Keep)
        .await;
    assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
    assert_eq!(run.create_status, 202);
    assert_eq!(run.polls, 1, "the status URL is readable at once and final");
    assert_eq!(run.last_monitor_body["verdict"], "continue");
    assert!(!run.cancel_sent, "no cancel after success");
    assert!(
        run.status_url.unwrap().starts_with("http://127.0.0.1:"),
        "absolute status URL"
    );
}

#[tokio::test]
async fn terminate_fails_the_stage_with_reasons_and_the_cancel_is_a_no_op() {
    let app = app(PINNED).await;
    let run = stage(&app, "exec-2-production", "ghcr.io/acme/payments:latest")
        .run(|_, _| Next::Keep)
        .await;
    assert!(matches!(run.outcome, Outcome::Terminal(_)), "{run:?}");
    assert_eq!(run.last_monitor_body["status"], "TERMINATED");
    assert_eq!(run.last_monitor_body["failingRules"][0]["ruleId"], "pinned");
    assert!(
        run.last_monitor_body["message"]
            .as_str()
            .unwrap()
            .contains("pinned")
    );
    assert!(run.cancel_sent, "Orca cancels after every TERMINAL end");
    let after = gate_status(&app, run.status_url.as_deref().unwrap()).await;
    assert_eq!(
        after["status"], "TERMINATED",
        "cancel must not change a decided gate: {after}"
    );
}

#[tokio::test]
async fn manual_review_keeps_orca_polling_until_approved() {
    let app = app(REVIEW).await;
    let http = app.http.clone();
    let base = app.url("");
    let mut approved = false;
    let run = stage(&app, "exec-3-production", &pinned())
        .run(|polls, body| {
            assert_eq!(body["status"], "AWAITING_APPROVAL");
            assert!(
                body["message"].as_str().unwrap().contains("/review"),
                "the message says where to approve"
            );
            if polls == 3 && !approved {
                approved = true;
                let id = body["decisionId"].as_str().unwrap().to_string();
                let http = http.clone();
                let url = format!("{base}/v1/decisions/{id}/review");
                // Approve from a separate task, as a person would, while Orca keeps polling.
                tokio::spawn(async move {
                    let r = http
                        .post(url)
                        .bearer_auth("pc_bob")
                        .json(&json!({"resolution": "approve"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                });
            }
            Next::Keep
        })
        .await;
    assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
    assert!(run.polls > 3);
    assert_eq!(run.last_monitor_body["decidedBy"], "bob");
}

#[tokio::test]
async fn a_rejected_review_fails_the_stage() {
    let app = app(REVIEW).await;
    let http = app.http.clone();
    let base = app.url("");
    let mut sent = false;
    let run = stage(&app, "exec-4-production", &pinned())
        .run(|_, body| {
            if !sent {
                sent = true;
                let id = body["decisionId"].as_str().unwrap().to_string();
                let http = http.clone();
                let url = format!("{base}/v1/decisions/{id}/review");
                tokio::spawn(async move {
                    http.post(url)
                        .bearer_auth("pc_bob")
                        .json(&json!({"resolution": "reject", "comment": "no"}))
                        .send()
                        .await
                        .unwrap();
                });
            }
            Next::Keep
        })
        .await;
    assert!(matches!(run.outcome, Outcome::Terminal(_)), "{run:?}");
    assert_eq!(run.last_monitor_body["status"], "REJECTED");
}

#[tokio::test]
async fn canceling_the_pipeline_withdraws_a_pending_gate() {
    let app = app(REVIEW).await;
    let run = stage(&app, "exec-5-production", &pinned())
        .run(|polls, _| {
            if polls >= 2 {
                Next::UserCancels
            } else {
                Next::Keep
            }
        })
        .await;
    assert_eq!(run.outcome, Outcome::Canceled);
    assert!(run.cancel_sent);
    let after = gate_status(&app, run.status_url.as_deref().unwrap()).await;
    assert_eq!(after["status"], "CANCELED", "{after}");
    assert_eq!(after["verdict"], "terminate");
}

#[tokio::test]
async fn orca_retries_of_the_create_call_find_the_same_gate() {
    let app = app(CONTINUE).await;
    let first = stage(&app, "exec-6-production", &pinned())
        .run(|_, _| Next::Keep)
        .await;
    let second = stage(&app, "exec-6-production", &pinned())
        .run(|_, _| Next::Keep)
        .await;
    assert_eq!(first.create_body["id"], second.create_body["id"]);
    assert_eq!(second.create_status, 202);
    let list = app.decisions(None, "").await.json_with(StatusCode::OK);
    assert_eq!(list["decisions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn location_header_resolution_works_too() {
    let app = app(CONTINUE).await;
    let mut s = stage(&app, "exec-7-production", &pinned());
    s.resolution = Resolution::LocationHeader;
    let run = s.run(|_, _| Next::Keep).await;
    assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
}

#[tokio::test]
async fn a_preconfigured_stage_without_a_json_content_type_still_works() {
    let app = app(CONTINUE).await;
    let mut s = stage(&app, "exec-8-production", &pinned());
    s.payload = Payload::Text {
        body: payload("exec-8-production", &pinned()).to_string(),
        content_type: "text/plain;charset=ISO-8859-1".into(),
    };
    let run = s.run(|_, _| Next::Keep).await;
    assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
}

#[tokio::test]
async fn bad_input_fails_at_create_with_a_message_orca_shows() {
    let app = app(CONTINUE).await;
    // A string template with an unescaped quote pasted in by SpEL.
    let mut s = stage(&app, "exec-9-production", &pinned());
    s.payload = Payload::Text {
        body: "{\"requestId\": \"x\", \"triggeredBy\": \"a\"b\"}".into(),
        content_type: "application/json".into(),
    };
    let run = s.run(|_, _| Next::Keep).await;
    assert_eq!(run.create_status, 400);
    assert_eq!(run.create_attempts, 1, "a 4xx is not retried");
    assert!(
        run.create_body["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON"),
        "{}",
        run.create_body
    );

    let mut bad_env = payload("exec-10-production", &pinned());
    bad_env["environment"] = json!("PROD");
    let run = Stage::portcullis(&app.url(""), Some("pc_spinnaker"), bad_env)
        .run(|_, _| Next::Keep)
        .await;
    assert_eq!(run.create_status, 400);
    assert_eq!(run.create_body["field"], "environment");

    let run = Stage::portcullis(&app.url(""), None, payload("exec-11", &pinned()))
        .run(|_, _| Next::Keep)
        .await;
    assert_eq!(run.create_status, 401);
    assert!(matches!(run.outcome, Outcome::Terminal(_)));
}

#[tokio::test]
async fn an_unknown_status_id_is_404_and_statuses_are_json() {
    let app = app(CONTINUE).await;
    let resp = app
        .spinnaker_status(Some("pc_spinnaker"), "0190f5c2-0000-7000-8000-000000000000")
        .await
        .expect(StatusCode::NOT_FOUND);
    assert!(resp.header("content-type").starts_with("application/json"));
    // Cancel with an unknown request id is fine.
    let body = app
        .spinnaker_cancel(Some("pc_spinnaker"), &json!({"requestId": "never-seen"}))
        .await
        .json_with(StatusCode::OK);
    assert_eq!(body["status"], "UNKNOWN", "{body}");
    // A cancel that names no gate is not one that found nothing: it is refused.
    for bad in [&b"\x00"[..], b"not json", b"{}", br#"{"requestId": "  "}"#] {
        let body = app
            .post_body_as(
                Some("pc_spinnaker"),
                "/v1/spinnaker/gates/cancel",
                bad.to_vec(),
            )
            .await
            .json_with(StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "request.invalid", "{body}");
    }
}

#[tokio::test]
async fn a_review_nobody_resolves_expires_as_expired() {
    let clock = crate::support::clock_at_t0();
    let app = TestApp::builder()
        .clock(clock.clone())
        .policies(&[("p.yaml", REVIEW)])
        .token("spinnaker", "pc_spinnaker", vec![Role::Pipeline])
        .review_timeout(std::time::Duration::from_secs(3600))
        .spawn()
        .await;
    // Nobody answers: after the first poll, the review's hour passes.
    let run = stage(&app, "exec-12-production", &pinned())
        .run(|_, _| {
            clock.advance(chrono::Duration::hours(1));
            Next::Keep
        })
        .await;
    assert!(matches!(run.outcome, Outcome::Terminal(_)), "{run:?}");
    assert_eq!(run.last_monitor_body["status"], "EXPIRED");
    assert!(run.polls > 1);
}

#[tokio::test]
async fn an_adapter_outage_fails_closed() {
    let refused = crate::support::fake_tool::refused_addr().await;
    let policy = "rules:\n  - id: scan-clean\n    title: Scan is clean\n    category: test\n    severity: critical\n    condition: { path: $.scanner.critical, op: \"==\", value: 0 }\n";
    let app = TestApp::builder()
        .policies(&[("p.yaml", policy)])
        .adapter(json!({"kind": "http", "name": "scanner", "url": format!("http://{refused}/scan"), "timeout": "500ms", "extract": {"critical": "$.critical"}}))
        .token("spinnaker", "pc_spinnaker", vec![Role::Pipeline])
        .spawn()
        .await;
    let run = stage(&app, "exec-13-production", &pinned())
        .run(|_, _| Next::Keep)
        .await;
    assert!(matches!(run.outcome, Outcome::Terminal(_)), "{run:?}");
    assert_eq!(run.last_monitor_body["status"], "TERMINATED");
    let reason = run.last_monitor_body["failingRules"][0]["reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("scanner") && reason.contains("unreachable"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_service_restart_while_a_review_is_pending_keeps_answering() {
    use std::sync::Arc;
    use tokio::sync::Mutex;

    let app = app(REVIEW).await;
    let stage = stage(&app, "exec-14-production", &pinned());
    let slot = Arc::new(Mutex::new(Some(app)));
    let run = stage
        .run_async(|polls, body| {
            let slot = Arc::clone(&slot);
            async move {
                assert_eq!(body["status"], "AWAITING_APPROVAL", "{body}");
                if polls == 2 {
                    // Restart on the same addresses: the status URL Orca holds must keep working.
                    let old = slot.lock().await.take().unwrap();
                    let (http, grpc, token) = (old.http_addr, old.grpc_addr, old.token.clone());
                    let (mut settings, dir) = old.stop().await;
                    settings.server.http_addr = http;
                    settings.server.grpc_addr = grpc;
                    let new = crate::support::app::start(settings, dir, token).await;
                    *slot.lock().await = Some(new);
                }
                if polls == 4 {
                    let guard = slot.lock().await;
                    let app = guard.as_ref().unwrap();
                    let id = body["decisionId"].as_str().unwrap();
                    let r = app
                        .http
                        .post(app.url(&format!("/v1/decisions/{id}/review")))
                        .bearer_auth("pc_bob")
                        .json(&json!({"resolution": "approve"}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
                Next::Keep
            }
        })
        .await;
    assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
    assert!(run.polls >= 5);
}
