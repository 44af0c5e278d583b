//! The benchmark behind `docs/performance.md`, run by `scripts/bench.sh`: every path an operator
//! cares about, measured in one process against an HTTP + JSON floor measured in the same run,
//! in interleaved rounds, printed as one table.
//!
//! - **Floor**: an axum server that parses the check body into a `serde_json::Value` and answers
//!   201 with a JSON body of the real check response's size (that response, re-serialized from a
//!   `Value` on every request). Every throughput is also printed as a ratio to the floor at the
//!   same connection count, measured in the same round.
//! - **One server core**: each server (floor, gate with an in-memory store, SQLite on disk,
//!   PostgreSQL, the fan-out gate, the fake tools) runs on a current-thread tokio runtime in a
//!   thread of its own; the load generator is a one-worker runtime of its own speaking raw
//!   hyper HTTP/1.1 over N keep-alive connections. SQLite's sqlx worker threads run beside the
//!   server thread, as they do in service; their CPU is counted as the server's.
//! - **Facts** come from in-process adapters behind the real `FactCache` (warm, keyed by the
//!   image as the tool adapters key theirs), each returning what a `kind: http` adapter returns
//!   for the peer input's namespace: the facts, the URL and a response excerpt. `kind: http` has
//!   no response cache, so this is the closest real shape of "warm cache" without changing
//!   `src/`; the real binary's figures (RSS, exec to first decision) use real `kind: http`
//!   adapters against the fake tool, uncached.
//! - **Policy**: the 26-rule peer policy (`benches/peer_policy/`, checked against the Rego
//!   decisions by `tests/it/peer_policy.rs`) on `deploy_input_continue.json`, its timestamps
//!   moved so that its `now` is the moment the harness starts.
//!
//! Knobs (environment): `PORTCULLIS_SLO_ROUNDS` (3), `PORTCULLIS_SLO_SECONDS` per cell (2),
//! `PORTCULLIS_TEST_DATABASE_URL` (`postgres://postgres@127.0.0.1:5432/test`; skipped with a
//! line saying so when nothing answers).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "benchmark setup fails loudly"
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::body::Bytes;
use axum::response::IntoResponse as _;
use axum::routing::{get, post};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use portcullis::adapters::cache::FactCache;
use portcullis::adapters::{Adapter, AdapterConfig, AdapterError, Facts};
use portcullis::admission::{Admission, AdmissionSettings};
use portcullis::audit::checkpoint::CheckpointSigner;
use portcullis::auth::Authenticator;
use portcullis::clock::{Clock, SystemClock};
use portcullis::domain::{
    Application, CallerKind, CheckRequest, Environment, RuleOutcome, Subject, Tier, Verdict,
};
use portcullis::edge::HttpState;
use portcullis::gate::{Gate, GateOptions};
use portcullis::metrics::Metrics;
use portcullis::policy::{EvalInput, PolicyHandle, PolicySet, PolicySource};
use portcullis::serve::http_router;
use portcullis::store::{self, StoreOptions};
use serde_json::{Value, json};
use sqlx::Connection as _;

/// The peer input the checks carry: the one the port decides `continue` for, so every decision
/// is final (pending reviews are a scenario of their own).
const PEER_INPUT: &str = "deploy_input_continue.json";
/// The peer input's namespaces, each served by one adapter of the same name.
const NAMESPACES: [&str; 9] = [
    "sonar",
    "aqua",
    "jira",
    "servicenow",
    "freeze",
    "integrations",
    "release",
    "image",
    "pipeline",
];
/// The fan-out tools' answer delays, in milliseconds.
const DELAYS: [u64; 4] = [20, 35, 50, 80];
const CONNECTIONS: [usize; 3] = [1, 8, 16];
/// The service's default checkpoint interval (`audit.checkpoint_interval`).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

static KEY: AtomicU64 = AtomicU64::new(0);

/// The pipeline's token and the API server's, as a production configuration has them: hashed,
/// the pipeline's scoped to its application, environment and registry.
const PIPELINE_TOKEN: &str = "pc_slo_pipeline_0123456789abcdef0123456789abcdef0123456789abcdef";
const ADMISSION_TOKEN: &str = "pc_slo_admission_0123456789abcdef0123456789abcdef0123456789abcde";

fn tokens_yaml() -> String {
    format!(
        "[{{name: spinnaker-prod, sha256: '{}', roles: [pipeline], scopes: {{applications: ['payments-*'], environments: [production, staging], images: ['registry.example.com/payments/*']}}}}, \
         {{name: kube-apiserver, sha256: '{}', roles: [admission]}}]",
        portcullis::auth::hash_token(PIPELINE_TOKEN),
        portcullis::auth::hash_token(ADMISSION_TOKEN),
    )
}

/// Who may call: the two tokens, or nobody configured (`open`: loopback development mode,
/// every caller an unrestricted admin).
fn authenticator(open: bool) -> Arc<Authenticator> {
    let tokens: Vec<portcullis::auth::TokenConfig> = if open {
        Vec::new()
    } else {
        serde_norway::from_str(&tokens_yaml()).unwrap()
    };
    Arc::new(Authenticator::new(&tokens).unwrap())
}

// ---------------------------------------------------------------------------------------------
// The workload: the peer input as a Portcullis check, and its facts.

struct Peer {
    policy_text: String,
    /// Namespace → facts, timestamps moved to the harness's start.
    facts: BTreeMap<String, Value>,
    /// The check body, split around the idempotency key.
    body_head: String,
    body_tail: String,
    image: String,
}

