//! Traceability: decisions listed by image digest, by a rule and whether it failed or passed,
//! and by creation time, over HTTP and gRPC, against one real service; bad filters are 400 /
//! `INVALID_ARGUMENT` naming the parameter.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use portcullis::clock::ManualClock;
use portcullis::pb;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::app::digest;
use crate::support::fixtures::good_check;

/// Two policy files, one rule each, both read only the request: `reviewed` holds when the
/// check carries a `reviewed` label, `payments-team` when its team label is `payments`.
const REVIEWED: &str = r#"
rules:
  - id: reviewed
    title: The change was reviewed
    category: change-management
    severity: low
    condition: { path: "$.request.labels.reviewed", op: exists }
"#;
const TEAM: &str = r#"
rules:
  - id: payments-team
    title: Deployed by the payments team
    category: ownership
    severity: low
    condition: { path: "$.request.labels.team", op: "==", value: payments }
"#;

/// When the first check is made; each later one is an hour after the one before.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// The service and four decisions, in order, an hour apart:
/// 0: digest a, reviewed passed, payments-team passed
/// 1: digest a, reviewed failed, payments-team failed
/// 2: digest b, reviewed passed, payments-team failed
/// 3: digest b, reviewed failed, payments-team passed
async fn four_decisions() -> (TestApp, Vec<String>) {
    let clock = Arc::new(ManualClock::new(t0()));
    let app = TestApp::builder()
        .policies(&[("reviewed.yaml", REVIEWED), ("team.yaml", TEAM)])
        .clock(clock.clone())
        .spawn()
        .await;
    let cases = [
        ('a', true, "payments"),
        ('a', false, "orders"),
        ('b', true, "orders"),
        ('b', false, "payments"),
    ];
    let mut ids = Vec::new();
    for (i, (d, reviewed, team)) in cases.into_iter().enumerate() {
        let mut check = good_check(&format!("trace-{i}"));
        check["images"] = json!([format!("ghcr.io/acme/payments:1.4.2@{}", digest(d))]);
        check["labels"] = json!({ "team": team });
        if reviewed {
            check["labels"]["reviewed"] = json!("yes");
        }
        let decision = app.check(&check).await.json_with(StatusCode::CREATED);
        let outcome = |rule: &str| {
            decision["rule_results"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["rule_id"] == rule)
                .map(|r| r["outcome"].clone())
        };
        assert_eq!(
            outcome("reviewed"),
            Some(json!(if reviewed { "pass" } else { "fail" })),
            "{decision}"
        );
        ids.push(decision["id"].as_str().unwrap().to_string());
        clock.advance(Duration::hours(1));
    }
    (app, ids)
}

/// The ids of `which` decisions, newest first (the list order).
fn newest_first(ids: &[String], which: &[usize]) -> Vec<String> {
    let mut v: Vec<String> = which.iter().map(|&i| ids[i].clone()).collect();
    v.sort();
    v.reverse();
    v
}

