//! Spinnaker's Webhook stage (plain or preconfigured "Portcullis gate"), exactly as Orca behaves
//! (shared/contracts/spinnaker.md). Orca sends one create request and then polls a status URL;
//! there is no callback. Its decision tables are unforgiving, which shapes every answer here:
//!
//! - create answers `202` JSON with the absolute status URL in `Location` and in `statusUrl`, and
//!   the decision is stored before the answer, so the first poll never sees a 404 (M5);
//! - create is idempotent on `requestId` (Orca re-sends after 5xx, 429 and DNS failures);
//! - transient trouble is `503` (retried), bad input `400`/`401`/`403`/`409` with a JSON
//!   `{error, message}` Orca shows in the UI; never a 3xx (followed, Location lost) or a 504
//!   (fail-fast by default);
//! - status is always `200` JSON with a non-null string `status` from a fixed vocabulary and a
//!   non-null string `message` (a missing one is fatal with `progressJsonPath`);
//! - cancel is keyed on `requestId`, idempotent, and a no-op once the gate has decided (Orca
//!   calls it after every TERMINAL end, including our own `TERMINATED`).

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::fields::StringList;
use crate::domain::{
    CallerKind, Channel, CheckRequestDraft, Decision, DecisionId, DecisionStatus, IdempotencyKey,
    ImageDraft, ResolutionOutcome, SourceDraft, ValidationError, Verdict,
};
use crate::edge::{Authed, HttpState, Problem, base_url, decode_json};
use crate::gate::GateError;

/// The stage's statuses. `successStatuses: APPROVED`, `canceledStatuses: CANCELED`,
/// `terminalStatuses: REJECTED,TERMINATED,EXPIRED,ERROR`; `AWAITING_APPROVAL` is in no list, so
/// Orca keeps polling while a human decides.
pub mod status {
    pub const AWAITING_APPROVAL: &str = "AWAITING_APPROVAL";
    pub const APPROVED: &str = "APPROVED";
    pub const REJECTED: &str = "REJECTED";
    pub const TERMINATED: &str = "TERMINATED";
    pub const EXPIRED: &str = "EXPIRED";
    pub const CANCELED: &str = "CANCELED";
}

