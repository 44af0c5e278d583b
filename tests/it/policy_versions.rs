//! Policy text kept: a decision's `policy_version` can be read back over HTTP and gRPC as the
//! files it is the digest of (recomputed here the way `docs/audit.md` tells a verifier to),
//! by auditors and approvers only; every version that decided stays readable after a reload;
//! and a check whose policy text cannot be stored fails closed.

use std::time::Duration;

use portcullis::auth::Role;
use portcullis::pb;
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::support::TestApp;
use crate::support::fixtures::good_check;
use crate::support::poll::eventually;

const ALLOW: &str = "rules:\n  - id: always\n    title: Always passes\n    category: test\n    severity: low\n    condition: { path: $.request.application, op: exists }\n";

const BLOCK: &str = "rules:\n  - id: prod-is-closed\n    title: Production is closed\n    category: test\n    severity: critical\n    applies_to: { environments: [prod] }\n    condition: { path: $.request.environment, op: \"!=\", value: prod }\n";

/// Not a policy file: it must not be part of the stored text.
const CASES: &str = "cases: []\n";

/// A service on a policy directory, with a pipeline token (the helpers' default), an auditor,
/// an approver and an admin.
async fn app() -> TestApp {
    TestApp::builder()
        .policies(&[("p.yaml", ALLOW), ("p.cases.yaml", CASES)])
        .token("ci", "pc_ci", vec![Role::Pipeline])
        .token("audit", "pc_audit", vec![Role::Auditor])
        .token("approver", "pc_approver", vec![Role::Approver])
        .token("root", "pc_root", vec![Role::Admin])
        .spawn()
        .await
}

