//! Check throughput and latency on each store backend, same workload: full HTTP checks through
//! the real router and gate (a fixed 15-rule policy, `benches/store_policy/`: the built-in pack
//! as it was before the decision ledger; no adapters, so the store is most of the cost), each
//! with its own idempotency key (one key lookup and one insert per check).
//! The decision ledger is on: every check stores its `created` event with the decision, and
//! the sequencer / checkpoint signer runs every second (five times the default rate) while
//! the checks run, as in service.
//!
//! Run: `cargo bench --bench store` (PostgreSQL at `PORTCULLIS_TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/test`; a fresh schema is made and dropped). Prints, per
//! backend and concurrency, checks per second and p50 / p99 latency.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup fails loudly"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portcullis::audit::checkpoint::CheckpointSigner;
use portcullis::auth::Authenticator;
use portcullis::edge::HttpState;
use portcullis::gate::{Gate, GateOptions};
use portcullis::metrics::Metrics;
use portcullis::policy::{PolicyHandle, PolicySet};
use portcullis::serve::http_router;
use portcullis::store::{self, StoreOptions};
use serde_json::json;
use sqlx::Connection;

static KEY: AtomicUsize = AtomicUsize::new(0);

async fn serve(url: &str) -> String {
    let store = store::open(
        url,
        &StoreOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(10),
        },
    )
    .await
    .unwrap();
    let gate = Arc::new(
        Gate::new(
            // A fixed policy (the built-in pack as it was before the ledger, 15 rules), so that the
            // ledger's cost is measured against the same evaluation and the same body sizes.
            PolicyHandle::new(
                PolicySet::load_dir(
                    &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/store_policy"),
                )
                .unwrap(),
            ),
            Vec::new(),
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
        )
        .with_signer(Arc::new(CheckpointSigner::generate())),
    );
    // The ledger's background half, as `serve` runs it (more often than the 5 s default).
    // `PORTCULLIS_BENCH_CHECKPOINTER=off` leaves it out, to see what it costs.
    if std::env::var("PORTCULLIS_BENCH_CHECKPOINTER").as_deref() != Ok("off") {
        tokio::spawn(Arc::clone(&gate).run_checkpointer(
            "bench".into(),
            Duration::from_secs(1),
            tokio_util::sync::CancellationToken::new(),
        ));
    }
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
    url
}

async fn one_check(client: &reqwest::Client, url: &str) -> Duration {
    let key = KEY.fetch_add(1, Ordering::SeqCst);
    let body = json!({
        "application": "payments",
        "environment": "prod",
        "images": [format!("ghcr.io/acme/payments:1.4.2@sha256:{}", "a".repeat(64))],
        "change_refs": {"jira_keys": ["OPS-1"], "servicenow_changes": ["CHG0030001"]},
        "caller": {"kind": "spinnaker"},
        "idempotency_key": format!("bench-{key}"),
    });
    let started = Instant::now();
    let resp = client.post(url).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 201);
    let _ = resp.bytes().await.unwrap();
    started.elapsed()
}

/// `total` checks from `concurrency` clients; returns (checks/s, p50 ms, p99 ms).
async fn run(url: &str, concurrency: usize, total: usize) -> (f64, f64, f64) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let workers = (0..concurrency).map(|_| {
        let (client, url) = (client.clone(), url.to_string());
        tokio::spawn(async move {
            let mut v = Vec::new();
            for _ in 0..total / concurrency {
                v.push(one_check(&client, &url).await);
            }
            v
        })
    });
    let mut samples: Vec<f64> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flat_map(Result::unwrap)
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    let elapsed = started.elapsed().as_secs_f64();
    samples.sort_by(f64::total_cmp);
    let p = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    (samples.len() as f64 / elapsed, p(0.50), p(0.99))
}

async fn measure(name: &str, store_url: &str) {
    let url = serve(store_url).await;
    run(&url, 4, 200).await; // warm-up
    // `PORTCULLIS_BENCH_PLAN=1:3000` runs one client only (for a profile); the default is below.
    let plan: Vec<(usize, usize)> = std::env::var("PORTCULLIS_BENCH_PLAN")
        .map(|p| {
            p.split(',')
                .filter_map(|c| c.split_once(':'))
                .map(|(c, n)| (c.parse().unwrap(), n.parse().unwrap()))
                .collect()
        })
        .unwrap_or_else(|_| vec![(1, 1000), (16, 4000)]);
    for (concurrency, total) in plan {
        let (rate, p50, p99) = run(&url, concurrency, total).await;
        println!(
            "{name:<10} concurrency {concurrency:>2}: {total} checks, {rate:>7.0} checks/s, p50 {p50:.2} ms, p99 {p99:.2} ms"
        );
    }
}

/// Which backends to measure: `PORTCULLIS_BENCH_BACKENDS` (`sqlite,postgres` by default), so a
/// profile can take one alone.
fn wanted(backend: &str) -> bool {
    std::env::var("PORTCULLIS_BENCH_BACKENDS")
        .map(|v| v.split(',').any(|b| b.trim() == backend))
        .unwrap_or(true)
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        if wanted("sqlite") {
            measure(
                "sqlite",
                &format!("sqlite://{}", dir.path().join("bench.db").display()),
            )
            .await;
        }
        if !wanted("postgres") {
            return;
        }
        let base = std::env::var("PORTCULLIS_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let schema = format!("portcullis_bench_{}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        measure(
            "postgres",
            &format!("{base}{sep}options[search_path]={schema}"),
        )
        .await;
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut admin)
            .await
            .unwrap();
    });
}
