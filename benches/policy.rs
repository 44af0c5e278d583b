//! Policy evaluation benchmarks: (a) the built-in pack over a realistic evidence document with
//! every source present; (b) 200 generated rules over a large document (2,000 vulnerabilities);
//! (c) the 26-rule peer policy (`benches/peer_policy/`, ported from Rego) over the peer's input.
//! Targets: (a) under 50 µs, (b) under 1 ms, (c) under 20 µs per evaluation.

#![expect(clippy::unwrap_used, reason = "benchmark setup")]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use portcullis::domain::{Application, CallerKind, Environment, Subject};
use portcullis::policy::{EvalInput, PolicySet, PolicySource};
use serde_json::{Value, json};

fn realistic_document(findings: usize) -> Value {
    let severities = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
    let vulns: Vec<Value> = (0..findings)
        .map(|i| {
            json!({
                "id": format!("CVE-2024-{i:05}"),
                "package": format!("lib{}", i % 97),
                "installed": "1.0.0",
                "fixed": if i % 3 == 0 { Value::Null } else { json!("1.0.1") },
                "severity": if i % 500 == 7 { "CRITICAL" } else { severities[i % 3] },
            })
        })
        .collect();
    let digest = format!("sha256:{}", "a".repeat(64));
    json!({
        "request": {
            "application": "payments-api",
            "environment": "prod",
            "images": [
                {"reference": format!("ghcr.io/acme/payments-api:1.4.2@{digest}"), "registry": "ghcr.io", "repository": "acme/payments-api", "tag": "1.4.2", "digest": digest, "pinned": true},
                {"reference": format!("ghcr.io/acme/payments-worker:1.4.2@{digest}"), "registry": "ghcr.io", "repository": "acme/payments-worker", "tag": "1.4.2", "digest": digest, "pinned": true},
            ],
            "sources": [{"repository": "acme/payments", "commit": "4f2a9c1", "branch": "main"}],
            "caller": {"kind": "spinnaker", "ids": {"execution": "01JX5Q"}},
            "triggered_by": "alice",
            "change_refs": {"jira_keys": ["OPS-123"], "servicenow_changes": ["CHG0030001"]},
            "labels": {"team": "payments"},
        },
        "sonarqube": {"quality_gate": {"status": "OK", "conditions": [{"metric": "new_coverage", "status": "OK", "actual": "84.1"}]}},
        "trivy": {"vulnerabilities": {"critical": 0, "high": 2, "medium": 11, "low": 40}, "scanned_at": "2025-06-03T08:00:00Z", "findings": vulns},
        "servicenow": {"change": {"number": "CHG0030001", "approval": "approved", "state": "scheduled", "start_date": "2025-06-04T10:00:00Z", "end_date": "2025-06-04T18:00:00Z"}},
        "jira": {"issues": [{"key": "OPS-123", "status": "Done"}]},
    })
}

/// 200 rules of the shapes teams write: mostly scalar checks, `scans` rules over the whole
/// findings list (half `in`, half regex), and `filters` rules with a JSONPath filter.
fn generated_rules(scans: usize, filters: usize) -> String {
    let mut text = String::from("rules:\n");
    for i in 0..200 {
        let kind = if i < scans {
            i % 2
        } else if i < scans + filters {
            2
        } else {
            3 + i % 17
        };
        let condition = match kind {
            0 => "{path: '$.trivy.findings[*].severity', op: in, value: [LOW, MEDIUM, HIGH, CRITICAL]}".to_string(),
            1 => "{path: '$.trivy.findings[*].package', op: matches, value: '^lib[0-9]+$'}".to_string(),
            2 => "{not: {path: \"$.trivy.findings[?@.severity == 'CRITICAL' && @.fixed == null].id\", op: exists}}".to_string(),
            3 => "{any: [{path: '$.request.change_refs.jira_keys[*]', op: exists}, {path: $.servicenow.change.approval, op: '==', value: approved}]}".to_string(),
            4 => "{path: $.servicenow.change, op: within_window, value: {start: start_date, end: end_date}}".to_string(),
            5 => "{path: $.trivy.scanned_at, op: newer_than, value: 7d}".to_string(),
            6 => "{op: outside_windows, value: [{days: [sat, sun]}, {days: [fri], from: '15:00'}]}".to_string(),
            7 => "{path: '$.request.images[*].reference', op: matches, value: '^ghcr\\.io/acme/'}".to_string(),
            _ => format!("{{all: [{{path: $.trivy.vulnerabilities.critical, op: '<=', value: {}}}, {{path: $.sonarqube.quality_gate.status, op: in, value: [OK, WARN]}}, {{path: '$.request.images[*].pinned', op: '==', value: true}}]}}", i % 5),
        };
        let _ = write!(
            text,
            "  - id: rule-{i}\n    title: Rule {i}\n    severity: {}\n    applies_to: {{environments: [prod, \"prod-*\"]}}\n    condition: {condition}\n",
            ["critical", "high", "medium", "low"][i % 4]
        );
    }
    text
}

