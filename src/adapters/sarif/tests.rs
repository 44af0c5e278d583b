//! Tests of `kind: sarif` over real-tool-shaped logs in `tests/fixtures/findings/`.
#![expect(clippy::unwrap_used, reason = "tests")]

use super::*;

const COMMIT: &str = "8f2c1d4e5b6a79801c2d3e4f5a6b7c8d9e0f1a2b";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/findings")
            .join(name),
    )
    .unwrap()
}

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

#[test]
fn semgrep_levels_resolve_through_rules_and_author_suppressions_stay_open_by_default() {
    let dir = tempfile::tempdir().unwrap();
    ingest_log(
        dir.path(),
        COMMIT,
        &fixture("semgrep.sarif"),
        false,
        &submitted_at("2026-11-30T10:00:00Z"),
    )
    .unwrap();
    let f = facts(dir.path(), &[COMMIT.into()]).unwrap();
    let t = &f["tools"][0];
    assert_eq!(t["name"], "Semgrep OSS", "{f}");
    assert_eq!(t["version"], "1.78.0");
    assert_eq!(
        t["submitted_by"], "ci",
        "the submitting principal is a fact"
    );
    assert_eq!(t["complete"], true);
    // No result has a level: the rules' defaults say error, warning; `nosemgrep` is not a review.
    assert_eq!(
        f["counts"],
        json!({"error": 2, "warning": 1, "note": 0, "none": 0})
    );
    assert_eq!(f["new"], Value::Null, "no baseline in the log");
    assert_eq!(
        f["rule_ids"],
        json!([
            "python.flask.security.audit.debug-enabled.debug-enabled",
            "python.lang.security.audit.formatted-sql-query.formatted-sql-query"
        ])
    );
    let sql = &f["findings"][0];
    assert_eq!(sql["kind"], "weakness");
    assert_eq!(sql["level"], "error");
    assert_eq!(sql["severity"], "high");
    assert_eq!(
        sql["location"],
        json!({"uri": "src/payments/db.py", "start_line": 41, "end_line": 41})
    );
    assert_eq!(sql["subject"], COMMIT);

    // The same log where the source accepts author suppressions.
    let dir = tempfile::tempdir().unwrap();
    ingest_log(
        dir.path(),
        COMMIT,
        &fixture("semgrep.sarif"),
        true,
        &submitted_at("2026-11-30T10:00:00Z"),
    )
    .unwrap();
    let f = facts(dir.path(), &[COMMIT.into()]).unwrap();
    assert_eq!(f["counts"]["error"], 1);
    assert_eq!(
        f["findings"][2]["status"], "suppressed",
        "shown, not dropped"
    );
    assert_eq!(
        f["findings"][2]["suppressed_by"]["status"],
        "inSource (no status)"
    );
}

#[test]
fn codeql_with_provenance_and_baseline_counts_new_and_skips_absent() {
    let dir = tempfile::tempdir().unwrap();
    ingest_log(
        dir.path(),
        COMMIT,
        &fixture("codeql.sarif"),
        false,
        &submitted_at("2026-11-30T10:00:00Z"),
    )
    .unwrap();
    // The check may name the commit by a short id.
    let f = facts(dir.path(), &["8f2c1d4".into()]).unwrap();
    assert_eq!(
        f["counts"],
        json!({"error": 1, "warning": 1, "note": 0, "none": 0}),
        "{f}"
    );
    assert_eq!(
        f["new"],
        json!({"error": 1, "warning": 0, "note": 0, "none": 0})
    );
    assert_eq!(f["tools"][0]["category"], "/language:java/");
    assert_eq!(
        f["findings"][0]["severity"], "high",
        "security-severity 8.8"
    );
    assert_eq!(f["findings"][2]["status"], "absent");
    assert_eq!(f["findings_summary"]["open"]["high"], 2);
}

