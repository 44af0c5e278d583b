//! Findings from the rest of the toolchain: an SBOM with VEX and SARIF logs submitted in CI
//! decide a later check; a VEX statement for another product and a SARIF log for another commit
//! are caught.

use portcullis::auth::Role;
use serde_json::{Value, json};

use crate::support::TestApp;

const DIGEST: &str = "sha256:3f1a2b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f10";
const COMMIT: &str = "8f2c1d4e5b6a79801c2d3e4f5a6b7c8d9e0f1a2b";

const POLICY: &str = r#"
rules:
  - id: no-open-critical-findings
    title: No open critical findings in the image, from any tool
    category: vulnerabilities
    severity: critical
    condition:
      all:
        - {path: $.sbom.findings_summary.open.critical, op: "==", value: 0}
        - {path: $.trivy.findings_summary.open.critical, op: "==", value: 0}
  - id: no-sast-errors
    title: No error-level code-scanning findings on the deployed commit
    category: code-scanning
    severity: critical
    condition: {path: $.sast.counts.error, op: "==", value: 0}
  - id: no-copyleft
    title: No strong-copyleft licenses
    category: licenses
    severity: high
    condition:
      not: {path: "$.sbom.licenses[*]", op: matches, value: '(^|[ (])(AGPL|SSPL)-', quantifier: any}
"#;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/findings")
            .join(name),
    )
    .unwrap()
}

async fn submit(app: &TestApp, source: &str, subject: &str, body: Vec<u8>) -> (u16, Value) {
    app.submit_evidence(Some("pc_ci"), source, subject, body)
        .await
        .parts()
}

async fn check(app: &TestApp, key: &str) -> Value {
    app.check(&json!({
            "application": "payments", "environment": "prod",
            "images": [format!("ghcr.io/acme/payments:1.2@{DIGEST}")],
            "sources": [{"repository": "github.com/acme/payments", "commit": &COMMIT[..7], "branch": "main"}],
            "idempotency_key": key,
        }))
        .await
        .json_with(reqwest::StatusCode::CREATED)
}

fn result<'a>(d: &'a Value, rule: &str) -> &'a Value {
    d["rule_results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == rule)
        .unwrap_or_else(|| panic!("no result for {rule}: {d}"))
}

