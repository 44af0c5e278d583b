//! Fixtures shared by the test modules: the checks, requests and reports tests send, and the
//! built CLI binary. They live here once so that no test module imports from a sibling one
//! (`architecture::test_modules_import_fixtures_only_from_support`).

use std::process::Output;

use portcullis::domain::{CallerKind, CheckRequest, CheckRequestDraft, ImageDraft, SourceDraft};
use portcullis::pb;
use serde_json::{Value, json};

use crate::support::app::digest;

/// A well-formed check over HTTP/JSON (payments to prod, one pinned image, one commit, Jira and
/// ServiceNow references), unique by `key`.
pub fn good_check(key: &str) -> Value {
    json!({
        "application": "payments",
        "environment": "prod",
        "images": [format!("ghcr.io/acme/payments:1.4.2@{}", digest('a'))],
        "sources": [{"repository": "github.com/acme/payments", "commit": "0123456789abcdef0123456789abcdef01234567"}],
        "caller": {"kind": "spinnaker", "ids": {"execution_id": "01HX"}},
        "triggered_by": "alice",
        "change_refs": {"jira_keys": ["OPS-1"], "servicenow_changes": ["CHG0030001"]},
        "labels": {"team": "payments"},
        "idempotency_key": key,
    })
}

/// [`good_check`] as a gRPC request.
pub fn grpc_check(key: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        application: "payments".into(),
        environment: "prod".into(),
        images: vec![pb::Image {
            reference: format!("ghcr.io/acme/payments:1.4.2@{}", digest('a')),
            ..Default::default()
        }],
        sources: vec![pb::SourceRevision {
            repository: "github.com/acme/payments".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            branch: String::new(),
            author: String::new(),
        }],
        caller: Some(pb::Caller {
            kind: pb::CallerKind::Spinnaker as i32,
            ids: [("execution_id".to_string(), "01HX".to_string())]
                .into_iter()
                .collect(),
        }),
        triggered_by: "alice".into(),
        change_refs: Some(pb::ChangeRefs {
            jira_keys: vec!["OPS-1".into()],
            servicenow_changes: vec!["CHG0030001".into()],
        }),
        labels: [("team".to_string(), "payments".to_string())]
            .into_iter()
            .collect(),
        idempotency_key: key.into(),
    }
}

/// A parsed check for the adapter suites (payments-api to prod from one commit), changed by `f`.
pub fn request(f: impl FnOnce(&mut CheckRequestDraft)) -> CheckRequest {
    let mut d = CheckRequestDraft {
        application: "payments-api".into(),
        environment: "prod".into(),
        sources: vec![SourceDraft {
            repository: "github.com/acme/payments-api".into(),
            commit: "0123abcd".into(),
            branch: "release/1.8".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    f(&mut d);
    d.parse(CallerKind::Api).unwrap()
}

/// An image draft naming `reference` and nothing else.
pub fn image(reference: &str) -> ImageDraft {
    ImageDraft {
        reference: reference.into(),
        ..Default::default()
    }
}

/// Runs the built `portcullis` binary with `args`, with no token or server from the environment.
pub async fn portcullis(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env_remove("PORTCULLIS_TOKEN")
        .env_remove("PORTCULLIS_SERVER")
        .output()
        .await
        .unwrap()
}

/// A Trivy report made at [`crate::support::t0`]: a service reading it must stand there too.
pub fn report(digest: &str, critical: bool) -> Value {
    let vulns = if critical {
        json!([{"VulnerabilityID": "CVE-2021-44228", "PkgName": "log4j-core", "InstalledVersion": "2.14.1",
                "FixedVersion": "2.15.0", "Severity": "CRITICAL", "Status": "fixed"}])
    } else {
        json!([])
    };
    json!({
        "SchemaVersion": 2,
        "CreatedAt": crate::support::t0().to_rfc3339(),
        "ArtifactName": "ghcr.io/acme/orders:2.0.0",
        "Metadata": {"OS": {"Family": "debian", "Name": "12"}, "RepoDigests": [format!("ghcr.io/acme/orders@{digest}")]},
        "Results": [{"Target": "app.jar", "Class": "lang-pkgs", "Type": "jar", "Vulnerabilities": vulns}],
    })
}