impl Peer {
    fn load() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer_policy");
        let policy_text = std::fs::read_to_string(dir.join("deploy_gate.yaml")).unwrap();
        let raw: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(PEER_INPUT)).unwrap()).unwrap();
        let mut input = raw["input"].clone();
        let then: chrono::DateTime<chrono::Utc> = input["now"].as_str().unwrap().parse().unwrap();
        // The gate reads its own clock, so the input's times move instead (as the peer README
        // says a gate taking the time from its own clock must).
        shift_times(&mut input, chrono::Utc::now() - then);
        let mut facts = BTreeMap::new();
        for ns in NAMESPACES {
            let source = if ns == "pipeline" { "request" } else { ns };
            facts.insert(ns.to_string(), input[source].clone());
        }
        let img = &input["image"];
        let image = format!(
            "{}/{}:{}@{}",
            img["registry"].as_str().unwrap(),
            img["repository"].as_str().unwrap(),
            img["tag"].as_str().unwrap(),
            img["digest"].as_str().unwrap()
        );
        let body = json!({
            "application": "payments-api",
            "environment": input["target"]["environment"],
            "images": [image],
            "caller": {"kind": "spinnaker", "ids": {
                "pipeline": input["request"]["pipeline"], "request": input["request"]["id"]}},
            "triggered_by": input["request"]["requester"],
            "labels": {"cluster": input["target"]["cluster"], "namespace": input["target"]["namespace"]},
            "idempotency_key": "@KEY@",
        })
        .to_string();
        let (head, tail) = body.split_once("@KEY@").unwrap();
        Peer {
            policy_text,
            facts,
            body_head: head.to_string(),
            body_tail: tail.to_string(),
            image,
        }
    }

    fn policy(&self) -> PolicySet {
        PolicySet::from_sources(vec![PolicySource {
            name: "deploy_gate.yaml".into(),
            text: self.policy_text.clone(),
        }])
        .unwrap()
    }

    /// A check body with a key no other check in this process used.
    fn body(&self) -> Bytes {
        let key = KEY.fetch_add(1, Ordering::Relaxed);
        Bytes::from(format!(
            "{}slo-{}-{key}{}",
            self.body_head,
            std::process::id(),
            self.body_tail
        ))
    }

    /// The evidence document the gate builds, for the evaluation-only path.
    fn document(&self) -> Value {
        let mut doc =
            json!({"request": {"application": "payments-api", "environment": "production"}});
        for (ns, facts) in &self.facts {
            doc[ns] = facts.clone();
        }
        doc
    }
}

fn shift_times(v: &mut Value, by: chrono::Duration) {
    match v {
        Value::String(s) => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                *s = (t.with_timezone(&chrono::Utc) + by)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| shift_times(i, by)),
        Value::Object(map) => map.values_mut().for_each(|i| shift_times(i, by)),
        _ => {}
    }
}

/// An adapter answering from the real response cache, warm: what a tool adapter does for a
/// fact it fetched moments ago. The facts, URL and excerpt are what `kind: http` would give for
/// the fake tool's answer (`/peer/{namespace}`).
#[derive(Debug)]
struct WarmAdapter {
    name: String,
    facts: Arc<Facts>,
    cache: FactCache<Facts>,
}

impl WarmAdapter {
    fn new(name: &str, document: Value) -> Self {
        let text = document.to_string();
        let excerpt = portcullis::adapters::http_client::excerpt(&text).to_string();
        WarmAdapter {
            name: name.to_string(),
            facts: Arc::new(Facts {
                document,
                url: Some(format!("http://tools.bench.internal/peer/{name}")),
                excerpt: Some(excerpt),
            }),
            cache: FactCache::new(Duration::from_secs(3600)),
        }
    }
}

#[async_trait]
impl Adapter for WarmAdapter {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> &'static str {
        "http"
    }
    async fn collect(
        &self,
        request: &CheckRequest,
        _deadline: tokio::time::Instant,
    ) -> Result<Facts, AdapterError> {
        let key = format!("{:?}", request.images.first());
        let facts = Arc::clone(&self.facts);
        self.cache
            .get_or_fetch(&key, async move { Ok(Facts::clone(&facts)) })
            .await
    }
}

// ---------------------------------------------------------------------------------------------
// Servers, each on one thread.

/// Starts `make`'s router on a current-thread runtime in a thread named `srv-{name}`; returns
/// its address once it listens.
fn spawn_server<F, Fut>(name: &str, make: F) -> SocketAddr
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Router>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name(format!("srv-{name}"))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let router = make().await;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, router).await.unwrap();
            });
        })
        .unwrap();
    rx.recv().unwrap()
}

fn options() -> GateOptions {
    GateOptions {
        evidence_deadline: Duration::from_secs(10),
        review_timeout: Duration::from_secs(4 * 3600),
        review_timeouts: Default::default(),
        approvals: Default::default(),
        environments: Default::default(),
        no_rules_verdict: Verdict::ManualReview,
        replay_window: Duration::from_secs(3600),
    }
}

