//! The HTTP/JSON API: the gate's operations under `/v1/…`, plus `/healthz`, `/readyz`,
//! `/metrics` and `/openapi.json`. A thin translation onto [`crate::gate::Gate`], standing on
//! the HTTP edge (`crate::edge`: state, caller, problem+json, body decoding); `serve` merges
//! these routes with the contracts'.

mod audit_export;
mod body;
mod evidence;
mod served_doc;

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::view::{DecisionView, PolicyVersionView};
use crate::domain::{
    Application, CallerKind, Channel, DecisionId, DecisionStatus, Digest, Environment,
    ValidationError, Verdict,
};
use crate::edge::{Authed, HttpState, Problem, decode_json};
use crate::gate::ReviewAnswer;
use crate::store::{DecisionFilter, RuleFilter, RuleOutcomeFilter};

/// The OpenAPI document served at `/openapi.json`; a test keeps it in step with [`ROUTES`].
pub const OPENAPI: &str = include_str!("openapi.json");

/// Every route the HTTP port serves (this module's and the contracts', merged in `serve`), as
/// (method, path template). The OpenAPI test compares it with the document both ways.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/checks"),
    ("get", "/v1/decisions"),
    ("get", "/v1/decisions/{id}"),
    ("post", "/v1/decisions/{id}/review"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/v1/audit/public-key"),
    ("get", "/v1/audit/export"),
    ("get", "/v1/decisions/{id}/proof"),
    ("get", "/v1/policies/{version}"),
    ("post", "/v1/analysis"),
    ("post", "/v1/evidence/{source}/{digest}"),
    ("post", "/v1/spinnaker/gates"),
    ("get", "/v1/spinnaker/gates/{id}"),
    ("post", "/v1/spinnaker/gates/cancel"),
    ("post", "/v1/servicenow/change-check"),
    ("post", "/v1/servicenow/callback"),
    ("post", "/v1/jira/webhook"),
    ("post", "/v1/admission"),
];

/// Longest a `GET /v1/decisions/{id}?wait=` may hold a request open.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// The gate's own routes (all but evidence submission, which has its own body limit:
/// [`evidence_routes`]). `serve` merges them with the contracts' routes and applies the body
/// limit, the fallback and the state; tracing and timeouts are layered there too.
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/v1/checks", post(create_check))
        .route("/v1/decisions", get(list_decisions))
        .route("/v1/decisions/{id}", get(get_decision))
        .route("/v1/decisions/{id}/review", post(resolve_review))
        .route("/v1/decisions/{id}/proof", get(decision_proof))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/audit/public-key", get(audit_public_key))
        .route("/v1/audit/export", get(audit_export::audit_export))
        .route("/v1/policies/{version}", get(get_policy_version))
}

/// `POST /v1/evidence/{source}/{digest}` with `server.max_evidence_bytes` as its body limit;
/// merged after the general limit is applied, so reports keep their own, larger one.
pub fn evidence_routes(max_evidence_bytes: usize) -> Router<HttpState> {
    evidence::routes(max_evidence_bytes)
}

async fn create_check(
    State(s): State<HttpState>,
    Authed(principal): Authed,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, Problem> {
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request.too_large",
                "the request body is larger than the configured limit",
            )
            .with_help("send fewer or shorter fields, or raise `server.max_body_bytes`")
        } else {
            Problem::new(e.status(), "request.unreadable", e.body_text())
        }
    })?;
    let request = body::decode(&body)
        .and_then(|draft| draft.parse(CallerKind::Api))
        .map_err(|e| Problem::invalid(&e))?;
    let outcome = s.gate.check(&principal, request).await?;
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let location = format!("/v1/decisions/{}", outcome.decision.id);
    let mut resp = json_response(status, &DecisionView::from(&outcome.decision));
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetParams {
    /// Hold the request until the decision is final or this much time passed (`30s`).
    wait: Option<String>,
}

