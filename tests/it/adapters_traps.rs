//! Each tool's traps (contract "Traps" lists), adapter against simulator over HTTP, and the four
//! adapters behind the real service with the built-in policy pack.

use std::time::Duration;

use portcullis::adapters::{self, Adapter, AdapterConfig, AdapterError};
use portcullis::config;
use portcullis::domain::CheckRequestDraft;
use portcullis::sim::{self, FaultSettings, Sims};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::TestApp;
use crate::support::fixtures::{image, request};

fn build(yaml: &str) -> std::sync::Arc<dyn Adapter> {
    let configs: Vec<AdapterConfig> = serde_norway::from_str(&format!("[{yaml}]")).unwrap();
    crate::support::build_adapters(&configs).remove(0)
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(5)
}

fn sonar(sims: &Sims) -> std::sync::Arc<dyn Adapter> {
    build(&format!(
        "{{kind: sonarqube, name: sonarqube, base_url: '{}', cache_ttl: 0s, auth: {{type: token_as_login, token: {{value: {}}}}}}}",
        sims.sonarqube.base_url,
        sim::sonarqube::TOKEN
    ))
}

async fn collect(
    adapter: &dyn Adapter,
    f: impl FnOnce(&mut CheckRequestDraft),
) -> Result<Value, AdapterError> {
    adapter
        .collect(&request(f), soon())
        .await
        .map(|facts| facts.document)
}

#[tokio::test]
async fn sonarqube_none_warn_and_error_do_not_pass() {
    let sims = sim::start(0).await.unwrap();
    let a = sonar(&sims);
    for (app, status) in [
        ("fresh-service", "NONE"),
        ("legacy-app", "WARN"),
        ("orders-api", "ERROR"),
    ] {
        let f = collect(&*a, |d| {
            d.application = app.into();
            d.sources.clear();
        })
        .await
        .unwrap();
        assert_eq!(f["quality_gate"]["status"], status);
        assert_eq!(f["quality_gate"]["passed"], false, "{f}");
        assert_eq!(f["selector"], "project_main_branch");
    }
    let f = collect(&*a, |d| d.sources[0].branch = "feature/risky".into())
        .await
        .unwrap();
    assert_eq!(
        f["quality_gate"]["failing_conditions"],
        json!(["new_coverage", "new_security_hotspots_reviewed"])
    );
    // A missing actual value stays null, never a pass.
    assert_eq!(
        f["quality_gate"]["conditions"][1]["actual_value"],
        Value::Null
    );
}

