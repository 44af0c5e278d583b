//! Jira telling the gate an issue a review is routed to changed: `POST /v1/jira/webhook` takes
//! a Jira webhook body (`{"webhookEvent": "jira:issue_updated", "issue": {"id", "key", …}}`)
//! or a Jira Automation "Send web request" with `{"issue": {"key": "{{issue.key}}"}}`, and a
//! bearer token (role pipeline or approver). The body is only a hint: the issue is read back
//! from Jira and the review resolves only if its status is a configured approved / rejected
//! one, so a forged or repeated call changes nothing. Always `200` with `{resolved, …}` unless
//! the body is unusable (`400`), Jira cannot be read (`503`) or refuses the read (`502`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::domain::ValidationError;
use crate::edge::{Authed, HttpState, Problem, decode_json};
use crate::review_routing::{FollowError, Inbound, ReviewFollowers, jira};

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Webhook {
    #[serde(rename = "webhookEvent")]
    webhook_event: String,
    issue: IssueRef,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct IssueRef {
    id: String,
    key: String,
}

/// What the webhook answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAnswer {
    /// False when no pending review waits on the issue, or its status decides nothing yet.
    pub resolved: bool,
    pub issue: String,
    pub decision_id: Option<String>,
    pub verdict: Option<String>,
    pub outcome: Option<String>,
}

/// `POST /v1/jira/webhook`
pub(crate) async fn webhook(
    State(s): State<HttpState>,
    State(reviews): State<ReviewFollowers>,
    Authed(principal): Authed,
    body: Bytes,
) -> Result<Json<WebhookAnswer>, Problem> {
    let body: Webhook = decode_json(
        &body,
        "the webhook body",
        "send Jira's webhook body, or {\"issue\": {\"key\": \"{{issue.key}}\"}} from Automation",
    )
    .map_err(|e| Problem::invalid(&e))?;
    let (key, id) = (body.issue.key.trim(), body.issue.id.trim());
    if key.is_empty() && id.is_empty() {
        return Err(Problem::invalid(&ValidationError::new(
            "issue.key",
            "is required",
            "send the issue's `key` (or `id`)",
        )));
    }
    let Some(routing) = reviews.jira else {
        return Err(FollowError::NotRouted {
            system: jira::CHANNEL,
        }
        .into());
    };
    tracing::debug!(event = body.webhook_event.as_str(), key, id, "jira webhook");
    let issue = if key.is_empty() { id } else { key }.to_string();
    match routing.inbound(&s.gate, &principal, &[key, id]).await? {
        Inbound::Resolved(d) => Ok(Json(WebhookAnswer {
            resolved: true,
            issue,
            decision_id: Some(d.id.to_string()),
            verdict: Some(d.verdict.as_str().to_string()),
            outcome: d.resolution.map(|r| r.outcome.as_str().to_string()),
        })),
        // The webhook is only a hint: an issue whose status decides nothing yet is no error.
        Inbound::Waiting { .. } | Inbound::NoReview => Ok(Json(WebhookAnswer {
            resolved: false,
            issue,
            decision_id: None,
            verdict: None,
            outcome: None,
        })),
    }
}
