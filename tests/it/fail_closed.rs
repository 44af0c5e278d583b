//! Every fault of an evidence source ends as a stated reason and a non-continue verdict; only a
//! healthy answer lets the deploy through. A bug inside a check is an internal error, not an outage.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use portcullis::clock::{Clock, SystemClock};
use portcullis::pb;
use portcullis::sim::FaultSettings;
use portcullis::sim::faults::{FailNext, RateLimitNext};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::fake_tool::{self, refused_addr};
use crate::support::fixtures::good_check;

const FREEZE_POLICY: &str = r#"
rules:
  - id: no-deploy-freeze
    title: The environment is not frozen
    category: change-management
    severity: critical
    description: The freeze service says whether deploys to the environment are allowed now.
    remediation: Wait for the freeze to end or ask for an exception.
    condition:
      path: $.freeze.frozen
      op: "=="
      value: false
"#;

fn freeze_adapter(url: &str) -> Value {
    json!({
        "kind": "http",
        "name": "freeze",
        "url": url,
        "timeout": "500ms",
        "retries": 1,
        "extract": { "frozen": "$.frozen", "open_incidents": "$.open_incidents" }
    })
}

async fn verdict_with(adapter_url: Option<String>) -> Value {
    let mut b = TestApp::builder()
        .policies(&[("freeze.yaml", FREEZE_POLICY)])
        .evidence_deadline(Duration::from_secs(2));
    if let Some(url) = adapter_url {
        b = b.adapter(freeze_adapter(&url));
    }
    let app = b.spawn().await;
    app.check(&good_check("fc"))
        .await
        .json_with(StatusCode::CREATED)
}

fn source_reason(d: &Value) -> String {
    d["sources"][0]["reason"].as_str().unwrap_or("").to_string()
}

#[tokio::test]
async fn a_healthy_source_lets_the_deploy_through() {
    let tool = fake_tool::spawn().await;
    let d = verdict_with(Some(tool.url("/freeze/{environment}"))).await;
    assert_eq!(d["verdict"], "continue", "{d}");
    assert_eq!(d["evidence"]["freeze"]["frozen"], false);
    assert_eq!(d["sources"][0]["status"], "ok");
    assert_eq!(tool.requests(), 1);
}

#[tokio::test]
async fn a_failing_condition_terminates() {
    let tool = fake_tool::spawn().await;
    let app = TestApp::builder()
        .policies(&[("freeze.yaml", FREEZE_POLICY)])
        .adapter(freeze_adapter(&tool.url("/freeze/prod-frozen")))
        .spawn()
        .await;
    let d = app
        .check(&good_check("x"))
        .await
        .json_with(StatusCode::CREATED);
    assert_eq!(d["verdict"], "terminate", "{d}");
    assert_eq!(d["rule_results"][0]["outcome"], "fail");
}

#[tokio::test]
async fn every_fault_is_classified_and_never_continues() {
    // Each fault holds for every call (the adapter retries once), on a fresh fake tool.
    let many = 1_000;
    let fail = |status| FaultSettings {
        fail_next: Some(FailNext {
            count: many,
            status,
        }),
        ..Default::default()
    };
    let cases = [
        (fail(500), "bad_response"),
        (fail(503), "bad_response"),
        (fail(401), "auth"),
        (fail(403), "auth"),
        (fail(404), "not_found"),
        (
            FaultSettings {
                rate_limit_next: Some(RateLimitNext {
                    count: many,
                    retry_after_s: 120,
                }),
                ..Default::default()
            },
            "rate_limited",
        ),
        (
            FaultSettings {
                malformed_next: Some(many),
                ..Default::default()
            },
            "bad_response",
        ),
        (
            FaultSettings {
                hang_next: Some(many),
                ..Default::default()
            },
            "timeout",
        ),
    ];
    let refused = refused_addr().await;
    let mut urls = Vec::new();
    for (faults, reason) in cases {
        let tool = fake_tool::spawn().await;
        let shown = format!("{faults:?}");
        tool.faults(faults);
        urls.push((tool.url("/freeze/{environment}"), shown, reason, Some(tool)));
    }
    urls.push((
        format!("http://{refused}/freeze"),
        "refused".into(),
        "unreachable",
        None,
    ));
    for (url, fault, reason, _tool) in urls {
        let d = verdict_with(Some(url.clone())).await;
        // The rule is critical: missing evidence takes its failure verdict.
        assert_eq!(d["verdict"], "terminate", "{fault}: {d}");
        assert_eq!(d["rule_results"][0]["outcome"], "missing", "{fault}: {d}");
        assert_eq!(source_reason(&d), reason, "{fault}: {d}");
        // What was called is recorded, the placeholder filled in: for a timeout, the call in flight.
        let called = url.replace("{environment}", "prod");
        assert_eq!(d["sources"][0]["url"], called.as_str(), "{fault}: {d}");
        let why = d["rule_results"][0]["reason"].as_str().unwrap();
        assert!(
            why.contains("freeze"),
            "{fault}: the reason should name the source: {why}"
        );
    }
}