/// The gate's HTTP router over `store_url` as `serve` assembles it (trace layer included; no
/// subscriber is installed, as with `log_level: warn`), with the checkpoint signer running at
/// the service's default interval, and the admission route when `admission` is set.
async fn gate_router(
    store_url: String,
    policy: PolicySet,
    adapters: Vec<Arc<dyn Adapter>>,
    admission: bool,
    auth: Arc<Authenticator>,
) -> Router {
    let store = store::open(
        &store_url,
        &StoreOptions {
            max_connections: 8,
            connect_timeout: Duration::from_secs(10),
            ..StoreOptions::default()
        },
    )
    .await
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let gate = Arc::new(
        Gate::new(
            PolicyHandle::new(policy),
            adapters,
            Arc::clone(&store),
            Arc::clone(&metrics),
            options(),
        )
        .with_signer(Arc::new(CheckpointSigner::generate())),
    );
    tokio::spawn(Arc::clone(&gate).run_checkpointer(
        "slo".into(),
        CHECKPOINT_EVERY,
        tokio_util::sync::CancellationToken::new(),
    ));
    let admission = admission.then(|| {
        let settings: AdmissionSettings = serde_norway::from_str(
            "{enabled: true, environments: {payments-prod: production}, cluster_environment: null, max_age: 30d, exempt_namespaces: [kube-system], break_glass: {annotation: x, groups: [], controllers: []}}",
        )
        .unwrap();
        Arc::new(
            Admission::build(&settings, store, metrics, None, Arc::new(SystemClock)).unwrap(),
        )
    });
    http_router(
        portcullis::contracts::ContractState {
            http: HttpState {
                gate,
                auth,
                public_url: None,
            },
            reviews: Default::default(),
            admission,
        },
        1 << 20,
        64 << 20,
    )
    .layer(tower_http::trace::TraceLayer::new_for_http())
}

fn peer_adapters(peer: &Peer) -> Vec<Arc<dyn Adapter>> {
    peer.facts
        .iter()
        .map(|(ns, facts)| Arc::new(WarmAdapter::new(ns, facts.clone())) as Arc<dyn Adapter>)
        .collect()
}

/// The floor: parse the body as JSON, answer 201 with `response` serialized anew.
fn floor_router(response: Arc<Value>) -> Router {
    Router::new().route(
        "/v1/checks",
        post(move |body: Bytes| {
            let response = Arc::clone(&response);
            async move {
                let parsed: Value = match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(_) => return (http::StatusCode::BAD_REQUEST, Vec::new()).into_response(),
                };
                std::hint::black_box(&parsed);
                let out = serde_json::to_vec(&*response).unwrap();
                (
                    http::StatusCode::CREATED,
                    [(http::header::CONTENT_TYPE, "application/json")],
                    out,
                )
                    .into_response()
            }
        }),
    )
}

/// The fake tools: `/delay/{ms}` answers after that long; `/peer/{namespace}` serves the peer
/// input's facts (for the real binary's `kind: http` adapters).
fn tools_router(facts: Arc<BTreeMap<String, Value>>) -> Router {
    Router::new()
        .route(
            "/delay/{ms}",
            // GET for the adapters; POST for the load generator, which measures the slowest
            // tool alone (its timer's own lateness included) as the fan-out's baseline.
            get(delayed).post(delayed),
        )
        .route(
            "/peer/{ns}",
            get(
                move |axum::extract::Path(ns): axum::extract::Path<String>| {
                    let facts = Arc::clone(&facts);
                    async move {
                        match facts.get(&ns) {
                            Some(v) => axum::Json(v.clone()).into_response(),
                            None => http::StatusCode::NOT_FOUND.into_response(),
                        }
                    }
                },
            ),
        )
}

async fn delayed(axum::extract::Path(ms): axum::extract::Path<u64>) -> axum::Json<Value> {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    axum::Json(json!({"ok": true, "delay_ms": ms}))
}

fn fanout_adapters(tools: SocketAddr) -> Vec<Arc<dyn Adapter>> {
    let yaml: String = DELAYS
        .iter()
        .map(|ms| {
            format!("- {{kind: http, name: t{ms}, url: 'http://{tools}/delay/{ms}', extract: {{ok: $.ok}}}}\n")
        })
        .collect();
    let configs: Vec<AdapterConfig> = serde_norway::from_str(&yaml).unwrap();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    portcullis::adapters::build(&configs, &clock).unwrap()
}

fn fanout_policy() -> PolicySet {
    let text: String = std::iter::once("rules:\n".to_string())
        .chain(DELAYS.iter().map(|ms| {
            format!("  - {{id: t{ms}, title: tool t{ms} agrees, severity: high, condition: {{path: $.t{ms}.ok, op: '==', value: true}}}}\n")
        }))
        .collect();
    PolicySet::from_sources(vec![PolicySource {
        name: "fanout.yaml".into(),
        text,
    }])
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// CPU accounting: per thread, from /proc (nanoseconds on CPU).

/// CPU time of this process's server-side threads: the `srv-*` threads and SQLite's sqlx
/// workers (`sqlx-sqlite-worker-N`, truncated by the kernel to 15 characters).
fn server_cpu() -> Duration {
    let mut total = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for task in tasks.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !(comm.starts_with("srv-") || comm.starts_with("sqlx-sqlite")) {
            continue;
        }
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse().ok()))
            .unwrap_or(0u64);
        total += ns;
    }
    Duration::from_nanos(total)
}

/// User + system CPU of another process (clock ticks of 10 ms).
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------------------------
// The load generator: N keep-alive HTTP/1.1 connections, closed loop.

#[derive(Clone)]
enum Body {
    Check(Arc<Peer>),
    Fixed(Bytes),
}