#[tokio::test]
async fn sonarqube_branch_404_names_the_edition_and_never_falls_back() {
    let sims = sim::start(0).await.unwrap();
    let a = sonar(&sims);
    reqwest::Client::new()
        .post(format!(
            "{}/_sim/scenario/community_edition",
            sims.sonarqube.base_url
        ))
        .send()
        .await
        .unwrap();
    let e = collect(&*a, |_| {}).await.unwrap_err();
    assert!(matches!(e, AdapterError::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("Developer Edition"), "{e}");
}

#[tokio::test]
async fn sonarqube_resolves_the_compute_engine_task() {
    let sims = sim::start(0).await.unwrap();
    let a = sonar(&sims);
    let label = |t: &str| {
        let t = t.to_string();
        move |d: &mut CheckRequestDraft| {
            d.labels.insert("sonarqube_ce_task".into(), t);
        }
    };
    let f = collect(&*a, label("AX-task-slow")).await.unwrap();
    assert_eq!(f["analysis_id"], "AU-ok-1");
    assert_eq!(f["selector"], "analysis");
    assert_eq!(f["quality_gate"]["passed"], true);
    let e = collect(&*a, label("AX-task-failed")).await.unwrap_err();
    assert!(e.to_string().contains("FAILED"), "{e}");
}

#[tokio::test]
async fn aqua_digest_mismatch_pending_and_disallowed_are_not_passes() {
    let sims = sim::start(0).await.unwrap();
    let a = build(&format!(
        "{{kind: aqua, name: aqua, base_url: '{}', cache_ttl: 0s, registries: [{{host: ghcr.io, name: GHCR}}], auth: {{type: login, username: {}, password: {{value: {}}}}}}}",
        sims.aqua.base_url,
        sim::aqua::USER,
        sim::aqua::PASSWORD
    ));
    let with = |repo: &str, tag: &str, digest: &str| {
        let r = format!("ghcr.io/{repo}:{tag}@{digest}");
        move |d: &mut CheckRequestDraft| d.images = vec![image(&r)]
    };
    let d = |i: usize| sim::aqua::DIGESTS[i].1;
    let f = collect(&*a, with("acme/worker", "3.1", d(2)))
        .await
        .unwrap();
    assert_eq!(f["images"][0]["digest_matches"], false, "{f}");
    assert_eq!(f["images"][0]["passed"], false);
    assert_eq!(f["images"][0]["vulnerabilities"], Value::Null);
    assert!(
        f.get("vulnerabilities").is_none() && f.get("findings").is_none(),
        "mismatched counts or findings leaked: {f}"
    );
    assert_eq!(f["digest_mismatch"], true);

    let f = collect(&*a, with("acme/orders-api", "2.0.0", d(1)))
        .await
        .unwrap();
    assert_eq!(f["images"][0]["disallowed"], true);
    assert_eq!(f["vulnerabilities"]["critical"], 2);
    assert_eq!(f["all_passed"], false);
    // Every row of the vulnerability listing, with CVE ids, as common findings.
    assert_eq!(f["findings_summary"]["total"], 4, "{f}");
    assert_eq!(f["findings_summary"]["open"]["critical"], 2);
    let log4j = &f["findings"][0];
    assert_eq!(log4j["id"], "CVE-2021-44228");
    assert_eq!(log4j["severity"], "critical");
    assert_eq!(log4j["kind"], "vulnerability");
    assert_eq!(log4j["subject"], d(1));
    assert_eq!(log4j["package"]["version"], "2.14.1");
    assert_eq!(log4j["fix_available"], true);
    assert_eq!(log4j["status"], "open");

    let f = collect(&*a, with("acme/pending", "0.1", d(3)))
        .await
        .unwrap();
    assert_eq!(f["images"][0]["scan_status"], "pending");
    assert_eq!(f["images"][0]["passed"], false);

    let f = collect(&*a, with("acme/partial", "1.0", d(4)))
        .await
        .unwrap();
    assert_eq!(f["images"][0]["passed"], false);

    // An expired session token is renewed once by logging in again.
    sims.aqua.control.apply(&FaultSettings {
        tokens_expired: Some(true),
        ..Default::default()
    });
    let f = collect(&*a, with("acme/payments-api", "1.8.3", d(0)))
        .await
        .unwrap();
    assert_eq!(f["all_passed"], true);
}

#[tokio::test]
async fn servicenow_reads_raw_values_and_rechecks_records() {
    let sims = sim::start(0).await.unwrap();
    for api in ["table", "change"] {
        let a = build(&format!(
            "{{kind: servicenow, name: servicenow, api: {api}, base_url: '{}', cache_ttl: 0s, ci_name: '{{application}}', auth: {{type: basic, username: {}, password: {{value: {}}}}}}}",
            sims.servicenow.base_url,
            sim::servicenow::USER,
            sim::servicenow::PASSWORD
        ));
        let change = |n: &str| {
            let n = n.to_string();
            move |d: &mut CheckRequestDraft| d.servicenow_changes = vec![n]
        };
        let f = collect(&*a, change("CHG0030003")).await.unwrap();
        assert_eq!(f["change"]["approval"], "rejected", "{api}: {f}");
        assert_eq!(f["change"]["state"], "-5");
        assert_eq!(f["change"]["approved"], false);
        let f = collect(&*a, change("CHG0030004")).await.unwrap();
        assert_eq!(f["change"]["end_date"], Value::Null, "{f}");
        assert_eq!(f["change"]["end_date_raw"], "");
        let f = collect(&*a, change("CHG0030006")).await.unwrap();
        assert_eq!(f["change"]["approval"], "approved");
        assert_eq!(
            f["change"]["approved"], false,
            "a canceled change is not approved"
        );
        // The raw UTC start is what the facts carry, not the display (New York) time.
        let f = collect(&*a, change("CHG0030001")).await.unwrap();
        let start = f["change"]["start_date"].as_str().unwrap();
        let raw = f["change"]["start_date_raw"].as_str().unwrap();
        assert_eq!(start, format!("{}Z", raw.replace(' ', "T")));
        // By configuration item: only that CI's active changes.
        let f = collect(&*a, |d| d.application = "orders-api".into())
            .await
            .unwrap();
        assert_eq!(f["lookup"], "configuration_item");
        assert_eq!(f["change"]["number"], "CHG0030007", "{f}");
    }
}

#[tokio::test]
async fn jira_records_status_category_moves_and_pages_searches() {
    let sims = sim::start(0).await.unwrap();
    let a = build(&format!(
        "{{kind: jira, name: jira, base_url: '{}', cache_ttl: 0s, page_size: 3, jql: 'project = REL', auth: {{type: basic, username: {}, password: {{value: {}}}}}}}",
        sims.jira.base_url,
        sim::jira::EMAIL,
        sim::jira::API_TOKEN
    ));
    let f = collect(&*a, |d| {
        d.jira_keys = vec!["OPS-44".into(), "OLD-7".into(), "OPS-45".into()];
    })
    .await
    .unwrap();
    let issues = &f["issues"];
    assert_eq!(issues[0]["status"]["name"], "Approved");
    assert_eq!(issues[0]["status"]["category_key"], "indeterminate");
    assert_eq!(issues[1]["key"], "OPS-46");
    assert_eq!(issues[1]["moved"], true);
    assert_eq!(issues[2]["status"]["category_key"], "done");
    assert_eq!(issues[2]["resolution"], Value::Null);
    assert_eq!(f["all_done"], false);
    assert_eq!(f["search"]["count"], 7, "{f}");

    // Data Center: REST v2 with a PAT, startAt paging.
    reqwest::Client::new()
        .post(format!("{}/_sim/scenario/data_center", sims.jira.base_url))
        .send()
        .await
        .unwrap();
    let dc = build(&format!(
        "{{kind: jira, name: jira, deployment: data_center, base_url: '{}', page_size: 2, jql: 'project = REL', auth: {{type: bearer, token: {{value: {}}}}}}}",
        sims.jira.base_url,
        sim::jira::PAT
    ));
    let f = collect(&*dc, |d| d.jira_keys = vec!["OPS-42".into()])
        .await
        .unwrap();
    assert_eq!(f["all_done"], true);
    assert_eq!(f["search"]["count"], 7);
}

#[tokio::test]
async fn jira_creates_review_issues_with_adf() {
    let sims = sim::start(0).await.unwrap();
    let configs: Vec<AdapterConfig> = serde_norway::from_str(&format!(
        "[{{kind: jira, name: jira, base_url: '{}', auth: {{type: basic, username: {}, password: {{value: {}}}}}}}]",
        sims.jira.base_url,
        sim::jira::EMAIL,
        sim::jira::API_TOKEN
    ))
    .unwrap();
    let AdapterConfig::Jira(c) = &configs[0] else {
        unreachable!()
    };
    let jira = adapters::JiraAdapter::build(c, crate::support::clock_at_t0()).unwrap();
    let created = jira
        .create_issue(
            "OPS",
            "Task",
            "Review deploy",
            "Why",
            &["portcullis".into()],
            soon(),
        )
        .await
        .unwrap();
    assert!(created.key.starts_with("OPS-"), "{created:?}");
    let e = jira
        .create_issue("OPS", "Task", "", "Why", &[], soon())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("summary"), "{e}");
}

