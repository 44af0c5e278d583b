//! Reviews routed to ServiceNow, over the simulator: the gate opens a normal change (or attaches
//! to the one the check names), and the review ends when the change is approved or rejected —
//! by polling, by the callback within a second, and with both racing; separation of duties
//! holds for the ServiceNow approver.

use std::sync::Arc;
use std::time::Duration;

use portcullis::auth::Role;
use portcullis::clock::{Clock, ManualClock};
use portcullis::review_routing::ReviewRoute;
use portcullis::sim::{self, Sims};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::fixtures::good_check;
use crate::support::poll::eventually;

const REVIEW: &str = "rules:\n  - id: needs-review\n    title: Needs a human\n    category: test\n    severity: high\n    remediation: Ask the CAB.\n    condition: { path: $.request.application, op: absent }\n";

/// How often the follower reads a change: by the app's manual clock, so a read happens when a
/// test advances it ([`polled`]), never on a real-time cadence.
const POLL: Duration = Duration::from_secs(60);

/// An app routing prod reviews to the simulated ServiceNow, on `clock`.
async fn app(sims: &Sims, clock: &Arc<ManualClock>, attach: bool) -> TestApp {
    let builder = TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .token("ci", "pc_pipeline", vec![Role::Pipeline])
        .token_scoped(
            "snow",
            "pc_snow",
            vec![Role::Pipeline],
            serde_json::json!({"callers": ["servicenow"], "read_others": true}),
        )
        .token("auditor", "pc_auditor", vec![Role::Auditor])
        .adapter(json!({
            "kind": "servicenow", "name": "servicenow", "base_url": sims.servicenow.base_url,
            "auth": {"type": "basic", "username": sim::servicenow::USER,
                     "password": {"value": sim::servicenow::PASSWORD}},
        }));
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = builder.settings(dir.path());
    let route: ReviewRoute = serde_json::from_value(json!({"servicenow": {
        "adapter": "servicenow", "assignment_group": "CAB Approval", "attach": attach,
        "poll_interval": "1m", "max_poll_interval": "1m",
    }}))
    .unwrap();
    settings.review.routes.insert("prod".into(), route);
    // Far beyond the polls the tests advance the clock by: no review expires meanwhile.
    settings.review.timeout = Duration::from_secs(365 * 24 * 3600);
    crate::support::app::start_with_clock(
        settings,
        dir,
        Some("pc_pipeline".into()),
        Arc::clone(clock) as Arc<dyn Clock>,
    )
    .await
}

async fn decision(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/v1/decisions/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn pending(app: &TestApp, body: &Value) -> String {
    let d = app.check(body).await.json_with(StatusCode::CREATED);
    assert_eq!(d["status"], "pending", "{d}");
    d["id"].as_str().unwrap().to_string()
}

/// Waits until the review has its change; returns the change number.
async fn ticket(app: &TestApp, id: &str) -> String {
    eventually(Duration::from_secs(10), "the review's change", || async {
        decision(app, id).await["review_ticket"]["number"]
            .as_str()
            .map(str::to_string)
    })
    .await
}

async fn decide(sims: &Sims, number: &str, body: Value) {
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/_sim/changes/{number}",
            sims.servicenow.base_url
        ))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
}

async fn callback(app: &TestApp, token: &str, number: &str) -> (u16, Value) {
    app.servicenow_callback(
        Some(token),
        &json!({"number": number, "approval": "approved"}),
    )
    .await
    .parts()
}

async fn final_decision(app: &TestApp, id: &str) -> Value {
    eventually(Duration::from_secs(10), "the review to end", || async {
        let d = decision(app, id).await;
        (d["status"] == "final").then_some(d)
    })
    .await
}

/// [`final_decision`], advancing the clock by a poll interval before each look: the follower
/// reads the change once per advance.
async fn polled_to_final(app: &TestApp, clock: &ManualClock, id: &str) -> Value {
    eventually(Duration::from_secs(10), "the review to end", || {
        clock.advance(chrono::Duration::from_std(POLL).unwrap());
        async {
            let d = decision(app, id).await;
            (d["status"] == "final").then_some(d)
        }
    })
    .await
}