impl Body {
    fn next(&self) -> Bytes {
        match self {
            Body::Check(peer) => peer.body(),
            Body::Fixed(b) => b.clone(),
        }
    }
}

#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    path: &'static str,
    body: Body,
    status: u16,
    /// The bearer token sent, if any.
    token: Option<&'static str>,
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// One request; returns the response body.
async fn send(sender: &mut SendRequest<Full<Bytes>>, t: &Target) -> Bytes {
    sender.ready().await.unwrap();
    let mut req = http::Request::post(t.path)
        .header(http::header::HOST, t.addr.to_string())
        .header(http::header::CONTENT_TYPE, "application/json");
    if let Some(token) = t.token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let req = req.body(Full::new(t.body.next())).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        status,
        t.status,
        "{} answered {status}: {}",
        t.path,
        String::from_utf8_lossy(&body)
    );
    body
}

/// One cell: its requests per second, latencies (µs) and the server's CPU per request.
struct Cell {
    rate: f64,
    latencies_us: Vec<f64>,
    cpu_per_request: Option<Duration>,
    core_use: Option<f64>,
}

async fn run_cell(t: &Target, connections: usize, warmup: Duration, measure: Duration) -> Cell {
    let mut senders = Vec::new();
    for _ in 0..connections {
        senders.push(connect(t.addr).await);
    }
    let start = tokio::time::Instant::now() + warmup;
    let end = start + measure;
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(start).await;
        let before = server_cpu();
        tokio::time::sleep_until(end).await;
        server_cpu().saturating_sub(before)
    });
    let workers: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            let t = t.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                loop {
                    let began = tokio::time::Instant::now();
                    if began >= end {
                        break;
                    }
                    send(&mut sender, &t).await;
                    if began >= start {
                        lat.push((tokio::time::Instant::now() - began).as_secs_f64() * 1e6);
                    }
                }
                lat
            })
        })
        .collect();
    let mut latencies_us = Vec::new();
    for w in workers {
        latencies_us.extend(w.await.unwrap());
    }
    let cpu = cpu.await.unwrap();
    let n = latencies_us.len();
    let rate = n as f64 / measure.as_secs_f64();
    let usable = !cpu.is_zero() && n > 0;
    Cell {
        rate,
        latencies_us,
        cpu_per_request: usable.then(|| cpu / u32::try_from(n).unwrap_or(u32::MAX)),
        core_use: usable.then(|| cpu.as_secs_f64() / measure.as_secs_f64()),
    }
}

// ---------------------------------------------------------------------------------------------
// Results.

#[derive(Default)]
struct Series {
    rates: Vec<f64>,
    ratios: Vec<f64>,
    latencies_us: Vec<f64>,
    cpu_us: Vec<f64>,
    core_use: Vec<f64>,
}

impl Series {
    fn add(&mut self, c: Cell, floor_rate: Option<f64>) {
        self.rates.push(c.rate);
        if let Some(f) = floor_rate {
            self.ratios.push(c.rate / f);
        }
        self.latencies_us.extend(c.latencies_us);
        if let Some(cpu) = c.cpu_per_request {
            self.cpu_us.push(cpu.as_secs_f64() * 1e6);
        }
        if let Some(u) = c.core_use {
            self.core_use.push(u);
        }
    }
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

fn pct(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "—".into(), f)
}

/// One table row. `floor_cpu`: the floor's CPU per request at the same connection count, for
/// the ratio that does not depend on the server thread being saturated.
fn row(path: &str, conns: &str, s: &mut Series, minus_ms: f64, floor_cpu: Option<f64>) {
    let p50 = pct(&mut s.latencies_us, 0.50) / 1000.0 - minus_ms;
    let p99 = pct(&mut s.latencies_us, 0.99) / 1000.0 - minus_ms;
    let cpu = median(&s.cpu_us);
    println!(
        "| {path:<42} | {conns:>5} | {:>7} | {:>7} | {p50:>8.2} | {p99:>8.2} | {:>6} | {:>7} | {:>4} |",
        opt(median(&s.rates), |r| format!("{r:.0}")),
        opt(median(&s.ratios), |r| format!("{:.1} %", r * 100.0)),
        opt(cpu, |c| format!("{c:.0}")),
        opt(floor_cpu.zip(cpu).map(|(f, c)| f / c), |r| format!(
            "{:.1} %",
            r * 100.0
        )),
        opt(median(&s.core_use), |u| format!("{:.0} %", u * 100.0)),
    );
}

// ---------------------------------------------------------------------------------------------
// Storage per decision.

struct Footprint {
    bytes: u64,
    decisions: u64,
    body_bytes: f64,
    /// Average length of an event's body as stored: its text, or its packed bytes.
    event_bytes: f64,
}

async fn sqlite_footprint(file: &Path) -> Footprint {
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", file.display()))
        .await
        .unwrap();
    let one = |q: &'static str| sqlx::query_scalar::<_, i64>(q);
    let pages = one("PRAGMA page_count").fetch_one(&mut c).await.unwrap();
    let free = one("PRAGMA freelist_count")
        .fetch_one(&mut c)
        .await
        .unwrap();
    let size = one("PRAGMA page_size").fetch_one(&mut c).await.unwrap();
    let decisions = one("SELECT count(*) FROM decisions")
        .fetch_one(&mut c)
        .await
        .unwrap();
    // As stored: packed (`store/packed.rs`) or empty (a decision stored once, in its event).
    let body: Option<f64> =
        sqlx::query_scalar("SELECT avg(length(body) + coalesce(length(packed), 0)) FROM decisions")
            .fetch_one(&mut c)
            .await
            .unwrap();
    let event: Option<f64> = sqlx::query_scalar(
        "SELECT avg(length(body) + coalesce(length(packed), 0)) FROM decision_events",
    )
    .fetch_one(&mut c)
    .await
    .unwrap();
    Footprint {
        bytes: u64::try_from((pages - free) * size).unwrap(),
        decisions: u64::try_from(decisions).unwrap(),
        body_bytes: body.unwrap_or(0.0),
        event_bytes: event.unwrap_or(0.0),
    }
}