#[test]
fn every_kind_loads_through_the_settings_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("portcullis.yaml");
    std::fs::write(
        &path,
        "adapters:
  - {kind: sonarqube, name: sonarqube, base_url: 'https://sonar.example/ctx', cache_ttl: 1m, auth: {type: bearer, token: {value: t}}}
  - {kind: sonarqube, name: sonar_eu, base_url: 'https://sonar-eu.example', auth: {type: token_as_login, token: {value: t}}}
  - {kind: jira, name: jira, base_url: 'https://acme.atlassian.net', deployment: cloud, auth: {type: basic, username: a@b.c, password: {value: t}}}
  - {kind: servicenow, name: servicenow, base_url: 'https://acme.service-now.com', api: change, timeout: 2s, retries: 1, auth: {type: bearer, token: {value: t}}}
  - {kind: aqua, name: aqua, base_url: 'https://aqua.example', registries: [{host: ghcr.io, name: GHCR}], auth: {type: login, username: admin, password: {value: p}}}
",
    )
    .unwrap();
    let settings = config::load_from(Some(&path), Vec::new()).unwrap();
    let built = crate::support::build_adapters(&settings.adapters);
    let kinds: Vec<_> = built.iter().map(|a| (a.name(), a.kind())).collect();
    assert_eq!(
        kinds,
        [
            ("sonarqube", "sonarqube"),
            ("sonar_eu", "sonarqube"),
            ("jira", "jira"),
            ("servicenow", "servicenow"),
            ("aqua", "aqua")
        ]
    );
    let bad: Result<Vec<AdapterConfig>, _> = serde_norway::from_str(
        "[{kind: aqua, name: a, base_url: 'https://a', auth: {type: bearer, token: {value: t}}, registry: x}]",
    );
    assert!(bad.is_err(), "unknown keys are refused");
    let wrong_auth: Vec<AdapterConfig> = serde_norway::from_str(
        "[{kind: jira, name: j, base_url: 'https://a', auth: {type: login, username: u, password: {value: p}}}]",
    )
    .unwrap();
    let e = crate::support::try_build_adapters(&wrong_auth).unwrap_err();
    assert!(e.to_string().contains("auth.type"), "{e}");
}