/// The create payload, as the examples in `integrations/spinnaker/` send it (SpEL resolved).
/// Unknown keys are ignored: pipelines add their own, and Orca cannot be told to drop them.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CreateBody {
    request_id: String,
    gate: String,
    application: String,
    environment: String,
    pipeline: String,
    execution_id: String,
    stage_id: String,
    triggered_by: String,
    /// Image references; a list, or one comma-separated string (handy in a string template).
    images: StringList,
    /// Spinnaker artifacts (`${trigger.artifacts}`); `docker/image` ones are the images.
    artifacts: Vec<Artifact>,
    /// Jira keys and ServiceNow change numbers, a list or a comma-separated string.
    change_refs: StringList,
    repository: String,
    revision: String,
    branch: String,
    /// Who wrote the commit (e.g. from the trigger's build info): they cannot approve.
    commit_author: String,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Artifact {
    #[serde(rename = "type")]
    kind: String,
    reference: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CreatedBody {
    id: String,
    status_url: String,
    status: &'static str,
    message: String,
    verdict: &'static str,
}

/// The status body. Downstream stages read it as
/// `#stage('Portcullis gate')['context']['webhook']['monitor']['body']`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusBody {
    id: String,
    status: &'static str,
    message: String,
    verdict: &'static str,
    decision_id: String,
    policy_version: String,
    failing_rules: Vec<FailingRule>,
    decided_by: Option<String>,
    updated_at: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FailingRule {
    rule_id: String,
    effect: &'static str,
    reason: String,
    remediation: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct CancelBody {
    request_id: String,
    reason: String,
}

/// An error as Orca shows it: JSON with `error` and `message` (Deck prints the body).
pub(crate) struct SpinnakerError(Problem);

impl From<Problem> for SpinnakerError {
    fn from(p: Problem) -> Self {
        SpinnakerError(p)
    }
}

impl From<GateError> for SpinnakerError {
    fn from(e: GateError) -> Self {
        SpinnakerError(Problem::from(e))
    }
}

impl IntoResponse for SpinnakerError {
    fn into_response(self) -> Response {
        let p = self.0;
        let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut message = p.detail.clone();
        if let Some(help) = &p.help {
            message.push_str(". How to fix: ");
            message.push_str(help);
        }
        let body = serde_json::json!({
            "error": p.reason_code,
            "message": message,
            "field": p.field,
        });
        let mut resp = (status, Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
        }
        resp
    }
}

/// `POST /v1/spinnaker/gates`
pub(crate) async fn create(
    State(s): State<HttpState>,
    headers: HeaderMap,
    auth: Result<Authed, Problem>,
    body: Bytes,
) -> Result<Response, SpinnakerError> {
    let Authed(principal) = auth?;
    // Whatever the Content-Type: a preconfigured stage without the header sends text/plain.
    let body: CreateBody = decode_json(
        &body,
        "the payload",
        "check the stage payload; SpEL values pasted into a string template are not JSON-escaped",
    )
    .map_err(|e| Problem::invalid(&e))?;
    if body.request_id.trim().is_empty() {
        return Err(Problem::invalid(&ValidationError::new(
            "requestId",
            "is required",
            "send `\"requestId\": \"${execution.id}-<gate>\"` so Orca's retries find the same gate",
        ))
        .into());
    }
    let request = draft(&body)
        .parse(CallerKind::Spinnaker)
        .map_err(|e| Problem::invalid(&e))?;
    let outcome = s.gate.check(&principal, request).await?;
    let d = outcome.decision;
    let url = status_url(&s, &headers, &d.id);
    let created = CreatedBody {
        id: d.id.to_string(),
        status_url: url.clone(),
        status: spinnaker_status(&d),
        message: message(&d, &base_url(&s, &headers)),
        verdict: verdict(&d),
    };
    let mut resp = (StatusCode::ACCEPTED, Json(created)).into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `GET /v1/spinnaker/gates/{id}`
pub(crate) async fn get_status(
    State(s): State<HttpState>,
    headers: HeaderMap,
    auth: Result<Authed, Problem>,
    Path(id): Path<String>,
) -> Result<Json<StatusBody>, SpinnakerError> {
    let Authed(principal) = auth?;
    let id = DecisionId::parse(&id).map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "decision.not_found",
            format!("no gate with id `{id}`"),
        )
    })?;
    let d = s.gate.get(&principal, &id).await?;
    Ok(Json(StatusBody {
        id: d.id.to_string(),
        status: spinnaker_status(&d),
        message: message(&d, &base_url(&s, &headers)),
        verdict: verdict(&d),
        decision_id: d.id.to_string(),
        policy_version: d.policy_version.clone(),
        failing_rules: d
            .blocking_results()
            .into_iter()
            .map(|r| FailingRule {
                rule_id: r.rule_id.clone(),
                effect: r.effect.as_str(),
                reason: r.reason.clone(),
                remediation: r.remediation.clone(),
            })
            .collect(),
        decided_by: d.resolution.as_ref().map(|r| r.by.clone()),
        updated_at: d
            .resolution
            .as_ref()
            .map(|r| r.at)
            .or(d.decided_at)
            .unwrap_or(d.created_at)
            .to_rfc3339(),
    }))
}

/// `POST /v1/spinnaker/gates/cancel`: withdraw if still pending; otherwise nothing.
pub(crate) async fn cancel(
    State(s): State<HttpState>,
    auth: Result<Authed, Problem>,
    body: Bytes,
) -> Result<Json<serde_json::Value>, SpinnakerError> {
    let Authed(principal) = auth?;
    // Orca ignores the answer, but a malformed cancel must not look like one that found
    // nothing: say what is wrong, as create does.
    let body: CancelBody = decode_json(
        &body,
        "the cancel payload",
        "send `{\"requestId\": \"${execution.id}-<gate>\"}` as the stage's cancelPayload",
    )
    .map_err(|e| Problem::invalid(&e))?;
    let key = IdempotencyKey::parse(&idempotency_key(&body.request_id))
        .ok()
        .filter(|_| !body.request_id.trim().is_empty())
        .ok_or_else(|| {
            Problem::invalid(&ValidationError::new(
                "requestId",
                "is required and must be printable ASCII without spaces",
                "send the `requestId` the create call used, e.g. `${execution.id}-<gate>`",
            ))
        })?;
    let reason = if body.reason.is_empty() {
        "canceled by Spinnaker"
    } else {
        body.reason.as_str()
    };
    let d = s
        .gate
        .cancel_pending(&principal, &key, reason, Channel::Spinnaker)
        .await?;
    Ok(Json(serde_json::json!({
        "status": d.as_ref().map_or("UNKNOWN", spinnaker_status),
        "id": d.as_ref().map(|d| d.id.to_string()),
    })))
}