async fn postgres_footprint(admin: &mut sqlx::PgConnection, schema: &str) -> Footprint {
    let total: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
    )
    .bind(schema)
    .fetch_one(&mut *admin)
    .await
    .unwrap();
    let decisions: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.decisions"))
        .fetch_one(&mut *admin)
        .await
        .unwrap();
    let body: Option<f64> = sqlx::query_scalar(&format!(
        "SELECT avg(octet_length(body::text))::float8 FROM {schema}.decisions"
    ))
    .fetch_one(&mut *admin)
    .await
    .unwrap();
    let event: Option<f64> = sqlx::query_scalar(&format!(
        "SELECT avg(octet_length(body::text) + coalesce(octet_length(packed), 0))::float8 \
         FROM {schema}.decision_events"
    ))
    .fetch_one(&mut *admin)
    .await
    .unwrap();
    Footprint {
        bytes: u64::try_from(total).unwrap(),
        decisions: u64::try_from(decisions).unwrap(),
        body_bytes: body.unwrap_or(0.0),
        event_bytes: event.unwrap_or(0.0),
    }
}

fn growth(name: &str, before: &Footprint, after: &Footprint) {
    let n = after.decisions.saturating_sub(before.decisions);
    if n == 0 {
        println!("{name}: no decisions stored during the run");
        return;
    }
    let per = after.bytes.saturating_sub(before.bytes) as f64 / n as f64;
    println!(
        "{name:<10} {n:>7} decisions: {:>6.0} bytes stored per decision (bodies as stored, before the database's own compression: a decision row's {:.0} bytes, an event's {:.0} bytes), {:.2} GiB per million decisions",
        per,
        after.body_bytes,
        after.event_bytes,
        per * 1e6 / f64::from(1u32 << 30)
    );
}

// ---------------------------------------------------------------------------------------------
// The real binary: exec to first decision, RSS and CPU under load.

struct Child {
    child: std::process::Child,
    http: SocketAddr,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `portcullis serve` on `config` and waits for its "listening" log line.
fn spawn_binary(config: &Path) -> Child {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    // Drains the log for the child's whole life, so a full pipe never blocks it.
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(sender) = &tx {
                let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
                if v["fields"]["message"] == "listening" {
                    if let Some(addr) = v["fields"]["http"].as_str() {
                        let _ = sender.send(addr.parse::<SocketAddr>().unwrap());
                        tx = None;
                    }
                }
            }
        }
    });
    let http = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("portcullis serve did not log `listening` within 30 s");
    Child { child, http }
}

fn binary_config(dir: &Path, tools: SocketAddr, peer: &Peer) -> std::path::PathBuf {
    let policy = dir.join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    std::fs::write(policy.join("deploy_gate.yaml"), &peer.policy_text).unwrap();
    let key = CheckpointSigner::generate().private_pem().unwrap();
    std::fs::write(dir.join("audit.pem"), key.expose()).unwrap();
    let mut adapters = String::new();
    for (ns, facts) in &peer.facts {
        let extract: Vec<String> = facts
            .as_object()
            .unwrap()
            .keys()
            .map(|k| format!("{k}: \"$.{k}\""))
            .collect();
        adapters.push_str(&format!(
            "  - {{kind: http, name: {ns}, url: 'http://{tools}/peer/{ns}', extract: {{{}}}}}\n",
            extract.join(", ")
        ));
    }
    let config = format!(
        "server: {{http_addr: '127.0.0.1:0', grpc_addr: '127.0.0.1:0'}}\n\
         store: {{url: 'sqlite://{db}'}}\n\
         policy: {{dir: '{policy}'}}\n\
         telemetry: {{log_format: json, log_level: info}}\n\
         audit: {{signing_key: {{file: '{key}'}}}}\n\
         auth: {{tokens: {tokens}}}\n\
         adapters:\n{adapters}",
        tokens = tokens_yaml(),
        db = dir.join("portcullis.db").display(),
        policy = policy.display(),
        key = dir.join("audit.pem").display(),
    );
    let path = dir.join("portcullis.yaml");
    std::fs::write(&path, config).unwrap();
    path
}

/// Exec to first decision: from spawning the binary to the first check's answer.
async fn first_decision(config: &Path, peer: &Arc<Peer>) -> (Duration, Child) {
    let began = Instant::now();
    let child = spawn_binary(config);
    let t = Target {
        addr: child.http,
        path: "/v1/checks",
        body: Body::Check(Arc::clone(peer)),
        status: 201,
        token: Some(PIPELINE_TOKEN),
    };
    let mut sender = connect(child.http).await;
    let body = send(&mut sender, &t).await;
    let took = began.elapsed();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["verdict"], "continue", "the real binary decides: {v}");
    (took, child)
}

