//! The Kubernetes `ValidatingAdmissionWebhook` contract: `POST /v1/admission` takes an
//! `admission.k8s.io/v1` `AdmissionReview` and answers one with the request's `uid`, `allowed`,
//! and on denial `status.code` 403 with a message naming each image and what it lacks
//! (contract `supply-chain.md` §9.2). The decision is `admission::Admission`'s; this file
//! decodes and encodes. A body that is not an `AdmissionReview` is a 400 (the API server then
//! applies the webhook's `failurePolicy`, `Fail` in the shipped chart); a store fault is a
//! denial with code 503, never an allow.
//!
//! Only the API server gets an answer. It authenticates with what its admission kubeconfig
//! gives it: a client certificate, verified on `admission.listener` against that listener's
//! client CAs (and, when `admission.listener.client_names` is set, carrying one of those
//! names), or a bearer token holding the `admission` role (or `admin`). Any other caller gets
//! a 401 (nothing presented) or 403 (a token without the role) before its body is read, so it
//! learns nothing about decisions. On `server.http_addr` only tokens count (there is no client
//! certificate check there); in the loopback-only mode without tokens every caller is the
//! anonymous admin, as on every other route.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Extension, Json};
use serde_json::{Value, json};

use crate::admission::{Admission, AdmissionCaller, AdmissionRequest};
use crate::auth::Role;
use crate::domain::ValidationError;
use crate::edge::{HttpState, Problem, decode_json};
use crate::tls::server::TlsPeer;

const API_VERSION: &str = "admission.k8s.io/v1";

const REVIEW_HELP: &str = "send an `admission.k8s.io/v1` `AdmissionReview` with a `request` (what the API server sends a validating webhook)";

fn invalid(field: &str, message: String) -> Problem {
    Problem::invalid(&ValidationError::new(field, message, REVIEW_HELP))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Decodes the review's `request`.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest, Box<Problem>> {
    let review: Value = decode_json(body, "the admission review", REVIEW_HELP)
        .map_err(|e| Box::new(Problem::invalid(&e)))?;
    for (field, expected) in [("apiVersion", API_VERSION), ("kind", "AdmissionReview")] {
        if review[field] != expected {
            return Err(Box::new(invalid(
                field,
                format!(
                    "expected `apiVersion: {API_VERSION}` and `kind: AdmissionReview`, got `{}` `{}`",
                    text(&review["apiVersion"]),
                    text(&review["kind"])
                ),
            )));
        }
    }
    let r = &review["request"];
    let uid = text(&r["uid"]);
    if uid.is_empty() {
        return Err(Box::new(invalid("request.uid", "is missing".into())));
    }
    Ok(AdmissionRequest {
        uid,
        kind: text(&r["kind"]["kind"]),
        namespace: text(&r["namespace"]),
        name: text(&r["name"]),
        operation: text(&r["operation"]),
        sub_resource: text(&r["subResource"]),
        username: text(&r["userInfo"]["username"]),
        groups: r["userInfo"]["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
        dry_run: r["dryRun"].as_bool().unwrap_or(false),
        object: r["object"].clone(),
        old_object: r["oldObject"].clone(),
    })
}

/// Who the caller is, or the refusal. `peer` is present only on `admission.listener`.
pub fn authenticate(
    state: &HttpState,
    admission: Option<&Admission>,
    peer: Option<&TlsPeer>,
    headers: &HeaderMap,
) -> Result<AdmissionCaller, Box<Problem>> {
    if let Some(peer) = peer
        && peer.client_certificate.is_some()
    {
        let names = admission.map_or(&[][..], Admission::client_names);
        if names.is_empty() || peer.certificate_names_any(names) {
            return Ok(AdmissionCaller::Certificate);
        }
        // A certificate the CAs verified but for someone else: a token may still identify
        // the API server; without one the refusal names the setting, not the decisions.
        if !headers.contains_key(header::AUTHORIZATION) {
            return Err(Box::new(Problem::new(
                StatusCode::FORBIDDEN,
                "auth.forbidden",
                "the client certificate does not name a caller of `admission.listener.client_names`",
            )
            .with_help("only the Kubernetes API server may call the admission webhook")));
        }
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    // On the listener the loopback-only anonymous mode does not apply: it may be bound to any
    // address, and an unauthenticated caller there is never the API server.
    if peer.is_some() && (authorization.is_none() || state.auth.is_open()) {
        return Err(Box::new(Problem::new(
            StatusCode::UNAUTHORIZED,
            "auth.unauthenticated",
            "the admission webhook answers the Kubernetes API server only",
        )
        .with_help("present the client certificate or bearer token of the API server's admission kubeconfig")));
    }
    let principal = state
        .auth
        .authenticate(authorization)
        .map_err(|e| Box::new(Problem::from(e)))?;
    if !principal.has_any(&[Role::Admission]) {
        return Err(Box::new(
            Problem::new(
                StatusCode::FORBIDDEN,
                "auth.forbidden",
                format!(
                    "`{}` may not answer admission reviews: that needs the `admission` role",
                    principal.name
                ),
            )
            .with_help("give the API server's token `roles: [admission]`"),
        ));
    }
    Ok(AdmissionCaller::Token(principal.name))
}

/// `POST /v1/admission`
pub(crate) async fn review(
    State(state): State<HttpState>,
    State(admission): State<Option<Arc<Admission>>>,
    peer: Option<Extension<ConnectInfo<TlsPeer>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    // Who is asking comes first, so an unauthenticated caller learns not even whether
    // admission is enabled.
    let caller = authenticate(
        &state,
        admission.as_deref(),
        peer.as_ref().map(|Extension(ConnectInfo(p))| p),
        &headers,
    )
    .map_err(|p| *p)?;
    let Some(admission) = admission else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "admission.disabled",
            "admission is not enabled on this service",
        )
        .with_help("set `admission.enabled: true` and map namespaces to environments"));
    };
    let request = decode(&body).map_err(|p| *p)?;
    tracing::debug!(uid = %request.uid, caller = ?caller, "admission review");
    let mut response = json!({"uid": request.uid});
    match admission.review(&request).await {
        Ok(answer) => {
            response["allowed"] = json!(answer.allowed);
            if !answer.allowed {
                response["status"] = json!({"code": 403, "reason": "Forbidden",
                    "message": format!("portcullis: {}", answer.message)});
            }
            if !answer.warnings.is_empty() {
                response["warnings"] = json!(answer.warnings);
            }
            if !answer.audit.is_empty() {
                response["auditAnnotations"] = json!(answer.audit);
            }
        }
        Err(e) => {
            tracing::error!(uid = %request.uid, reason = e.reason_code(), "admission lookup failed: {e}");
            response["allowed"] = json!(false);
            response["status"] = json!({"code": 503, "reason": "ServiceUnavailable",
                "message": format!("portcullis cannot read its decisions ({}); nothing is admitted until it can", e.reason_code())});
        }
    }
    Ok(Json(json!({
        "apiVersion": API_VERSION,
        "kind": "AdmissionReview",
        "response": response,
    })))
}