async fn get_decision(
    State(s): State<HttpState>,
    Authed(principal): Authed,
    Path(id): Path<String>,
    params: Result<Query<GetParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(params) = params.map_err(|e| query_problem(&e))?;
    let id = DecisionId::parse(&id).map_err(|e| Problem::invalid(&e))?;
    let decision = match params.wait {
        Some(w) => {
            let wait = humantime::parse_duration(&w).map_err(|_| {
                Problem::invalid(&ValidationError::new(
                    "wait",
                    format!("`{w}` is not a duration"),
                    "use a duration such as `30s` (at most 60s)",
                ))
            })?;
            s.gate
                .get_waiting(&principal, &id, wait.min(MAX_WAIT))
                .await?
        }
        None => s.gate.get(&principal, &id).await?,
    };
    Ok(json_response(
        StatusCode::OK,
        &DecisionView::from(&decision),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    application: Option<String>,
    environment: Option<String>,
    verdict: Option<String>,
    status: Option<String>,
    caller_kind: Option<String>,
    image_digest: Option<String>,
    rule_id: Option<String>,
    rule_outcome: Option<String>,
    created_from: Option<String>,
    created_until: Option<String>,
    page_size: Option<u32>,
    page_token: Option<String>,
}

#[derive(Debug, serde::Serialize)]
struct ListBody<'a> {
    decisions: Vec<DecisionView<'a>>,
    next_page_token: Option<String>,
}

async fn list_decisions(
    State(s): State<HttpState>,
    Authed(principal): Authed,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = params.map_err(|e| query_problem(&e))?;
    let filter = decision_filter(&FilterParams {
        application: p.application.as_deref(),
        environment: p.environment.as_deref(),
        verdict: p.verdict.as_deref(),
        status: p.status.as_deref(),
        caller_kind: p.caller_kind.as_deref(),
        image_digest: p.image_digest.as_deref(),
        rule_id: p.rule_id.as_deref(),
        rule_outcome: p.rule_outcome.as_deref(),
        created_from: p.created_from.as_deref(),
        created_until: p.created_until.as_deref(),
    })
    .map_err(|e| Problem::invalid(&e))?;
    let page = s
        .gate
        .list(
            &principal,
            &filter,
            p.page_size.unwrap_or(0),
            p.page_token.as_deref(),
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &ListBody {
            decisions: page.decisions.iter().map(DecisionView::from).collect(),
            next_page_token: page.next_page_token,
        },
    ))
}

/// Room for a typical decision's JSON, so writing a response does not grow (and copy) its
/// buffer a doubling at a time from axum's 128 bytes.
const RESPONSE_CAPACITY: usize = 16 << 10;

/// The body `axum::Json` writes, with the same `content-type`, for a view that borrows from a
/// value the handler holds (and so cannot be returned inside `Json`).
fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response {
    let mut buf = Vec::with_capacity(RESPONSE_CAPACITY);
    match serde_json::to_writer(&mut buf, body) {
        Ok(()) => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            Bytes::from(buf),
        )
            .into_response(),
        // Unreachable with the view's types (string-keyed maps only).
        Err(e) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the answer could not be encoded: {e}"),
        )
        .into_response(),
    }
}

/// An RFC 3339 time from the query string (`2026-03-01T00:00:00Z`; an offset's `+` must be sent
/// as `%2B`, since a query string reads a bare `+` as a space).
/// The decision list's filter parameters, as the list and the audit export take them.
pub(super) struct FilterParams<'a> {
    pub application: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub verdict: Option<&'a str>,
    pub status: Option<&'a str>,
    pub caller_kind: Option<&'a str>,
    pub image_digest: Option<&'a str>,
    pub rule_id: Option<&'a str>,
    pub rule_outcome: Option<&'a str>,
    pub created_from: Option<&'a str>,
    pub created_until: Option<&'a str>,
}

/// Decodes the filter parameters; a bad one is named (a 400 at the caller).
pub(super) fn decision_filter(p: &FilterParams<'_>) -> Result<DecisionFilter, ValidationError> {
    Ok(DecisionFilter {
        application: p.application.map(Application::parse).transpose()?,
        environment: p.environment.map(Environment::parse).transpose()?,
        verdict: p.verdict.map(Verdict::parse).transpose()?,
        status: p.status.map(DecisionStatus::parse).transpose()?,
        caller_kind: p.caller_kind.map(CallerKind::parse).transpose()?,
        // The gate narrows lists for principals that may read only their own decisions.
        principal: None,
        image_digest: p
            .image_digest
            .map(|d| {
                Digest::parse(d).map_err(|e| ValidationError {
                    field: "image_digest".into(),
                    ..e
                })
            })
            .transpose()?,
        rule: RuleFilter::parse(
            p.rule_id,
            p.rule_outcome.map(RuleOutcomeFilter::parse).transpose()?,
        )?,
        created_from: time_param("created_from", p.created_from)?,
        created_until: time_param("created_until", p.created_until)?,
    })
}

