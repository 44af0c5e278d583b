//! The fault matrix (issue 11): the four tools (SonarQube, Jira, ServiceNow, Aqua) × every fault
//! a tool or the path to it can show, one at a time and in pairs on two tools, through the real
//! service. No cell ends as continue: the faulted tool's rule is missing with the fault's reason,
//! the healthy tools' rules still pass, and the verdict is the rule's terminate.
//!
//! Every tool pages (ServiceNow changes, a Jira JQL search, SonarQube's analyses, Aqua's
//! vulnerability list) with a page size of one to three, so `truncate_pagination` bites.
//! Pairs: the full cross product (6 tool pairs × 12 × 12 faults) is 864 checks; the test runs a
//! cyclic cover instead — for each tool pair and each fault `i` on the first tool, fault
//! `i + 1 + k` on the second (`k` the pair's index) — 72 checks in which every fault meets
//! six different partners and every tool pair sees all twelve faults on each side.

use std::time::Duration;

use futures::StreamExt as _;

use portcullis::sim::faults::{FailNext, RateLimitNext};
use portcullis::sim::{self, FaultSettings, SimHandle, Sims};
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::proxy::{Mode, Proxy};

const POLICY: &str = r#"
rules:
  - id: quality-gate
    title: The deployed commit passed its quality gate
    category: quality
    severity: critical
    condition: { path: $.sonarqube.quality_gate.passed, op: "==", value: true }
  - id: jira-done
    title: The release ticket is done
    category: change-management
    severity: critical
    condition: { path: $.jira.all_done, op: "==", value: true }
  - id: change-approved
    title: Every change request is approved
    category: change-management
    severity: critical
    condition: { path: $.servicenow.all_approved, op: "==", value: true }
  - id: image-assured
    title: Aqua passed every image
    category: vulnerabilities
    severity: critical
    condition: { path: $.aqua.all_passed, op: "==", value: true }
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Timeout,
    Refused,
    ServerError,
    RateLimited,
    Unauthorized,
    Forbidden,
    Malformed,
    TruncatedBody,
    TruncatedPagination,
    Empty200,
    WrongContentType,
    HugeBody,
}

const FAULTS: [Fault; 12] = [
    Fault::Timeout,
    Fault::Refused,
    Fault::ServerError,
    Fault::RateLimited,
    Fault::Unauthorized,
    Fault::Forbidden,
    Fault::Malformed,
    Fault::TruncatedBody,
    Fault::TruncatedPagination,
    Fault::Empty200,
    Fault::WrongContentType,
    Fault::HugeBody,
];

/// The tools in rule order: (evidence namespace, its rule).
const TOOLS: [(&str, &str); 4] = [
    ("sonarqube", "quality-gate"),
    ("jira", "jira-done"),
    ("servicenow", "change-approved"),
    ("aqua", "image-assured"),
];

struct Matrix {
    sims: Sims,
    proxies: Vec<Proxy>,
    app: TestApp,
    checks: u32,
}

fn sim_of(sims: &Sims, tool: usize) -> &SimHandle {
    sims.all()[tool]
}

