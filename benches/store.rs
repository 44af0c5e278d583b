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
//!
//! Knobs: `PORTCULLIS_BENCH_BACKENDS` (`sqlite,postgres`), `PORTCULLIS_BENCH_PLAN`
//! (`concurrency:checks,…`), `PORTCULLIS_BENCH_CHECKPOINTER=off`, and
//! `PORTCULLIS_BENCH_PENDING=100000`: the timed rounds run once, then that many pending reviews
//! (copies of a real decision, due in an hour, so none is due) are stored and the same rounds run
//! again, each printed with the throughput it lost to them; one expiry sweep is timed on
//! its own (wall and process CPU time), and the expiry sweeper runs every
//! `PORTCULLIS_BENCH_SWEEP_EVERY` (default 5s) during the rounds, as a replica holding the
//! `review-expiry` lease does (every 30 s by default), with a Jira review follower for an
//! environment the checks never name (`PORTCULLIS_BENCH_FOLLOWER=off` leaves it out).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup fails loudly"
)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use portcullis::adapters::AdapterConfig;
use portcullis::audit::checkpoint::CheckpointSigner;
use portcullis::auth::Authenticator;
use portcullis::clock::{Clock, SystemClock};
use portcullis::domain::{DecisionId, DecisionStatus, Verdict};
use portcullis::edge::HttpState;
use portcullis::gate::{Gate, GateOptions};
use portcullis::metrics::Metrics;
use portcullis::policy::{PolicyHandle, PolicySet};
use portcullis::review_routing::{Follower, Jira, ReviewRoute};
use portcullis::serve::http_router;
use portcullis::store::{self, Store, StoreOptions};
use serde_json::json;
use sqlx::Connection;

static KEY: AtomicUsize = AtomicUsize::new(0);

