//! A fixed number of full checks through the HTTP router, in process and without sockets, for
//! instruction counts (`valgrind --tool=callgrind`) and CPU profiles (`perf record`) of the hot
//! path: the 26-rule peer policy (`benches/peer_policy/`), its facts served by in-process fake
//! adapters that answer at once (a warm cache), and the decision stored in SQLite.
//!
//! Run: `cargo run --profile bench --example hotpath -- <checks> [sqlite|memory|postgres://…]`. Every run does
//! the same 20 warm-up checks first, so the instructions of one check are the difference between
//! two runs divided by the difference in checks; wall time per check is printed for reference only
//! (it varies with the machine's load, the instruction counts do not).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "measurement setup fails loudly"
)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use http::Request;
use portcullis::adapters::{Adapter, AdapterError, Facts};
use portcullis::auth::Authenticator;
use portcullis::clock::ManualClock;
use portcullis::domain::CheckRequest;
use portcullis::edge::HttpState;
use portcullis::gate::{Gate, GateOptions};
use portcullis::metrics::Metrics;
use portcullis::policy::{PolicyHandle, PolicySet, PolicySource};
use portcullis::serve::http_router;
use portcullis::store::{self, StoreOptions};
use serde_json::Value;
use tower::ServiceExt as _;

const WARM_UP: usize = 20;

/// Answers at once with the facts it was built with, as an adapter with a warm cache does: the
/// facts, the URL and a response excerpt, as `kind: http` gives them (and as `benches/slo.rs`
/// serves them), so the stored evidence has its real size.
#[derive(Debug)]
struct FakeAdapter {
    name: String,
    facts: Facts,
}

impl FakeAdapter {
    fn new(name: &str, document: Value) -> Self {
        let text = document.to_string();
        let excerpt = portcullis::adapters::http_client::excerpt(&text).to_string();
        FakeAdapter {
            name: name.into(),
            facts: Facts {
                document,
                url: Some(format!("http://tools.bench.internal/peer/{name}")),
                excerpt: Some(excerpt),
            },
        }
    }
}

#[async_trait]
impl Adapter for FakeAdapter {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "fake"
    }
    async fn collect(
        &self,
        _r: &CheckRequest,
        _deadline: tokio::time::Instant,
    ) -> Result<Facts, AdapterError> {
        Ok(self.facts.clone())
    }
}

fn peer_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer_policy")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let checks: usize = args.next().map_or(100, |n| n.parse().unwrap());
    let backend = args.next().unwrap_or_else(|| "sqlite".into());

    let input: Value = serde_json::from_str(
        &std::fs::read_to_string(peer_dir().join("deploy_input.json")).unwrap(),
    )
    .unwrap();
    let input = input["input"].clone();
    let mut adapters: Vec<Arc<dyn Adapter>> = [
        "sonar",
        "aqua",
        "jira",
        "servicenow",
        "freeze",
        "integrations",
        "release",
        "image",
    ]
    .into_iter()
    .map(|ns| Arc::new(FakeAdapter::new(ns, input[ns].clone())) as Arc<dyn Adapter>)
    .collect();
    adapters.push(Arc::new(FakeAdapter::new(
        "pipeline",
        input["request"].clone(),
    )));
    let policy = PolicySet::from_sources(vec![PolicySource {
        name: "deploy_gate.yaml".into(),
        text: std::fs::read_to_string(peer_dir().join("deploy_gate.yaml")).unwrap(),
    }])
    .unwrap();
    let now = input["now"].as_str().unwrap().parse().unwrap();
    let image = format!(
        "{}/{}:{}@{}",
        input["image"]["registry"].as_str().unwrap(),
        input["image"]["repository"].as_str().unwrap(),
        input["image"]["tag"].as_str().unwrap(),
        input["image"]["digest"].as_str().unwrap(),
    );
    let body = serde_json::to_vec(&serde_json::json!({
        "application": "payments-api",
        "environment": input["target"]["environment"],
        "images": [image],
        "sources": [{"repository": "example-org/payments-api",
                     "commit": input["release"]["git_sha"], "branch": "main"}],
        "change_refs": {"jira_keys": ["PAY-1234"], "servicenow_changes": ["CHG0030001"]},
        "caller": {"kind": "spinnaker", "ids": {"execution_id": "01JEXEC"}},
        "triggered_by": "svc-spinnaker",
        "labels": {"team": "payments"},
    }))
    .unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let url = match backend.as_str() {
            "memory" => "sqlite::memory:".to_string(),
            url if url.starts_with("postgres") => url.to_string(),
            _ => format!("sqlite://{}", dir.path().join("hotpath.db").display()),
        };
        let store = store::open(&url, &StoreOptions::default()).await.unwrap();
        let gate = Gate::new(
            PolicyHandle::new(policy),
            adapters,
            store,
            Arc::new(Metrics::new()),
            GateOptions {
                evidence_deadline: Duration::from_secs(5),
                review_timeout: Duration::from_secs(3600),
                review_timeouts: Default::default(),
                approvals: Default::default(),
                environments: Default::default(),
                no_rules_verdict: portcullis::domain::Verdict::ManualReview,
                replay_window: Duration::from_secs(3600),
            },
        )
        .with_clock(Arc::new(ManualClock::new(now)));
        let http = HttpState {
            gate: Arc::new(gate),
            auth: Arc::new(Authenticator::new(&[]).unwrap()),
            public_url: None,
        };
        let router = http_router(
            portcullis::contracts::ContractState {
                http,
                reviews: Default::default(),
                admission: None,
            },
            1 << 20,
            64 << 20,
        );
        let one = |router: axum::Router| {
            let body = body.clone();
            async move {
                let req = Request::post("/v1/checks")
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .unwrap();
                let resp = router.oneshot(req).await.unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
                axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap()
                    .len()
            }
        };
        for _ in 0..WARM_UP {
            one(router.clone()).await;
        }
        let started = Instant::now();
        let mut bytes = 0;
        for _ in 0..checks {
            bytes = one(router.clone()).await;
        }
        let spent = started.elapsed();
        println!(
            "{checks} checks ({backend}) after {WARM_UP} warm-up: {:.1} µs each by the wall clock; response {bytes} bytes",
            spent.as_secs_f64() * 1e6 / checks.max(1) as f64
        );
    });
}
