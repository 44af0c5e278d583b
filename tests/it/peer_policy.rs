//! The 26-rule peer policy (a Rego deployment gate, `benches/peer_policy/`) ported to Portcullis
//! gives the Rego decision and rule ids on the peer's three inputs and on one-rule variations of
//! them — the port needs no derived facts (`value_from`, `relative_to`, `before` / `after`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use portcullis::domain::{
    Application, CallerKind, Environment, RuleOutcome, Subject, Tier, Verdict,
};
use portcullis::policy::{EvalInput, PolicySet, PolicySource};
use serde_json::{Value, json};

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peer_policy")
}

fn input(name: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    serde_json::from_str::<Value>(&text).unwrap()["input"].clone()
}

fn policy() -> PolicySet {
    let text = std::fs::read_to_string(dir().join("deploy_gate.yaml")).unwrap();
    PolicySet::from_sources(vec![PolicySource {
        name: "deploy_gate.yaml".into(),
        text,
    }])
    .unwrap()
}

/// What the port decides for a peer input: the verdict and the ids of rules that did not pass.
fn decide(set: &PolicySet, input: &Value) -> (Verdict, BTreeSet<String>) {
    let mut document = json!({
        "request": {"application": "payments-api", "environment": input["target"]["environment"]},
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
    let app = Application::parse("payments-api").unwrap();
    let env = Environment::parse(input["target"]["environment"].as_str().unwrap()).unwrap();
    let unavailable = BTreeMap::new();
    let evaluation = set.evaluate(&EvalInput {
        subject: Subject {
            application: &app,
            environment: &env,
            tier: Tier::Production,
            caller: CallerKind::Spinnaker,
        },
        document: &document,
        unavailable: &unavailable,
        now: input["now"].as_str().unwrap().parse().unwrap(),
        no_rules_verdict: Verdict::ManualReview,
    });
    assert_eq!(evaluation.results.len(), 26, "every rule applies");
    let fired = evaluation
        .results
        .iter()
        .filter(|r| r.outcome != RuleOutcome::Pass)
        .map(|r| r.rule_id.to_uppercase())
        .collect();
    (evaluation.verdict, fired)
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_string()).collect()
}

#[test]
fn the_three_peer_inputs_get_the_rego_decisions() {
    let set = policy();
    assert_eq!(set.rule_count(), 26);
    for (file, verdict, fired) in [
        (
            "deploy_input.json",
            Verdict::ManualReview,
            &["M01", "M03", "M05"][..],
        ),
        ("deploy_input_continue.json", Verdict::Continue, &[][..]),
        (
            "deploy_input_terminate.json",
            Verdict::Terminate,
            &["T02", "T03", "M07", "M11"][..],
        ),
    ] {
        assert_eq!(decide(&set, &input(file)), (verdict, ids(fired)), "{file}");
    }
}

#[test]
fn one_rule_variations_fire_exactly_that_rule() {
    let set = policy();
    let base = input("deploy_input_continue.json");
    type Change = fn(&mut Value);
    let variations: Vec<(&str, Change)> = vec![
        ("T01", |i| i["sonar"]["quality_gate"] = json!("ERROR")),
        ("T02", |i| i["aqua"]["critical"] = json!(1)),
        ("T03", |i| i["image"]["digest"] = json!("sha256:abc")),
        ("T04", |i| i["image"]["registry"] = json!("docker.io")),
        ("T05", |i| {
            i["servicenow"]["change"]["state"] = json!("closed_incomplete")
        }),
        ("T06", |i| {
            i["servicenow"]["change"]["approval"] = json!("rejected")
        }),
        ("T07", |i| i["jira"]["status"] = json!("Won't Do")),
        ("T08", |i| i["aqua"]["malware_found"] = json!(true)),
        ("T09", |i| i["aqua"]["sensitive_data"] = json!(2)),
        ("T10", |i| i["freeze"]["active"] = json!(true)),
        ("M01", |i| i["sonar"]["quality_gate"] = json!("WARN")),
        ("M02", |i| i["sonar"]["new_coverage"] = json!(65.5)),
        ("M03", |i| i["aqua"]["high"] = json!(6)),
        ("M04", |i| i["jira"]["status"] = json!("In Progress")),
        ("M05", |i| {
            i["servicenow"]["change"]["approval"] = json!("requested")
        }),
        ("M06", |i| {
            i["servicenow"]["change"]["window_start"] = json!("2026-11-20T11:00:00Z")
        }),
        ("M07", |i| {
            i["servicenow"]["change"]["window_end"] = json!("2026-11-20T10:00:00Z")
        }),
        ("M08", |i| {
            i["servicenow"]["change"]["window_start"] = json!("2026-11-19T22:00:00Z")
        }),
        ("M09", |i| {
            i["aqua"]["scanned_at"] = json!("2026-11-19T08:00:00Z")
        }),
        ("M10", |i| i["release"]["version"] = json!("2.15.0")),
        ("M11", |i| i["image"]["tag"] = json!("latest")),
        ("M12", |i| i["servicenow"]["change"]["risk"] = json!("high")),
        ("M13", |i| {
            i["servicenow"]["change"]["backout_plan"] = json!("  \n ")
        }),
        ("M14", |i| i["integrations"]["jira"] = json!("degraded")),
        ("M15", |i| i["request"]["emergency"] = json!(true)),
        ("M16", |i| {
            i["aqua"]["vulnerabilities"]
                .as_array_mut()
                .unwrap()
                .push(json!({"id": "CVE-2026-1", "severity": "HIGH", "cwe": "CWE-89", "package": "pg", "installed": "1.0", "fix_available": true}))
        }),
    ];
    assert_eq!(variations.len(), 26);
    for (rule, change) in variations {
        let mut i = base.clone();
        change(&mut i);
        let want = if rule.starts_with('T') {
            Verdict::Terminate
        } else {
            Verdict::ManualReview
        };
        assert_eq!(decide(&set, &i), (want, ids(&[rule])), "{rule}");
    }
}

#[test]
fn conditions_that_only_matter_together_follow_the_rego() {
    let set = policy();
    let base = input("deploy_input_continue.json");
    // An emergency during a freeze is reviewed, not stopped.
    let mut i = base.clone();
    i["freeze"]["active"] = json!(true);
    i["request"]["emergency"] = json!(true);
    assert_eq!(decide(&set, &i), (Verdict::ManualReview, ids(&["M15"])));
    // A freeze and an empty backout plan outside production do not count.
    let mut i = base.clone();
    i["target"]["environment"] = json!("staging");
    i["freeze"]["active"] = json!(true);
    i["servicenow"]["change"]["backout_plan"] = json!("");
    assert_eq!(decide(&set, &i), (Verdict::Continue, ids(&[])));
    // A blocking CWE without a fix, and no fixable findings at all, are not M16.
    let mut i = base.clone();
    for v in i["aqua"]["vulnerabilities"].as_array_mut().unwrap() {
        v["fix_available"] = json!(false);
        v["cwe"] = json!("CWE-78");
    }
    assert_eq!(decide(&set, &i), (Verdict::Continue, ids(&[])));
    // A fix version list without the release, as a list of one.
    let mut i = base;
    i["jira"]["fix_versions"] = json!(["2.13.1"]);
    assert_eq!(decide(&set, &i), (Verdict::ManualReview, ids(&["M10"])));
}
