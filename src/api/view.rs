//! The JSON shape of a decision in the HTTP API (and in contract responses that embed it), and of
//! a stored policy version. Kept apart from the domain types so a domain rename can never
//! silently change the API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Decision, ImageRef, PolicyVersionRecord};

#[derive(Debug, Serialize)]
pub struct DecisionView {
    pub id: String,
    pub verdict: &'static str,
    pub status: &'static str,
    pub summary: String,
    pub policy_version: String,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub request: RequestView,
    pub rule_results: Vec<RuleResultView>,
    pub sources: Vec<SourceView>,
    pub evidence: serde_json::Value,
    /// How a manual review ended, when it has.
    pub resolution: Option<ResolutionView>,
    /// When a pending review expires if nobody resolves it.
    pub review_deadline: Option<DateTime<Utc>>,
    /// Approvals so far (a review may need several distinct approvers).
    pub approvals: Vec<ApprovalView>,
    /// The ServiceNow change (or ticket) a routed review waits on.
    pub review_ticket: Option<ReviewTicketView>,
    /// Review attempts the gate refused, with who, when, why and the channel.
    pub refused_attempts: Vec<RefusedAttemptView>,
    /// The authenticated principal (token name) that requested the check; unlike
    /// `request.triggered_by`, not a claim. Null for decisions stored before it was recorded.
    pub principal: Option<String>,
    /// The earlier decision for the same idempotency key that this one re-evaluated.
    pub replaces: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RefusedAttemptView {
    pub by: String,
    /// The authenticated principal that made (or relayed) the attempt.
    pub principal: Option<String>,
    pub at: DateTime<Utc>,
    pub channel: String,
    pub reason_code: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct ReviewTicketView {
    pub system: String,
    pub number: String,
    pub id: String,
    pub opened_by_gate: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct ApprovalView {
    pub by: String,
    /// The authenticated principal that recorded the approval.
    pub principal: Option<String>,
    pub at: DateTime<Utc>,
    pub comment: String,
    pub channel: String,
}

#[derive(Debug, Serialize)]
pub struct ResolutionView {
    pub outcome: &'static str,
    pub by: String,
    /// The authenticated principal that caused the resolution (`by` is who the channel names).
    pub principal: Option<String>,
    pub at: DateTime<Utc>,
    pub comment: String,
    pub channel: String,
}

#[derive(Debug, Serialize)]
pub struct RequestView {
    pub application: String,
    pub environment: String,
    pub images: Vec<ImageView>,
    pub sources: Vec<SourceRevisionView>,
    pub caller: CallerView,
    pub triggered_by: Option<String>,
    pub change_refs: ChangeRefsView,
    pub labels: BTreeMap<String, String>,
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ImageView {
    pub reference: String,
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SourceRevisionView {
    pub repository: String,
    pub commit: Option<String>,
    pub branch: Option<String>,
    pub author: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CallerView {
    pub kind: &'static str,
    pub ids: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct ChangeRefsView {
    pub jira_keys: Vec<String>,
    pub servicenow_changes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RuleResultView {
    pub rule_id: String,
    pub title: String,
    pub category: String,
    pub severity: &'static str,
    pub outcome: &'static str,
    pub effect: &'static str,
    pub reason: String,
    pub remediation: String,
    pub policy_file: String,
}

#[derive(Debug, Serialize)]
pub struct SourceView {
    pub name: String,
    pub kind: String,
    pub status: &'static str,
    pub reason: Option<&'static str>,
    pub message: String,
    pub duration_ms: u64,
    pub url: Option<String>,
}

fn image(i: &ImageRef) -> ImageView {
    ImageView {
        reference: i.to_string(),
        registry: i.registry.clone(),
        repository: i.repository.clone(),
        tag: i.tag.clone(),
        digest: i.digest.as_ref().map(|d| d.to_string()),
    }
}

impl From<&Decision> for DecisionView {
    fn from(d: &Decision) -> Self {
        let r = &d.request;
        DecisionView {
            id: d.id.to_string(),
            verdict: d.verdict.as_str(),
            status: d.status.as_str(),
            summary: d.summary.clone(),
            policy_version: d.policy_version.clone(),
            created_at: d.created_at,
            decided_at: d.decided_at,
            request: RequestView {
                application: r.application.to_string(),
                environment: r.environment.to_string(),
                images: r.images.iter().map(image).collect(),
                sources: r
                    .sources
                    .iter()
                    .map(|s| SourceRevisionView {
                        repository: s.repository.clone(),
                        commit: s.commit.as_ref().map(|c| c.to_string()),
                        branch: s.branch.clone(),
                        author: s.author.clone(),
                    })
                    .collect(),
                caller: CallerView {
                    kind: r.caller.kind.as_str(),
                    ids: r.caller.ids.clone(),
                },
                triggered_by: r.triggered_by.clone(),
                change_refs: ChangeRefsView {
                    jira_keys: r
                        .change_refs
                        .jira_keys
                        .iter()
                        .map(|k| k.to_string())
                        .collect(),
                    servicenow_changes: r
                        .change_refs
                        .servicenow_changes
                        .iter()
                        .map(|k| k.to_string())
                        .collect(),
                },
                labels: r.labels.clone(),
                idempotency_key: r.idempotency_key.as_ref().map(|k| k.to_string()),
            },
            rule_results: d
                .rule_results
                .iter()
                .map(|x| RuleResultView {
                    rule_id: x.rule_id.clone(),
                    title: x.title.clone(),
                    category: x.category.clone(),
                    severity: x.severity.as_str(),
                    outcome: x.outcome.as_str(),
                    effect: x.effect.as_str(),
                    reason: x.reason.clone(),
                    remediation: x.remediation.clone(),
                    policy_file: x.policy_file.clone(),
                })
                .collect(),
            sources: d
                .evidence
                .sources
                .iter()
                .map(|s| SourceView {
                    name: s.name.clone(),
                    kind: s.kind.clone(),
                    status: s.status.as_str(),
                    reason: s.reason.map(|r| r.as_str()),
                    message: s.message.clone(),
                    duration_ms: s.duration_ms,
                    url: s.url.clone(),
                })
                .collect(),
            evidence: d.evidence.document.clone(),
            resolution: d.resolution.as_ref().map(|r| ResolutionView {
                outcome: r.outcome.as_str(),
                by: r.by.clone(),
                principal: r.principal.clone(),
                at: r.at,
                comment: r.comment.clone(),
                channel: r.channel.to_string(),
            }),
            review_deadline: d.review_deadline,
            approvals: d
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    by: a.by.clone(),
                    principal: a.principal.clone(),
                    at: a.at,
                    comment: a.comment.clone(),
                    channel: a.channel.to_string(),
                })
                .collect(),
            review_ticket: d.review_ticket.as_ref().map(|t| ReviewTicketView {
                system: t.system.clone(),
                number: t.number.clone(),
                id: t.id.clone(),
                opened_by_gate: t.opened_by_gate,
                at: t.at,
            }),
            refused_attempts: d
                .refused_attempts
                .iter()
                .map(|r| RefusedAttemptView {
                    by: r.by.clone(),
                    principal: r.principal.clone(),
                    at: r.at,
                    channel: r.channel.to_string(),
                    reason_code: r.reason_code.clone(),
                    reason: r.reason.clone(),
                })
                .collect(),
            principal: d.principal.clone(),
            replaces: d.replaces.as_ref().map(|id| id.to_string()),
        }
    }
}

/// A stored policy version (`GET /v1/policies/{version}`): the files whose digest is `version`.
#[derive(Debug, Serialize)]
pub struct PolicyVersionView {
    pub version: String,
    /// When the version was first stored: just before the first decision it made.
    pub stored_at: DateTime<Utc>,
    /// Sorted by path.
    pub files: Vec<PolicyFileView>,
}

#[derive(Debug, Serialize)]
pub struct PolicyFileView {
    pub path: String,
    pub content: String,
}

impl From<PolicyVersionRecord> for PolicyVersionView {
    fn from(r: PolicyVersionRecord) -> Self {
        PolicyVersionView {
            version: r.policy.version,
            stored_at: r.stored_at,
            files: r
                .policy
                .files
                .into_iter()
                .map(|f| PolicyFileView {
                    path: f.path,
                    content: f.content,
                })
                .collect(),
        }
    }
}