#[tokio::test]
async fn sbom_vex_and_sarif_from_ci_decide_a_later_check() {
    let sbom = tempfile::tempdir().unwrap();
    let sarif = tempfile::tempdir().unwrap();
    let trivy = tempfile::tempdir().unwrap();
    let app = TestApp::builder()
        .clock(crate::support::clock_at_t0())
        .policies(&[("p.yaml", POLICY)])
        .adapter(json!({"kind": "sbom", "name": "sbom", "documents_dir": sbom.path(), "max_age": "100000d", "cache_ttl": "1h"}))
        .adapter(json!({"kind": "sarif", "name": "sast", "logs_dir": sarif.path(), "cache_ttl": "1h"}))
        .adapter(json!({"kind": "trivy", "name": "trivy", "reports_dir": trivy.path(), "vex_dir": sbom.path(), "cache_ttl": "0s"}))
        .token("ci", "pc_ci", vec![Role::Pipeline])
        .spawn()
        .await;

    // A Trivy JSON report of the same image, with log4j (as its GHSA id) critical.
    let report = json!({
        "SchemaVersion": 2, "CreatedAt": crate::support::t0().to_rfc3339(),
        "ArtifactName": "ghcr.io/acme/payments:1.2",
        "Metadata": {"OS": {"Family": "alpine", "Name": "3.19.1"}, "RepoDigests": [format!("ghcr.io/acme/payments@{DIGEST}")]},
        "Results": [{"Target": "app/lib/log4j-core-2.14.1.jar", "Class": "lang-pkgs", "Type": "jar", "Vulnerabilities": [
            {"VulnerabilityID": "GHSA-jfh8-c2jp-5v3q", "VendorIDs": ["CVE-2021-44228"], "PkgName": "org.apache.logging.log4j:log4j-core",
             "PkgIdentifier": {"PURL": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"},
             "InstalledVersion": "2.14.1", "FixedVersion": "2.15.0, 2.12.2", "Status": "fixed", "Severity": "CRITICAL"}]}],
    });
    let (status, body) = submit(&app, "trivy", DIGEST, report.to_string().into_bytes()).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = submit(&app, "sbom", DIGEST, fixture("trivy-payments.cdx.json")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["digest"], DIGEST);

    // A SARIF log whose provenance names our commit, submitted for another: refused.
    let other = "1111111111111111111111111111111111111111";
    let (status, body) = submit(&app, "sast", other, fixture("codeql.sarif")).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["detail"].as_str().unwrap_or_default().contains(COMMIT)
            || body.to_string().contains(COMMIT),
        "{body}"
    );
    let (status, body) = submit(&app, "sast", COMMIT, fixture("codeql.sarif")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["commit"], COMMIT);
    // A SARIF log is not evidence about a digest, nor an SBOM about a commit.
    let (status, _) = submit(&app, "sast", DIGEST, fixture("codeql.sarif")).await;
    assert_eq!(status, 400);
    let (status, _) = submit(&app, "sbom", COMMIT, fixture("syft-payments.cdx.json")).await;
    assert_eq!(status, 400);

    let d = check(&app, "f-1").await;
    assert_eq!(d["verdict"], "terminate", "{d}");
    let e = &d["evidence"];
    assert_eq!(e["sbom"]["findings_summary"]["open"]["critical"], 2, "{e}");
    assert_eq!(e["trivy"]["findings_summary"]["open"]["critical"], 1);
    assert_eq!(e["sast"]["counts"]["error"], 1);
    assert_eq!(e["sast"]["new"]["error"], 1);

    // The vendor's VEX: log4j is not exploitable in this image; the openssl statement is about
    // another image and does not apply.
    let (status, body) = submit(&app, "sbom", DIGEST, fixture("openvex-payments.json")).await;
    assert_eq!(status, 201, "{body}");
    let d = check(&app, "f-2").await;
    let e = &d["evidence"];
    assert_eq!(e["sbom"]["findings_summary"]["open"]["critical"], 1, "{e}");
    let log4j = e["sbom"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "CVE-2021-44228")
        .unwrap();
    assert_eq!(log4j["status"], "not_affected");
    assert_eq!(
        log4j["suppressed_by"]["justification"],
        "vulnerable_code_not_in_execute_path"
    );
    // The same statement marks Trivy's finding, known there by its GHSA id.
    assert_eq!(e["trivy"]["findings_summary"]["open"]["critical"], 0, "{e}");
    assert_eq!(e["trivy"]["findings"][0]["status"], "not_affected");
    assert_eq!(
        e["sbom"]["vex"]["ignored"][0]["reason"],
        "the statement is about another product"
    );
    assert_eq!(
        d["verdict"], "terminate",
        "openssl is still open and SAST has an error: {d}"
    );

    // A newer Syft SBOM carries an AGPL expression: the license rule fails.
    let mut syft: Value = serde_json::from_slice(&fixture("syft-payments.cdx.json")).unwrap();
    syft["metadata"]["timestamp"] = "2026-11-29T09:30:00Z".into();
    let (status, body) = submit(&app, "sbom", DIGEST, syft.to_string().into_bytes()).await;
    assert_eq!(status, 201, "{body}");
    let d = check(&app, "f-3").await;
    assert!(
        d["evidence"]["sbom"]["licenses"]
            .as_array()
            .unwrap()
            .contains(&json!("AGPL-3.0-only OR MIT")),
        "{d}"
    );
    let r = result(&d, "no-copyleft");
    assert_eq!(r["outcome"], "fail", "{r}");
    // The newest SBOM (Syft's) has no vulnerabilities section: its findings are unknown, so the
    // critical rule is missing evidence, never a pass.
    let r = result(&d, "no-open-critical-findings");
    assert_eq!(r["outcome"], "missing", "{r}");
}
