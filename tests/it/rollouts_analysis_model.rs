//! A model of Argo Rollouts' AnalysisRun measurement loop, written from
//! `shared/contracts/argocd.md` §3.1–3.2 (not from the gate's code), run over the shipped
//! `integrations/rollouts/analysis-template.yaml` against the live service, under the counting
//! rules before 1.8 and from 1.8 on. Only `continue` ends the run Successful; manual-review,
//! pending, terminate and errors never do, on either version.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use portcullis::auth::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::app::digest;

const CONTINUE: &str = "rules:\n  - id: always\n    title: Always\n    category: test\n    severity: low\n    condition: { path: $.request.application, op: exists }\n";
const REVIEW: &str = "rules:\n  - id: review\n    title: Review\n    category: test\n    severity: high\n    condition: { path: $.request.application, op: absent }\n";
const TERMINATE: &str = "rules:\n  - id: pinned\n    title: Pinned\n    category: test\n    severity: critical\n    condition: { path: \"$.request.images[*].pinned\", op: \"==\", value: true }\n";

/// Which counting rules the controller applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// 1.4 – 1.7: `consecutiveSuccessLimit` does not exist and is ignored.
    Before1_8,
    /// 1.8 and later.
    From1_8,
}

const VERSIONS: [Version; 2] = [Version::Before1_8, Version::From1_8];

/// A measurement's phase, and the run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Successful,
    Failed,
    Inconclusive,
    Error,
}

/// `result.<field> == "<value>"`, the only expression shape the model evaluates. Anything else
/// in the template fails the test, so the model is extended before the template changes.
#[derive(Debug, Clone)]
struct Condition {
    field: String,
    value: String,
}

impl Condition {
    fn parse(expr: &str) -> Self {
        let (lhs, rhs) = expr
            .split_once("==")
            .unwrap_or_else(|| panic!("the model does not understand `{expr}`"));
        let field = lhs
            .trim()
            .strip_prefix("result.")
            .unwrap_or_else(|| panic!("the model does not understand `{expr}`"));
        let value = rhs
            .trim()
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or_else(|| panic!("the model does not understand `{expr}`"));
        Self {
            field: field.to_string(),
            value: value.to_string(),
        }
    }

    /// expr-lang: a missing key is nil, and nil == "x" is false.
    fn holds(&self, result: &Value) -> bool {
        result.get(&self.field).and_then(Value::as_str) == Some(self.value.as_str())
    }
}

/// One metric of an AnalysisTemplate, with argocd.md §3.2's defaults.
#[derive(Debug, Clone)]
struct Metric {
    /// `None`: runs until a limit ends it (interval without count).
    count: Option<u64>,
    failure_limit: i64,
    inconclusive_limit: i64,
    consecutive_error_limit: i64,
    consecutive_success_limit: i64,
    success: Option<Condition>,
    failure: Option<Condition>,
    web: Value,
}

impl Metric {
    fn from_template(m: &Value) -> Self {
        let int = |key: &str, default: i64| m[key].as_i64().unwrap_or(default);
        let count = match (m["count"].as_u64(), m["interval"].is_string()) {
            (Some(c), _) => Some(c),
            (None, true) => None,
            (None, false) => Some(1),
        };
        if count.is_some_and(|c| c > 1) {
            assert!(m["interval"].is_string(), "count > 1 requires interval");
        }
        let web = m["provider"]["web"].clone();
        assert!(web.is_object(), "the model runs `web` metrics only: {m}");
        Self {
            count,
            failure_limit: int("failureLimit", 0),
            inconclusive_limit: int("inconclusiveLimit", 0),
            consecutive_error_limit: int("consecutiveErrorLimit", 4),
            consecutive_success_limit: int("consecutiveSuccessLimit", 0),
            success: m["successCondition"].as_str().map(Condition::parse),
            failure: m["failureCondition"].as_str().map(Condition::parse),
            web,
        }
    }