fn bench(c: &mut Criterion) {
    let app = Application::parse("payments-api").unwrap();
    let env = Environment::parse("prod").unwrap();
    let subject = Subject {
        application: &app,
        environment: &env,
        tier: portcullis::domain::Tier::Production,
        caller: CallerKind::Spinnaker,
    };
    let unavailable = BTreeMap::new();
    let now = "2025-06-04T12:00:00Z".parse().unwrap();

    let builtin = PolicySet::builtin().unwrap();
    let small = realistic_document(40);
    c.bench_function("policy/builtin_pack", |b| {
        b.iter(|| {
            let input = EvalInput {
                subject,
                document: black_box(&small),
                unavailable: &unavailable,
                now,
                no_rules_verdict: portcullis::domain::Verdict::ManualReview,
            };
            black_box(builtin.evaluate(&input))
        });
    });

    let large = realistic_document(2_000);
    for (name, scans, filters) in [
        ("policy/200_rules_2000_vulns/4_scans_1_filter", 4, 1),
        ("policy/200_rules_2000_vulns/20_scans_2_filters", 20, 2),
        ("policy/200_rules_2000_vulns/0_scans_1_filter", 0, 1),
        ("policy/200_rules_2000_vulns/0_scans_0_filters", 0, 0),
    ] {
        let text = generated_rules(scans, filters);
        let set = PolicySet::from_sources(vec![PolicySource {
            name: "generated.yaml".into(),
            text,
        }])
        .unwrap();
        assert_eq!(set.rule_count(), 200);
        c.bench_function(name, |b| {
            b.iter(|| {
                let input = EvalInput {
                    subject,
                    document: black_box(&large),
                    unavailable: &unavailable,
                    now,
                    no_rules_verdict: portcullis::domain::Verdict::ManualReview,
                };
                black_box(set.evaluate(&input))
            });
        });
    }

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer_policy");
    let peer = PolicySet::from_sources(vec![PolicySource {
        name: "deploy_gate.yaml".into(),
        text: std::fs::read_to_string(dir.join("deploy_gate.yaml")).unwrap(),
    }])
    .unwrap();
    let input: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("deploy_input.json")).unwrap())
            .unwrap();
    let input = &input["input"];
    // The peer input's objects as evidence namespaces, as tests/it/peer_policy.rs maps them.
    let mut document = json!({
        "request": {"application": "payments-api", "environment": "production"},
        "pipeline": input["request"],
    });
    for ns in [
        "sonar",
        "aqua",
        "jira",
        "servicenow",
        "freeze",
        "integrations",
        "release",
        "image",
    ] {
        document[ns] = input[ns].clone();
    }
    let production = Environment::parse("production").unwrap();
    let peer_now = input["now"].as_str().unwrap().parse().unwrap();
    c.bench_function("policy/peer_26_rules", |b| {
        b.iter(|| {
            let input = EvalInput {
                subject: Subject {
                    environment: &production,
                    ..subject
                },
                document: black_box(&document),
                unavailable: &unavailable,
                now: peer_now,
                no_rules_verdict: portcullis::domain::Verdict::ManualReview,
            };
            black_box(peer.evaluate(&input))
        });
    });

    c.bench_function("policy/load_builtin_pack", |b| {
        b.iter(|| black_box(PolicySet::builtin().unwrap()))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