// ---------------------------------------------------------------------------------------------

fn knob(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let rounds = knob("PORTCULLIS_SLO_ROUNDS", 3.0).max(1.0) as usize;
    let measure = Duration::from_secs_f64(knob("PORTCULLIS_SLO_SECONDS", 2.0).max(0.2));
    let warmup = Duration::from_millis(300);
    let load_at_start = loadavg();
    let started = Instant::now();

    let peer = Arc::new(Peer::load());
    let tmp = tempfile::tempdir().unwrap();
    let sqlite_file = tmp.path().join("slo.db");

    let loadgen = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("loadgen")
        .enable_all()
        .build()
        .unwrap();

    // The fake tools, on a thread of their own (not counted as the server).
    let facts = Arc::new(peer.facts.clone());
    let tools = {
        let facts = Arc::clone(&facts);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("tools".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                    tx.send(l.local_addr().unwrap()).unwrap();
                    axum::serve(l, tools_router(facts)).await.unwrap();
                });
            })
            .unwrap();
        rx.recv().unwrap()
    };

    let memory = {
        let p = Arc::clone(&peer);
        spawn_server("memory", move || {
            gate_router(
                "sqlite::memory:".into(),
                p.policy(),
                peer_adapters(&p),
                false,
                authenticator(false),
            )
        })
    };
    let open = {
        let p = Arc::clone(&peer);
        spawn_server("open", move || {
            gate_router(
                "sqlite::memory:".into(),
                p.policy(),
                peer_adapters(&p),
                false,
                authenticator(true),
            )
        })
    };
    let sqlite = {
        let p = Arc::clone(&peer);
        let url = format!("sqlite://{}", sqlite_file.display());
        spawn_server("sqlite", move || {
            gate_router(
                url,
                p.policy(),
                peer_adapters(&p),
                true,
                authenticator(false),
            )
        })
    };
    let fanout = spawn_server("fanout", move || {
        gate_router(
            "sqlite::memory:".into(),
            fanout_policy(),
            fanout_adapters(tools),
            false,
            authenticator(false),
        )
    });

    // PostgreSQL, in a schema of its own, when it answers.
    let pg_base = std::env::var("PORTCULLIS_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let schema = format!("portcullis_slo_{}", std::process::id());
    let mut pg_admin = loadgen.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(3),
            sqlx::PgConnection::connect(&pg_base),
        )
        .await
        .ok()
        .and_then(Result::ok)
    });
    let postgres = match &mut pg_admin {
        Some(admin) => {
            loadgen.block_on(async {
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut *admin)
                    .await
                    .unwrap();
            });
            let sep = if pg_base.contains('?') { '&' } else { '?' };
            let url = format!("{pg_base}{sep}options[search_path]={schema}");
            let p = Arc::clone(&peer);
            Some(spawn_server("postgres", move || {
                gate_router(
                    url,
                    p.policy(),
                    peer_adapters(&p),
                    false,
                    authenticator(false),
                )
            }))
        }
        None => None,
    };

    // The real check response, checked, and the floor serving a body of its size.
    let check = |addr| Target {
        addr,
        path: "/v1/checks",
        body: Body::Check(Arc::clone(&peer)),
        status: 201,
        token: Some(PIPELINE_TOKEN),
    };
    let response: Value = loadgen.block_on(async {
        let mut s = connect(memory).await;
        let body = send(&mut s, &check(memory)).await;
        serde_json::from_slice(&body).unwrap()
    });
    assert_eq!(response["verdict"], "continue", "{response}");
    let real_size = response.to_string().len();
    let floor = {
        let r = Arc::new(response.clone());
        spawn_server("floor", move || async move { floor_router(r) })
    };
    let floor_size = serde_json::to_vec(&response).unwrap().len();

    // Admission: one Pod with the check's image, answered from the SQLite store's decisions.
    loadgen.block_on(async {
        let mut s = connect(sqlite).await;
        send(&mut s, &check(sqlite)).await;
    });
    let review = json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": "slo", "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "namespace": "payments-prod", "name": "api", "operation": "CREATE",
        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller", "groups": []},
        "object": {"spec": {"containers": [{"name": "api", "image": peer.image}]}}}});
    let admission = Target {
        addr: sqlite,
        path: "/v1/admission",
        body: Body::Fixed(Bytes::from(review.to_string())),
        status: 200,
        token: Some(ADMISSION_TOKEN),
    };
    let answer = loadgen.block_on(async {
        let mut s = connect(sqlite).await;
        send(&mut s, &admission).await
    });
    let answer: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    let sqlite_before = loadgen.block_on(sqlite_footprint(&sqlite_file));
    let pg_before = pg_admin
        .as_mut()
        .map(|a| loadgen.block_on(postgres_footprint(a, &schema)));

    // Interleaved rounds: within a round every path runs once at every connection count, each
    // next to the floor at the same count.
    let mut paths: Vec<(&str, Target)> = vec![
        ("floor (parse JSON, same-size answer)", check(floor)),
        ("check, in-memory store", check(memory)),
        ("check, SQLite on disk", check(sqlite)),
    ];
    if let Some(pg) = postgres {
        paths.push(("check, PostgreSQL", check(pg)));
    }
    paths.push(("admission lookup by digest (SQLite)", admission.clone()));
    // Without tokens every request builds an unrestricted principal: what development mode
    // (and the other benches, which configure no tokens) pays that production does not.
    paths.push((
        "check, in-memory store, no tokens (dev)",
        Target {
            token: None,
            ..check(open)
        },
    ));
    let mut series: BTreeMap<(usize, usize), Series> = BTreeMap::new();
    let mut fan: BTreeMap<usize, Series> = BTreeMap::new();
    let mut slowest: BTreeMap<usize, Series> = BTreeMap::new();
    let slowest_target = Target {
        addr: tools,
        path: "/delay/80",
        body: Body::Fixed(Bytes::from_static(b"{}")),
        status: 200,
        token: None,
    };
    let mut eval = Series::default();
    let fan_target = Target {
        addr: fanout,
        path: "/v1/checks",
        body: Body::Check(Arc::clone(&peer)),
        status: 201,
        token: Some(PIPELINE_TOKEN),
    };
    for round in 0..rounds {
        eprintln!("round {}/{rounds} (load {})", round + 1, loadavg());
        for conns in CONNECTIONS {
            let mut floor_rate = None;
            for (i, (_, target)) in paths.iter().enumerate() {
                let cell = loadgen.block_on(run_cell(target, conns, warmup, measure));
                if i == 0 {
                    floor_rate = Some(cell.rate);
                }
                series.entry((i, conns)).or_default().add(cell, floor_rate);
            }
            let cell = loadgen.block_on(run_cell(&fan_target, conns, warmup, measure));
            fan.entry(conns).or_default().add(cell, None);
            let cell = loadgen.block_on(run_cell(&slowest_target, conns, warmup, measure));
            slowest.entry(conns).or_default().add(cell, None);
        }
        let floor8 = median(
            &series
                .get(&(0, 8))
                .map(|s| s.rates.clone())
                .unwrap_or_default(),
        );
        eval.add(evaluate_for(&peer, measure), floor8);
    }
    let load_after_rounds = loadavg();

    // The checkpoint signer numbers what the last round stored; let it run once more.
    std::thread::sleep(CHECKPOINT_EVERY + Duration::from_secs(1));
    let sqlite_after = loadgen.block_on(sqlite_footprint(&sqlite_file));
    if let Ok(to) = std::env::var("PORTCULLIS_SLO_KEEP_DB") {
        // For a look at where the bytes are (`sqlite3 FILE "SELECT name, sum(pgsize) FROM
        // dbstat GROUP BY name"`): the database and its write-ahead log, as they stand.
        std::fs::copy(&sqlite_file, &to).unwrap();
        let wal = sqlite_file.with_extension("db-wal");
        if wal.exists() {
            std::fs::copy(&wal, format!("{to}-wal")).unwrap();
        }
    }
    let pg_after = pg_admin
        .as_mut()
        .map(|a| loadgen.block_on(postgres_footprint(a, &schema)));

    // The real binary: exec to first decision on a new database and on a restart, then RSS and
    // CPU under 8 connections.
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut binary: Option<(Series, u64, u64, f64)> = None;
    for i in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let config = binary_config(dir.path(), tools, &peer);
        let (took, child) = loadgen.block_on(first_decision(&config, &peer));
        cold.push(took.as_secs_f64() * 1e3);
        if i == 0 {
            let pid = child.child.id();
            let cpu_before = process_cpu(pid);
            let wall = Instant::now();
            let cell = loadgen.block_on(run_cell(&check(child.http), 8, warmup, measure * 2));
            let wall = wall.elapsed();
            let cpu = process_cpu(pid).saturating_sub(cpu_before);
            let n = cell.latencies_us.len().max(1) as f64;
            let cpu_us = cpu.as_secs_f64() * 1e6 / n;
            let hwm = status_kib(&pid.to_string(), "VmHWM:");
            let rss = status_kib(&pid.to_string(), "VmRSS:");
            let mut s = Series::default();
            s.add(cell, None);
            // The in-process accounting does not see another process: its own figures instead
            // (whole process, every thread, warm-up included in the CPU share).
            s.cpu_us = vec![cpu_us];
            s.core_use = vec![cpu.as_secs_f64() / wall.as_secs_f64()];
            binary = Some((s, hwm, rss, cpu_us));
        }
        drop(child);
        let (took, child) = loadgen.block_on(first_decision(&config, &peer));
        warm.push(took.as_secs_f64() * 1e3);
        drop(child);
    }

    // ---- the table --------------------------------------------------------------------------
    println!();
    println!(
        "Portcullis SLO benchmark: 26-rule peer policy ({PEER_INPUT}, verdict continue), one server thread, load generator on another; {rounds} interleaved rounds of {:.1} s per cell",
        measure.as_secs_f64()
    );
    println!(
        "machine: {} CPUs ({}); load average at start {load_at_start}, after the rounds {load_after_rounds}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("model name\t: "))
            .unwrap_or("unknown CPU"),
    );
    println!(
        "check response {real_size} bytes; floor answers {floor_size} bytes; request {} bytes",
        peer.body().len()
    );
    println!();
    println!(
        "| {:<42} | conns |   req/s | ÷ floor |   p50 ms |   p99 ms | CPU µs | ÷ floor | core |",
        "path"
    );
    println!(
        "|{}|------:|--------:|--------:|---------:|---------:|-------:|--------:|-----:|",
        "-".repeat(44)
    );
    let floor_cpu = |conns: usize| series.get(&(0, conns)).and_then(|s| median(&s.cpu_us));
    let floor_cpus: BTreeMap<usize, Option<f64>> =
        CONNECTIONS.iter().map(|&c| (c, floor_cpu(c))).collect();
    for conns in CONNECTIONS {
        for (i, (name, _)) in paths.iter().enumerate() {
            if let Some(s) = series.get_mut(&(i, conns)) {
                row(name, &conns.to_string(), s, 0.0, floor_cpus[&conns]);
            }
        }
    }
    if postgres.is_none() {
        println!("| check, PostgreSQL: skipped, nothing answers at {pg_base}");
    }
    for conns in CONNECTIONS {
        if let Some(s) = slowest.get_mut(&conns) {
            s.rates.clear();
            s.cpu_us.clear();
            s.core_use.clear();
            row(
                "slowest tool alone (80 ms), minus 80 ms",
                &conns.to_string(),
                s,
                80.0,
                None,
            );
        }
        if let Some(s) = fan.get_mut(&conns) {
            s.rates.clear();
            s.cpu_us.clear();
            s.core_use.clear();
            row(
                "fan-out 20/35/50/80 ms, minus 80 ms",
                &conns.to_string(),
                s,
                80.0,
                None,
            );
        }
    }
    println!(
        "| {:<42} |     — | {:>7} | {:>7} | {:>6.3}   | {:>6.3}   | {:>6} | {:>7} |    — |",
        "evaluation only, in-process (26 rules)",
        opt(median(&eval.rates), |r| format!("{r:.0}")),
        opt(median(&eval.ratios), |r| format!("{:.1} %", r * 100.0)),
        pct(&mut eval.latencies_us, 0.50) / 1000.0,
        pct(&mut eval.latencies_us, 0.99) / 1000.0,
        opt(median(&eval.cpu_us), |c| format!("{c:.1}")),
        opt(
            floor_cpus[&8].zip(median(&eval.cpu_us)).map(|(f, c)| f / c),
            |r| format!("{:.1} %", r * 100.0)
        ),
    );
    if let Some((mut s, hwm, rss, cpu_us)) = binary {
        row(
            "real binary: kind: http uncached, SQLite",
            "8",
            &mut s,
            0.0,
            None,
        );
        println!();
        println!(
            "real binary under 8 connections (`portcullis serve`, multi-threaded runtime, 9 `kind: http` adapters without cache, SQLite on disk): VmHWM {:.1} MiB, VmRSS {:.1} MiB, {:.0} µs CPU per check (all threads)",
            hwm as f64 / 1024.0,
            rss as f64 / 1024.0,
            cpu_us
        );
    }
    println!(
        "harness process (every server above, two in-memory SQLite stores holding every decision of the run, and the load generator): VmHWM {:.1} MiB",
        status_kib("self", "VmHWM:") as f64 / 1024.0
    );
    println!(
        "exec to first decision (spawn → first check answered, 9 adapter calls): new database p50 {:.1} ms (min {:.1}); restart on the same database p50 {:.1} ms (min {:.1})",
        median(&cold).unwrap_or(f64::NAN),
        cold.iter().copied().fold(f64::INFINITY, f64::min),
        median(&warm).unwrap_or(f64::NAN),
        warm.iter().copied().fold(f64::INFINITY, f64::min),
    );
    growth("sqlite", &sqlite_before, &sqlite_after);
    if let (Some(b), Some(a)) = (&pg_before, &pg_after) {
        growth("postgres", b, a);
    }
    println!(
        "whole run {:.0} s; load average at the end {}",
        started.elapsed().as_secs_f64(),
        loadavg()
    );

    if let Some(admin) = &mut pg_admin {
        loadgen.block_on(async {
            let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut *admin)
                .await;
        });
    }
}