fn idempotency_key(request_id: &str) -> String {
    format!("spinnaker:{}", request_id.trim())
}

fn draft(b: &CreateBody) -> CheckRequestDraft {
    let mut images: Vec<ImageDraft> = b
        .images
        .items()
        .into_iter()
        .map(|reference| ImageDraft {
            reference,
            ..Default::default()
        })
        .collect();
    images.extend(
        b.artifacts
            .iter()
            .filter(|a| a.kind == "docker/image" && !a.reference.is_empty())
            .map(|a| ImageDraft {
                reference: a.reference.clone(),
                ..Default::default()
            }),
    );
    let (jira_keys, servicenow_changes) = crate::domain::split_change_refs(b.change_refs.items());
    let mut ids = BTreeMap::new();
    for (k, v) in [
        ("request_id", &b.request_id),
        ("execution_id", &b.execution_id),
        ("pipeline", &b.pipeline),
        ("stage_id", &b.stage_id),
        ("gate", &b.gate),
    ] {
        if !v.trim().is_empty() {
            ids.insert(k.to_string(), v.trim().to_string());
        }
    }
    CheckRequestDraft {
        application: b.application.clone(),
        environment: b.environment.clone(),
        images,
        sources: if b.repository.trim().is_empty() && b.revision.trim().is_empty() {
            Vec::new()
        } else {
            vec![SourceDraft {
                repository: b.repository.clone(),
                commit: b.revision.clone(),
                branch: b.branch.clone(),
                author: b.commit_author.clone(),
            }]
        },
        caller_kind: String::new(),
        caller_ids: ids,
        triggered_by: b.triggered_by.clone(),
        jira_keys,
        servicenow_changes,
        labels: b.labels.clone(),
        idempotency_key: idempotency_key(&b.request_id),
    }
}

fn spinnaker_status(d: &Decision) -> &'static str {
    if let Some(r) = &d.resolution {
        return match r.outcome {
            // Approved, but a time-bound rule no longer held at approval time.
            ResolutionOutcome::Approved if d.verdict != Verdict::Continue => status::TERMINATED,
            ResolutionOutcome::Approved => status::APPROVED,
            ResolutionOutcome::Rejected => status::REJECTED,
            ResolutionOutcome::Expired => status::EXPIRED,
            ResolutionOutcome::Canceled => status::CANCELED,
        };
    }
    match (d.status, d.verdict) {
        (DecisionStatus::Pending, _) => status::AWAITING_APPROVAL,
        (DecisionStatus::Final, Verdict::Continue) => status::APPROVED,
        (DecisionStatus::Final, _) => status::TERMINATED,
    }
}

fn verdict(d: &Decision) -> &'static str {
    d.verdict.as_str()
}

/// The human line Deck shows under the stage (`progressJsonPath: $.message`); never empty.
fn message(d: &Decision, base: &str) -> String {
    let mut m = d.summary.clone();
    if d.status == DecisionStatus::Pending {
        m.push_str(&format!(
            ". Approve or reject: POST {base}/v1/decisions/{}/review",
            d.id
        ));
    }
    for r in d.blocking_results().into_iter().take(3) {
        m.push_str(&format!("\n- {}: {}", r.rule_id, r.reason));
    }
    m.push_str(&format!("\nDecision: {base}/v1/decisions/{}", d.id));
    m
}

/// Absolute, as Orca requires: a relative URL fails at the first poll.
fn status_url(s: &HttpState, headers: &HeaderMap, id: &DecisionId) -> String {
    format!("{}/v1/spinnaker/gates/{id}", base_url(s, headers))
}
