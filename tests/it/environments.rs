//! Declared environments: a check for an environment nobody declared is refused on every path
//! that creates checks (nothing stored, the declared list named), declared tiers decide which
//! rules apply, and a check no rule applies to answers `gate.no_rules_verdict`.

use portcullis::auth::Role;
use portcullis::domain::{EnvironmentDecl, Tier, Verdict};
use portcullis::pb;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::app::digest;
use crate::support::fixtures::good_check;
use crate::support::fixtures::grpc_check;
use crate::support::fixtures::portcullis;
use crate::support::{Answer, TestApp};

/// The look-alikes of production that used to continue past every production rule.
const LOOKALIKES: [&str; 4] = ["prd", "live", "production-eu", "prod_eu"];

async fn stored(app: &TestApp) -> usize {
    let list = app.decisions(None, "").await.json_with(StatusCode::OK);
    list["decisions"].as_array().unwrap().len()
}

async fn refused_with_the_list(resp: reqwest::Response, env: &str) {
    let resp = Answer::read(format!("a check to `{env}`"), resp)
        .await
        .expect(StatusCode::BAD_REQUEST);
    assert_eq!(resp.header("content-type"), "application/problem+json");
    let p = resp.json_with(StatusCode::BAD_REQUEST);
    assert_eq!(p["field"], "environment", "{p}");
    let detail = p["detail"].as_str().unwrap_or_default().to_string()
        + p["title"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!("`{env}` is not a declared environment")),
        "{p}"
    );
    assert!(detail.contains("prod, production, prod-*"), "{p}");
    assert!(
        p["help"].as_str().unwrap().contains("gate.environments"),
        "{p}"
    );
}

#[tokio::test]
async fn undeclared_environments_are_refused_over_http_and_grpc_and_nothing_is_stored() {
    let app = TestApp::builder().spawn().await;
    for env in LOOKALIKES {
        let mut body = good_check(&format!("k-{env}"));
        body["environment"] = json!(env);
        refused_with_the_list(app.post_check(&body).await, env).await;

        let mut client = pb::gate_client::GateClient::connect(app.grpc_url())
            .await
            .unwrap();
        let mut req = grpc_check(&format!("g-{env}"));
        req.environment = env.to_string();
        let status = client.check(req).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{env}");
        assert!(
            status
                .message()
                .contains(&format!("`{env}` is not a declared environment")),
            "{status:?}"
        );
    }
    assert_eq!(stored(&app).await, 0, "nothing stored for a refused check");

    // The same key for a declared environment is then answered normally.
    let resp = app.post_check(&good_check("k-prd")).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(stored(&app).await, 1);
}

