//! Token scopes, the recorded principal, cancel ownership and the replay window, as clients see
//! them: two tokens with different scopes against one real service.

use portcullis::auth::Role;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::app::digest;
use crate::support::fixtures::good_check;

/// Every check in prod needs a review; nothing else is read.
const REVIEW_PROD: &str = r#"
rules:
  - id: prod-needs-review
    title: Production deploys are reviewed
    category: change-management
    severity: high
    applies_to: { environments: [prod] }
    condition: { path: "$.request.labels.reviewed", op: exists }
  - id: pinned
    title: Images are pinned by digest
    category: supply-chain
    severity: critical
    condition: { path: "$.request.images[*].pinned", op: "==", value: true }
"#;

async fn two_teams() -> TestApp {
    TestApp::builder()
        .policies(&[("p.yaml", REVIEW_PROD)])
        .token_scoped(
            "team-a",
            "pc_team_a",
            vec![Role::Pipeline],
            json!({"applications": ["payments"], "environments": ["staging", "prod"],
                   "images": ["ghcr.io/acme/payments"]}),
        )
        .token_scoped(
            "team-b",
            "pc_team_b",
            vec![Role::Pipeline],
            json!({"applications": ["orders"], "environments": ["*"]}),
        )
        .token("auditor", "pc_auditor", vec![Role::Auditor])
        .spawn()
        .await
}

async fn post(app: &TestApp, token: &str, path: &str, body: &Value) -> (u16, Value) {
    app.post_as(Some(token), path, body).await.parts()
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    app.get_as(Some(token), path).await.parts()
}

async fn stored_count(app: &TestApp) -> usize {
    let (status, list) = get(app, "pc_auditor", "/v1/decisions").await;
    assert_eq!(status, 200, "{list}");
    list["decisions"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_check_outside_the_token_scope_is_refused_on_every_path_and_nothing_is_stored() {
    let app = two_teams().await;
    // team-b may not deploy payments: HTTP, Spinnaker, Rollouts and gRPC all refuse.
    let (status, p) = post(&app, "pc_team_b", "/v1/checks", &good_check("b-1")).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["reason_code"], "auth.out_of_scope");
    assert!(p["detail"].as_str().unwrap().contains("`payments`"), "{p}");

    let spinnaker = json!({"requestId": "b-2", "application": "payments", "environment": "prod",
        "images": format!("ghcr.io/acme/payments@{}", digest('a'))});
    let (status, p) = post(&app, "pc_team_b", "/v1/spinnaker/gates", &spinnaker).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["error"], "auth.out_of_scope");

    let rollouts = json!({"app": "payments", "environment": "prod", "namespace": "p",
        "rollout": "p", "podTemplateHash": "abc", "rolloutRevision": "1",
        "image": format!("ghcr.io/acme/payments@{}", digest('a'))});
    let (status, p) = post(&app, "pc_team_b", "/v1/analysis", &rollouts).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["reason_code"], "auth.out_of_scope");

    // team-a: the right application, but an environment and an image outside its scope.
    let mut dev = good_check("a-dev");
    dev["environment"] = json!("dev");
    let (status, p) = post(&app, "pc_team_a", "/v1/checks", &dev).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["reason_code"], "auth.out_of_scope");
    let mut other_image = good_check("a-img");
    other_image["images"] = json!([format!("ghcr.io/acme/orders@{}", digest('b'))]);
    let (status, p) = post(&app, "pc_team_a", "/v1/checks", &other_image).await;
    assert_eq!(status, 403, "{p}");
    assert!(p["detail"].as_str().unwrap().contains("images[0]"), "{p}");

    let mut client = portcullis::client::GateClient::new(
        &app.grpc_url(),
        Some("pc_team_b"),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let e = client
        .check(
            crate::support::fixtures::grpc_check("b-grpc"),
            tokio::time::Instant::now() + std::time::Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, portcullis::client::ClientError::Auth(_)), "{e}");

    assert_eq!(stored_count(&app).await, 0);
    // Inside its scope, team-a is answered.
    let (status, d) = post(&app, "pc_team_a", "/v1/checks", &good_check("a-1")).await;
    assert_eq!(status, 201, "{d}");
    assert_eq!(stored_count(&app).await, 1);
}