/// The gate, its store and the URL checks are posted to.
async fn serve(url: &str) -> (Arc<Gate>, Arc<dyn Store>, String) {
    let store = store::open(
        url,
        &StoreOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(10),
            ..StoreOptions::default()
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
            Arc::clone(&store),
            Arc::new(Metrics::new()),
            GateOptions {
                evidence_deadline: Duration::from_secs(5),
                review_timeout: Duration::from_secs(3600),
                review_timeouts: Default::default(),
                approvals: Default::default(),
                environments: Default::default(),
                no_rules_verdict: Verdict::ManualReview,
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
        gate: Arc::clone(&gate),
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
    (gate, store, url)
}

/// Stores `count` pending reviews due an hour from now, copies (new ids, no idempotency key) of
/// the decision the check `template` made, so their bodies are the size a check stores.
async fn seed_pending(store: &Arc<dyn Store>, template: &str, count: usize) {
    let id = DecisionId::parse(template).unwrap();
    let mut base = store.get_decision(&id).await.unwrap().unwrap();
    base.status = DecisionStatus::Pending;
    base.verdict = Verdict::ManualReview;
    base.decided_at = None;
    base.resolution = None;
    base.request.idempotency_key = None;
    base.review_deadline = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    let base = Arc::new(base);
    let next = Arc::new(AtomicUsize::new(0));
    let writers = (0..16).map(|_| {
        let (store, base, next) = (Arc::clone(store), Arc::clone(&base), Arc::clone(&next));
        tokio::spawn(async move {
            while next.fetch_add(1, Ordering::SeqCst) < count {
                let mut d = (*base).clone();
                d.id = DecisionId::generate();
                store.insert_decision(&d, "bench").await.unwrap();
            }
        })
    });
    for w in futures::future::join_all(writers).await {
        w.unwrap();
    }
}

/// A Jira review follower for `staging`, an environment the bench's checks never name, as a
/// replica routing some environments runs one (its rounds come every second): what it costs is
/// looking at the pending reviews, since it never has a ticket to open or read. The Jira URL is
/// never called.
fn jira_follower() -> Arc<Follower<Jira>> {
    let route: ReviewRoute = serde_json::from_value(json!({"jira": {
        "project": "REL", "approved_statuses": ["Approved"], "rejected_statuses": ["Rejected"],
    }}))
    .unwrap();
    let adapter: AdapterConfig = serde_json::from_value(json!({
        "kind": "jira", "name": "jira", "base_url": "https://jira.invalid",
        "auth": {"type": "basic", "username": "u", "password": {"value": "p"}},
    }))
    .unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let routes = BTreeMap::from([("staging".to_string(), route)]);
    let follower = Follower::build(
        Jira,
        &routes,
        &[adapter],
        Some("https://gate.invalid"),
        &clock,
    )
    .unwrap()
    .unwrap();
    Arc::new(follower)
}

/// CPU time this process has used (user + system), from `/proc/self/stat` (clock ticks).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of the line, 11 and 12 after the name and state.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// One check; returns its latency and the id of the decision it made.
async fn one_check(client: &reqwest::Client, url: &str) -> (Duration, String) {
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
    let answer: serde_json::Value = resp.json().await.unwrap();
    let id = answer["id"].as_str().unwrap_or_default().to_string();
    (started.elapsed(), id)
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
                v.push(one_check(&client, &url).await.0);
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
    let (gate, store, url) = serve(store_url).await;
    run(&url, 4, 200).await; // warm-up
    let pending: usize = std::env::var("PORTCULLIS_BENCH_PENDING")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // `PORTCULLIS_BENCH_PLAN=1:3000` runs one client only (for a profile); the default is below.
    let plan: Vec<(usize, usize)> = std::env::var("PORTCULLIS_BENCH_PLAN")
        .map(|p| {
            p.split(',')
                .filter_map(|c| c.split_once(':'))
                .map(|(c, n)| (c.parse().unwrap(), n.parse().unwrap()))
                .collect()
        })
        .unwrap_or_else(|_| vec![(1, 1000), (16, 4000)]);
    // With pending reviews to seed, the same rounds run first without them, in this process, so
    // the two throughputs compare on one database and one warm cache.
    let mut before = Vec::new();
    if pending > 0 {
        for &(concurrency, total) in &plan {
            let (rate, p50, p99) = run(&url, concurrency, total).await;
            println!(
                "{name:<10} concurrency {concurrency:>2}: {total} checks, {rate:>7.0} checks/s, p50 {p50:.2} ms, p99 {p99:.2} ms (before the pending reviews)"
            );
            before.push(rate);
        }
    }
    if pending > 0 {
        let (_, template) = one_check(&reqwest::Client::new(), &url).await;
        let started = Instant::now();
        seed_pending(&store, &template, pending).await;
        println!(
            "{name:<10} seeded {pending} pending reviews in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        // One sweep on its own: what the lease holder spends on it.
        let (wall, cpu) = (Instant::now(), cpu_time());
        let expired = gate.expire_due_reviews().await.unwrap();
        println!(
            "{name:<10} one expiry sweep over {pending} pending: {expired} expired, {:.1} ms wall, {} ms CPU",
            wall.elapsed().as_secs_f64() * 1000.0,
            (cpu_time() - cpu).as_millis()
        );
        let every = std::env::var("PORTCULLIS_BENCH_SWEEP_EVERY")
            .ok()
            .and_then(|e| humantime::parse_duration(&e).ok())
            .unwrap_or(Duration::from_secs(5));
        tokio::spawn(Arc::clone(&gate).run_expiry_sweeper(
            "bench".into(),
            every,
            tokio_util::sync::CancellationToken::new(),
        ));
        if std::env::var("PORTCULLIS_BENCH_FOLLOWER").as_deref() != Ok("off") {
            let follower = jira_follower();
            let (wall, cpu) = (Instant::now(), cpu_time());
            follower.round(&gate).await.unwrap();
            println!(
                "{name:<10} one Jira follower round with {pending} pending elsewhere: {:.1} ms wall, {} ms CPU",
                wall.elapsed().as_secs_f64() * 1000.0,
                (cpu_time() - cpu).as_millis()
            );
            tokio::spawn(follower.run(
                Arc::clone(&gate),
                "bench".into(),
                tokio_util::sync::CancellationToken::new(),
            ));
        }
    }
    let mut rates = Vec::new();
    for &(concurrency, total) in &plan {
        let (rate, p50, p99) = run(&url, concurrency, total).await;
        println!(
            "{name:<10} concurrency {concurrency:>2}: {total} checks, {rate:>7.0} checks/s, p50 {p50:.2} ms, p99 {p99:.2} ms{}",
            if pending > 0 {
                " (with the pending reviews)"
            } else {
                ""
            }
        );
        rates.push(rate);
    }
    for ((concurrency, _), (before, after)) in plan.iter().zip(before.iter().zip(&rates)) {
        println!(
            "{name:<10} concurrency {concurrency:>2}: throughput with {pending} pending reviews {:+.1} % ({before:.0} → {after:.0} checks/s; the rounds before them also warm the store)",
            (after - before) / before * 100.0
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
