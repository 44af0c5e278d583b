//! ServiceNow asking the gate: `POST /v1/servicenow/change-check` takes a change request (number,
//! CI / application, environment, the artifacts it deploys), runs the gate's checks as caller
//! `servicenow`, and answers a recommendation an approval policy can act on:
//! `continue` → `approve`, `terminate` → `reject`, `manual_review` → `needs_cab`.
//!
//! Idempotent on the change number plus a caller-given `attempt`: ServiceNow's outbound REST
//! retries, and a business rule that fires twice, get the same decision; a new attempt (the
//! change was edited and re-submitted) is a new check. Any answer with a decision is `200`, so
//! the calling script reads one body shape; bad input is `400` and store trouble `503`, both as
//! problem+json. The `integrations/servicenow/` README holds the ServiceNow side.
//!
//! `POST /v1/servicenow/callback` is ServiceNow telling the gate a change routed a review was
//! approved or rejected (a business rule on `change_request.approval`). The body is only a
//! hint: the change is read back from ServiceNow before the review is resolved, so a pipeline
//! token cannot approve a deploy by posting a callback, and callback and polling agree.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use super::fields::StringList;
use crate::domain::{
    CallerKind, ChangeNumber, CheckRequestDraft, Decision, DecisionStatus, ImageDraft, SourceDraft,
    ValidationError, Verdict,
};
use crate::edge::{Authed, HttpState, Problem, base_url, decode_json};
use crate::review_routing::{self, FollowError, Inbound, ReviewFollowers};

/// The body ServiceNow sends (see `integrations/servicenow/outbound-rest-message.md`).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ChangeCheck {
    /// `CHG0031337`.
    number: String,
    sys_id: String,
    /// The application (the CI's name); `cmdb_ci` is accepted as an alias.
    #[serde(alias = "cmdb_ci")]
    application: String,
    environment: String,
    /// Image references the change deploys; a list or one comma-separated string.
    artifacts: StringList,
    /// Who asked for the change (`requested_by.user_name`); the gate keeps them from approving
    /// the deploy's review themselves.
    requested_by: String,
    /// Which submission of the change this is; the same number and attempt return the same
    /// decision. Defaults to `1`.
    attempt: Attempt,
    /// Jira keys the change refers to.
    jira_keys: StringList,
    repository: String,
    revision: String,
    branch: String,
    labels: BTreeMap<String, String>,
}

/// ServiceNow scripts send numbers as strings or numbers alike.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Attempt {
    #[default]
    None,
    Text(String),
    Number(u64),
}

impl Attempt {
    fn as_string(&self) -> String {
        match self {
            Attempt::None => "1".to_string(),
            Attempt::Text(s) if s.trim().is_empty() => "1".to_string(),
            Attempt::Text(s) => s.trim().to_string(),
            Attempt::Number(n) => n.to_string(),
        }
    }
}

/// What the approval policy reads.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeCheckAnswer {
    /// `approve`, `reject` or `needs_cab`.
    pub recommendation: String,
    /// The gate's verdict (`continue`, `manual_review`, `terminate`).
    pub verdict: String,
    /// `pending` while a review is open, else `final`.
    pub status: String,
    pub decision_id: String,
    pub change_number: String,
    pub attempt: String,
    /// One line for the change's work notes.
    pub summary: String,
    /// Every rule that asked for more than `continue`, strictest first.
    pub reasons: Vec<Reason>,
    pub policy_version: String,
    /// Where to read the decision (absolute when `server.public_url` is set or the request
    /// carried a `Host`).
    pub decision_url: String,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reason {
    pub rule_id: String,
    pub title: String,
    pub effect: String,
    pub reason: String,
    pub remediation: String,
}