#[tokio::test]
async fn presenting_caller_kind_servicenow_needs_an_explicit_scope() {
    // The built-in pack skips the ServiceNow change approval, state and window rules when the
    // caller is ServiceNow. A pipeline token must not get that by saying so.
    let app = TestApp::builder()
        .token("ci", "pc_ci", vec![Role::Pipeline])
        .token_scoped(
            "servicenow",
            "pc_snow",
            vec![Role::Pipeline],
            json!({"callers": ["servicenow"]}),
        )
        .token("auditor", "pc_auditor", vec![Role::Auditor])
        .spawn()
        .await;
    let mut claim = good_check("snow-claim");
    claim["caller"] = json!({"kind": "servicenow"});
    let (status, p) = post(&app, "pc_ci", "/v1/checks", &claim).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["reason_code"], "auth.out_of_scope");
    assert!(p["detail"].as_str().unwrap().contains("servicenow"), "{p}");
    let change = json!({"number": "CHG0040001", "cmdb_ci": "payments", "environment": "prod",
        "artifacts": [format!("ghcr.io/acme/payments@{}", digest('a'))]});
    let (status, p) = post(&app, "pc_ci", "/v1/servicenow/change-check", &change).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(stored_count(&app).await, 0);

    // The token granted `servicenow` is answered, and the ServiceNow exception applies to it.
    let (status, d) = post(&app, "pc_snow", "/v1/checks", &claim).await;
    assert_eq!(status, 201, "{d}");
    let rules: Vec<&str> = d["rule_results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule_id"].as_str().unwrap())
        .collect();
    assert!(!rules.contains(&"servicenow-change-approved"), "{rules:?}");
    // Everyone else still gets the change rules.
    let (status, d) = post(&app, "pc_ci", "/v1/checks", &good_check("ci-1")).await;
    assert_eq!(status, 201, "{d}");
    assert!(
        d["rule_results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule_id"] == "servicenow-change-approved"),
        "{d}"
    );
}

#[tokio::test]
async fn the_principal_is_recorded_apart_from_the_claimed_trigger() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", REVIEW_PROD)])
        .token("ci", "pc_ci", vec![Role::Pipeline])
        .token("bob", "pc_bob", vec![Role::Approver])
        .spawn()
        .await;
    let mut check = good_check("p-1");
    check["triggered_by"] = json!("mallory");
    let (status, d) = post(&app, "pc_ci", "/v1/checks", &check).await;
    assert_eq!(status, 201, "{d}");
    assert_eq!(d["principal"], "ci");
    assert_eq!(d["request"]["triggered_by"], "mallory");
    assert_eq!(d["status"], "pending");
    let id = d["id"].as_str().unwrap().to_string();

    let (status, d) = post(
        &app,
        "pc_bob",
        &format!("/v1/decisions/{id}/review"),
        &json!({"resolution": "approve"}),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["approvals"][0]["principal"], "bob");
    assert_eq!(d["resolution"]["principal"], "bob");
    assert_eq!(d["principal"], "ci");

    let mut client = portcullis::client::GateClient::new(
        &app.grpc_url(),
        Some("pc_ci"),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let pb = client.get(&id).await.unwrap();
    assert_eq!(pb.principal, "ci");
    assert_eq!(pb.resolution.unwrap().principal, "bob");
}

