//! The gRPC API, end to end, including the standard health service and the same decision over
//! both transports.

use std::time::Duration;

use portcullis::pb;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::time::Instant;

use crate::support::fixtures::good_check;
use crate::support::fixtures::grpc_check;
use crate::support::spawn_app;

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

#[tokio::test]
async fn check_over_grpc_and_read_it_back() {
    let app = spawn_app().await;
    let mut client = app.grpc();
    let d = client.check(grpc_check("g-1"), soon()).await.unwrap();
    assert!(!d.id.is_empty());
    assert_ne!(d.verdict, pb::Verdict::Unspecified as i32);
    let again = client.get(&d.id).await.unwrap();
    assert_eq!(again.id, d.id);
    assert_eq!(again.rule_results, d.rule_results);
}

#[tokio::test]
async fn the_same_check_over_http_and_grpc_is_one_stored_decision() {
    let app = spawn_app().await;
    let http: Value = app
        .post_check(&good_check("both"))
        .await
        .json()
        .await
        .unwrap();
    let mut client = app.grpc();
    let grpc = client.check(grpc_check("both"), soon()).await.unwrap();
    assert_eq!(grpc.id, http["id"].as_str().unwrap());
    assert_eq!(
        grpc.policy_version,
        http["policy_version"].as_str().unwrap()
    );
    let list = app.decisions(None, "").await.json_with(StatusCode::OK);
    assert_eq!(list["decisions"].as_array().unwrap().len(), 1);
}

const ALWAYS_CONTINUE: &str = "rules:\n  - id: always\n    title: Always\n    category: test\n    severity: low\n    condition: { path: $.request.application, op: exists }\n";
const ALWAYS_REVIEW: &str = "rules:\n  - id: review\n    title: Review\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n";

#[tokio::test]
async fn watching_a_final_decision_yields_it_once_and_ends() {
    let app = crate::support::TestApp::builder()
        .policies(&[("p.yaml", ALWAYS_CONTINUE)])
        .spawn()
        .await;
    let mut client = app.grpc();
    let d = client.check(grpc_check("w"), soon()).await.unwrap();
    assert_eq!(d.status, pb::DecisionStatus::Final as i32);
    let mut seen = 0;
    let fin = client
        .wait_final(&d.id, soon(), |_| seen += 1)
        .await
        .unwrap();
    assert_eq!(fin.id, d.id);
    assert_eq!(fin.verdict, pb::Verdict::Continue as i32);
    assert_eq!(seen, 1);
}

#[tokio::test]
async fn a_pending_review_is_watched_until_the_deadline_not_answered() {
    let app = crate::support::TestApp::builder()
        .policies(&[("p.yaml", ALWAYS_REVIEW)])
        .spawn()
        .await;
    let mut client = app.grpc();
    let d = client.check(grpc_check("p"), soon()).await.unwrap();
    assert_eq!(d.verdict, pb::Verdict::ManualReview as i32);
    assert_eq!(d.status, pb::DecisionStatus::Pending as i32);
    // The deadline is reached once the current state has been sent: no timer, no real wait.
    let sent = tokio::sync::Notify::new();
    let mut seen = 0;
    let e = client
        .wait_final_until(&d.id, sent.notified(), |_| {
            seen += 1;
            sent.notify_one();
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, portcullis::client::ClientError::Deadline),
        "{e}"
    );
    assert_eq!(seen, 1, "the current state is sent at once");
}

#[tokio::test]
async fn unknown_decisions_are_not_found() {
    let app = spawn_app().await;
    let mut client = app.grpc();
    let e = client
        .get("0190f5c2-0000-7000-8000-000000000000")
        .await
        .unwrap_err();
    assert!(
        matches!(e, portcullis::client::ClientError::BadInput(_)),
        "{e}"
    );
}

#[tokio::test]
async fn standard_grpc_health_reports_serving() {
    let app = spawn_app().await;
    let channel = tonic::transport::Endpoint::from_shared(app.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "portcullis.v1.Gate".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test]
async fn invalid_grpc_input_is_invalid_argument_and_stores_nothing() {
    let app = spawn_app().await;
    let mut client = app.grpc();
    let mut bad = grpc_check("bad");
    bad.images[0].reference = "ghcr.io/acme/payments@sha256:short".into();
    let e = client.check(bad, soon()).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, portcullis::client::ClientError::BadInput(_)),
        "{msg}"
    );
    assert!(msg.contains("images[0].reference.digest"), "{msg}");
    let list = app.decisions(None, "").await.json_with(StatusCode::OK);
    assert!(list["decisions"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn server_reflection_lists_the_gate_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = spawn_app().await;
    let channel = tonic::transport::Endpoint::from_shared(app.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer: {resp:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"portcullis.v1.Gate".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
}

/// grpcurl before 1.8 and Python's grpcio reflection speak only `v1alpha`.
#[tokio::test]
async fn server_reflection_v1alpha_lists_and_describes_the_services() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let app = spawn_app().await;
    let channel = tonic::transport::Endpoint::from_shared(app.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "grpc.health.v1.Health".into(),
            )),
        },
    ];
    let mut stream = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
        panic!("unexpected reflection answer: {resp:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in ["portcullis.v1.Gate", "grpc.health.v1.Health"] {
        assert!(names.contains(&want.to_string()), "{want} in {names:?}");
    }
    let resp = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = resp.message_response else {
        panic!("unexpected reflection answer: {resp:?}");
    };
    assert!(!files.file_descriptor_proto.is_empty());
}

/// Errors carry their help on both transports: a reused idempotency key says how to fix it over
/// gRPC as it does over HTTP.
#[tokio::test]
async fn grpc_errors_say_how_to_fix_them() {
    let app = spawn_app().await;
    let mut client = app.grpc();
    client.check(grpc_check("g-help"), soon()).await.unwrap();
    let mut other = grpc_check("g-help");
    other.application = "orders".into();
    let e = client.check(other, soon()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("how to fix: use a new idempotency key for a different deploy"),
        "{e}"
    );
}
