//! The built binary, run as a pipeline job would run it.

use std::process::Output;

use crate::support::app::digest;
use crate::support::fake_tool::refused_addr;
use crate::support::spawn_app;

pub async fn portcullis(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env_remove("PORTCULLIS_TOKEN")
        .env_remove("PORTCULLIS_SERVER")
        .output()
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test]
async fn check_prints_a_verdict_and_exits_with_its_code() {
    let app = spawn_app().await;
    let image = format!("ghcr.io/acme/payments@{}", digest('e'));
    let server = app.grpc_url();
    let out = portcullis(&[
        "check",
        "--server",
        &server,
        "-a",
        "payments",
        "-e",
        "staging",
        "--image",
        &image,
        "--deadline",
        "2s",
        "--termination-log",
        "/nonexistent-dir/termination-log",
    ])
    .await;
    let code = out.status.code().unwrap();
    let all = text(&out);
    assert!(all.contains("verdict:"), "{all}");
    assert!(all.contains("decision:"), "{all}");
    // Never 0 unless the printed verdict is continue.
    if code == 0 {
        assert!(all.contains("verdict:  continue"), "{all}");
    } else {
        assert!([3, 4].contains(&code), "exit {code}: {all}");
    }
}

#[tokio::test]
async fn check_without_a_service_exits_unreachable() {
    let addr = refused_addr().await;
    let out = portcullis(&[
        "check",
        "--server",
        &format!("http://{addr}"),
        "-a",
        "payments",
        "-e",
        "prod",
        "--deadline",
        "1s",
    ])
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
}

#[tokio::test]
async fn check_with_bad_input_exits_bad_input() {
    let app = spawn_app().await;
    let out = portcullis(&[
        "check",
        "--server",
        &app.grpc_url(),
        "-a",
        "payments",
        "-e",
        "PROD",
        "--deadline",
        "2s",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("environment"), "{}", text(&out));
}

#[tokio::test]
async fn config_check_accepts_good_files_and_names_bad_keys() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "server:\n  http_addr: 127.0.0.1:18080\n").unwrap();
    let out = portcullis(&["config", "check", good.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "gate:\n  evidence_dedline: 5s\n").unwrap();
    let out = portcullis(&["config", "check", bad.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("evidence_dedline"), "{}", text(&out));
}

#[tokio::test]
async fn token_generate_prints_a_hash_that_authenticates() {
    let out = portcullis(&["token", "generate", "--name", "ci", "--roles", "pipeline"]).await;
    assert_eq!(out.status.code(), Some(0));
    let all = text(&out);
    let token = all
        .split_whitespace()
        .find(|w| w.starts_with("pc_"))
        .unwrap();
    let hash = portcullis::auth::hash_token(token);
    assert!(all.contains(&hash), "{all}");
}

#[tokio::test]
async fn policy_lint_passes_good_policies_and_locates_broken_ones() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let good = root.join("tests/policy_cases/policies/good");
    let out = portcullis(&["policy", "lint", good.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "rules:\n  - id: x\n    title: X\n    severity: high\n    condition: { path: $.request.application, op: resembles, value: 1 }\n",
    )
    .unwrap();
    let out = portcullis(&["policy", "lint", dir.path().to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let all = text(&out);
    assert!(
        all.contains("bad.yaml:5:"),
        "errors carry file:line:col: {all}"
    );
    assert!(all.contains("resembles"), "{all}");

    let out = portcullis(&[
        "policy",
        "lint",
        dir.path().to_str().unwrap(),
        "--format",
        "json",
    ])
    .await;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["diagnostics"][0]["line"], 5, "{json}");
}

#[tokio::test]
async fn policy_test_runs_case_files() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = root.join("src/policy/builtin/supply-chain.cases.yaml");
    let out = portcullis(&["policy", "test", cases.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let dir = tempfile::tempdir().unwrap();
    let failing = dir.path().join("wrong.cases.yaml");
    std::fs::write(
        &failing,
        "cases:\n  - note: an unpinned image cannot continue, so this case must fail\n    evidence:\n      request:\n        images: [{reference: ghcr.io/acme/a:latest, pinned: false}]\n    want_verdict: continue\n",
    )
    .unwrap();
    let out = portcullis(&["policy", "test", failing.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
}