    /// §3.1: both conditions: failure wins, then success, else Inconclusive; success only:
    /// not success is Failed; neither: Successful.
    fn assess_measurement(&self, result: &Value) -> Phase {
        match (&self.success, &self.failure) {
            (_, Some(f)) if f.holds(result) => Phase::Failed,
            (Some(s), Some(_)) if s.holds(result) => Phase::Successful,
            (Some(_), Some(_)) => Phase::Inconclusive,
            (Some(s), None) if s.holds(result) => Phase::Successful,
            (Some(_), None) => Phase::Failed,
            (None, Some(_)) => Phase::Inconclusive,
            (None, None) => Phase::Successful,
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    successful: i64,
    failed: i64,
    inconclusive: i64,
    consecutive_errors: i64,
    consecutive_successes: i64,
}

impl Counters {
    fn record(&mut self, p: Phase) {
        match p {
            Phase::Successful => {
                self.successful += 1;
                self.consecutive_successes += 1;
            }
            Phase::Failed => self.failed += 1,
            Phase::Inconclusive => self.inconclusive += 1,
            Phase::Error => self.consecutive_errors += 1,
        }
        if p != Phase::Successful {
            self.consecutive_successes = 0;
        }
        if p != Phase::Error {
            self.consecutive_errors = 0;
        }
    }

    /// Errors do not count toward `count`.
    fn counted(&self) -> i64 {
        self.successful + self.failed + self.inconclusive
    }
}

/// §3.2, after every completed measurement: the run's phase, or `None` while it keeps going.
fn assess_run(m: &Metric, c: &Counters, v: Version) -> Option<Phase> {
    if m.failure_limit >= 0 && c.failed > m.failure_limit {
        return Some(Phase::Failed);
    }
    if m.inconclusive_limit >= 0 && c.inconclusive > m.inconclusive_limit {
        return Some(Phase::Inconclusive);
    }
    if c.consecutive_errors > m.consecutive_error_limit {
        return Some(Phase::Error);
    }
    let success_limit = match v {
        Version::Before1_8 => 0,
        Version::From1_8 => m.consecutive_success_limit,
    };
    if success_limit > 0 && c.consecutive_successes >= success_limit {
        return Some(Phase::Successful);
    }
    match m.count {
        Some(count) if c.counted() >= i64::try_from(count).unwrap() => Some(if success_limit > 0 {
            Phase::Inconclusive
        } else {
            // "Count Reached".
            Phase::Successful
        }),
        _ => None,
    }
}

/// `{{ args.name }}` substitution, as the controller does for the web provider's fields.
fn render(text: &str, args: &BTreeMap<&str, String>) -> String {
    let mut out = text.to_string();
    for (k, v) in args {
        out = out.replace(&format!("{{{{ args.{k} }}}}"), v);
        out = out.replace(&format!("{{{{args.{k}}}}}"), v);
    }
    assert!(
        !out.contains("{{"),
        "unresolved template argument in `{out}`"
    );
    out
}

fn render_json(v: &Value, args: &BTreeMap<&str, String>) -> Value {
    match v {
        Value::String(s) => Value::String(render(s, args)),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), render_json(v, args)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| render_json(v, args)).collect()),
        other => other.clone(),
    }
}

/// One measurement: the web provider's call and §3.1's reading of the answer.
async fn measure(
    http: &reqwest::Client,
    m: &Metric,
    args: &BTreeMap<&str, String>,
) -> (Phase, Value) {
    let web = &m.web;
    assert_eq!(web["method"], "POST");
    assert_eq!(web["jsonPath"], "{$}", "the model applies `{{$}}` only");
    let url = render(web["url"].as_str().unwrap(), args);
    let mut req = http
        .post(url)
        .timeout(Duration::from_secs(
            web["timeoutSeconds"].as_u64().unwrap_or(10),
        ))
        .json(&render_json(&web["jsonBody"], args));
    for h in web["headers"].as_array().into_iter().flatten() {
        req = req.header(
            h["key"].as_str().unwrap(),
            render(h["value"].as_str().unwrap(), args),
        );
    }
    let Ok(resp) = req.send().await else {
        return (Phase::Error, Value::Null);
    };
    if !resp.status().is_success() {
        return (Phase::Error, Value::Null);
    }
    let text = resp.text().await.unwrap_or_default();
    // A non-JSON body is a string result.
    let result = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (m.assess_measurement(&result), result)
}

/// What happens between measurements (the interval passes; a reviewer may act).
enum Reviewer {
    Nobody,
    /// Approves the pending decision, as `token`, after this many measurements.
    ApprovesAfter(i64, &'static str),
}

struct Run {
    phase: Phase,
    measurements: Vec<Phase>,
    last_result: Value,
}

async fn run(
    app: &TestApp,
    m: &Metric,
    v: Version,
    args: &BTreeMap<&str, String>,
    reviewer: &Reviewer,
) -> Run {
    let mut c = Counters::default();
    let mut measurements = Vec::new();
    let mut last = Value::Null;
    // A bound on the loop, far above any limit the template sets.
    for _ in 0..500 {
        let (p, result) = measure(&app.http, m, args).await;
        measurements.push(p);
        c.record(p);
        if let Reviewer::ApprovesAfter(n, token) = reviewer {
            if c.counted() == *n {
                let id = result["decisionId"].as_str().unwrap();
                app.post_as(
                    Some(token),
                    &format!("/v1/decisions/{id}/review"),
                    &json!({"resolution": "approve", "comment": "looked at it"}),
                )
                .await
                .expect(StatusCode::OK);
            }
        }
        last = result;
        if let Some(phase) = assess_run(m, &c, v) {
            return Run {
                phase,
                measurements,
                last_result: last,
            };
        }
    }
    panic!("the run did not end: {measurements:?} {last}");
}

fn shipped_metric() -> Metric {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("integrations/rollouts/analysis-template.yaml");
    let t: Value = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let metrics = t["spec"]["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 1, "the model runs one metric");
    Metric::from_template(&metrics[0])
}

fn args(app: &TestApp, token: &str, image: &str, revision: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("app", "payments".to_string()),
        ("environment", "prod".to_string()),
        ("rollout", "payments-api".to_string()),
        ("namespace", "payments".to_string()),
        ("image", image.to_string()),
        ("pod-hash", format!("5d8f9c{revision}")),
        ("rollout-revision", revision.to_string()),
        ("gate-url", app.url("")),
        ("gate-token", token.to_string()),
    ])
}