#[tokio::test]
async fn a_failed_call_records_its_url_without_credentials() {
    let tool = fake_tool::spawn().await;
    tool.faults(FaultSettings {
        fail_next: Some(FailNext {
            count: 1_000,
            status: 500,
        }),
        ..Default::default()
    });
    let url = tool.url("/freeze/{environment}?api_key=s3cr3t-value&view=full");
    let d = verdict_with(Some(url)).await;
    assert_eq!(source_reason(&d), "bad_response", "{d}");
    let recorded = d["sources"][0]["url"].as_str().unwrap();
    assert!(
        recorded.starts_with(&tool.url("/freeze/prod?")) && recorded.contains("view=full"),
        "{recorded}"
    );
    assert!(!d.to_string().contains("s3cr3t-value"), "{d}");
}

#[tokio::test]
async fn a_source_nobody_configured_is_missing_not_passing() {
    let d = verdict_with(None).await;
    assert_eq!(d["verdict"], "terminate", "{d}");
    assert_eq!(source_reason(&d), "not_configured");
    assert_eq!(d["rule_results"][0]["outcome"], "missing");
}

#[tokio::test]
async fn the_built_in_pack_without_adapters_says_what_it_could_not_evaluate() {
    let app = crate::support::spawn_app().await;
    let d: Value = app
        .post_check(&good_check("builtin"))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(
        d["verdict"], "continue",
        "no adapters configured must never be a silent pass: {d}"
    );
    let missing: Vec<&Value> = d["rule_results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "missing")
        .collect();
    assert!(!missing.is_empty(), "{d}");
    for r in missing {
        assert!(
            r["reason"].as_str().unwrap().contains("not configured")
                || r["reason"].as_str().unwrap().contains("no evidence"),
            "{r}"
        );
    }
    // Rules over the request itself were evaluated.
    assert!(
        d["rule_results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule_id"] == "image-pinned-by-digest" && r["outcome"] == "pass"),
        "{d}"
    );
}

/// A clock that panics the first time it is read after `arm`: a stand-in for a bug inside a
/// check. In an idle service only the expiry sweeper reads the time besides, once a round (the
/// reviews due by now): at start, then a `review.sweep_interval` (30 s) later, so the test arms
/// it after that first read.
#[derive(Debug, Default)]
struct PanicOnce(AtomicBool, AtomicUsize);

impl PanicOnce {
    fn arm(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn reads(&self) -> usize {
        self.1.load(Ordering::SeqCst)
    }
}

impl Clock for PanicOnce {
    fn now(&self) -> DateTime<Utc> {
        self.1.fetch_add(1, Ordering::SeqCst);
        assert!(
            !self.0.swap(false, Ordering::SeqCst),
            "a bug inside a check (this test's clock)"
        );
        SystemClock.now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        SystemClock.sleep(duration)
    }
}

#[tokio::test]
async fn a_check_that_panics_is_an_internal_error_not_an_outage() {
    let clock = Arc::new(PanicOnce::default());
    let app = TestApp::builder().clock(clock.clone()).spawn().await;
    crate::support::poll::eventually(
        Duration::from_secs(10),
        "the expiry sweeper's first round",
        || async { (clock.reads() > 0).then_some(()) },
    )
    .await;

    clock.arm();
    let resp = app.post_check(&good_check("panics")).await;
    assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let p: Value = resp.json().await.unwrap();
    assert_eq!(p["reason_code"], "internal", "{p}");
    assert!(p["help"].as_str().is_some(), "{p}");

    clock.arm();
    let mut client = pb::gate_client::GateClient::connect(app.grpc_url())
        .await
        .unwrap();
    let status = client
        .check(crate::support::fixtures::grpc_check("panics-grpc"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
    assert!(status.message().contains("bug"), "{status:?}");

    // Nothing was decided, and the service still answers.
    let resp = app.post_check(&good_check("after")).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}