#[tokio::test]
async fn the_gate_opens_a_change_and_polling_follows_it_to_approval() {
    let sims = sim::start(0).await.unwrap();
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock, true).await;
    let mut body = good_check("route-1");
    body["change_refs"]["servicenow_changes"] = json!([]);
    let id = pending(&app, &body).await;
    let number = ticket(&app, &id).await;

    // What the CAB sees: the failing rule, the decision link, the group, the correlation.
    let change: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/now/table/change_request?sysparm_query=number={number}&sysparm_fields=short_description,description,assignment_group,correlation_id,type",
            sims.servicenow.base_url
        ))
        .basic_auth(sim::servicenow::USER, Some(sim::servicenow::PASSWORD))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let c = &change["result"][0];
    assert_eq!(c["type"], "normal", "{change}");
    assert_eq!(c["assignment_group"], "CAB Approval", "{change}");
    assert_eq!(c["correlation_id"], id.as_str());
    let description = c["description"].as_str().unwrap();
    assert!(description.contains("needs-review"), "{description}");
    assert!(description.contains("Ask the CAB."), "{description}");
    assert!(
        description.contains(&format!("/v1/decisions/{id}")),
        "{description}"
    );

    // The simulated change moves New → Assess → Authorize → Scheduled/approved as it is polled.
    let d = polled_to_final(&app, &clock, &id).await;
    assert_eq!(d["verdict"], "continue", "{d}");
    assert_eq!(d["resolution"]["outcome"], "approved");
    assert_eq!(d["resolution"]["channel"], "servicenow");
    // The approver named in the approval history.
    assert_eq!(d["resolution"]["by"], sim::servicenow::PROGRESSION_APPROVER);
    assert_eq!(d["review_ticket"]["opened_by_gate"], true);
    assert!(
        d["resolution"]["comment"]
            .as_str()
            .unwrap()
            .contains(&number)
    );
}

#[tokio::test]
async fn grpc_shows_the_review_ticket_http_shows() {
    let sims = sim::start(0).await.unwrap();
    // The clock is never advanced, so the change is never polled: the review stays pending on
    // it while both transports read it.
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock, true).await;
    let mut body = good_check("route-grpc");
    body["change_refs"]["servicenow_changes"] = json!([]);
    let id = pending(&app, &body).await;
    let number = ticket(&app, &id).await;
    let http = decision(&app, &id).await["review_ticket"].clone();

    let mut grpc = portcullis::client::GateClient::new(
        &app.grpc_url(),
        Some("pc_pipeline"),
        Duration::from_secs(5),
    )
    .unwrap();
    let d = grpc.get(&id).await.unwrap();
    let t = d.review_ticket.expect("the gRPC decision names its ticket");
    assert_eq!(t.system, "servicenow");
    assert_eq!(t.number, number);
    assert_eq!(t.id, http["id"].as_str().unwrap());
    assert!(!t.id.is_empty());
    assert!(t.opened_by_gate);
    let at = t.at.unwrap();
    let http_at = chrono::DateTime::parse_from_rfc3339(http["at"].as_str().unwrap()).unwrap();
    assert_eq!(at.seconds, http_at.timestamp());
}

