//! Tests of `kind: sbom` over real-tool-shaped documents in `tests/fixtures/findings/`.
#![expect(clippy::unwrap_used, reason = "tests")]

use super::*;

const DIGEST: &str = "sha256:3f1a2b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f10";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/findings")
            .join(name),
    )
    .unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

fn inner(dir: &Path) -> Inner {
    Inner {
        name: "sbom".into(),
        dir: dir.to_path_buf(),
        max_age: default_max_age(),
        require_justification: true,
    }
}

fn facts(dir: &Path, at: DateTime<Utc>) -> Result<Value, AdapterError> {
    let i = inner(dir);
    let image = i.image_facts(DIGEST)?;
    document(vec![image], at, i.max_age, dir).map(|f| f.document)
}

fn ingest(dir: &Path, name: &str) -> Result<String, IngestError> {
    ingest_document(dir, DIGEST, &fixture(name), now(), &anyone())
}

#[test]
fn a_syft_cyclonedx_sbom_gives_components_and_licenses_but_no_findings() {
    let dir = tempfile::tempdir().unwrap();
    ingest(dir.path(), "syft-payments.cdx.json").unwrap();
    let f = facts(dir.path(), now()).unwrap();
    // metadata.component, five components and the one nested in log4j-core.
    assert_eq!(f["component_count"], 7, "{f}");
    let log4j = f["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "log4j-core")
        .unwrap();
    assert_eq!(
        log4j["purl"],
        "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
    );
    assert_eq!(log4j["group"], "org.apache.logging.log4j");
    assert_eq!(log4j["licenses"], json!(["Apache License, Version 2.0"]));
    assert!(
        f["components"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "log4j-api")
    );
    assert_eq!(
        f["licenses"],
        json!([
            "AGPL-3.0-only OR MIT",
            "Apache License, Version 2.0",
            "Apache-2.0",
            "GPL-2.0-only"
        ])
    );
    assert_eq!(f["images"][0]["format"], "cyclonedx");
    assert_eq!(f["images"][0]["spec_version"], "1.5");
    assert_eq!(f["images"][0]["tools"], json!(["syft 1.4.1"]));
    assert_eq!(f["images"][0]["has_vulnerabilities"], false);
    // No vulnerabilities section: findings are unknown, not zero.
    assert!(
        f.get("findings").is_none() && f.get("findings_summary").is_none(),
        "{f}"
    );
    assert_eq!(f["age_seconds"], 96_436);
}

#[test]
fn trivy_cyclonedx_vulnerabilities_become_findings_and_openvex_suppresses_only_its_product() {
    let dir = tempfile::tempdir().unwrap();
    ingest(dir.path(), "trivy-payments.cdx.json").unwrap();
    ingest(dir.path(), "openvex-payments.json").unwrap();
    let f = facts(dir.path(), now()).unwrap();
    let list = f["findings"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{f}");
    let by_id = |id: &str| list.iter().find(|x| x["id"] == id).unwrap();

    let log4j = by_id("CVE-2021-44228");
    assert_eq!(log4j["severity"], "critical");
    assert_eq!(log4j["tool"], "trivy 0.58.1");
    assert_eq!(
        log4j["aliases"],
        json!(["CVE-2021-44228", "GHSA-jfh8-c2jp-5v3q"])
    );
    assert_eq!(
        log4j["package"]["purl"],
        "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
    );
    assert_eq!(log4j["status"], "not_affected");
    assert_eq!(log4j["suppressed"], true);
    let by = &log4j["suppressed_by"];
    assert_eq!(by["source"], "openvex");
    assert_eq!(by["justification"], "vulnerable_code_not_in_execute_path");
    assert_eq!(by["author"], "Acme Payments Security <psirt@acme.example>");

    // The statement names another image (orders): it does not apply.
    let openssl = by_id("CVE-2024-5535");
    assert_eq!(
        openssl["severity"], "critical",
        "the most severe rating wins"
    );
    assert_eq!(openssl["status"], "open");
    // `not_affected` with only an impact statement: reported, ignored.
    let busybox = by_id("CVE-2023-42365");
    assert_eq!(busybox["severity"], "medium", "from the CVSS score alone");
    assert_eq!(busybox["status"], "open");

    assert_eq!(f["findings_summary"]["open"]["critical"], 1);
    assert_eq!(f["findings_summary"]["all"]["critical"], 2);
    assert_eq!(f["findings_summary"]["suppressed"], 1);
    assert_eq!(f["vex"]["applied"], 1);
    assert_eq!(f["vex"]["unjustified"], 1);
    let reasons: Vec<&str> = f["vex"]["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "the statement is about another product",
            "`not_affected` without a justification"
        ]
    );
}

#[test]
fn an_spdx_sbom_reads_concluded_then_declared_licenses_and_noassertion_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    ingest(dir.path(), "syft-payments.spdx.json").unwrap();
    let f = facts(dir.path(), now()).unwrap();
    assert_eq!(f["images"][0]["format"], "spdx");
    assert_eq!(f["images"][0]["tools"], json!(["syft-1.4.1"]));
    let c = f["components"].as_array().unwrap();
    assert_eq!(c.len(), 3);
    assert_eq!(c[0]["name"], "busybox");
    assert_eq!(c[0]["licenses"], json!(["GPL-2.0-only"]));
    assert_eq!(c[0]["license_source"], "declared");
    assert_eq!(
        c[0]["purl"],
        "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1"
    );
    assert_eq!(c[1]["licenses"], json!([]));
    assert_eq!(c[1]["license_source"], Value::Null);
    assert_eq!(f["components_without_license"], 2);
    assert!(f.get("findings").is_none());
}