#[tokio::test]
async fn undeclared_environments_are_refused_by_the_caller_contracts() {
    let app = TestApp::builder()
        .token("pipeline", "pc_pipe", vec![Role::Pipeline])
        .token("audit", "pc_audit", vec![Role::Auditor])
        .spawn()
        .await;
    let image = format!("ghcr.io/acme/payments@{}", digest('5'));
    let post = |path: &str, body: Value| {
        app.http
            .post(app.url(path))
            .bearer_auth("pc_pipe")
            .json(&body)
            .send()
    };
    let spinnaker = json!({
        "gate": "production", "environment": "prd", "requestId": "r-1",
        "application": "payments", "pipeline": "deploy", "executionId": "01HXEXEC",
        "images": image, "changeRefs": "CHG0030001",
    });
    // Orca shows its own error shape: `{error, message, field}`.
    let e = Answer::read(
        "POST /v1/spinnaker/gates",
        post("/v1/spinnaker/gates", spinnaker).await.unwrap(),
    )
    .await
    .json_with(StatusCode::BAD_REQUEST);
    assert_eq!(e["error"], "request.invalid", "{e}");
    assert_eq!(e["field"], "environment", "{e}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("`prd` is not a declared environment (declared: prod, production, prod-*"),
        "{e}"
    );
    assert!(message.contains("gate.environments"), "{e}");
    let rollouts = json!({
        "source": "argo-rollouts", "app": "payments", "environment": "live",
        "namespace": "payments", "rollout": "payments-api", "image": image,
        "podTemplateHash": "5d4f8c7b9", "rolloutRevision": "3",
    });
    refused_with_the_list(post("/v1/analysis", rollouts).await.unwrap(), "live").await;
    let servicenow = json!({
        "number": "CHG0040001", "sys_id": "a9e30c7dc61122760116894de7bcc7bd",
        "cmdb_ci": "payments", "environment": "production-eu",
        "artifacts": [image], "requested_by": "alice",
    });
    refused_with_the_list(
        post("/v1/servicenow/change-check", servicenow)
            .await
            .unwrap(),
        "production-eu",
    )
    .await;
    let list = app
        .decisions(Some("pc_audit"), "")
        .await
        .json_with(StatusCode::OK);
    assert_eq!(list["decisions"], json!([]));
}

/// Stops production deploys that name no change; applies by tier, not by name.
const PROD_NEEDS_CHANGE: &str = "rules:\n  - id: prod-change\n    title: Production names a change\n    severity: critical\n    applies_to: {tiers: [production]}\n    condition: {path: \"$.request.change_refs.servicenow_changes[*]\", op: exists}\n";

#[tokio::test]
async fn a_newly_declared_production_environment_is_covered_through_its_tier() {
    let mut builder = TestApp::builder().policies(&[("p.yaml", PROD_NEEDS_CHANGE)]);
    builder = builder.environments(vec![
        EnvironmentDecl {
            name: "live".into(),
            tier: Tier::Production,
        },
        EnvironmentDecl {
            name: "dev".into(),
            tier: Tier::Development,
        },
    ]);
    let app = builder.spawn().await;
    let mut body = good_check("live-1");
    body["environment"] = json!("live");
    body["change_refs"] = json!({"jira_keys": [], "servicenow_changes": []});
    let d = app.check(&body).await.json_with(StatusCode::CREATED);
    assert_eq!(d["verdict"], "terminate", "{d}");
    assert_eq!(d["rule_results"][0]["rule_id"], "prod-change", "{d}");

    // `prod` is not in this gate's list, so it is refused like any undeclared name.
    let p = app
        .check(&good_check("prod-1"))
        .await
        .json_with(StatusCode::BAD_REQUEST);
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("(declared: live, dev)"),
        "{p}"
    );
}

#[tokio::test]
async fn a_check_no_rule_applies_to_answers_the_configured_verdict_and_says_so() {
    for (configured, want) in [
        (None, "manual_review"),
        (Some(Verdict::Terminate), "terminate"),
    ] {
        let mut builder = TestApp::builder().policies(&[("p.yaml", PROD_NEEDS_CHANGE)]);
        if let Some(v) = configured {
            builder = builder.no_rules_verdict(v);
        }
        let app = builder.spawn().await;
        let mut body = good_check("dev-1");
        body["environment"] = json!("dev");
        let d = app.check(&body).await.json_with(StatusCode::CREATED);
        assert_eq!(d["verdict"], want, "{d}");
        let results = d["rule_results"].as_array().unwrap();
        assert_eq!(results.len(), 1, "{d}");
        assert_eq!(results[0]["rule_id"], "no-applicable-rule", "{d}");
        assert_eq!(results[0]["effect"], want, "{d}");
        let reason = results[0]["reason"].as_str().unwrap();
        assert!(
            reason.contains("no policy rule applies to `payments` in `dev`"),
            "{reason}"
        );
        assert!(reason.contains("gate.no_rules_verdict"), "{reason}");
    }
}

#[tokio::test]
async fn the_cli_refuses_undeclared_environments_and_unprotected_keys_and_lints_empty_sets() {
    let app = TestApp::builder().spawn().await;
    let image = format!("ghcr.io/acme/payments@{}", digest('e'));
    let out = portcullis(&[
        "check",
        "--server",
        &app.grpc_url(),
        "-a",
        "payments",
        "-e",
        "prd",
        "--image",
        &image,
        "--deadline",
        "5s",
    ])
    .await;
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "bad input: {all}");
    assert!(all.contains("`prd` is not a declared environment"), "{all}");
    assert_eq!(stored(&app).await, 0);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.yaml");
    std::fs::write(&config, "review:\n  approvals:\n    prd: {required: 2}\n").unwrap();
    let out = portcullis(&["config", "check", config.to_str().unwrap()]).await;
    let all =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("review.approvals.prd"), "{all}");

    let policies = dir.path().join("policies");
    std::fs::create_dir(&policies).unwrap();
    std::fs::write(policies.join("p.yaml"), "rules: []\n").unwrap();
    let out = portcullis(&["policy", "lint", policies.to_str().unwrap()]).await;
    let all =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(6), "{all}");
    assert!(
        all.contains("p.yaml:1:1: error: the policy set has no rules"),
        "{all}"
    );
}