/// `POST /v1/servicenow/change-check`
pub(crate) async fn change_check(
    State(s): State<HttpState>,
    headers: HeaderMap,
    Authed(principal): Authed,
    body: Bytes,
) -> Result<Json<ChangeCheckAnswer>, Problem> {
    let body: ChangeCheck = decode_json(
        &body,
        "the change-check body",
        "send {number, application, environment, artifacts} as in integrations/servicenow/README.md",
    )
    .map_err(|e| Problem::invalid(&e))?;
    let number = change_number(&body.number).map_err(|e| Problem::invalid(&e))?;
    let attempt = body.attempt.as_string();
    let request = draft(&body, &number, &attempt)
        .parse(CallerKind::Servicenow)
        .map_err(|e| Problem::invalid(&e))?;
    let decision = s.gate.check(&principal, request).await?.decision;
    Ok(Json(answer(
        &decision,
        &number,
        &attempt,
        &base_url(&s, &headers),
    )))
}

/// The callback body the business rule in `integrations/servicenow/` sends.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Callback {
    number: String,
    sys_id: String,
    /// `approved` / `rejected` (raw); informational — ServiceNow is read back.
    approval: String,
    approver: String,
}

/// What the callback answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackAnswer {
    /// False when no pending review waits on the change (already resolved, or never routed).
    pub resolved: bool,
    pub change_number: String,
    pub decision_id: Option<String>,
    pub verdict: Option<String>,
    pub outcome: Option<String>,
    pub by: Option<String>,
    pub message: String,
}

/// `POST /v1/servicenow/callback`
pub(crate) async fn callback(
    State(s): State<HttpState>,
    State(reviews): State<ReviewFollowers>,
    Authed(principal): Authed,
    body: Bytes,
) -> Result<Json<CallbackAnswer>, Problem> {
    let body: Callback = decode_json(
        &body,
        "the callback body",
        "send {number, sys_id, approval} as integrations/servicenow/business-rule-callback.js does",
    )
    .map_err(|e| Problem::invalid(&e))?;
    let number = change_number(&body.number).map_err(|e| Problem::invalid(&e))?;
    let Some(routing) = reviews.servicenow else {
        return Err(FollowError::NotRouted {
            system: review_routing::servicenow::CHANNEL,
        }
        .into());
    };
    tracing::debug!(
        number = number.as_str(),
        sys_id = body.sys_id.as_str(),
        approval = body.approval.as_str(),
        approver = body.approver.as_str(),
        "servicenow callback"
    );
    match routing.inbound(&s.gate, &principal, &[&number]).await? {
        Inbound::Resolved(d) => {
            let r = d.resolution.as_ref();
            Ok(Json(CallbackAnswer {
                resolved: true,
                change_number: number,
                decision_id: Some(d.id.to_string()),
                verdict: Some(d.verdict.as_str().to_string()),
                outcome: r.map(|r| r.outcome.as_str().to_string()),
                by: r.map(|r| r.by.clone()),
                message: d.summary.clone(),
            }))
        }
        Inbound::NoReview => Ok(Json(CallbackAnswer {
            resolved: false,
            message: format!("no pending review waits on `{number}`; nothing to do"),
            change_number: number,
            decision_id: None,
            verdict: None,
            outcome: None,
            by: None,
        })),
        // ServiceNow calls back when the change is decided: a change that is not is a conflict.
        Inbound::Waiting { ticket, detail } => Err(FollowError::NotDecided {
            system: review_routing::servicenow::CHANNEL,
            ticket,
            detail,
        }
        .into()),
    }
}

/// The recommendation for a decision as it now stands.
pub fn recommendation(d: &Decision) -> &'static str {
    match (d.status, d.verdict) {
        (DecisionStatus::Pending, _) | (_, Verdict::ManualReview) => "needs_cab",
        (DecisionStatus::Final, Verdict::Continue) => "approve",
        (DecisionStatus::Final, Verdict::Terminate) => "reject",
    }
}