fn rule<'a>(d: &'a Value, id: &str) -> &'a Value {
    d["rule_results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == id)
        .unwrap_or_else(|| panic!("no result for {id}: {d}"))
}

#[tokio::test]
async fn the_built_in_pack_reads_the_adapters_facts() {
    let sims = sim::start(0).await.unwrap();
    let app = TestApp::builder()
        .adapter(json!({"kind": "sonarqube", "name": "sonarqube", "base_url": sims.sonarqube.base_url,
            "auth": {"type": "bearer", "token": {"value": sim::sonarqube::TOKEN}}}))
        .adapter(json!({"kind": "servicenow", "name": "servicenow", "base_url": sims.servicenow.base_url,
            "auth": {"type": "basic", "username": sim::servicenow::USER, "password": {"value": sim::servicenow::PASSWORD}}}))
        .spawn()
        .await;
    let check = |app_name: &str, change: &str, key: &str| {
        json!({
            "application": app_name, "environment": "prod",
            "images": [format!("ghcr.io/acme/payments-api:1.8.3@{}", sim::aqua::DIGESTS[0].1)],
            "sources": [{"repository": "github.com/acme/x", "commit": "0123abcd", "branch": "main"}],
            "change_refs": {"servicenow_changes": [change]},
            "idempotency_key": key,
        })
    };
    let d = app
        .check(&check("payments-api", "CHG0030001", "good"))
        .await
        .json_with(StatusCode::CREATED);
    assert_eq!(rule(&d, "sonarqube-quality-gate")["outcome"], "pass", "{d}");
    assert_eq!(rule(&d, "servicenow-change-approved")["outcome"], "pass");
    assert_eq!(rule(&d, "servicenow-change-scheduled")["outcome"], "pass");
    assert_eq!(rule(&d, "servicenow-change-window")["outcome"], "pass");

    let d = app
        .check(&check("fresh-service", "CHG0030004", "bad"))
        .await
        .json_with(StatusCode::CREATED);
    assert_eq!(rule(&d, "sonarqube-quality-gate")["outcome"], "fail", "{d}");
    assert_eq!(
        rule(&d, "servicenow-change-window")["outcome"],
        "fail",
        "{d}"
    );
    // Both failures are the built-in pack's manual-review rules.
    assert_eq!(d["verdict"], "manual_review", "{d}");
    let text = d.to_string();
    assert!(!text.contains(sim::servicenow::PASSWORD) && !text.contains(sim::sonarqube::TOKEN));
}