fn time_param(
    name: &str,
    value: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ValidationError> {
    value
        .map(|v| {
            chrono::DateTime::parse_from_rfc3339(v)
                .map(|t| t.with_timezone(&chrono::Utc))
                .map_err(|e| {
                    ValidationError::new(
                        name,
                        format!(
                            "`{}` is not an RFC 3339 time: {e}",
                            v.chars().take(80).collect::<String>()
                        ),
                        "give a time such as `2026-03-01T00:00:00Z` (an offset's `+` as `%2B`)",
                    )
                })
        })
        .transpose()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    /// `approve` or `reject`.
    resolution: String,
    #[serde(default)]
    comment: String,
}

async fn resolve_review(
    State(s): State<HttpState>,
    Authed(principal): Authed,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let id = DecisionId::parse(&id).map_err(|e| Problem::invalid(&e))?;
    let body: ReviewBody = decode_json(
        &body,
        "the review body",
        "send {\"resolution\": \"approve\" | \"reject\", \"comment\": \"why\"}",
    )
    .map_err(|e| Problem::invalid(&e))?;
    let answer = ReviewAnswer::parse(&body.resolution).map_err(|e| Problem::invalid(&e))?;
    let d = s
        .gate
        .resolve_review(&principal, &id, answer, &body.comment, Channel::Api)
        .await?;
    Ok(json_response(StatusCode::OK, &DecisionView::from(&d)))
}

/// The text of a policy version a decision names. The gate checks the role and the version's
/// shape (a malformed one is a 400 naming `version`, never a lookup).
async fn get_policy_version(
    State(s): State<HttpState>,
    Authed(principal): Authed,
    Path(version): Path<String>,
) -> Result<Json<PolicyVersionView>, Problem> {
    let record = s.gate.policy_version(&principal, &version).await?;
    Ok(Json(PolicyVersionView::from(record)))
}

/// The proof of one decision against a signed checkpoint (`docs/audit.md`).
async fn decision_proof(
    State(s): State<HttpState>,
    Authed(principal): Authed,
    Path(id): Path<String>,
) -> Result<Json<crate::audit::proof::DecisionProof>, Problem> {
    let id = DecisionId::parse(&id).map_err(|e| Problem::invalid(&e))?;
    Ok(Json(s.gate.decision_proof(&principal, &id).await?))
}

/// The public half of the checkpoint signing key: public by nature, so no token is needed to
/// verify what the gate signed.
async fn audit_public_key(State(s): State<HttpState>) -> Result<Json<serde_json::Value>, Problem> {
    match s.gate.audit_public_key()? {
        Some((key_id, pem)) => Ok(Json(serde_json::json!({
            "algorithm": "ed25519",
            "key_id": key_id,
            "public_key_pem": pem,
        }))),
        None => Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit.no_key",
            "this gate has no checkpoint signing key".to_string(),
        )),
    }
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(State(s): State<HttpState>) -> Response {
    match s.gate.ready().await {
        Ok(()) => {
            let mut body = serde_json::json!({
                "status": "ready",
                "policy_version": s.gate.policies().current().version(),
            });
            // Still ready (the last good set answers), but an operator must see why an edit
            // did not take.
            if let Some(errors) = s.gate.policies().rejected_edit() {
                body["policy_rejected_edit"] = errors
                    .0
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .into();
            }
            Json(body).into_response()
        }
        Err(e) => Problem::from(e).into_response(),
    }
}

async fn metrics(State(s): State<HttpState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.gate.metrics().encode(),
    )
        .into_response()
}

async fn openapi(State(s): State<HttpState>) -> Response {
    let doc = served_doc::document(OPENAPI, s.gate.environments());
    ([(header::CONTENT_TYPE, "application/json")], doc).into_response()
}

fn query_problem(e: &axum::extract::rejection::QueryRejection) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, "request.invalid", e.body_text())
        .with_help("see /openapi.json for the query parameters this route accepts")
}