#[test]
fn documents_for_another_digest_future_dated_or_of_other_versions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let other = format!("sha256:{}", "b".repeat(64));
    for name in [
        "syft-payments.cdx.json",
        "syft-payments.spdx.json",
        "openvex-payments.json",
    ] {
        let e = ingest_document(dir.path(), &other, &fixture(name), now(), &anyone()).unwrap_err();
        assert!(e.to_string().contains(&other), "{name}: {e}");
    }
    let mut cdx: Value = serde_json::from_slice(&fixture("syft-payments.cdx.json")).unwrap();
    cdx["specVersion"] = "1.3".into();
    let e = ingest_document(
        dir.path(),
        DIGEST,
        cdx.to_string().as_bytes(),
        now(),
        &anyone(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("1.3"), "{e}");
    cdx["specVersion"] = "1.6".into();
    cdx["metadata"]["timestamp"] = "2099-01-01T00:00:00Z".into();
    let e = ingest_document(
        dir.path(),
        DIGEST,
        cdx.to_string().as_bytes(),
        now(),
        &anyone(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("future"), "{e}");
    cdx["metadata"].as_object_mut().unwrap().remove("timestamp");
    let e = ingest_document(
        dir.path(),
        DIGEST,
        cdx.to_string().as_bytes(),
        now(),
        &anyone(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("timestamp"), "{e}");
    let mut spdx: Value = serde_json::from_slice(&fixture("syft-payments.spdx.json")).unwrap();
    spdx["spdxVersion"] = "SPDX-2.2".into();
    let e = ingest_document(
        dir.path(),
        DIGEST,
        spdx.to_string().as_bytes(),
        now(),
        &anyone(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("SPDX-2.2"), "{e}");
    let e = ingest_document(
        dir.path(),
        DIGEST,
        br#"{"SchemaVersion": 2}"#,
        now(),
        &anyone(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("not CycloneDX"), "{e}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_stale_or_missing_sbom_is_not_evidence() {
    let dir = tempfile::tempdir().unwrap();
    ingest(dir.path(), "openvex-payments.json").unwrap();
    let e = facts(dir.path(), now()).unwrap_err();
    assert!(matches!(e, AdapterError::NotFound { .. }), "{e:?}");
    ingest(dir.path(), "syft-payments.cdx.json").unwrap();
    let later = now() + chrono::Duration::days(31);
    let e = facts(dir.path(), later).unwrap_err();
    assert!(e.to_string().contains("stale"), "{e}");
}

#[test]
fn cyclonedx_vex_applies_only_to_its_affects() {
    let dir = tempfile::tempdir().unwrap();
    ingest(dir.path(), "trivy-payments.cdx.json").unwrap();
    // A CycloneDX VEX about the same image, pointing into the SBOM by BOM-Link.
    let vex = json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "serialNumber": "urn:uuid:0c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f",
        "metadata": {"timestamp": "2026-11-29T11:00:00Z",
                     "component": {"bom-ref": "img", "type": "container", "name": "payments", "version": DIGEST}},
        "vulnerabilities": [
            {"id": "CVE-2024-5535", "analysis": {"state": "not_affected", "justification": "code_not_reachable",
                "detail": "NPN is not used"},
             "affects": [{"ref": "urn:cdx:4e0b1c7a-7f0c-4c55-8a0f-6d1c2b3a4f5e/1#pkg:apk/alpine/libcrypto3@3.1.4-r5?arch=x86_64&distro=3.19.1"}]},
            {"id": "CVE-2023-42365", "analysis": {"state": "not_affected", "justification": "code_not_reachable"},
             "affects": [{"ref": "urn:cdx:ffffffff-0000-0000-0000-000000000000/1#busybox"}]}
        ]
    });
    ingest_document(
        dir.path(),
        DIGEST,
        vex.to_string().as_bytes(),
        now(),
        &anyone(),
    )
    .unwrap();
    let f = facts(dir.path(), now()).unwrap();
    let list = f["findings"].as_array().unwrap();
    let by_id = |id: &str| list.iter().find(|x| x["id"] == id).unwrap();
    assert_eq!(by_id("CVE-2024-5535")["status"], "not_affected", "{f}");
    assert_eq!(
        by_id("CVE-2024-5535")["suppressed_by"]["source"],
        "cyclonedx_vex"
    );
    assert_eq!(
        by_id("CVE-2024-5535")["suppressed_by"]["impact_statement"],
        "NPN is not used"
    );
    // A BOM-Link into a BOM that is not stored is dangling: nothing is suppressed.
    assert_eq!(by_id("CVE-2023-42365")["status"], "open");
}

fn anyone() -> Submission {
    Submission {
        submitted_by: "ci".into(),
        submitted_at: now(),
        may_deploy: Arc::new(|_| true),
        any_image: true,
    }
}

fn only(prefix: &'static str) -> Submission {
    Submission {
        may_deploy: Arc::new(move |i: &ImageRef| {
            format!("{}/{}", i.registry, i.repository).starts_with(prefix)
        }),
        any_image: false,
        ..anyone()
    }
}

#[test]
fn a_document_is_accepted_only_for_an_image_repository_the_token_may_deploy() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "syft-payments.cdx.json",
        "trivy-payments.cdx.json",
        "syft-payments.spdx.json",
        "openvex-payments.json",
    ] {
        let body = fixture(name);
        let e = ingest_document(dir.path(), DIGEST, &body, now(), &only("ghcr.io/team-b/"))
            .unwrap_err();
        assert!(matches!(e, IngestError::OutOfScope { .. }), "{name}: {e}");
        assert!(
            e.to_string().contains("ghcr.io/acme/payments"),
            "{name}: {e}"
        );
        ingest_document(dir.path(), DIGEST, &body, now(), &only("ghcr.io/acme/")).unwrap();
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
}

#[test]
fn a_document_naming_no_repository_needs_a_token_whose_images_are_not_narrowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut cdx: Value = serde_json::from_slice(&fixture("syft-payments.cdx.json")).unwrap();
    cdx["metadata"]["component"]["name"] = json!("payments");
    let body = cdx.to_string();
    let e = ingest_document(
        dir.path(),
        DIGEST,
        body.as_bytes(),
        now(),
        &only("ghcr.io/acme/"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("names none"), "{e}");
    ingest_document(dir.path(), DIGEST, body.as_bytes(), now(), &anyone()).unwrap();
}

#[test]
fn subject_identities_name_repositories_by_reference_and_purl() {
    let repo = |id: &str| subject_image(id).map(|i| format!("{}/{}", i.registry, i.repository));
    assert_eq!(
        repo("pkg:oci/payments@sha256%3Aab?repository_url=ghcr.io%2Facme%2Fpayments").as_deref(),
        Some("ghcr.io/acme/payments")
    );
    assert_eq!(
        repo("pkg:docker/acme/payments@sha256%3Aab").as_deref(),
        Some("docker.io/acme/payments")
    );
    assert_eq!(
        repo("pkg:docker/acme/payments@1.2?repository_url=registry.acme.internal:5000").as_deref(),
        Some("registry.acme.internal:5000/acme/payments")
    );
    assert_eq!(
        repo("ghcr.io/acme/payments:1.2").as_deref(),
        Some("ghcr.io/acme/payments")
    );
    // No repository: a bare pkg:oci name, a bare image name, a maven purl.
    assert_eq!(repo("pkg:oci/payments@sha256%3Aab"), None);
    assert_eq!(repo("payments"), None);
    assert_eq!(repo("pkg:maven/org.apache/log4j@2.14.1"), None);
}