#[tokio::test]
async fn a_callback_resolves_in_its_own_request_and_a_second_one_is_a_no_op() {
    let sims = sim::start(0).await.unwrap();
    // The clock stands still, so no poll comes: only the callback can resolve it.
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock, true).await;
    let mut body = good_check("route-2");
    body["change_refs"]["servicenow_changes"] = json!([]);
    let id = pending(&app, &body).await;
    let number = ticket(&app, &id).await;

    // Not decided yet: the callback is refused and nothing changes.
    decide(&sims, &number, json!({})).await;
    let (status, p) = callback(&app, "pc_snow", &number).await;
    assert_eq!(status, 409, "{p}");
    assert_eq!(p["reason_code"], "servicenow.not_decided");

    decide(
        &sims,
        &number,
        json!({"approval": "approved", "approver": "carol.cab", "comments": "CAB ok"}),
    )
    .await;
    // Resolved by the time the callback is answered: no poll plays a part.
    let (status, a) = callback(&app, "pc_snow", &number).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["resolved"], true);
    assert_eq!(a["verdict"], "continue");
    assert_eq!(a["by"], "carol.cab");
    let d = decision(&app, &id).await;
    assert_eq!(d["status"], "final");
    assert_eq!(d["resolution"]["channel"], "servicenow");
    assert!(
        d["resolution"]["comment"]
            .as_str()
            .unwrap()
            .contains("CAB ok")
    );

    let (status, again) = callback(&app, "pc_snow", &number).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["resolved"], false);
    assert_eq!(decision(&app, &id).await["resolution"], d["resolution"]);

    // Reading is not enough to resolve: an auditor's callback is refused.
    let mut body = good_check("route-2b");
    body["change_refs"]["servicenow_changes"] = json!([]);
    let id2 = pending(&app, &body).await;
    let number2 = ticket(&app, &id2).await;
    decide(
        &sims,
        &number2,
        json!({"approval": "approved", "approver": "carol.cab"}),
    )
    .await;
    let (status, _) = callback(&app, "pc_auditor", &number2).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn polling_and_callbacks_racing_resolve_once() {
    let sims = sim::start(0).await.unwrap();
    let clock = crate::support::clock_at_t0();
    let app = Arc::new(app(&sims, &clock, true).await);
    let mut body = good_check("route-3");
    body["change_refs"]["servicenow_changes"] = json!([]);
    let id = pending(&app, &body).await;
    let number = ticket(&app, &id).await;
    decide(
        &sims,
        &number,
        json!({"approval": "approved", "approver": "carol.cab"}),
    )
    .await;
    // A poll is due: the follower's round races the callbacks.
    clock.advance(chrono::Duration::from_std(POLL).unwrap());
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let app = Arc::clone(&app);
            let number = number.clone();
            tokio::spawn(async move { callback(&app, "pc_snow", &number).await })
        })
        .collect();
    let mut resolved = 0;
    for c in calls {
        let (status, a) = c.await.unwrap();
        assert_eq!(status, 200, "{a}");
        if a["resolved"] == true {
            resolved += 1;
            assert_eq!(a["by"], "carol.cab", "{a}");
        }
    }
    assert!(resolved <= 5);
    let d = final_decision(&app, &id).await;
    assert_eq!(d["verdict"], "continue");
    assert_eq!(d["resolution"]["by"], "carol.cab");
    assert_eq!(d["resolution"]["channel"], "servicenow");
}

#[tokio::test]
async fn a_rejected_change_named_in_the_check_rejects_the_review() {
    let sims = sim::start(0).await.unwrap();
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock, true).await;
    let mut body = good_check("route-4");
    // CHG0030002 is awaiting approval (Authorize, requested) in the simulator.
    body["change_refs"]["servicenow_changes"] = json!(["CHG0030002"]);
    let id = pending(&app, &body).await;
    let number = ticket(&app, &id).await;
    assert_eq!(number, "CHG0030002");
    assert_eq!(
        decision(&app, &id).await["review_ticket"]["opened_by_gate"],
        false
    );
    decide(
        &sims,
        &number,
        json!({"approval": "rejected", "approver": "dave.cab", "comments": "no rollback plan"}),
    )
    .await;
    let d = polled_to_final(&app, &clock, &id).await;
    assert_eq!(d["verdict"], "terminate", "{d}");
    assert_eq!(d["resolution"]["outcome"], "rejected");
    assert_eq!(d["resolution"]["by"], "dave.cab");
}

