//! What gRPC refuses, it refuses as the caller's mistake and at the same edge as HTTP: a
//! message that is not valid protobuf (a string that is not UTF-8) is `INVALID_ARGUMENT`, and
//! `server.max_evidence_bytes` is the one limit on an evidence report over both transports.

use bytes::{Buf, BufMut};
use portcullis::auth::Role;
use portcullis::pb;
use reqwest::StatusCode;
use serde_json::json;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;

use crate::support::TestApp;
use crate::support::app::digest;
use crate::support::fixtures::report;

/// Sends bytes as they are and reads the answer as bytes: the test writes the wire format.
#[derive(Debug, Clone, Default)]
struct RawCodec;

#[derive(Debug, Clone, Default)]
struct Raw;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

async fn raw_call(app: &TestApp, method: &'static str, body: Vec<u8>) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(app.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut req = tonic::Request::new(body);
    let token: MetadataValue<_> = format!("Bearer {}", app.token.as_deref().unwrap())
        .parse()
        .unwrap();
    req.metadata_mut().insert("authorization", token);
    grpc.unary(req, http::uri::PathAndQuery::from_static(method), RawCodec)
        .await
        .expect_err("the call must be refused")
}

#[tokio::test]
async fn a_string_that_is_not_utf8_is_invalid_argument_not_internal() {
    let app = TestApp::builder()
        .token("ci", "pc_ci", vec![Role::Pipeline])
        .spawn()
        .await;
    // CheckRequest.application (field 1, length-delimited) = 0xff 0xfe, which is not UTF-8.
    let status = raw_call(
        &app,
        "/portcullis.v1.Gate/Check",
        vec![0x0a, 0x02, 0xff, 0xfe],
    )
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("UTF-8"), "{status:?}");
    // A truncated field is the same mistake.
    let status = raw_call(
        &app,
        "/portcullis.v1.Gate/GetDecision",
        vec![0x0a, 0x20, b'x'],
    )
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
}

const LIMIT: usize = 8 * 1024;

/// A valid report of exactly `len` bytes (JSON allows trailing whitespace).
fn report_of(d: &str, len: usize) -> Vec<u8> {
    let mut body = report(d, false).to_string().into_bytes();
    assert!(
        body.len() <= len,
        "the report is already {} bytes",
        body.len()
    );
    body.resize(len, b' ');
    body
}

async fn limited_app(reports: &std::path::Path) -> TestApp {
    TestApp::builder()
        .clock(crate::support::clock_at_t0())
        .adapter(json!({"kind": "trivy", "name": "trivy", "reports_dir": reports}))
        .token("ci", "pc_ci", vec![Role::Pipeline])
        .max_evidence_bytes(LIMIT)
        .spawn()
        .await
}

#[tokio::test]
async fn http_takes_a_report_of_exactly_the_limit_and_refuses_one_byte_more() {
    let reports = tempfile::tempdir().unwrap();
    let app = limited_app(reports.path()).await;
    let d = digest('c');
    let post = |body: Vec<u8>| {
        app.http
            .post(app.url(&format!("/v1/evidence/trivy/{d}")))
            .bearer_auth("pc_ci")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let at = post(report_of(&d, LIMIT)).await.unwrap();
    assert_eq!(
        at.status(),
        StatusCode::CREATED,
        "{}",
        at.text().await.unwrap()
    );
    let over = post(report_of(&d, LIMIT + 1)).await.unwrap();
    let p = crate::support::Answer::read("POST /v1/evidence/trivy over the limit", over)
        .await
        .json_with(StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        p["help"]
            .as_str()
            .unwrap()
            .contains("server.max_evidence_bytes"),
        "{p}"
    );
}

#[tokio::test]
async fn grpc_takes_a_report_of_exactly_the_limit_and_refuses_one_byte_more() {
    let reports = tempfile::tempdir().unwrap();
    let app = limited_app(reports.path()).await;
    let d = digest('d');
    let channel = tonic::transport::Endpoint::from_shared(app.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client =
        pb::gate_client::GateClient::with_interceptor(channel, |mut r: tonic::Request<()>| {
            r.metadata_mut()
                .insert("authorization", "Bearer pc_ci".parse().unwrap());
            Ok(r)
        });
    let submit = |report: Vec<u8>| pb::SubmitEvidenceRequest {
        source: "trivy".into(),
        digest: d.clone(),
        report,
        commit: String::new(),
    };
    let at = client.submit_evidence(submit(report_of(&d, LIMIT))).await;
    assert_eq!(at.unwrap().into_inner().digest, d);
    let over = client
        .submit_evidence(submit(report_of(&d, LIMIT + 1)))
        .await
        .unwrap_err();
    assert_eq!(over.code(), tonic::Code::ResourceExhausted, "{over:?}");
    assert!(
        over.message().contains("server.max_evidence_bytes"),
        "{over:?}"
    );
}

/// The old gRPC cap was the 1 MiB body limit: a 2 MiB report under the default 64 MiB limit
/// goes through gRPC as it does over HTTP.
#[tokio::test]
async fn the_default_limit_is_the_same_on_both_transports() {
    let reports = tempfile::tempdir().unwrap();
    let app = TestApp::builder()
        .clock(crate::support::clock_at_t0())
        .adapter(json!({"kind": "trivy", "name": "trivy", "reports_dir": reports.path()}))
        .token("ci", "pc_ci", vec![Role::Pipeline])
        .spawn()
        .await;
    assert_eq!(app.settings.server.max_evidence_bytes, 64 * 1024 * 1024);
    let d = digest('e');
    let channel = tonic::transport::Endpoint::from_shared(app.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client =
        pb::gate_client::GateClient::with_interceptor(channel, |mut r: tonic::Request<()>| {
            r.metadata_mut()
                .insert("authorization", "Bearer pc_ci".parse().unwrap());
            Ok(r)
        })
        .max_encoding_message_size(8 * 1024 * 1024);
    let resp = client
        .submit_evidence(pb::SubmitEvidenceRequest {
            source: "trivy".into(),
            digest: d.clone(),
            report: report_of(&d, 2 * 1024 * 1024),
            commit: String::new(),
        })
        .await;
    assert_eq!(resp.unwrap().into_inner().digest, d);
}