#[tokio::test]
async fn a_token_reads_only_its_own_decisions_without_read_others() {
    let app = two_teams().await;
    let (status, a) = post(&app, "pc_team_a", "/v1/checks", &good_check("own-a")).await;
    assert_eq!(status, 201, "{a}");
    let mut orders = good_check("own-b");
    orders["application"] = json!("orders");
    orders["images"] = json!([]);
    let (status, b) = post(&app, "pc_team_b", "/v1/checks", &orders).await;
    assert_eq!(status, 201, "{b}");
    let a_id = a["id"].as_str().unwrap();

    let (status, p) = get(&app, "pc_team_b", &format!("/v1/decisions/{a_id}")).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["reason_code"], "auth.not_owner");
    let (status, p) = get(&app, "pc_team_b", &format!("/v1/decisions/{a_id}?wait=1s")).await;
    assert_eq!(status, 403, "{p}");
    let (status, own) = get(&app, "pc_team_a", &format!("/v1/decisions/{a_id}")).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["id"], a_id);

    let (status, list) = get(&app, "pc_team_b", "/v1/decisions").await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> = list["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![b["id"].as_str().unwrap()]);
    assert_eq!(stored_count(&app).await, 2);

    // gRPC refuses the same way.
    let mut client = portcullis::client::GateClient::new(
        &app.grpc_url(),
        Some("pc_team_b"),
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let e = client.get(a_id).await.unwrap_err();
    assert!(matches!(e, portcullis::client::ClientError::Auth(_)), "{e}");
    // A replay of team-a's key by team-b neither answers with nor reveals team-a's decision.
    let mut reuse = good_check("own-a");
    reuse["application"] = json!("orders");
    reuse["images"] = json!([]);
    let (status, p) = post(&app, "pc_team_b", "/v1/checks", &reuse).await;
    assert_eq!(status, 409, "{p}");
    assert!(!p.to_string().contains(a_id), "{p}");
}

#[tokio::test]
async fn only_the_requester_or_an_approver_cancels_a_pending_review() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", REVIEW_PROD)])
        .token("team-a", "pc_team_a", vec![Role::Pipeline])
        .token("team-b", "pc_team_b", vec![Role::Pipeline])
        .token("bob", "pc_bob", vec![Role::Approver, Role::Pipeline])
        .spawn()
        .await;
    let create = json!({"requestId": "exec-a-1", "application": "payments", "environment": "prod",
        "images": format!("ghcr.io/acme/payments@{}", digest('a'))});
    let (status, created) = post(&app, "pc_team_a", "/v1/spinnaker/gates", &create).await;
    assert_eq!(status, 202, "{created}");
    let id = created["id"].as_str().unwrap().to_string();

    let cancel = json!({"requestId": "exec-a-1", "reason": "not mine"});
    let (status, p) = post(&app, "pc_team_b", "/v1/spinnaker/gates/cancel", &cancel).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["error"], "auth.not_owner");
    let (status, d) = get(&app, "pc_team_a", &format!("/v1/decisions/{id}")).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["status"], "pending");

    let (status, c) = post(&app, "pc_team_a", "/v1/spinnaker/gates/cancel", &cancel).await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["status"], "CANCELED");
    let (status, d) = get(&app, "pc_team_a", &format!("/v1/decisions/{id}")).await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["resolution"]["outcome"], "canceled");
    assert_eq!(d["resolution"]["principal"], "team-a");

    // An approver may withdraw anyone's.
    let again = json!({"requestId": "exec-a-2", "application": "payments", "environment": "prod",
        "images": format!("ghcr.io/acme/payments@{}", digest('a'))});
    let (status, _) = app
        .spinnaker_create(Some("pc_team_a"), &again)
        .await
        .parts();
    assert_eq!(status, 202);
    let (status, c) = post(
        &app,
        "pc_bob",
        "/v1/spinnaker/gates/cancel",
        &json!({"requestId": "exec-a-2"}),
    )
    .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["status"], "CANCELED");
}