/// The version a verifier computes from a served text: SHA-256 over the files in path order,
/// each as u64-LE length + path, u64-LE length + content (`docs/audit.md`, "Policy versions").
fn recompute(text: &Value) -> String {
    let mut files: Vec<(&str, &str)> = text["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["content"].as_str().unwrap()))
        .collect();
    files.sort();
    let mut h = Sha256::new();
    for (path, content) in files {
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update((content.len() as u64).to_le_bytes());
        h.update(content.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

async fn policy_text(app: &TestApp, token: &str, version: &str) -> crate::support::Answer {
    app.policy_version(Some(token), version).await
}

async fn grpc_as(
    app: &TestApp,
    token: &'static str,
) -> pb::gate_client::GateClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        impl tonic::service::Interceptor,
    >,
> {
    let channel = tonic::transport::Endpoint::from_shared(app.grpc_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    pb::gate_client::GateClient::with_interceptor(channel, move |mut r: tonic::Request<()>| {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        Ok(r)
    })
}

async fn ready_version(app: &TestApp) -> String {
    let ready = app.get_as(None, "/readyz").await.json_with(StatusCode::OK);
    ready["policy_version"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn a_decisions_policy_text_is_served_to_auditors_over_http_and_grpc() {
    let app = app().await;
    let d = app
        .check(&good_check("pv-1"))
        .await
        .json_with(StatusCode::CREATED);
    let version = d["policy_version"].as_str().unwrap().to_string();

    let text = policy_text(&app, "pc_audit", &version)
        .await
        .json_with(StatusCode::OK);
    assert_eq!(text["version"], version.as_str());
    assert_eq!(
        text["files"],
        serde_json::json!([{"path": "p.yaml", "content": ALLOW}]),
        "exactly the policy files, byte for byte (no case files)"
    );
    assert_eq!(recompute(&text), version, "the files reproduce the digest");
    let stored_at = text["stored_at"].as_str().unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(stored_at).is_ok(),
        "{stored_at}"
    );

    // Approvers and admins read it too, and get the same text.
    for token in ["pc_approver", "pc_root"] {
        let again = policy_text(&app, token, &version)
            .await
            .json_with(StatusCode::OK);
        assert_eq!(again, text, "{token}");
    }

    // A pipeline's token acts on verdicts; it does not read the rules.
    let refused = policy_text(&app, "pc_ci", &version)
        .await
        .json_with(StatusCode::FORBIDDEN);
    assert_eq!(refused["reason_code"], "auth.forbidden", "{refused}");

    // A version nobody stored, and something that is not a version at all.
    let unknown = format!("sha256:{}", "0".repeat(64));
    let missing = policy_text(&app, "pc_audit", &unknown)
        .await
        .json_with(StatusCode::NOT_FOUND);
    assert_eq!(
        missing["reason_code"], "policy.version_unknown",
        "{missing}"
    );
    assert!(missing["help"].as_str().is_some(), "{missing}");
    for bad in ["latest", "sha256:abc", &version.to_uppercase()] {
        let invalid = policy_text(&app, "pc_audit", bad)
            .await
            .json_with(StatusCode::BAD_REQUEST);
        assert_eq!(
            invalid["reason_code"], "request.invalid",
            "{bad}: {invalid}"
        );
        assert_eq!(invalid["field"], "version", "{bad}: {invalid}");
    }

    // gRPC answers the same, with the same errors.
    let mut audit = grpc_as(&app, "pc_audit").await;
    let pv = audit
        .get_policy_version(pb::GetPolicyVersionRequest {
            version: version.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pv.version, version);
    assert_eq!(pv.stored_at, stored_at);
    let files: Vec<(String, String)> = pv.files.into_iter().map(|f| (f.path, f.content)).collect();
    assert_eq!(files, [("p.yaml".to_string(), ALLOW.to_string())]);
    let status = audit
        .get_policy_version(pb::GetPolicyVersionRequest { version: unknown })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(status.message().contains("how to fix"), "{status:?}");
    let status = audit
        .get_policy_version(pb::GetPolicyVersionRequest {
            version: "latest".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let status = grpc_as(&app, "pc_ci")
        .await
        .get_policy_version(pb::GetPolicyVersionRequest { version })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
}

#[tokio::test]
async fn every_version_that_decided_stays_readable_after_a_reload() {
    let app = app().await;
    let first = app
        .check(&good_check("pv-r1"))
        .await
        .json_with(StatusCode::CREATED);
    let v1 = first["policy_version"].as_str().unwrap().to_string();
    assert_eq!(first["verdict"], "continue", "{first}");

    let file = app.settings.policy.dir.clone().unwrap().join("p.yaml");
    std::fs::write(&file, BLOCK).unwrap();
    let v2 = eventually(
        Duration::from_secs(10),
        "the edited policy to load",
        || async {
            let v = ready_version(&app).await;
            (v != v1).then_some(v)
        },
    )
    .await;
    // In force but not yet deciding: not stored (the text is kept when a version first decides).
    policy_text(&app, "pc_audit", &v2)
        .await
        .expect(StatusCode::NOT_FOUND);

    let second = app
        .check(&good_check("pv-r2"))
        .await
        .json_with(StatusCode::CREATED);
    assert_eq!(second["policy_version"], v2.as_str());
    assert_eq!(second["verdict"], "terminate", "{second}");

    for (version, content) in [(&v1, ALLOW), (&v2, BLOCK)] {
        let text = policy_text(&app, "pc_audit", version)
            .await
            .json_with(StatusCode::OK);
        assert_eq!(text["files"][0]["content"], content, "{version}");
        assert_eq!(recompute(&text), *version);
    }
}

#[tokio::test]
async fn the_built_in_pack_is_stored_under_its_file_names() {
    // No tokens: loopback development mode, every caller is admin.
    let app = crate::support::spawn_app().await;
    let d = app
        .check(&good_check("pv-builtin"))
        .await
        .json_with(StatusCode::CREATED);
    let version = d["policy_version"].as_str().unwrap();
    let text = app
        .policy_version(None, version)
        .await
        .json_with(StatusCode::OK);
    let paths: Vec<&str> = text["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"builtin:quality.yaml"), "{paths:?}");
    assert!(paths.is_sorted(), "{paths:?}");
    // Every rule result cites a file of the stored text.
    for r in d["rule_results"].as_array().unwrap() {
        let cited = r["policy_file"].as_str().unwrap();
        assert!(
            paths.contains(&cited) || cited.starts_with("config:"),
            "{cited} is not among {paths:?}"
        );
    }
    assert_eq!(recompute(&text), version);
}

/// The policy text is stored before the first decision of its version; when that write fails,
/// the check fails closed (503, nothing decided) like any other store failure.
#[tokio::test]
async fn a_check_whose_policy_text_cannot_be_stored_fails_closed() {
    let app = app().await;
    let db = format!(
        "sqlite://{}",
        app.dir.path().join("portcullis.db").display()
    );
    let raw = sqlx::SqlitePool::connect(&db).await.unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse_policy_text BEFORE INSERT ON policy_versions \
         BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )
    .execute(&raw)
    .await
    .unwrap();

    let refused = app
        .check(&good_check("pv-down"))
        .await
        .json_with(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused["reason_code"], "store.unavailable", "{refused}");
    assert!(refused.get("verdict").is_none(), "{refused}");
    let listed = app
        .get_as(Some("pc_audit"), "/v1/decisions")
        .await
        .json_with(StatusCode::OK);
    assert_eq!(
        listed["decisions"],
        serde_json::json!([]),
        "nothing was decided"
    );

    sqlx::query("DROP TRIGGER refuse_policy_text")
        .execute(&raw)
        .await
        .unwrap();
    let d = app
        .check(&good_check("pv-down"))
        .await
        .json_with(StatusCode::CREATED);
    let version = d["policy_version"].as_str().unwrap();
    policy_text(&app, "pc_audit", version)
        .await
        .expect(StatusCode::OK);
}