#[tokio::test]
async fn the_built_in_pack_reads_trivy_reports_from_ci() {
    let reports = tempfile::tempdir().unwrap();
    let digest = sim::aqua::DIGESTS[1].1;
    let report = json!({
        "SchemaVersion": 2, "Trivy": {"Version": "0.69.3"},
        "CreatedAt": (crate::support::t0() - chrono::Duration::hours(1)).to_rfc3339(),
        "ArtifactName": "ghcr.io/acme/orders-api:2.0.0",
        "Metadata": {"OS": {"Family": "debian", "Name": "12"}, "RepoDigests": [format!("ghcr.io/acme/orders-api@{digest}")]},
        "Results": [{"Target": "app.jar", "Class": "lang-pkgs", "Type": "jar", "Vulnerabilities": [
            {"VulnerabilityID": "CVE-2021-44228", "PkgName": "log4j-core", "InstalledVersion": "2.14.1",
             "FixedVersion": "2.15.0, 2.12.2", "Severity": "CRITICAL", "Status": "fixed"}]}],
    });
    std::fs::write(reports.path().join("orders.json"), report.to_string()).unwrap();
    let app = TestApp::builder()
        .clock(crate::support::clock_at_t0())
        .adapter(json!({"kind": "trivy", "name": "trivy", "reports_dir": reports.path()}))
        .spawn()
        .await;
    let d: Value = app
        .post_check(&json!({
            "application": "orders-api", "environment": "prod",
            "images": [format!("ghcr.io/acme/orders-api:2.0.0@{digest}")],
            "change_refs": {"jira_keys": ["OPS-42"]},
            "idempotency_key": "trivy-1",
        }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        rule(&d, "no-critical-vulnerabilities")["outcome"],
        "fail",
        "{d}"
    );
    assert_eq!(
        rule(&d, "vulnerability-scan-fresh")["outcome"],
        "pass",
        "{d}"
    );
    assert_eq!(d["verdict"], "terminate");
}

#[tokio::test]
async fn servicenow_oauth_gets_a_token_and_renews_it_once() {
    let sims = sim::start(0).await.unwrap();
    for grant in [
        String::new(),
        format!(
            ", username: {}, password: {{value: {}}}",
            sim::servicenow::USER,
            sim::servicenow::PASSWORD
        ),
    ] {
        let a = build(&format!(
            "{{kind: servicenow, name: servicenow, base_url: '{}', cache_ttl: 0s, auth: {{type: oauth, client_id: {}, client_secret: {{value: {}}}{grant}}}}}",
            sims.servicenow.base_url,
            sim::servicenow::CLIENT_ID,
            sim::servicenow::CLIENT_SECRET
        ));
        let change = |d: &mut CheckRequestDraft| d.servicenow_changes = vec!["CHG0030001".into()];
        let f = collect(&*a, change).await.unwrap();
        assert_eq!(f["change"]["approved"], true, "{f}");
        sims.servicenow.control.apply(&FaultSettings {
            tokens_expired: Some(true),
            ..Default::default()
        });
        let f = collect(&*a, change).await.unwrap();
        assert_eq!(f["change"]["approved"], true, "{f}");
        sims.servicenow.control.apply(&FaultSettings {
            credentials_expired: Some(true),
            ..Default::default()
        });
        let e = collect(&*a, change).await.unwrap_err();
        assert!(matches!(e, AdapterError::Auth { status: 401 }), "{e:?}");
        let text = format!("{e} {e:?} {a:?}");
        assert!(
            !text.contains(sim::servicenow::CLIENT_SECRET)
                && !text.contains(sim::servicenow::PASSWORD)
        );
        sims.servicenow.control.clear();
    }
}