/// `GET /v1/decisions?{query}`: the ids of the one page it answers.
async fn http_ids(app: &TestApp, query: &str) -> Vec<String> {
    let path = format!("/v1/decisions?{query}");
    let body = app.get_as(None, &path).await.json_with(StatusCode::OK);
    assert_eq!(body["next_page_token"], Value::Null, "{body}");
    body["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

fn ts(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    }
}

async fn grpc(app: &TestApp) -> pb::gate_client::GateClient<tonic::transport::Channel> {
    pb::gate_client::GateClient::connect(app.grpc_url())
        .await
        .unwrap()
}

async fn grpc_ids(app: &TestApp, req: pb::ListDecisionsRequest) -> Vec<String> {
    let page = grpc(app)
        .await
        .list_decisions(req)
        .await
        .unwrap()
        .into_inner();
    assert!(page.next_page_token.is_empty());
    page.decisions.into_iter().map(|d| d.id).collect()
}

#[tokio::test]
async fn each_filter_selects_exactly_its_decisions_over_both_transports() {
    let (app, ids) = four_decisions().await;
    let a = digest('a');
    let b = digest('b');
    let at = |hours: i64| t0() + Duration::hours(hours);
    let rfc = |hours: i64| at(hours).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let failed = pb::RuleOutcomeFilter::Failed as i32;
    let passed = pb::RuleOutcomeFilter::Passed as i32;
    let cases: Vec<(String, pb::ListDecisionsRequest, Vec<usize>)> = vec![
        (
            format!("image_digest={a}"),
            pb::ListDecisionsRequest {
                image_digest: a.clone(),
                ..Default::default()
            },
            vec![0, 1],
        ),
        (
            format!("image_digest={b}"),
            pb::ListDecisionsRequest {
                image_digest: b.clone(),
                ..Default::default()
            },
            vec![2, 3],
        ),
        (
            "rule_id=reviewed".into(),
            pb::ListDecisionsRequest {
                rule_id: "reviewed".into(),
                ..Default::default()
            },
            vec![0, 1, 2, 3],
        ),
        (
            "rule_id=reviewed&rule_outcome=failed".into(),
            pb::ListDecisionsRequest {
                rule_id: "reviewed".into(),
                rule_outcome: failed,
                ..Default::default()
            },
            vec![1, 3],
        ),
        (
            "rule_id=payments-team&rule_outcome=passed".into(),
            pb::ListDecisionsRequest {
                rule_id: "payments-team".into(),
                rule_outcome: passed,
                ..Default::default()
            },
            vec![0, 3],
        ),
        (
            "rule_id=not-in-any-policy".into(),
            pb::ListDecisionsRequest {
                rule_id: "not-in-any-policy".into(),
                ..Default::default()
            },
            vec![],
        ),
        (
            format!("created_from={}", rfc(1)),
            pb::ListDecisionsRequest {
                created_from: Some(ts(at(1))),
                ..Default::default()
            },
            vec![1, 2, 3],
        ),
        (
            format!("created_until={}", rfc(1)),
            pb::ListDecisionsRequest {
                created_until: Some(ts(at(1))),
                ..Default::default()
            },
            vec![0],
        ),
        (
            // An offset instead of Z, its `+` escaped as a query string needs.
            format!(
                "created_from=2026-03-01T02:00:00%2B01:00&created_until={}",
                rfc(3)
            ),
            pb::ListDecisionsRequest {
                created_from: Some(ts(at(1))),
                created_until: Some(ts(at(3))),
                ..Default::default()
            },
            vec![1, 2],
        ),
        (
            format!(
                "image_digest={b}&rule_id=reviewed&rule_outcome=failed&created_from={}",
                rfc(2)
            ),
            pb::ListDecisionsRequest {
                image_digest: b.clone(),
                rule_id: "reviewed".into(),
                rule_outcome: failed,
                created_from: Some(ts(at(2))),
                ..Default::default()
            },
            vec![3],
        ),
        (
            format!("image_digest={a}&rule_id=payments-team&rule_outcome=passed&environment=prod"),
            pb::ListDecisionsRequest {
                image_digest: a.clone(),
                rule_id: "payments-team".into(),
                rule_outcome: passed,
                environment: "prod".into(),
                ..Default::default()
            },
            vec![0],
        ),
    ];
    for (query, req, which) in cases {
        let want = newest_first(&ids, &which);
        assert_eq!(http_ids(&app, &query).await, want, "HTTP {query}");
        assert_eq!(grpc_ids(&app, req).await, want, "gRPC {query}");
    }
}

#[tokio::test]
async fn a_filtered_list_pages_over_both_transports() {
    let (app, ids) = four_decisions().await;
    let path = "/v1/decisions?rule_id=reviewed&page_size=3";
    let first = app.get_as(None, path).await.json_with(StatusCode::OK);
    let token = first["next_page_token"].as_str().unwrap().to_string();
    let path = format!("{path}&page_token={token}");
    let second = app.get_as(None, &path).await.json_with(StatusCode::OK);
    assert_eq!(second["next_page_token"], Value::Null);
    let got: Vec<String> = [&first, &second]
        .iter()
        .flat_map(|p| p["decisions"].as_array().unwrap().clone())
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, newest_first(&ids, &[0, 1, 2, 3]));

    let mut client = grpc(&app).await;
    let req = |page_token: String| pb::ListDecisionsRequest {
        rule_id: "reviewed".into(),
        page_size: 3,
        page_token,
        ..Default::default()
    };
    let first = client
        .list_decisions(req(String::new()))
        .await
        .unwrap()
        .into_inner();
    let second = client
        .list_decisions(req(first.next_page_token.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(second.next_page_token.is_empty());
    let got: Vec<String> = first
        .decisions
        .into_iter()
        .chain(second.decisions)
        .map(|d| d.id)
        .collect();
    assert_eq!(got, newest_first(&ids, &[0, 1, 2, 3]));
}

#[tokio::test]
async fn bad_filters_are_400_and_invalid_argument_naming_the_parameter() {
    let (app, _) = four_decisions().await;
    let cases = [
        ("image_digest=sha256:abc", "image_digest"),
        ("image_digest=md5:0123", "image_digest"),
        ("rule_outcome=failed", "rule_outcome"),
        ("rule_id=reviewed&rule_outcome=missing", "rule_outcome"),
        ("rule_id=Not%20A%20Rule", "rule_id"),
        ("created_from=yesterday", "created_from"),
        ("created_until=2026-03-01", "created_until"),
        // A bare `+` reads as a space in a query string.
        ("created_from=2026-03-01T00:00:00+01:00", "created_from"),
        (
            "created_from=2026-03-01T01:00:00Z&created_until=2026-03-01T01:00:00Z",
            "created_until",
        ),
        (
            "created_from=2026-03-02T00:00:00Z&created_until=2026-03-01T00:00:00Z",
            "created_until",
        ),
    ];
    for (query, field) in cases {
        let path = format!("/v1/decisions?{query}");
        let problem = app
            .get_as(None, &path)
            .await
            .json_with(StatusCode::BAD_REQUEST);
        assert_eq!(
            problem["reason_code"], "request.invalid",
            "{query}: {problem}"
        );
        assert_eq!(problem["field"], field, "{query}: {problem}");
    }

    let at = |s: &str| {
        Some(ts(DateTime::parse_from_rfc3339(s)
            .unwrap()
            .with_timezone(&Utc)))
    };
    let cases = [
        (
            pb::ListDecisionsRequest {
                image_digest: "sha256:abc".into(),
                ..Default::default()
            },
            "image_digest",
        ),
        (
            pb::ListDecisionsRequest {
                rule_outcome: pb::RuleOutcomeFilter::Passed as i32,
                ..Default::default()
            },
            "rule_outcome",
        ),
        (
            pb::ListDecisionsRequest {
                rule_id: "reviewed".into(),
                rule_outcome: 7,
                ..Default::default()
            },
            "rule_outcome",
        ),
        (
            pb::ListDecisionsRequest {
                rule_id: "Reviewed!".into(),
                ..Default::default()
            },
            "rule_id",
        ),
        (
            pb::ListDecisionsRequest {
                created_from: Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1,
                }),
                ..Default::default()
            },
            "created_from",
        ),
        (
            pb::ListDecisionsRequest {
                created_from: at("2026-03-02T00:00:00Z"),
                created_until: at("2026-03-01T00:00:00Z"),
                ..Default::default()
            },
            "created_until",
        ),
    ];
    let mut client = grpc(&app).await;
    for (req, field) in cases {
        let what = format!("{req:?}");
        let e = client.list_decisions(req).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{what}: {e:?}");
        assert!(
            e.message().contains(&format!("`{field}`")),
            "{what}: {}",
            e.message()
        );
    }
}