#[tokio::test]
async fn the_servicenow_approver_cannot_approve_their_own_deploy() {
    let sims = sim::start(0).await.unwrap();
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock, true).await;
    let mut body = good_check("route-5");
    body["change_refs"]["servicenow_changes"] = json!([]);
    body["triggered_by"] = json!("carol.cab");
    let id = pending(&app, &body).await;
    let number = ticket(&app, &id).await;
    decide(
        &sims,
        &number,
        json!({"approval": "approved", "approver": "carol.cab"}),
    )
    .await;
    let (status, p) = callback(&app, "pc_snow", &number).await;
    assert_eq!(status, 403, "{p}");
    assert_eq!(p["reason_code"], "review.separation_of_duties");
    let d = decision(&app, &id).await;
    assert_eq!(d["status"], "pending");
    assert_eq!(d["refused_attempts"][0]["by"], "carol.cab", "{d}");
    assert_eq!(d["refused_attempts"][0]["channel"], "servicenow");
}

/// Decides the review's change as the simulated CAB (approved by carol.cab) and calls back.
async fn cab_approves(app: &TestApp, sims: &Sims, id: &str) {
    let number = ticket(app, id).await;
    decide(
        sims,
        &number,
        json!({"approval": "approved", "approver": "carol.cab"}),
    )
    .await;
    let (status, a) = callback(app, "pc_snow", &number).await;
    assert_eq!(status, 200, "{a}");
}

#[tokio::test]
async fn a_spinnaker_pipeline_continues_once_the_simulated_cab_approves() {
    use crate::support::orca::{Next, Outcome, Stage};
    let sims = sim::start(0).await.unwrap();
    let clock = crate::support::clock_at_t0();
    let app = Arc::new(app(&sims, &clock, true).await);
    let payload = json!({
        "gate": "production", "environment": "prod", "requestId": "exec-cab-1",
        "application": "payments", "pipeline": "deploy-prod", "executionId": "01HXCAB",
        "triggeredBy": "alice",
        "images": format!("ghcr.io/acme/payments@{}", crate::support::app::digest('c')),
    });
    let mut approving: Option<tokio::task::JoinHandle<()>> = None;
    let run = Stage::portcullis(&app.url(""), Some("pc_pipeline"), payload)
        .run(|_, body| {
            assert_ne!(body["status"], "TERMINATED", "{body}");
            if approving.is_none() {
                let id = body["decisionId"].as_str().unwrap().to_string();
                let app = Arc::clone(&app);
                let sims = sims.clone();
                // The CAB decides in ServiceNow while Orca keeps polling.
                approving = Some(tokio::spawn(async move {
                    cab_approves(&app, &sims, &id).await;
                }));
            }
            Next::Keep
        })
        .await;
    assert_eq!(run.outcome, Outcome::Succeeded, "{run:?}");
    assert_eq!(run.last_monitor_body["decidedBy"], "carol.cab");
    approving.unwrap().await.unwrap();
}

#[tokio::test]
async fn a_waiting_portcullis_check_exits_0_once_the_simulated_cab_approves() {
    let sims = sim::start(0).await.unwrap();
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock, true).await;
    let server = app.grpc_url();
    let image = format!("ghcr.io/acme/payments@{}", crate::support::app::digest('d'));
    let cli = tokio::spawn(async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args([
                "check",
                "--server",
                &server,
                "-a",
                "payments",
                "-e",
                "prod",
                "--image",
                &image,
                "--deadline",
                "30s",
            ])
            .env("PORTCULLIS_TOKEN", "pc_pipeline")
            .output()
            .await
            .unwrap()
    });
    let id = eventually(
        Duration::from_secs(15),
        "the CLI's pending decision",
        || async {
            let list: Value = app
                .get("/v1/decisions?status=pending")
                .await
                .json()
                .await
                .ok()?;
            list["decisions"][0]["id"].as_str().map(str::to_string)
        },
    )
    .await;
    cab_approves(&app, &sims, &id).await;
    let out = cli.await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_routed_review_survives_a_restart_and_polling_resumes() {
    let sims = sim::start(0).await.unwrap();
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock, true).await;
    let mut body = good_check("route-restart");
    body["change_refs"]["servicenow_changes"] = json!([]);
    let id = pending(&app, &body).await;
    let number = ticket(&app, &id).await;
    let (settings, dir) = app.stop().await;
    // The CAB approves while the service is down.
    decide(
        &sims,
        &number,
        json!({"approval": "approved", "approver": "carol.cab"}),
    )
    .await;
    let app = crate::support::app::start_with_clock(
        settings,
        dir,
        Some("pc_pipeline".into()),
        Arc::clone(&clock) as Arc<dyn Clock>,
    )
    .await;
    let d = polled_to_final(&app, &clock, &id).await;
    assert_eq!(d["verdict"], "continue", "{d}");
    assert_eq!(d["resolution"]["by"], "carol.cab");
    // The same change, not a second one.
    assert_eq!(d["review_ticket"]["number"], number.as_str());
}