async fn gate(policy: &str) -> TestApp {
    TestApp::builder()
        .policies(&[("p.yaml", policy)])
        .token("rollouts", "pc_rollouts", vec![Role::Pipeline])
        .token("bob", "pc_bob", vec![Role::Approver])
        .spawn()
        .await
}

#[tokio::test]
async fn only_continue_ends_the_shipped_template_successful_on_every_version() {
    let m = shipped_metric();
    let pinned = format!("ghcr.io/acme/payments@{}", digest('1'));
    let unpinned = "ghcr.io/acme/payments:latest";
    for (policy, image, token, want) in [
        (CONTINUE, pinned.as_str(), "pc_rollouts", Phase::Successful),
        (REVIEW, pinned.as_str(), "pc_rollouts", Phase::Inconclusive),
        (TERMINATE, unpinned, "pc_rollouts", Phase::Failed),
        // The gate refuses the token: every measurement is an Error.
        (CONTINUE, pinned.as_str(), "pc_wrong", Phase::Error),
    ] {
        let app = gate(policy).await;
        for (i, v) in VERSIONS.into_iter().enumerate() {
            let a = args(&app, token, image, &format!("{}", i + 1));
            let r = run(&app, &m, v, &a, &Reviewer::Nobody).await;
            assert_eq!(
                r.phase, want,
                "{v:?}: {:?} {}",
                r.measurements, r.last_result
            );
            if r.phase == Phase::Successful {
                assert_eq!(r.last_result["verdict"], "continue", "{v:?}");
            }
        }
    }
}

#[tokio::test]
async fn forty_manual_review_answers_never_end_successful() {
    let m = shipped_metric();
    assert!(
        m.count.is_some_and(
            |c| m.inconclusive_limit >= 0 && m.inconclusive_limit < i64::try_from(c).unwrap()
        ),
        "inconclusiveLimit must stay below count: before 1.8 nothing else stops Count Reached"
    );
    let app = gate(REVIEW).await;
    let image = format!("ghcr.io/acme/payments@{}", digest('2'));
    for (i, v) in VERSIONS.into_iter().enumerate() {
        let r = run(
            &app,
            &m,
            v,
            &args(&app, "pc_rollouts", &image, &format!("{}", i + 1)),
            &Reviewer::Nobody,
        )
        .await;
        assert_eq!(r.phase, Phase::Inconclusive, "{v:?}: {:?}", r.measurements);
        assert!(r.measurements.iter().all(|p| *p == Phase::Inconclusive));
        assert_eq!(r.last_result["verdict"], "manual-review");
    }
}

#[tokio::test]
async fn a_review_approved_while_the_run_polls_ends_it_successful() {
    let m = shipped_metric();
    let app = gate(REVIEW).await;
    let image = format!("ghcr.io/acme/payments@{}", digest('3'));
    for (i, v) in VERSIONS.into_iter().enumerate() {
        let a = args(&app, "pc_rollouts", &image, &format!("{}", i + 1));
        let r = run(&app, &m, v, &a, &Reviewer::ApprovesAfter(3, "pc_bob")).await;
        assert_eq!(r.phase, Phase::Successful, "{v:?}: {:?}", r.measurements);
        assert_eq!(r.last_result["verdict"], "continue");
        assert_eq!(&r.measurements[..3], &[Phase::Inconclusive; 3]);
        let expected_len = match v {
            // The first continue ends the run.
            Version::From1_8 => 4,
            // Polls on until count; every later answer is the approved decision.
            Version::Before1_8 => usize::try_from(m.count.unwrap()).unwrap(),
        };
        assert_eq!(r.measurements.len(), expected_len, "{v:?}");
    }
}

/// The model is not trivially safe: the template shipped before (inconclusiveLimit 40 = count,
/// relying on consecutiveSuccessLimit alone) ends Successful on forty manual-review answers
/// under the pre-1.8 rules, as argocd.md §3.2 says.
#[tokio::test]
async fn the_model_reproduces_the_fail_open_trap_of_the_old_template() {
    let mut old = shipped_metric();
    old.inconclusive_limit = 40;
    old.consecutive_success_limit = 1;
    let app = gate(REVIEW).await;
    let image = format!("ghcr.io/acme/payments@{}", digest('4'));
    let before = run(
        &app,
        &old,
        Version::Before1_8,
        &args(&app, "pc_rollouts", &image, "1"),
        &Reviewer::Nobody,
    )
    .await;
    assert_eq!(before.phase, Phase::Successful, "{:?}", before.measurements);
    assert_eq!(before.last_result["verdict"], "manual-review");
    let after = run(
        &app,
        &old,
        Version::From1_8,
        &args(&app, "pc_rollouts", &image, "2"),
        &Reviewer::Nobody,
    )
    .await;
    assert_eq!(after.phase, Phase::Inconclusive);
}