#[tokio::test]
async fn evidence_for_an_image_out_of_scope_is_refused_and_the_submitter_is_recorded() {
    let reports = tempfile::tempdir().unwrap();
    let policy = "rules:\n  - id: no-critical\n    title: No criticals\n    category: vulnerabilities\n    severity: critical\n    condition: { path: $.trivy.vulnerabilities.critical, op: \"==\", value: 0 }\n";
    let app = TestApp::builder()
        .clock(crate::support::clock_at_t0())
        .policies(&[("p.yaml", policy)])
        .adapter(json!({"kind": "trivy", "name": "trivy", "reports_dir": reports.path(), "cache_ttl": "1h"}))
        .token_scoped(
            "team-a",
            "pc_team_a",
            vec![Role::Pipeline],
            json!({"images": ["ghcr.io/acme/payments"]}),
        )
        .token_scoped(
            "team-b",
            "pc_team_b",
            vec![Role::Pipeline],
            json!({"images": ["ghcr.io/acme/orders"]}),
        )
        .spawn()
        .await;
    let d = digest('c');
    let report = json!({
        "SchemaVersion": 2,
        "CreatedAt": crate::support::t0().to_rfc3339(),
        "ArtifactName": "ghcr.io/acme/payments:1",
        "Metadata": {"OS": {"Family": "debian", "Name": "12"},
                     "RepoDigests": [format!("ghcr.io/acme/payments@{d}")]},
        "Results": [{"Target": "x", "Class": "os-pkgs", "Vulnerabilities": []}],
        "Portcullis": {"SubmittedBy": "forged"},
    });
    let submit = |token: &'static str| {
        app.http
            .post(app.url(&format!("/v1/evidence/trivy/{d}")))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(report.to_string())
            .send()
    };
    let p = crate::support::Answer::read(
        "POST /v1/evidence as team b",
        submit("pc_team_b").await.unwrap(),
    )
    .await
    .json_with(reqwest::StatusCode::FORBIDDEN);
    assert_eq!(p["reason_code"], "auth.out_of_scope");
    assert_eq!(std::fs::read_dir(reports.path()).unwrap().count(), 0);

    let resp = submit("pc_team_a").await.unwrap();
    assert_eq!(resp.status(), 201);
    let mut check = good_check("ev-1");
    check["images"] = json!([format!("ghcr.io/acme/payments@{d}")]);
    let (status, decision) = post(&app, "pc_team_a", "/v1/checks", &check).await;
    assert_eq!(status, 201, "{decision}");
    assert_eq!(
        decision["evidence"]["trivy"]["images"][0]["submitted_by"],
        "team-a"
    );
}

#[tokio::test]
async fn a_repeated_key_replays_only_within_the_window_then_is_evaluated_anew() {
    let clock = crate::support::clock_at_t0();
    let app = TestApp::builder()
        .policies(&[("p.yaml", REVIEW_PROD)])
        .token("ci", "pc_ci", vec![Role::Pipeline])
        .clock(clock.clone())
        .spawn()
        .await;
    let mut check = good_check("replay-1");
    check["environment"] = json!("staging");
    let (status, first) = post(&app, "pc_ci", "/v1/checks", &check).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["status"], "final");
    assert_eq!(first["replaces"], Value::Null);

    clock.advance(chrono::Duration::minutes(30));
    let (status, again) = post(&app, "pc_ci", "/v1/checks", &check).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first["id"]);

    // Past the default one-hour window the stored answer is no longer sound.
    clock.advance(chrono::Duration::minutes(31));
    let (status, fresh) = post(&app, "pc_ci", "/v1/checks", &check).await;
    assert_eq!(status, 201, "{fresh}");
    assert_ne!(fresh["id"], first["id"]);
    assert_eq!(fresh["replaces"], first["id"]);

    // The newest answer is now the one replayed.
    let (status, latest) = post(&app, "pc_ci", "/v1/checks", &check).await;
    assert_eq!(status, 200, "{latest}");
    assert_eq!(latest["id"], fresh["id"]);
}

#[tokio::test]
async fn a_repeated_key_is_evaluated_anew_under_another_policy_version() {
    let app = TestApp::builder()
        .policies(&[("p.yaml", REVIEW_PROD)])
        .token("ci", "pc_ci", vec![Role::Pipeline])
        .spawn()
        .await;
    let mut check = good_check("policy-1");
    check["environment"] = json!("staging");
    let (status, first) = post(&app, "pc_ci", "/v1/checks", &check).await;
    assert_eq!(status, 201, "{first}");
    let old_version = first["policy_version"].as_str().unwrap().to_string();

    let dir = app.settings.policy.dir.clone().unwrap();
    std::fs::write(
        dir.join("p.yaml"),
        REVIEW_PROD.replace("Images are pinned", "Images are always pinned"),
    )
    .unwrap();
    crate::support::poll::eventually(
        std::time::Duration::from_secs(10),
        "the edited policy to load",
        || async {
            let (_, ready) = get(&app, "pc_ci", "/readyz").await;
            (ready["policy_version"].as_str() != Some(old_version.as_str())).then_some(())
        },
    )
    .await;
    let (status, fresh) = post(&app, "pc_ci", "/v1/checks", &check).await;
    assert_eq!(status, 201, "{fresh}");
    assert_eq!(fresh["replaces"], first["id"]);
    assert_ne!(fresh["policy_version"], first["policy_version"]);
}