#[tokio::test]
async fn a_change_check_that_needs_the_cab_follows_that_same_change() {
    let sims = sim::start(0).await.unwrap();
    // `attach: false` would open a new change for an ordinary deploy; not for ServiceNow's own.
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock, false).await;
    let resp = app
        .http
        .post(app.url("/v1/servicenow/change-check"))
        .bearer_auth("pc_snow")
        .json(&json!({
            "number": "CHG0030002", "cmdb_ci": "payments", "environment": "prod",
            "artifacts": [format!("ghcr.io/acme/payments@{}", crate::support::app::digest('e'))],
            "requested_by": "alice",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let a: Value = resp.json().await.unwrap();
    assert_eq!(a["recommendation"], "needs_cab", "{a}");
    let id = a["decisionId"].as_str().unwrap();
    assert_eq!(ticket(&app, id).await, "CHG0030002");
    decide(
        &sims,
        "CHG0030002",
        json!({"approval": "approved", "approver": "carol.cab"}),
    )
    .await;
    let d = polled_to_final(&app, &clock, id).await;
    assert_eq!(d["verdict"], "continue", "{d}");
    assert_eq!(d["review_ticket"]["opened_by_gate"], false);
}

#[tokio::test]
async fn an_approval_whose_approver_cannot_be_read_does_not_approve() {
    let sims = sim::start(0).await.unwrap();
    // The clock stands still, so no poll comes: the callbacks below are the only reads.
    let clock = crate::support::clock_at_t0();
    let app = app(&sims, &clock, true).await;
    let mut body = good_check("route-unknown-approver");
    body["change_refs"]["servicenow_changes"] = json!([]);
    let id = pending(&app, &body).await;
    let number = ticket(&app, &id).await;
    // Approved in ServiceNow, but the approval history names nobody.
    decide(&sims, &number, json!({"approval": "approved"})).await;
    for _ in 0..2 {
        let (status, p) = callback(&app, "pc_snow", &number).await;
        assert_eq!(status, 409, "{p}");
    }
    let d = decision(&app, &id).await;
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(d["verdict"], "manual_review", "{d}");
    // The reason is on the decision, once however often the change is read.
    let attempts = d["refused_attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{d}");
    assert_eq!(attempts[0]["reason_code"], "approver_unknown", "{d}");
    assert_eq!(attempts[0]["channel"], "servicenow", "{d}");
    let why = attempts[0]["reason"].as_str().unwrap();
    assert!(
        why.contains(&number) && why.contains("names no approver"),
        "{why}"
    );

    // Once the history names the approver, the same change approves.
    decide(
        &sims,
        &number,
        json!({"approval": "approved", "approver": "carol.cab"}),
    )
    .await;
    let (status, a) = callback(&app, "pc_snow", &number).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["by"], "carol.cab", "{a}");
    let d = final_decision(&app, &id).await;
    assert_eq!(d["resolution"]["outcome"], "approved", "{d}");
}
