//! Policies hot-reload: a good edit is picked up, a broken edit is rejected and the last good set
//! stays active.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::TestApp;
use crate::support::fixtures::good_check;
use crate::support::poll::eventually;

const ALLOW: &str = r#"
rules:
  - id: always
    title: Always passes
    category: test
    severity: low
    condition: { path: $.request.application, op: exists }
"#;

const BLOCK: &str = r#"
rules:
  - id: prod-is-closed
    title: Production is closed
    category: test
    severity: critical
    applies_to: { environments: [prod] }
    condition: { path: $.request.environment, op: "!=", value: prod }
"#;

async fn policy_version(app: &TestApp) -> String {
    let ready = app.readyz().await.json_with(StatusCode::OK);
    ready["policy_version"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn edits_are_picked_up_and_broken_edits_keep_the_last_good_set() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", ALLOW)])
        .spawn()
        .await;
    let first: Value = app
        .post_check(&good_check("r1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["verdict"], "continue", "{first}");
    let v1 = policy_version(&app).await;
    let file = app.settings.policy.dir.clone().unwrap().join("p.yaml");

    std::fs::write(&file, BLOCK).unwrap();
    let v2 = eventually(
        Duration::from_secs(10),
        "the edited policy to load",
        || async {
            let v = policy_version(&app).await;
            (v != v1).then_some(v)
        },
    )
    .await;
    let second: Value = app
        .post_check(&good_check("r2"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["verdict"], "terminate", "{second}");
    assert_eq!(second["policy_version"], v2.as_str());

    // A broken edit: the service keeps answering with the last good set.
    std::fs::write(
        &file,
        "rules:\n  - id: broken\n    severity: catastrophic\n",
    )
    .unwrap();
    // Once the reloader has read the broken edit (it says so on /readyz), it has kept v2.
    eventually(
        Duration::from_secs(10),
        "the broken edit to be rejected",
        || async {
            let ready = app.readyz().await.json_with(StatusCode::OK);
            ready["policy_rejected_edit"].as_array().cloned()
        },
    )
    .await;
    assert_eq!(policy_version(&app).await, v2);
    let third: Value = app
        .post_check(&good_check("r3"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(third["verdict"], "terminate");
}

#[tokio::test]
async fn an_empty_policy_set_refuses_to_start() {
    let only_comments = "# - id: r\n#   title: T\nrules: []\n";
    for files in [
        vec![("p.yaml", "rules: []\n")],
        vec![("a.yaml", only_comments), ("b.yaml", "rules: []\n")],
    ] {
        let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
        let settings = TestApp::builder().policies(&files).settings(dir.path());
        let err = portcullis::serve::App::build(settings)
            .await
            .err()
            .expect("an empty policy set must not start");
        let msg = err.to_string();
        assert!(msg.contains("the policy set does not load"), "{msg}");
        assert!(msg.contains("the policy set has no rules"), "{msg}");
    }
}

#[tokio::test]
async fn a_reload_to_an_empty_set_keeps_the_last_good_set_and_readyz_says_why() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", BLOCK)])
        .spawn()
        .await;
    let v1 = policy_version(&app).await;
    let file = app.settings.policy.dir.clone().unwrap().join("p.yaml");
    std::fs::write(&file, "rules: []\n").unwrap();
    let why = eventually(
        Duration::from_secs(10),
        "the empty edit to be rejected",
        || async {
            let ready = app.get_as(None, "/readyz").await.json_with(StatusCode::OK);
            ready["policy_rejected_edit"].as_array().cloned()
        },
    )
    .await;
    assert!(
        why[0]
            .as_str()
            .unwrap()
            .contains("the policy set has no rules"),
        "{why:?}"
    );
    assert_eq!(policy_version(&app).await, v1);
    let d = app
        .check(&good_check("after-empty"))
        .await
        .json_with(StatusCode::CREATED);
    assert_eq!(
        d["verdict"], "terminate",
        "the blocking rule still applies: {d}"
    );
    assert_eq!(d["policy_version"], v1.as_str());
}
