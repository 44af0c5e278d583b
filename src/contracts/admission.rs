//! The Kubernetes `ValidatingAdmissionWebhook` contract: `POST /v1/admission` takes an
//! `admission.k8s.io/v1` `AdmissionReview` and answers one with the request's `uid`, `allowed`,
//! and on denial `status.code` 403 with a message naming each image and what it lacks
//! (contract `supply-chain.md` §9.2). The decision is `admission::Admission`'s; this file
//! decodes and encodes. A body that is not an `AdmissionReview` is a 400 (the API server then
//! applies the webhook's `failurePolicy`, `Fail` in the shipped chart); a store fault is a
//! denial with code 503, never an allow.

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde_json::{Value, json};

use crate::admission::{Admission, AdmissionRequest};
use crate::api::http::problem::Problem;
use crate::domain::ValidationError;

const API_VERSION: &str = "admission.k8s.io/v1";

fn invalid(message: String) -> Problem {
    Problem::invalid(&ValidationError::new(
        "",
        message,
        "send an `admission.k8s.io/v1` `AdmissionReview` with a `request` (what the API server sends a validating webhook)",
    ))
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Decodes the review's `request`.
pub fn decode(body: &[u8]) -> Result<AdmissionRequest, Box<Problem>> {
    let review: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("the body is not json: {e}")))?;
    if review["apiVersion"] != API_VERSION || review["kind"] != "AdmissionReview" {
        return Err(Box::new(invalid(format!(
            "expected `apiVersion: {API_VERSION}` and `kind: AdmissionReview`, got `{}` `{}`",
            text(&review["apiVersion"]),
            text(&review["kind"])
        ))));
    }
    let r = &review["request"];
    let uid = text(&r["uid"]);
    if uid.is_empty() {
        return Err(Box::new(invalid("`request.uid` is missing".into())));
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

/// `POST /v1/admission`
pub(crate) async fn review(
    Extension(admission): Extension<Option<Arc<Admission>>>,
    body: Bytes,
) -> Result<Json<Value>, Problem> {
    let Some(admission) = admission else {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "admission.disabled",
            "admission is not enabled on this service",
        )
        .with_help("set `admission.enabled: true` and map namespaces to environments"));
    };
    let request = decode(&body).map_err(|p| *p)?;
    let mut response = json!({"uid": request.uid});
    match admission.review(&request, chrono::Utc::now()).await {
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