/// Evaluation only: the peer policy over the peer facts in a loop on a `srv-eval` thread.
fn evaluate_for(peer: &Arc<Peer>, measure: Duration) -> Cell {
    let peer = Arc::clone(peer);
    std::thread::Builder::new()
        .name("srv-eval".into())
        .spawn(move || {
            let set = peer.policy();
            let document = peer.document();
            let app = Application::parse("payments-api").unwrap();
            let env = Environment::parse("production").unwrap();
            let unavailable = BTreeMap::new();
            let input = || EvalInput {
                subject: Subject {
                    application: &app,
                    environment: &env,
                    tier: Tier::Production,
                    caller: CallerKind::Spinnaker,
                },
                document: &document,
                unavailable: &unavailable,
                now: chrono::Utc::now(),
                no_rules_verdict: Verdict::ManualReview,
            };
            let first = set.evaluate(&input());
            assert_eq!(first.verdict, Verdict::Continue);
            assert_eq!(first.results.len(), 26);
            assert!(first.results.iter().all(|r| r.outcome == RuleOutcome::Pass));
            let cpu_before = server_cpu();
            let began = Instant::now();
            let mut lat = Vec::new();
            while began.elapsed() < measure {
                let t = Instant::now();
                std::hint::black_box(set.evaluate(std::hint::black_box(&input())));
                lat.push(t.elapsed().as_secs_f64() * 1e6);
            }
            let wall = began.elapsed();
            let cpu = server_cpu().saturating_sub(cpu_before);
            let n = lat.len();
            Cell {
                rate: n as f64 / wall.as_secs_f64(),
                latencies_us: lat,
                cpu_per_request: Some(cpu / u32::try_from(n.max(1)).unwrap_or(u32::MAX)),
                core_use: None,
            }
        })
        .unwrap()
        .join()
        .unwrap()
}
