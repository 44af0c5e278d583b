//! Admission webhook latency at a fixed request rate: `AdmissionReview`s for a Deployment with
//! an init container and two containers (three store lookups each) through the real HTTP router,
//! against a SQLite store and then a PostgreSQL one, each holding a few thousand decisions, sent
//! open-loop at 200 requests per second for five seconds.
//!
//! Run: `cargo bench --bench admission` (PostgreSQL at `PORTCULLIS_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`, in a schema made and dropped here; skipped with a
//! line saying so when nothing answers). `cargo bench --bench admission -- --quick` runs two
//! seconds over 500 decisions, for a shared machine. Prints p50 / p99 / max latency per store;
//! the target is p99 ≤ 10 ms at 200 requests per second.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup fails loudly"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use portcullis::admission::{Admission, AdmissionSettings};
use portcullis::auth::Authenticator;
use portcullis::edge::HttpState;
use portcullis::gate::{Gate, GateOptions};
use portcullis::metrics::Metrics;
use portcullis::policy::{PolicyHandle, PolicySet};
use portcullis::serve::http_router;
use portcullis::store::{self, StoreOptions};
use serde_json::{Value, json};

use sqlx::Connection as _;

const RATE: u64 = 200;

/// How long to send and how many decisions to store first.
#[derive(Clone, Copy)]
struct Size {
    seconds: u64,
    decisions: usize,
}

fn digest(i: usize) -> String {
    format!("sha256:{i:064x}")
}

fn review(i: usize, decisions: usize) -> Value {
    let image = |n: usize| format!("ghcr.io/acme/app@{}", digest(n % decisions));
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("bench-{i}"), "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "namespace": "payments-prod", "name": "web", "operation": "CREATE",
        "userInfo": {"username": "bench", "groups": []},
        "object": {"spec": {"template": {"spec": {
            "initContainers": [{"name": "migrate", "image": image(i)}],
            "containers": [{"name": "app", "image": image(i + 1)}, {"name": "proxy", "image": image(i + 2)}]}}}}}})
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let quick = std::env::args().any(|a| a == "--quick");
    let size = if quick {
        Size {
            seconds: 2,
            decisions: 500,
        }
    } else {
        Size {
            seconds: 5,
            decisions: 2_000,
        }
    };
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        run(
            "sqlite",
            &format!("sqlite://{}", dir.path().join("bench.db").display()),
            size,
        )
        .await;

        let base = std::env::var("PORTCULLIS_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let Ok(mut admin) = sqlx::PgConnection::connect(&base).await else {
            println!(
                "admission postgres: skipped, nothing answers at PORTCULLIS_TEST_DATABASE_URL"
            );
            return;
        };
        let schema = format!("portcullis_bench_admission_{}", std::process::id());
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        run(
            "postgres",
            &format!("{base}{sep}options[search_path]={schema}"),
            size,
        )
        .await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut admin)
            .await
            .unwrap();
    });
}

async fn run(label: &str, url: &str, size: Size) {
    let Size { seconds, decisions } = size;
    let store = store::open(
        url,
        &StoreOptions {
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let policy = "rules:\n  - id: any\n    title: t\n    category: c\n    severity: low\n    description: d\n    remediation: r\n    condition: {path: $.request.application, op: exists}\n";
    let gate = Arc::new(Gate::new(
        PolicyHandle::new(
            PolicySet::from_sources(vec![portcullis::policy::PolicySource {
                name: "bench.yaml".into(),
                text: policy.into(),
            }])
            .unwrap(),
        ),
        Vec::new(),
        Arc::clone(&store),
        Arc::clone(&metrics),
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
    let mut settings: AdmissionSettings = serde_norway::from_str(
        "{enabled: true, environments: {payments-prod: prod}, cluster_environment: null, max_age: 30d, exempt_namespaces: [kube-system], break_glass: {annotation: x, groups: [], controllers: []}}",
    )
    .unwrap();
    settings.enabled = true;
    let admission = Arc::new(
        Admission::build(
            &settings,
            Arc::clone(&store),
            metrics,
            None,
            Arc::new(portcullis::clock::SystemClock),
        )
        .unwrap(),
    );
    let http = HttpState {
        gate,
        auth: Arc::new(Authenticator::new(&[]).unwrap()),
        public_url: None,
    };
    let app = http_router(
        portcullis::contracts::ContractState {
            http,
            reviews: Default::default(),
            admission: Some(admission),
        },
        1 << 20,
        64 << 20,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = reqwest::Client::new();

    for i in 0..decisions {
        let r = client
            .post(format!("{base}/v1/checks"))
            .json(&json!({"application": "app", "environment": "prod",
                "images": [format!("ghcr.io/acme/app@{}", digest(i))]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    let total = (RATE * seconds) as usize;
    let interval = Duration::from_nanos(1_000_000_000 / RATE);
    let started = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total);
    for i in 0..total {
        tokio::time::sleep_until(started + interval * u32::try_from(i).unwrap()).await;
        let client = client.clone();
        let url = format!("{base}/v1/admission");
        let body = review(i, decisions);
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let r = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), 200);
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["response"]["allowed"], true, "{v}");
            t.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for t in tasks {
        latencies.push(t.await.unwrap());
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "admission {label}: {total} reviews at {RATE}/s (3 images each, {decisions} decisions stored): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
    );
    server.abort();
}