#[test]
fn a_log_for_another_commit_or_version_is_refused_and_no_log_is_missing_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let other = "1111111111111111111111111111111111111111";
    let e = ingest_log(
        dir.path(),
        other,
        &fixture("codeql.sarif"),
        false,
        &submitted_at("2026-11-30T10:00:00Z"),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains(COMMIT) && e.to_string().contains(other),
        "{e}"
    );
    let mut v: Value = serde_json::from_slice(&fixture("semgrep.sarif")).unwrap();
    v["version"] = "2.0.0".into();
    let e = ingest_log(
        dir.path(),
        COMMIT,
        v.to_string().as_bytes(),
        false,
        &submitted_at("2026-11-30T10:00:00Z"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("2.1.0"), "{e}");
    let e = ingest_log(
        dir.path(),
        COMMIT,
        br#"{"version": "2.1.0", "runs": []}"#,
        false,
        &submitted_at("2026-11-30T10:00:00Z"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("runs"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // Semgrep's log carries no provenance: bound by the submission, and only to that commit.
    ingest_log(
        dir.path(),
        COMMIT,
        &fixture("semgrep.sarif"),
        false,
        &submitted_at("2026-11-30T10:00:00Z"),
    )
    .unwrap();
    let e = facts(dir.path(), &[other.into()]).unwrap_err();
    assert!(matches!(e, AdapterError::NotFound { .. }), "{e:?}");
}

#[test]
fn a_newer_log_of_the_same_tool_and_category_replaces_the_older_and_incomplete_runs_show() {
    let dir = tempfile::tempdir().unwrap();
    ingest_log(
        dir.path(),
        COMMIT,
        &fixture("semgrep.sarif"),
        false,
        &submitted_at("2026-11-30T10:00:00Z"),
    )
    .unwrap();
    let mut fixed: Value = serde_json::from_slice(&fixture("semgrep.sarif")).unwrap();
    fixed["runs"][0]["results"] = json!([]);
    fixed["runs"][0]["invocations"][0]["executionSuccessful"] = false.into();
    ingest_log(
        dir.path(),
        COMMIT,
        fixed.to_string().as_bytes(),
        false,
        &submitted_at("2026-11-30T11:00:00Z"),
    )
    .unwrap();
    let f = facts(dir.path(), &[COMMIT.into()]).unwrap();
    assert_eq!(f["tools"].as_array().unwrap().len(), 1);
    assert_eq!(f["counts"]["error"], 0);
    assert_eq!(
        f["complete"], false,
        "a failed invocation is not a clean scan"
    );
}

#[test]
fn kinds_levels_and_suppression_statuses_follow_the_specification() {
    let log = json!({"version": "2.1.0", "runs": [{
    "tool": {"driver": {"name": "gosec", "rules": [
        {"id": "G101", "properties": {"tags": ["security", "HIGH"]}},
        {"id": "G104", "defaultConfiguration": {"level": "note"}}]},
        "extensions": [{"name": "ext", "rules": [{"id": "X1", "defaultConfiguration": {"level": "error"}}]}]},
    "results": [
        {"ruleId": "G101", "ruleIndex": 0, "level": "warning"},
        {"ruleId": "G104"},
        {"ruleId": "G104", "kind": "pass"},
        {"ruleId": "G104", "kind": "review"},
        {"ruleId": "X1", "rule": {"id": "X1", "toolComponent": {"index": 0}}},
        {"ruleId": "G101", "level": "error", "suppressions": [{"kind": "external", "status": "underReview"}]},
        {"ruleId": "G101", "level": "error", "suppressions": [{"kind": "external", "status": "accepted", "justification": "test key"}]},
    ]}]});
    let dir = tempfile::tempdir().unwrap();
    ingest_log(
        dir.path(),
        COMMIT,
        log.to_string().as_bytes(),
        false,
        &submitted_at("2026-11-30T10:00:00Z"),
    )
    .unwrap();
    let f = facts(dir.path(), &[COMMIT.into()]).unwrap();
    let levels: Vec<&str> = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["level"].as_str().unwrap())
        .collect();
    assert_eq!(
        levels,
        ["warning", "note", "none", "error", "error", "error"],
        "{f}"
    );
    assert_eq!(
        f["findings"][0]["severity"], "high",
        "gosec's own severity tag"
    );
    assert_eq!(f["needs_review"], 1);
    assert_eq!(
        f["findings"][4]["status"], "open",
        "under review stays open"
    );
    assert_eq!(f["findings"][5]["status"], "suppressed");
    assert_eq!(
        f["findings"][5]["suppressed_by"]["justification"],
        "test key"
    );
    assert_eq!(f["counts"]["error"], 2);
    assert_eq!(f["complete"], true);
}

#[test]
fn a_large_log_is_summarised() {
    // ~30 MB: 60,000 results with code flows the reader never builds (written as text: building
    // it as a `Value` would cost more than reading it).
    let flow: String = (0..8)
        .map(|i| format!(r#"{{"location":{{"message":{{"text":"step {i} of a long taint path through the code"}}}}}}"#))
        .collect::<Vec<_>>()
        .join(",");
    let mut body =
        String::from(r#"{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"big"}},"results":["#);
    for i in 0..60_000 {
        if i > 0 {
            body.push(',');
        }
        let level = if i % 3 == 0 { "error" } else { "note" };
        body.push_str(&format!(
            r#"{{"ruleId":"R1","level":"{level}","message":{{"text":"{}"}},"codeFlows":[{{"threadFlows":[{{"locations":[{flow}]}}]}}],"locations":[{{"physicalLocation":{{"artifactLocation":{{"uri":"src/f{i}.c"}},"region":{{"startLine":{i}}}}}}}]}}"#,
            "x".repeat(100)
        ));
    }
    body.push_str("]}]}");
    assert!(body.len() > 30 * 1024 * 1024, "{}", body.len());
    let dir = tempfile::tempdir().unwrap();
    ingest_log(
        dir.path(),
        COMMIT,
        body.as_bytes(),
        false,
        &submitted_at("2026-11-30T10:00:00Z"),
    )
    .unwrap();
    let f = facts(dir.path(), &[COMMIT.into()]).unwrap();
    assert_eq!(f["counts"]["error"], 20_000);
    assert_eq!(f["counts"]["note"], 40_000);
    assert_eq!(f["findings_summary"]["total"], 60_000);
    assert_eq!(f["findings"].as_array().unwrap().len(), MAX_LISTED);
    assert_eq!(f["findings_truncated"], true);
}

fn submitted_at(t: &str) -> Submission {
    Submission {
        submitted_by: "ci".into(),
        submitted_at: at(t),
        may_deploy: std::sync::Arc::new(|_| true),
        any_image: true,
    }
}
