//! The built binary, run as a pipeline job would run it.

use std::process::Output;

use crate::support::app::digest;
use crate::support::fake_tool::refused_addr;
use crate::support::fixtures::portcullis;
use crate::support::spawn_app;

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
    let key = dir.path().join("audit-key.pem");
    std::fs::write(&key, crate::support::TEST_SIGNING_KEY).unwrap();
    std::fs::write(
        &good,
        format!(
            "server:\n  http_addr: 127.0.0.1:18080\naudit:\n  signing_key: {{file: {}}}\n",
            key.display()
        ),
    )
    .unwrap();
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
async fn policy_lint_with_a_config_knows_its_adapter_instances() {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    let rule = |id: &str, path: &str| {
        format!(
            "rules:\n  - id: {id}\n    title: T\n    severity: high\n    description: d\n    remediation: r\n    condition: {{ path: {path}, op: exists }}\n"
        )
    };
    std::fs::write(policies.join("a.yaml"), rule("scanned", "$.scans.ok")).unwrap();
    let config = dir.path().join("portcullis.yaml");
    std::fs::write(
        &config,
        format!(
            "adapters:\n  - kind: trivy\n    name: scans\n    reports_dir: {}\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let lint = |extra: &[&str]| {
        let mut args = vec!["policy", "lint", policies.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        portcullis(&args).await
    };

    // Without the configuration `scans` is no namespace lint knows of.
    let out = run(lint(&[])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("unknown evidence namespace `scans`"),
        "{}",
        text(&out)
    );

    // With it, a rule reading a configured instance lints clean.
    let out = run(lint(&["--config", config.to_str().unwrap()])).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("scans`"), "{}", text(&out));

    // A rule reading an instance the configuration lacks is an error, located and explained.
    std::fs::write(policies.join("b.yaml"), rule("sonar", "$.sonar.ok")).unwrap();
    let out = run(lint(&["--config", config.to_str().unwrap()])).await;
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("b.yaml:7:"), "{all}");
    assert!(all.contains("no adapter instance named `sonar`"), "{all}");
    assert!(all.contains("configured instances: scans"), "{all}");

    // A configuration that does not load is bad input, not a lint result.
    let out = run(lint(&[
        "--config",
        dir.path().join("missing.yaml").to_str().unwrap(),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
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

const CONTINUE: &str = "rules:\n  - id: always\n    title: Always\n    category: test\n    severity: low\n    condition: { path: $.request.application, op: exists }\n";
const PINNED: &str = "rules:\n  - id: pinned\n    title: Pinned\n    category: test\n    severity: critical\n    condition: { path: \"$.request.images[*].pinned\", op: \"==\", value: true }\n";

async fn check_json(server: &str, image: &str, attempt: &str) -> (i32, serde_json::Value) {
    let out = portcullis(&[
        "check",
        "--server",
        server,
        "-a",
        "payments",
        "-e",
        "prod",
        "--image",
        image,
        "--revision",
        "0123456789abcdef0123456789abcdef01234567",
        "--attempt-id",
        attempt,
        "--deadline",
        "3s",
        "--json",
    ])
    .await;
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap(), json)
}

#[tokio::test]
async fn each_verdict_has_its_exit_code() {
    let pinned = format!("ghcr.io/acme/payments@{}", digest('c'));
    let app = crate::support::TestApp::builder()
        .policies(&[("p.yaml", CONTINUE)])
        .spawn()
        .await;
    let (code, d) = check_json(&app.grpc_url(), &pinned, "job-1").await;
    assert_eq!((code, d["verdict"].as_str()), (0, Some("continue")), "{d}");

    let app = crate::support::TestApp::builder()
        .policies(&[("p.yaml", PINNED)])
        .spawn()
        .await;
    let (code, d) = check_json(&app.grpc_url(), "ghcr.io/acme/payments:latest", "job-1").await;
    assert_eq!((code, d["verdict"].as_str()), (3, Some("terminate")), "{d}");
}

#[tokio::test]
async fn a_rerun_of_the_same_job_reattaches_to_the_same_decision() {
    let pinned = format!("ghcr.io/acme/payments@{}", digest('d'));
    let app = crate::support::TestApp::builder()
        .policies(&[("p.yaml", CONTINUE)])
        .spawn()
        .await;
    let (_, first) = check_json(&app.grpc_url(), &pinned, "payments-gate-abc12").await;
    let (_, again) = check_json(&app.grpc_url(), &pinned, "payments-gate-abc12").await;
    assert_eq!(first["id"], again["id"]);
    let (_, next_op) = check_json(&app.grpc_url(), &pinned, "payments-gate-def34").await;
    assert_ne!(first["id"], next_op["id"]);
}

#[tokio::test]
async fn the_termination_message_is_written() {
    let app = crate::support::TestApp::builder()
        .policies(&[("p.yaml", PINNED)])
        .spawn()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let out = portcullis(&[
        "check",
        "--server",
        &app.grpc_url(),
        "-a",
        "payments",
        "-e",
        "prod",
        "--image",
        "nginx:1",
        "--deadline",
        "3s",
        "--termination-log",
        log.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(3));
    let line = std::fs::read_to_string(&log).unwrap();
    assert!(
        line.contains("terminate") && line.contains("pinned"),
        "{line}"
    );
    assert!(!line.contains('\n'), "one line: {line:?}");
}

#[tokio::test]
async fn a_review_still_pending_at_the_deadline_exits_4() {
    let review = "rules:\n  - id: review\n    title: Review\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n";
    let app = crate::support::TestApp::builder()
        .policies(&[("p.yaml", review)])
        .spawn()
        .await;
    let image = format!("ghcr.io/acme/payments@{}", digest('4'));
    let out = portcullis(&[
        "check",
        "--server",
        &app.grpc_url(),
        "-a",
        "payments",
        "-e",
        "prod",
        "--image",
        &image,
        "--deadline",
        "1s",
    ])
    .await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        text(&out).contains("still pending at the deadline"),
        "{}",
        text(&out)
    );
}

#[tokio::test]
async fn a_revision_without_a_repository_is_kept() {
    let pinned = format!("ghcr.io/acme/payments@{}", digest('e'));
    let app = crate::support::TestApp::builder()
        .policies(&[("p.yaml", CONTINUE)])
        .spawn()
        .await;
    let (code, d) = check_json(&app.grpc_url(), &pinned, "job-revision").await;
    assert_eq!(code, 0, "{d}");
    let id = d["id"].as_str().unwrap();
    let stored = app.decision(id).await.json_with(reqwest::StatusCode::OK);
    assert_eq!(
        stored["request"]["sources"][0]["commit"], "0123456789abcdef0123456789abcdef01234567",
        "{stored}"
    );
    assert_eq!(
        stored["request"]["sources"][0]["repository"], "",
        "{stored}"
    );
}

/// An unreachable service is reported at once and on every heartbeat, and the check gives up
/// after the connect window (exit 5), not at the review deadline.
#[tokio::test]
async fn check_against_an_unreachable_service_says_so_and_gives_up_after_the_connect_window() {
    let addr = refused_addr().await;
    let out = portcullis(&[
        "check",
        "--server",
        &format!("http://{addr}"),
        "-a",
        "payments",
        "-e",
        "prod",
        "--attempt-id",
        "hook-1",
        "--deadline",
        "15m",
        "--connect-window",
        "1s",
        "--heartbeat",
        "100ms",
        "--termination-log",
        "/nonexistent-dir/termination-log",
    ])
    .await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(5), "{all}");
    let said = all.matches("cannot reach the service at").count();
    assert!(said >= 1, "{all}");
    assert!(all.contains(&addr.to_string()), "{all}");
}

#[tokio::test]
async fn check_talks_to_a_tls_service_with_its_ca() {
    use crate::support::tls::{Ca, write_ca};
    let ca = Ca::new("Acme Private Root");
    let files = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = ca.server().write(files.path(), "server");
    let ca_file = write_ca(&ca, files.path(), "ca");
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = crate::support::TestApp::builder().settings(dir.path());
    settings.server.tls = Some(portcullis::tls::ServerTlsConfig {
        cert_file,
        key_file,
        client_ca_file: None,
        client_auth: None,
        reload_interval: std::time::Duration::from_secs(60),
    });
    let app = crate::support::app::start(settings, dir, None).await;
    let server = format!("https://localhost:{}", app.grpc_addr.port());
    let image = format!("ghcr.io/acme/payments@{}", digest('e'));
    let args = |ca: Option<&str>| {
        let mut a = vec![
            "check".to_string(),
            "--server".into(),
            server.clone(),
            "-a".into(),
            "payments".into(),
            "-e".into(),
            "staging".into(),
            "--image".into(),
            image.clone(),
            "--deadline".into(),
            "2s".into(),
            "--connect-window".into(),
            "1s".into(),
            "--termination-log".into(),
            "/nonexistent-dir/termination-log".into(),
        ];
        if let Some(ca) = ca {
            a.push("--ca-cert".into());
            a.push(ca.to_string());
        }
        a
    };
    let with_ca = args(Some(ca_file.to_str().unwrap()));
    let out = portcullis(&with_ca.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let all = text(&out);
    assert!(all.contains("verdict:"), "{all}");
    assert!(all.contains("decision:"), "{all}");

    let without = args(None);
    let out = portcullis(&without.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let all = text(&out);
    assert_eq!(out.status.code(), Some(5), "{all}");
    assert!(all.contains("untrusted issuer"), "{all}");
}
