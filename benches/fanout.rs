//! A check that fans out to all four simulators (SonarQube, Jira, ServiceNow, Aqua) over real
//! HTTP, each delayed 50 ms, through the service's HTTP API. The physical limit is the slowest
//! call; a sequential script pays the sum. Prints both ratios at p50 (target: check ≤ 1.1 ×
//! slowest), then the throughput of warm-cache checks.
//!
//! Run: `cargo bench --bench fanout`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup fails loudly"
)]

use std::time::{Duration, Instant};

use portcullis::adapters::AdapterConfig;
use portcullis::config;
use portcullis::serve::App;
use portcullis::sim::{self, FaultSettings, Sims};
use serde_json::{Value, json};

const DELAY_MS: u64 = 50;
const COLD_CHECKS: usize = 60;
const WARM_SECONDS: u64 = 3;
const WARM_CONCURRENCY: usize = 32;

const POLICY: &str = r#"rules:
  - {id: cves, title: no critical cves, severity: critical, condition: {path: $.aqua.vulnerabilities.critical, op: "==", value: 0}}
  - {id: gate, title: quality gate, severity: high, condition: {path: $.sonarqube.quality_gate.status, op: "==", value: OK}}
  - {id: change, title: change approved, severity: high, condition: {path: $.servicenow.change.approval, op: "==", value: approved}}
  - {id: ticket, title: ticket done, severity: high, condition: {path: $.jira.all_done, op: "==", value: true}}
"#;

fn adapters(sims: &Sims, ttl: &str) -> Vec<AdapterConfig> {
    let yaml = format!(
        r#"
- {{kind: sonarqube, name: sonarqube, base_url: "{}", cache_ttl: {ttl}, auth: {{type: bearer, token: {{value: "{}"}}}}}}
- {{kind: jira, name: jira, base_url: "{}", cache_ttl: {ttl}, auth: {{type: basic, username: "{}", password: {{value: "{}"}}}}}}
- {{kind: servicenow, name: servicenow, base_url: "{}", cache_ttl: {ttl}, auth: {{type: basic, username: "{}", password: {{value: "{}"}}}}}}
- {{kind: aqua, name: aqua, base_url: "{}", cache_ttl: {ttl}, registries: [{{host: ghcr.io, name: GHCR}}], auth: {{type: login, username: "{}", password: {{value: "{}"}}}}}}
"#,
        sims.sonarqube.base_url,
        sim::sonarqube::TOKEN,
        sims.jira.base_url,
        sim::jira::EMAIL,
        sim::jira::API_TOKEN,
        sims.servicenow.base_url,
        sim::servicenow::USER,
        sim::servicenow::PASSWORD,
        sims.aqua.base_url,
        sim::aqua::USER,
        sim::aqua::PASSWORD,
    );
    serde_norway::from_str(&yaml).unwrap()
}

async fn start(sims: &Sims, dir: &std::path::Path, ttl: &str) -> String {
    let mut settings = config::load_from(None, Vec::<(String, String)>::new()).unwrap();
    settings.server.http_addr = "127.0.0.1:0".parse().unwrap();
    settings.server.grpc_addr = "127.0.0.1:0".parse().unwrap();
    settings.store.url = "sqlite::memory:".into();
    settings.policy.dir = Some(dir.to_path_buf());
    settings.adapters = adapters(sims, ttl);
    // The service does not start without a key to sign its decision log with.
    let key = portcullis::audit::checkpoint::CheckpointSigner::generate()
        .private_pem()
        .unwrap();
    settings.audit.signing_key = Some(portcullis::secret::SecretSource::Value(key));
    let app = App::build(settings).await.unwrap();
    let base = format!("http://{}", app.http_addr());
    tokio::spawn(app.run(std::future::pending()));
    base
}

fn check(key: String) -> Value {
    json!({
        "application": "payments-api", "environment": "prod",
        "images": [format!("ghcr.io/acme/payments-api:1.8.3@{}", sim::aqua::DIGESTS[0].1)],
        "sources": [{"repository": "github.com/acme/payments-api", "commit": "4f2a9c1e", "branch": "release/1.8"}],
        "change_refs": {"jira_keys": ["OPS-42"], "servicenow_changes": ["CHG0030001"]},
        "idempotency_key": key,
    })
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn cold(client: &reqwest::Client, base: &str) {
    let (mut totals, mut slowest, mut sums) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..COLD_CHECKS {
        let started = Instant::now();
        let d: Value = client
            .post(format!("{base}/v1/checks"))
            .json(&check(format!("cold-{i}-{}", uuid::Uuid::new_v4())))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let total = started.elapsed().as_secs_f64() * 1000.0;
        let durations: Vec<f64> = d["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                assert_eq!(s["status"], "ok", "{s}");
                s["duration_ms"].as_f64().unwrap()
            })
            .collect();
        assert_eq!(d["verdict"], "continue", "{d}");
        if i == 0 {
            continue; // the first check also logs in to Aqua
        }
        totals.push(total);
        slowest.push(durations.iter().copied().fold(0.0, f64::max));
        sums.push(durations.iter().sum());
    }
    let (t, s, sum) = (p50(totals), p50(slowest), p50(sums));
    println!(
        "fan-out to 4 simulators, each delayed {DELAY_MS} ms, {COLD_CHECKS} sequential checks (p50):"
    );
    println!("  check {t:.1} ms, slowest adapter {s:.1} ms, sum of adapters {sum:.1} ms");
    println!(
        "  check / slowest = {:.3} (target ≤ 1.1); check / sequential sum = {:.3}",
        t / s,
        t / sum
    );
}

async fn warm(client: &reqwest::Client, base: &str) {
    // Fill the cache, then hammer it.
    client
        .post(format!("{base}/v1/checks"))
        .json(&check(format!("warm-fill-{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    let until = Instant::now() + Duration::from_secs(WARM_SECONDS);
    let workers = (0..WARM_CONCURRENCY).map(|w| {
        let client = client.clone();
        let base = base.to_string();
        tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let r = client
                    .post(format!("{base}/v1/checks"))
                    .json(&check(format!("warm-{w}-{n}-{}", uuid::Uuid::new_v4())))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
                n += 1;
            }
            n
        })
    });
    let mut total = 0;
    for w in workers {
        total += w.await.unwrap();
    }
    println!(
        "warm cache (ttl 60s), {WARM_CONCURRENCY} concurrent clients for {WARM_SECONDS} s: {total} checks, {:.0} checks/s",
        total as f64 / WARM_SECONDS as f64
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let sims = sim::start(0).await.unwrap();
        for s in sims.all() {
            s.control.apply(&FaultSettings {
                delay_ms: Some(DELAY_MS),
                ..Default::default()
            });
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bench.yaml"), POLICY).unwrap();
        let client = reqwest::Client::new();
        let cold_base = start(&sims, dir.path(), "0s").await;
        cold(&client, &cold_base).await;
        let warm_base = start(&sims, dir.path(), "60s").await;
        warm(&client, &warm_base).await;
    });
}