fn answer(d: &Decision, number: &str, attempt: &str, base: &str) -> ChangeCheckAnswer {
    ChangeCheckAnswer {
        recommendation: recommendation(d).to_string(),
        verdict: d.verdict.as_str().to_string(),
        status: d.status.as_str().to_string(),
        decision_id: d.id.to_string(),
        change_number: number.to_string(),
        attempt: attempt.to_string(),
        summary: d.summary.clone(),
        reasons: d
            .blocking_results()
            .into_iter()
            .map(|r| Reason {
                rule_id: r.rule_id.clone(),
                title: r.title.clone(),
                effect: r.effect.as_str().to_string(),
                reason: r.reason.clone(),
                remediation: r.remediation.clone(),
            })
            .collect(),
        policy_version: d.policy_version.clone(),
        decision_url: format!("{base}/v1/decisions/{}", d.id),
    }
}

/// The change number a ServiceNow body names, by the domain's one rule.
fn change_number(raw: &str) -> Result<String, ValidationError> {
    let number = raw.trim();
    ChangeNumber::parse(number)
        .map(|n| n.as_str().to_string())
        .map_err(|_| {
            ValidationError::new(
                "number",
                format!("`{number}` is not a change number"),
                "send the change request's `number`, e.g. `CHG0031337`",
            )
        })
}

fn draft(b: &ChangeCheck, number: &str, attempt: &str) -> CheckRequestDraft {
    let mut ids = BTreeMap::from([
        ("change_number".to_string(), number.to_string()),
        ("attempt".to_string(), attempt.to_string()),
    ]);
    if !b.sys_id.trim().is_empty() {
        ids.insert("sys_id".to_string(), b.sys_id.trim().to_string());
    }
    CheckRequestDraft {
        application: b.application.clone(),
        environment: b.environment.clone(),
        images: b
            .artifacts
            .items()
            .into_iter()
            .map(|reference| ImageDraft {
                reference,
                ..Default::default()
            })
            .collect(),
        sources: if b.repository.trim().is_empty() {
            Vec::new()
        } else {
            vec![SourceDraft {
                repository: b.repository.clone(),
                commit: b.revision.clone(),
                branch: b.branch.clone(),
                author: String::new(),
            }]
        },
        caller_kind: String::new(),
        caller_ids: ids,
        triggered_by: b.requested_by.clone(),
        jira_keys: b.jira_keys.items(),
        // The change itself is the deploy's change reference; rules about its own approval
        // do not apply to caller `servicenow` (it is what is being decided).
        servicenow_changes: vec![number.to_string()],
        labels: b.labels.clone(),
        idempotency_key: format!("servicenow:{number}:{attempt}"),
    }
}

#[cfg(test)]
#[expect(clippy::panic, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn change_numbers_are_letters_then_digits() {
        let ok = |s: &str| change_number(s).is_ok();
        assert!(ok("CHG0031337"));
        assert!(ok(" RFC12 "));
        assert!(!ok(""));
        assert!(!ok("CHG"));
        assert!(!ok("0031337"));
        assert!(!ok("CHG-1"));
        assert!(!ok("CHG12A3"));
    }

    #[test]
    fn attempts_default_to_one_and_accept_numbers() {
        // Parse failures must fail the test, not fall back to a default that equals the
        // expected value.
        let parse = |json: &str| -> ChangeCheck {
            serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
        };
        assert_eq!(parse(r#"{"number":"CHG1"}"#).attempt.as_string(), "1");
        assert_eq!(
            parse(r#"{"number":"CHG1","attempt":" "}"#)
                .attempt
                .as_string(),
            "1"
        );
        assert_eq!(
            parse(r#"{"number":"CHG1","attempt":3}"#)
                .attempt
                .as_string(),
            "3"
        );
        assert_eq!(
            parse(r#"{"number":"CHG1","attempt":"2"}"#)
                .attempt
                .as_string(),
            "2"
        );
        assert_eq!(
            parse(r#"{"number":"CHG1","artifacts":"a, b\nc"}"#)
                .artifacts
                .items(),
            vec!["a", "b", "c"]
        );
        assert!(serde_json::from_str::<ChangeCheck>(r#"{"number":"CHG1","bogus":1}"#).is_err());
    }
}
