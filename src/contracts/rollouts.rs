//! Argo Rollouts `web` metric provider: `POST /v1/analysis` always answers `200` quickly with
//! `{verdict, score, decisionId, …}` so an AnalysisTemplate can say
//! `successCondition: result.verdict == "continue"` and
//! `failureCondition: result.verdict == "terminate"`; `manual-review` (and `pending`, while the
//! gate is still gathering evidence) match neither and become Inconclusive, which pauses the
//! Rollout.
//!
//! The fail-open trap (shared/contracts/argocd.md §3.2): a polling metric whose measurements are
//! all Inconclusive ends *Successful* when `count` is reached, unless `inconclusiveLimit` is
//! below `count` (every version) or `consecutiveSuccessLimit` is set (1.8+ only; older
//! controllers ignore it). `integrations/rollouts/analysis-template.yaml` does both; the README
//! says why, and `tests/it/rollouts_analysis_model.rs` runs it through both counting rules.
//!
//! One decision per rollout *attempt*: the key includes the Rollout's revision (the
//! `rollout.argoproj.io/revision` annotation, which Rollouts raises for every new pod
//! template, a rollback included) as well as the pod-template hash, so rolling back to an
//! earlier hash is a new check, never the old hash's stored `continue`.
//!
//! Rollouts records a non-2xx answer as a measurement Error (five in a row abort the rollout),
//! so 4xx is used only for malformed requests and 5xx only when no decision can be made:
//! both stay fail-closed.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::domain::{
    CallerKind, CheckRequestDraft, Decision, DecisionStatus, ImageDraft, RuleOutcome,
    ValidationError, Verdict,
};
use crate::edge::{Authed, HttpState, Problem, base_url, decode_json};

/// Longest the endpoint waits for a decision before answering `pending`; the check goes on in
/// the background and the next measurement (same rollout and pod hash) finds it. Rollouts'
/// default `timeoutSeconds` is 10, and the examples use 5.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);

/// The `jsonBody` of the AnalysisTemplate in `integrations/rollouts/`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AnalysisRequest {
    /// Informational (`argo-rollouts`).
    #[serde(default)]
    source: String,
    app: String,
    environment: String,
    namespace: String,
    rollout: String,
    /// The image being rolled out, ideally `repo@sha256:…`.
    #[serde(default)]
    image: String,
    /// `podTemplateHashValue: Latest`.
    pod_template_hash: String,
    /// The Rollout's `rollout.argoproj.io/revision` annotation: new for every rollout attempt,
    /// a rollback to an earlier pod template included. Required: without it a rollback would
    /// find the earlier attempt's decision.
    #[serde(default)]
    rollout_revision: String,
    #[serde(default)]
    revision: String,
    #[serde(default)]
    change_refs: Vec<String>,
}

/// What the metric's `jsonPath: "{$}"` sees as `result`. Kept small: Rollouts stores it per
/// measurement.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AnalysisResponse {
    /// `continue`, `manual-review`, `terminate`, or `pending` (still evaluating).
    verdict: &'static str,
    /// Share of applicable rules that passed, 0–100.
    score: u8,
    decision_id: String,
    status: &'static str,
    reason: String,
    /// Where to read (and, with the review lifecycle, resolve) the decision: absolute, on the
    /// same base URL as every contract's links (`edge::base_url`).
    review_url: String,
}

pub(crate) async fn analysis(
    State(s): State<HttpState>,
    Authed(principal): Authed,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<AnalysisResponse>, Problem> {
    let req: AnalysisRequest = decode_json(
        &body,
        "the analysis request",
        "send the jsonBody of integrations/rollouts/analysis-template.yaml (app, environment, namespace, rollout, podTemplateHash, image)",
    )
    .map_err(|e| Problem::invalid(&e))?;
    let revision = req.rollout_revision.trim();
    if revision.is_empty() || !revision.bytes().all(|b| b.is_ascii_digit()) || revision.len() > 18 {
        return Err(Problem::invalid(&ValidationError::new(
            "rolloutRevision",
            format!(
                "`{}` is not a Rollout revision",
                revision.chars().take(40).collect::<String>()
            ),
            "pass the Rollout's `metadata.annotations['rollout.argoproj.io/revision']` as the `rollout-revision` arg, as integrations/rollouts/rollout.yaml does",
        )));
    }
    let request = draft(&req)
        .parse(CallerKind::Rollouts)
        .map_err(|e| Problem::invalid(&e))?;
    let gate = s.gate.clone();
    let check = tokio::time::timeout(ANSWER_WITHIN, gate.check(&principal, request)).await;
    let decision = match check {
        Ok(outcome) => outcome?.decision,
        Err(_) => {
            return Ok(Json(AnalysisResponse {
                verdict: "pending",
                score: 0,
                decision_id: String::new(),
                status: "pending",
                reason: "the gate is still gathering evidence; the next measurement will have the decision".into(),
                review_url: String::new(),
            }));
        }
    };
    Ok(Json(response(&decision, &base_url(&s, &headers))))
}

fn draft(r: &AnalysisRequest) -> CheckRequestDraft {
    let mut ids = BTreeMap::new();
    ids.insert(
        "source".to_string(),
        if r.source.is_empty() {
            "argo-rollouts".to_string()
        } else {
            r.source.clone()
        },
    );
    ids.insert("namespace".to_string(), r.namespace.clone());
    ids.insert("rollout".to_string(), r.rollout.clone());
    ids.insert("pod_template_hash".to_string(), r.pod_template_hash.clone());
    ids.insert(
        "rollout_revision".to_string(),
        r.rollout_revision.trim().to_string(),
    );
    let (jira_keys, servicenow_changes) =
        crate::domain::split_change_refs(r.change_refs.iter().cloned());
    CheckRequestDraft {
        application: r.app.clone(),
        environment: r.environment.clone(),
        images: if r.image.trim().is_empty() {
            Vec::new()
        } else {
            vec![ImageDraft {
                reference: r.image.clone(),
                ..Default::default()
            }]
        },
        sources: Vec::new(),
        caller_kind: String::new(),
        caller_ids: ids,
        triggered_by: String::new(),
        jira_keys,
        servicenow_changes,
        labels: if r.revision.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([("revision".to_string(), r.revision.clone())])
        },
        // One decision per rollout attempt: every measurement of it reads the same decision,
        // and a rollback (a new revision, perhaps an old hash) is a new attempt.
        idempotency_key: format!(
            "rollouts:{}/{}/{}/{}",
            r.namespace,
            r.rollout,
            r.rollout_revision.trim(),
            r.pod_template_hash
        ),
    }
}

fn response(d: &Decision, base: &str) -> AnalysisResponse {
    let applicable = d.rule_results.len();
    let passed = d
        .rule_results
        .iter()
        .filter(|r| r.outcome == RuleOutcome::Pass)
        .count();
    // No applicable rule means nothing objected.
    let score = (passed * 100)
        .checked_div(applicable)
        .map_or(100, |s| u8::try_from(s).unwrap_or(0));
    AnalysisResponse {
        verdict: match d.verdict {
            Verdict::Continue => "continue",
            Verdict::ManualReview => "manual-review",
            Verdict::Terminate => "terminate",
        },
        score,
        decision_id: d.id.to_string(),
        status: match d.status {
            DecisionStatus::Pending => "pending",
            DecisionStatus::Final => "final",
        },
        reason: d.summary.chars().take(300).collect(),
        review_url: format!("{base}/v1/decisions/{}", d.id),
    }
}
