//! Evidence ingestion: a pipeline submits a Trivy report in CI; a later check of that digest
//! uses it. Bad reports are refused with a reason and change nothing.

use portcullis::auth::Role;
use portcullis::pb;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::app::digest;
use crate::support::fixtures::report;

const NO_CRITICALS: &str = "rules:\n  - id: no-critical-vulnerabilities\n    title: No critical vulnerabilities\n    category: vulnerabilities\n    severity: critical\n    condition: { path: $.trivy.vulnerabilities.critical, op: \"==\", value: 0 }\n";

/// The service on [`crate::support::t0`], when [`report`]s are made.
async fn app(reports: &std::path::Path) -> TestApp {
    TestApp::builder()
        .clock(crate::support::clock_at_t0())
        .policies(&[("p.yaml", NO_CRITICALS)])
        .adapter(
            json!({"kind": "trivy", "name": "trivy", "reports_dir": reports, "cache_ttl": "1h"}),
        )
        .token("ci", "pc_ci", vec![Role::Pipeline])
        .token("auditor", "pc_auditor", vec![Role::Auditor])
        .spawn()
        .await
}

async fn submit(
    app: &TestApp,
    token: &str,
    source: &str,
    digest: &str,
    body: String,
) -> (u16, Value) {
    app.submit_evidence(Some(token), source, digest, body)
        .await
        .parts()
}

async fn check(app: &TestApp, digest: &str, key: &str) -> Value {
    app.check(&json!({
        "application": "orders", "environment": "prod",
        "images": [format!("ghcr.io/acme/orders:2.0.0@{digest}")],
        "idempotency_key": key,
    }))
    .await
    .json_with(StatusCode::CREATED)
}

#[tokio::test]
async fn a_report_submitted_in_ci_decides_a_later_check() {
    let reports = tempfile::tempdir().unwrap();
    let app = app(reports.path()).await;
    let d = digest('7');

    // Nothing submitted yet: the evidence is missing, never a pass.
    let before = check(&app, &d, "ev-0").await;
    assert_eq!(before["verdict"], "terminate", "{before}");
    assert_eq!(before["rule_results"][0]["outcome"], "missing", "{before}");

    let (status, receipt) = submit(&app, "pc_ci", "trivy", &d, report(&d, true).to_string()).await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["digest"], d);
    let after = check(&app, &d, "ev-1").await;
    assert_eq!(
        after["verdict"], "terminate",
        "a fresh report replaces the cached miss: {after}"
    );
    assert_eq!(
        after["evidence"]["trivy"]["vulnerabilities"]["critical"], 1,
        "{after}"
    );

    // A fixed image, scanned and submitted over gRPC.
    let fixed = digest('8');
    let channel = tonic::transport::Endpoint::from_shared(app.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw =
        pb::gate_client::GateClient::with_interceptor(channel, |mut r: tonic::Request<()>| {
            r.metadata_mut()
                .insert("authorization", "Bearer pc_ci".parse().unwrap());
            Ok(r)
        });
    let resp = raw
        .submit_evidence(pb::SubmitEvidenceRequest {
            source: "trivy".into(),
            digest: fixed.clone(),
            report: report(&fixed, false).to_string().into_bytes(),
            commit: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.digest, fixed);
    let ok = check(&app, &fixed, "ev-2").await;
    assert_eq!(ok["verdict"], "continue", "{ok}");
}

#[tokio::test]
async fn bad_reports_are_refused_and_store_nothing() {
    let reports = tempfile::tempdir().unwrap();
    let app = app(reports.path()).await;
    let d = digest('6');
    let other = digest('5');
    let cases = [
        ("not json".to_string(), "report"),
        (json!([{"Target": "x"}]).to_string(), "report"),
        (json!({"SchemaVersion": 1}).to_string(), "report"),
        (report(&other, true).to_string(), "report"),
    ];
    for (body, field) in cases {
        let (status, p) = submit(&app, "pc_ci", "trivy", &d, body).await;
        assert_eq!(status, 400, "{p}");
        assert_eq!(p["field"], field, "{p}");
    }
    let (status, p) = submit(
        &app,
        "pc_ci",
        "trivy",
        "sha256:short",
        report(&d, true).to_string(),
    )
    .await;
    assert_eq!((status, p["field"].as_str()), (400, Some("digest")), "{p}");
    let (status, p) = submit(&app, "pc_ci", "sonarqube", &d, report(&d, true).to_string()).await;
    assert_eq!((status, p["field"].as_str()), (400, Some("source")), "{p}");
    let (status, _) = submit(
        &app,
        "pc_auditor",
        "trivy",
        &d,
        report(&d, true).to_string(),
    )
    .await;
    assert_eq!(status, 403, "auditors read; only pipelines submit");
    let stored = std::fs::read_dir(reports.path()).unwrap().count();
    assert_eq!(stored, 0, "nothing was stored");
}
