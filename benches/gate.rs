//! One full check through the HTTP API, with in-process fake adapters that answer after a fixed
//! delay. The interesting figure is the overhead above the slowest adapter: total minus delay.
//!
//! Run: `cargo bench --bench gate`. Besides criterion's report it prints p50/p99 overhead over
//! 1,000 sequential checks, the figure the issue sets a target for (< 2 ms at p50).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup fails loudly"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as StdInstant};

use async_trait::async_trait;
use criterion::{Criterion, criterion_group};
use portcullis::adapters::{Adapter, AdapterError, Facts};
use portcullis::auth::Authenticator;
use portcullis::domain::CheckRequest;
use portcullis::edge::HttpState;
use portcullis::gate::{Gate, GateOptions};
use portcullis::metrics::Metrics;
use portcullis::policy::{PolicyHandle, PolicySet};
use portcullis::serve::http_router;
use portcullis::store::{self, StoreOptions};
use serde_json::json;

/// Longest time any fake adapter actually spent in the current check, in nanoseconds. Timers
/// round sleeps up to the next millisecond tick, so the nominal delay understates it.
static SLOWEST_NS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
struct FakeAdapter {
    name: &'static str,
    delay: Duration,
    facts: serde_json::Value,
}

#[async_trait]
impl Adapter for FakeAdapter {
    fn name(&self) -> &str {
        self.name
    }
    fn kind(&self) -> &'static str {
        "fake"
    }
    async fn collect(
        &self,
        _r: &CheckRequest,
        _deadline: tokio::time::Instant,
    ) -> Result<Facts, AdapterError> {
        let started = StdInstant::now();
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let spent = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        SLOWEST_NS.fetch_max(spent, Ordering::SeqCst);
        Ok(Facts {
            document: self.facts.clone(),
            url: None,
            excerpt: None,
        })
    }
}

fn adapters(delay: Duration) -> Vec<Arc<dyn Adapter>> {
    let now = chrono::Utc::now();
    vec![
        Arc::new(FakeAdapter {
            name: "sonarqube",
            delay,
            facts: json!({"quality_gate": {"status": "OK"}}),
        }),
        Arc::new(FakeAdapter {
            name: "trivy",
            delay,
            facts: json!({"vulnerabilities": {"critical": 0, "high": 2}, "scanned_at": now.to_rfc3339()}),
        }),
        Arc::new(FakeAdapter {
            name: "servicenow",
            delay,
            facts: json!({"change": {
                "approval": "approved",
                "start_date": (now - chrono::Duration::hours(1)).to_rfc3339(),
                "end_date": (now + chrono::Duration::hours(1)).to_rfc3339(),
            }}),
        }),
    ]
}

struct Server {
    url: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start(delay: Duration) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(
        &format!("sqlite://{}", dir.path().join("bench.db").display()),
        &StoreOptions::default(),
    )
    .await
    .unwrap();
    let gate = Arc::new(Gate::new(
        PolicyHandle::new(PolicySet::builtin().unwrap()),
        adapters(delay),
        store,
        Arc::new(Metrics::new()),
        GateOptions {
            evidence_deadline: Duration::from_secs(5),
            review_timeout: Duration::from_secs(3600),
            review_timeouts: Default::default(),
            approvals: Default::default(),
            environments: Default::default(),
            no_rules_verdict: portcullis::domain::Verdict::ManualReview,
            replay_window: std::time::Duration::from_secs(3600),
        },
    ));
    let http = HttpState {
        gate,
        auth: Arc::new(Authenticator::new(&[]).unwrap()),
        public_url: None,
    };
    let app = http_router(
        portcullis::contracts::ContractState {
            http,
            reviews: Default::default(),
            admission: None,
        },
        1 << 20,
        64 << 20,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/checks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        url,
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

fn body() -> serde_json::Value {
    json!({
        "application": "payments",
        "environment": "prod",
        "images": [format!("ghcr.io/acme/payments:1.4.2@sha256:{}", "a".repeat(64))],
        "change_refs": {"jira_keys": ["OPS-1"], "servicenow_changes": ["CHG0030001"]},
        "caller": {"kind": "spinnaker"},
    })
}

async fn one_check(s: &Server) {
    let resp = s.client.post(&s.url).json(&body()).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let _ = resp.bytes().await.unwrap();
}

fn bench_check(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut group = c.benchmark_group("check_http");
    for delay_ms in [0u64, 5] {
        let server = rt.block_on(start(Duration::from_millis(delay_ms)));
        group.bench_function(format!("adapters_{delay_ms}ms"), |b| {
            b.to_async(&rt).iter(|| one_check(&server));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(5));
    targets = bench_check
}

/// p50 / p99 of (check latency − adapter delay) over sequential checks.
fn overhead_percentiles() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let delay = Duration::from_millis(5);
    let server = rt.block_on(start(delay));
    let mut samples: Vec<f64> = rt.block_on(async {
        for _ in 0..50 {
            one_check(&server).await;
        }
        let mut v = Vec::with_capacity(1000);
        for _ in 0..1000 {
            // Wall-clock time of a real HTTP round trip is the thing measured here.
            SLOWEST_NS.store(0, Ordering::SeqCst);
            let t = StdInstant::now();
            one_check(&server).await;
            let slowest = Duration::from_nanos(SLOWEST_NS.load(Ordering::SeqCst));
            v.push(t.elapsed().saturating_sub(slowest).as_secs_f64() * 1000.0);
        }
        v
    });
    samples.sort_by(f64::total_cmp);
    let p = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    println!(
        "check overhead above the slowest adapter (measured inside it; nominal delay {} ms), 1000 sequential HTTP checks: p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms",
        delay.as_millis(),
        p(0.50),
        p(0.90),
        p(0.99)
    );
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    overhead_percentiles();
}