fn adapter(tool: usize, base: &str) -> Value {
    // Generous enough that a healthy tool answers in time on a loaded machine; a timeout cell
    // waits out one such call.
    let common = json!({"timeout": "2s", "retries": 1, "cache_ttl": "0s"});
    let mut a = match tool {
        0 => json!({
            "kind": "sonarqube", "name": "sonarqube", "base_url": base,
            "auth": {"type": "bearer", "token": {"value": sim::sonarqube::TOKEN}},
            "analyses_page_size": 1,
        }),
        1 => json!({
            "kind": "jira", "name": "jira", "base_url": base,
            "auth": {"type": "basic", "username": sim::jira::EMAIL, "password": {"value": sim::jira::API_TOKEN}},
            "jql": "project = REL", "page_size": 3,
        }),
        2 => json!({
            "kind": "servicenow", "name": "servicenow", "base_url": base,
            "auth": {"type": "basic", "username": sim::servicenow::USER, "password": {"value": sim::servicenow::PASSWORD}},
            "page_size": 1,
        }),
        _ => json!({
            "kind": "aqua", "name": "aqua", "base_url": base,
            "registries": [{"host": "ghcr.io", "name": "GHCR"}],
            "auth": {"type": "login", "username": sim::aqua::USER, "password": {"value": sim::aqua::PASSWORD}},
            "page_size": 1,
        }),
    };
    for (k, v) in common.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

impl Matrix {
    async fn start() -> Self {
        let sims = sim::start(0).await.unwrap();
        // A second approved change, so the ServiceNow lookup takes two pages.
        let resp = reqwest::Client::new()
            .post(format!(
                "{}/_sim/changes/CHG0030002",
                sims.servicenow.base_url
            ))
            .json(&json!({"approval": "approved", "approver": "carol.cab"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 204);
        let mut proxies = Vec::new();
        let mut builder = TestApp::builder()
            .policies(&[("matrix.yaml", POLICY)])
            .evidence_deadline(Duration::from_secs(6));
        for tool in 0..4 {
            let proxy = Proxy::start(&sim_of(&sims, tool).addr.to_string(), Mode::Pass).await;
            builder = builder.adapter(adapter(tool, &format!("http://{}", proxy.addr())));
            proxies.push(proxy);
        }
        Self {
            sims,
            proxies,
            app: builder.spawn().await,
            checks: 0,
        }
    }

    fn inject(&self, tool: usize, fault: Fault) {
        let many = 10_000;
        let fail = |status| FaultSettings {
            fail_next: Some(FailNext {
                count: many,
                status,
            }),
            ..Default::default()
        };
        let settings = match fault {
            Fault::Refused => {
                self.proxies[tool].set(Mode::Cut);
                return;
            }
            Fault::Timeout => FaultSettings {
                delay_ms: Some(4_000),
                ..Default::default()
            },
            Fault::ServerError => fail(503),
            Fault::Unauthorized => fail(401),
            Fault::Forbidden => fail(403),
            Fault::RateLimited => FaultSettings {
                rate_limit_next: Some(RateLimitNext {
                    count: many,
                    retry_after_s: 30,
                }),
                ..Default::default()
            },
            Fault::Malformed => FaultSettings {
                malformed_next: Some(many),
                ..Default::default()
            },
            Fault::TruncatedBody => FaultSettings {
                truncated_next: Some(many),
                ..Default::default()
            },
            Fault::TruncatedPagination => FaultSettings {
                truncate_pagination: Some(true),
                ..Default::default()
            },
            Fault::Empty200 => FaultSettings {
                empty_next: Some(many),
                ..Default::default()
            },
            Fault::WrongContentType => FaultSettings {
                wrong_type_next: Some(many),
                ..Default::default()
            },
            Fault::HugeBody => FaultSettings {
                huge_next: Some(many),
                ..Default::default()
            },
        };
        sim_of(&self.sims, tool).control.apply(&settings);
    }

    fn heal(&self) {
        for (tool, proxy) in self.proxies.iter().enumerate() {
            proxy.set(Mode::Pass);
            sim_of(&self.sims, tool).control.clear();
        }
    }

    /// One check with `faults` applied; asserts each faulted tool's rule is missing with a
    /// reason naming it, every other rule passes, and the verdict is terminate.
    async fn check(&mut self, faults: &[(usize, Fault)]) {
        self.heal();
        for (tool, fault) in faults {
            self.inject(*tool, *fault);
        }
        self.checks += 1;
        let body = json!({
            "application": "payments-api",
            "environment": "prod",
            "images": [format!("ghcr.io/acme/payments-api:1.8.3@{}", sim::aqua::DIGESTS[0].1)],
            "sources": [{"repository": "github.com/acme/payments-api", "commit": "4f2a9c1e", "branch": "release/1.8"}],
            "change_refs": {"jira_keys": ["OPS-42"], "servicenow_changes": ["CHG0030001", "CHG0030002"]},
            "idempotency_key": format!("matrix-{}", self.checks),
        });
        let resp = self.app.post_check(&body).await;
        assert_eq!(resp.status(), 201, "{faults:?}");
        let d: Value = resp.json().await.unwrap();
        let faulted = |tool: usize| faults.iter().any(|(t, _)| *t == tool);
        let want = if faults.is_empty() {
            "continue"
        } else {
            "terminate"
        };
        assert_eq!(d["verdict"], want, "{faults:?}: {d}");
        for (tool, (name, rule)) in TOOLS.iter().enumerate() {
            let result = d["rule_results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["rule_id"] == *rule)
                .unwrap_or_else(|| panic!("{faults:?}: no result for `{rule}`: {d}"));
            let source = d["sources"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == *name)
                .unwrap_or_else(|| panic!("{faults:?}: no source `{name}`: {d}"));
            if faulted(tool) {
                assert_eq!(result["outcome"], "missing", "{faults:?}: {result}");
                assert_ne!(source["status"], "ok", "{faults:?}: {source}");
                assert!(
                    source["reason"].is_string(),
                    "{faults:?}: the fault has no reason: {source}"
                );
                let why = result["reason"].as_str().unwrap();
                assert!(why.contains(name), "{faults:?}: {why}");
            } else {
                assert_eq!(result["outcome"], "pass", "{faults:?}: {result}");
                assert_eq!(source["status"], "ok", "{faults:?}: {source}");
            }
        }
    }
}

/// Matrices checking timeout cells at once.
const TIMEOUT_CELLS_AT_ONCE: usize = 6;

/// Checks every cell (the faults of one check) and returns how many checks ran. The other cells
/// run one after another on one matrix; a timeout cell waits out an adapter's 2 s deadline, so
/// those run several at once, each on a matrix of its own (tools, proxies and service), and
/// their waits overlap instead of adding up. Every cell is still its own check with its own
/// assertions.
async fn check_cells(cells: Vec<Vec<(usize, Fault)>>) -> u32 {
    let (waits, rest): (Vec<_>, Vec<_>) = cells
        .into_iter()
        .partition(|cell| cell.iter().any(|(_, f)| *f == Fault::Timeout));
    let mut m = Matrix::start().await;
    for cell in &rest {
        m.check(cell).await;
    }
    let waited: Vec<u32> = futures::stream::iter(waits)
        .map(|cell| async move {
            let mut own = Matrix::start().await;
            own.check(&cell).await;
            own.checks
        })
        .buffer_unordered(TIMEOUT_CELLS_AT_ONCE)
        .collect()
        .await;
    m.checks + waited.iter().sum::<u32>()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_fault_on_any_tool_ends_as_continue() {
    // The healthy baseline continues: the matrix can fail.
    let mut cells = vec![Vec::new()];
    for tool in 0..4 {
        for fault in FAULTS {
            cells.push(vec![(tool, fault)]);
        }
    }
    assert_eq!(check_cells(cells).await, 1 + 4 * 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pair_of_faults_on_two_tools_ends_as_continue() {
    let pairs = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];
    let mut cells = Vec::new();
    for (k, (a, b)) in pairs.into_iter().enumerate() {
        for (i, fault) in FAULTS.into_iter().enumerate() {
            let other = FAULTS[(i + 1 + k) % FAULTS.len()];
            cells.push(vec![(a, fault), (b, other)]);
        }
    }
    assert_eq!(check_cells(cells).await, 72);
}
