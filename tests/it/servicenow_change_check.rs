//! ServiceNow asking the gate: `POST /v1/servicenow/change-check` through the real service —
//! approve / reject / needs_cab, idempotent on number + attempt, bad input, roles, and the
//! built-in pack not asking a change for its own approval.

use portcullis::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::app::digest;
use crate::support::{Answer, TestApp};

/// Low risk passes; anything else needs the CAB; an unpinned image is refused.
const POLICY: &str = r#"rules:
  - id: low-risk
    title: Only low-risk changes skip the CAB
    category: change-management
    severity: high
    remediation: Take the change to the CAB.
    condition: { path: $.request.labels.risk, op: "==", value: low }
  - id: pinned
    title: Images are pinned by digest
    category: supply-chain
    severity: critical
    remediation: Deploy by digest.
    condition: { path: "$.request.images[*].pinned", op: "==", value: true }
"#;

async fn app() -> TestApp {
    TestApp::builder()
        .policies(&[("p.yaml", POLICY)])
        .token_scoped(
            "servicenow",
            "pc_snow",
            vec![Role::Pipeline],
            serde_json::json!({"callers": ["servicenow"]}),
        )
        .token("bob", "pc_bob", vec![Role::Approver])
        .spawn()
        .await
}

fn change(number: &str, risk: &str) -> Value {
    json!({
        "number": number,
        "sys_id": "a9e30c7dc61122760116894de7bcc7bd",
        "cmdb_ci": "payments",
        "environment": "prod",
        "artifacts": [format!("ghcr.io/acme/payments:1.4.2@{}", digest('a'))],
        "requested_by": "alice",
        "labels": {"risk": risk},
    })
}

#[tokio::test]
async fn a_low_risk_change_is_recommended_for_approval_once_per_attempt() {
    let app = app().await;
    let a = app
        .change_check("pc_snow", &change("CHG0040001", "low"))
        .await
        .json_with(StatusCode::OK);
    assert_eq!(a["recommendation"], "approve");
    assert_eq!(a["verdict"], "continue");
    assert_eq!(a["changeNumber"], "CHG0040001");
    assert_eq!(a["attempt"], "1");
    assert_eq!(a["reasons"], json!([]));
    let id = a["decisionId"].as_str().unwrap().to_string();
    assert!(a["decisionUrl"].as_str().unwrap().ends_with(&id));

    // ServiceNow retries: same number, same attempt, same decision.
    let again = app
        .change_check("pc_snow", &change("CHG0040001", "low"))
        .await
        .json_with(StatusCode::OK);
    assert_eq!(again["decisionId"], id.as_str());
    // A re-submitted change is a new attempt and a new check.
    let mut body = change("CHG0040001", "low");
    body["attempt"] = json!(2);
    let second = app
        .change_check("pc_snow", &body)
        .await
        .json_with(StatusCode::OK);
    assert_eq!(second["attempt"], "2", "{second}");
    let second_id = second["decisionId"].as_str().unwrap();
    assert_ne!(second_id, id, "a new attempt is a new decision");

    // The stored decision says who asked and about which change.
    let d = app
        .get_as(Some("pc_snow"), &format!("/v1/decisions/{id}"))
        .await
        .json_with(StatusCode::OK);
    assert_eq!(d["request"]["caller"]["kind"], "servicenow", "{d}");
    assert_eq!(d["request"]["caller"]["ids"]["change_number"], "CHG0040001");
    assert_eq!(d["request"]["triggered_by"], "alice");
}

#[tokio::test]
async fn risky_changes_need_the_cab_and_unpinned_images_are_rejected() {
    let app = app().await;
    let a = app
        .change_check("pc_snow", &change("CHG0040002", "high"))
        .await
        .json_with(StatusCode::OK);
    assert_eq!(a["recommendation"], "needs_cab");
    assert_eq!(a["status"], "pending");
    assert_eq!(a["reasons"][0]["ruleId"], "low-risk");
    assert_eq!(
        a["reasons"][0]["remediation"],
        "Take the change to the CAB."
    );

    let mut body = change("CHG0040003", "low");
    body["artifacts"] = json!("ghcr.io/acme/payments:latest");
    let a = app
        .change_check("pc_snow", &body)
        .await
        .json_with(StatusCode::OK);
    assert_eq!(a["recommendation"], "reject");
    assert_eq!(a["reasons"][0]["ruleId"], "pinned");
}

#[tokio::test]
async fn bad_input_and_wrong_roles_are_refused() {
    let app = app().await;
    let p = app
        .change_check("pc_snow", &change("not-a-change", "low"))
        .await
        .json_with(StatusCode::BAD_REQUEST);
    assert_eq!(p["field"], "number");
    let mut body = change("CHG0040004", "low");
    body["environment"] = json!("");
    let p = app
        .change_check("pc_snow", &body)
        .await
        .json_with(StatusCode::BAD_REQUEST);
    assert_eq!(p["field"], "environment");
    app.change_check("pc_bob", &change("CHG0040005", "low"))
        .await
        .expect(StatusCode::FORBIDDEN);
    let anonymous = app
        .http
        .post(app.url("/v1/servicenow/change-check"))
        .json(&change("CHG0040006", "low"))
        .send()
        .await
        .unwrap();
    Answer::read("POST /v1/servicenow/change-check", anonymous)
        .await
        .expect(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_built_in_pack_does_not_ask_a_change_for_its_own_approval() {
    let app = TestApp::builder()
        .token_scoped(
            "servicenow",
            "pc_snow",
            vec![Role::Pipeline],
            serde_json::json!({"callers": ["servicenow"]}),
        )
        .spawn()
        .await;
    let a = app
        .change_check("pc_snow", &change("CHG0040007", "low"))
        .await
        .json_with(StatusCode::OK);
    let ids: Vec<&str> = a["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["ruleId"].as_str())
        .collect();
    assert!(
        !ids.iter().any(|r| r.starts_with("servicenow-change")),
        "{a}"
    );
    assert!(!ids.contains(&"prod-change-reference"), "{a}");
}

#[tokio::test]
async fn the_shipped_rest_message_body_works_against_the_service() {
    let app = app().await;
    let template = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("integrations/servicenow/change-check-body.json"),
    )
    .unwrap();
    let image = format!("ghcr.io/acme/payments:1.4.2@{}", digest('b'));
    let mut body = template;
    for (var, value) in [
        ("number", "CHG0040008"),
        ("sys_id", "a9e30c7dc61122760116894de7bcc7bd"),
        ("cmdb_ci", "payments"),
        ("environment", "prod"),
        ("artifacts", image.as_str()),
        ("requested_by", "alice"),
        ("attempt", "1"),
        ("jira_keys", ""),
        ("risk", "low"),
        ("type", "normal"),
    ] {
        body = body.replace(&format!("${{{var}}}"), value);
    }
    assert!(!body.contains("${"), "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let a = app
        .change_check("pc_snow", &body)
        .await
        .json_with(StatusCode::OK);
    assert_eq!(a["recommendation"], "approve", "{a}");
}
