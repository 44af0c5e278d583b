//! The JSON shape of a decision in the HTTP API (and in contract responses that embed it), and of
//! a stored policy version. Kept apart from the domain types so a domain rename can never
//! silently change the API.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{Decision, ImageRef, PolicyVersionRecord};

#[derive(Debug, Serialize)]
pub struct DecisionView<'a> {
    pub id: &'a str,
    pub verdict: &'static str,
    pub status: &'static str,
    pub summary: &'a str,
    pub policy_version: &'a str,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub request: RequestView<'a>,
    pub rule_results: Vec<RuleResultView<'a>>,
    pub sources: Vec<SourceView<'a>>,
    pub evidence: &'a serde_json::Value,
    /// How a manual review ended, when it has.
    pub resolution: Option<ResolutionView<'a>>,
    /// When a pending review expires if nobody resolves it.
    pub review_deadline: Option<DateTime<Utc>>,
    /// Approvals so far (a review may need several distinct approvers).
    pub approvals: Vec<ApprovalView<'a>>,
    /// The ServiceNow change (or ticket) a routed review waits on.
    pub review_ticket: Option<ReviewTicketView<'a>>,
    /// Review attempts the gate refused, with who, when, why and the channel.
    pub refused_attempts: Vec<RefusedAttemptView<'a>>,
    /// The authenticated principal (token name) that requested the check; unlike
    /// `request.triggered_by`, not a claim. Null for decisions stored before it was recorded.
    pub principal: Option<&'a str>,
    /// The earlier decision for the same idempotency key that this one re-evaluated.
    pub replaces: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct RefusedAttemptView<'a> {
    pub by: &'a str,
    /// The authenticated principal that made (or relayed) the attempt.
    pub principal: Option<&'a str>,
    pub at: DateTime<Utc>,
    pub channel: &'static str,
    pub reason_code: &'a str,
    pub reason: &'a str,
}

#[derive(Debug, Serialize)]
pub struct ReviewTicketView<'a> {
    pub system: &'a str,
    pub number: &'a str,
    pub id: &'a str,
    pub opened_by_gate: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct ApprovalView<'a> {
    pub by: &'a str,
    /// The authenticated principal that recorded the approval.
    pub principal: Option<&'a str>,
    pub at: DateTime<Utc>,
    pub comment: &'a str,
    pub channel: &'static str,
}

#[derive(Debug, Serialize)]
pub struct ResolutionView<'a> {
    pub outcome: &'static str,
    pub by: &'a str,
    /// The authenticated principal that caused the resolution (`by` is who the channel names).
    pub principal: Option<&'a str>,
    pub at: DateTime<Utc>,
    pub comment: &'a str,
    pub channel: &'static str,
}

#[derive(Debug, Serialize)]
pub struct RequestView<'a> {
    pub application: &'a str,
    pub environment: &'a str,
    pub images: Vec<ImageView<'a>>,
    pub sources: Vec<SourceRevisionView<'a>>,
    pub caller: CallerView<'a>,
    pub triggered_by: Option<&'a str>,
    pub change_refs: ChangeRefsView<'a>,
    pub labels: &'a BTreeMap<String, String>,
    pub idempotency_key: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct ImageView<'a> {
    /// Written from the parts as it is serialized (`ImageRef`'s `Display`), not kept as a copy.
    #[serde(serialize_with = "display")]
    pub reference: &'a ImageRef,
    pub registry: &'a str,
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct SourceRevisionView<'a> {
    pub repository: &'a str,
    pub commit: Option<&'a str>,
    pub branch: Option<&'a str>,
    pub author: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct CallerView<'a> {
    pub kind: &'static str,
    pub ids: &'a BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
pub struct ChangeRefsView<'a> {
    pub jira_keys: Vec<&'a str>,
    pub servicenow_changes: Vec<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct RuleResultView<'a> {
    pub rule_id: &'a str,
    pub title: &'a str,
    pub category: &'a str,
    pub severity: &'static str,
    pub outcome: &'static str,
    pub effect: &'static str,
    pub reason: &'a str,
    pub remediation: &'a str,
    pub policy_file: &'a str,
}

#[derive(Debug, Serialize)]
pub struct SourceView<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub status: &'static str,
    pub reason: Option<&'static str>,
    pub message: &'a str,
    pub duration_ms: u64,
    pub url: Option<&'a str>,
}

fn display<S: serde::Serializer>(v: &&ImageRef, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(*v)
}

fn image(i: &ImageRef) -> ImageView<'_> {
    ImageView {
        reference: i,
        registry: &i.registry,
        repository: &i.repository,
        tag: i.tag.as_deref(),
        digest: i.digest.as_ref().map(|d| d.as_str()),
    }
}

/// Borrows every field from the decision: a response is written straight from the stored value,
/// with no copy of its evidence, results or request on the way.
impl<'a> From<&'a Decision> for DecisionView<'a> {
    fn from(d: &'a Decision) -> Self {
        let r = &d.request;
        DecisionView {
            id: d.id.as_str(),
            verdict: d.verdict.as_str(),
            status: d.status.as_str(),
            summary: &d.summary,
            policy_version: &d.policy_version,
            created_at: d.created_at,
            decided_at: d.decided_at,
            request: RequestView {
                application: r.application.as_str(),
                environment: r.environment.as_str(),
                images: r.images.iter().map(image).collect(),
                sources: r
                    .sources
                    .iter()
                    .map(|s| SourceRevisionView {
                        repository: &s.repository,
                        commit: s.commit.as_ref().map(|c| c.as_str()),
                        branch: s.branch.as_deref(),
                        author: s.author.as_deref(),
                    })
                    .collect(),
                caller: CallerView {
                    kind: r.caller.kind.as_str(),
                    ids: &r.caller.ids,
                },
                triggered_by: r.triggered_by.as_deref(),
                change_refs: ChangeRefsView {
                    jira_keys: r.change_refs.jira_keys.iter().map(|k| k.as_str()).collect(),
                    servicenow_changes: r
                        .change_refs
                        .servicenow_changes
                        .iter()
                        .map(|k| k.as_str())
                        .collect(),
                },
                labels: &r.labels,
                idempotency_key: r.idempotency_key.as_ref().map(|k| k.as_str()),
            },
            rule_results: d
                .rule_results
                .iter()
                .map(|x| RuleResultView {
                    rule_id: &x.rule_id,
                    title: &x.title,
                    category: &x.category,
                    severity: x.severity.as_str(),
                    outcome: x.outcome.as_str(),
                    effect: x.effect.as_str(),
                    reason: &x.reason,
                    remediation: &x.remediation,
                    policy_file: &x.policy_file,
                })
                .collect(),
            sources: d
                .evidence
                .sources
                .iter()
                .map(|s| SourceView {
                    name: &s.name,
                    kind: &s.kind,
                    status: s.status.as_str(),
                    reason: s.reason.map(|r| r.as_str()),
                    message: &s.message,
                    duration_ms: s.duration_ms,
                    url: s.url.as_deref(),
                })
                .collect(),
            evidence: &d.evidence.document,
            resolution: d.resolution.as_ref().map(|r| ResolutionView {
                outcome: r.outcome.as_str(),
                by: &r.by,
                principal: r.principal.as_deref(),
                at: r.at,
                comment: &r.comment,
                channel: r.channel.as_str(),
            }),
            review_deadline: d.review_deadline,
            approvals: d
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    by: &a.by,
                    principal: a.principal.as_deref(),
                    at: a.at,
                    comment: &a.comment,
                    channel: a.channel.as_str(),
                })
                .collect(),
            review_ticket: d.review_ticket.as_ref().map(|t| ReviewTicketView {
                system: &t.system,
                number: &t.number,
                id: &t.id,
                opened_by_gate: t.opened_by_gate,
                at: t.at,
            }),
            refused_attempts: d
                .refused_attempts
                .iter()
                .map(|r| RefusedAttemptView {
                    by: &r.by,
                    principal: r.principal.as_deref(),
                    at: r.at,
                    channel: r.channel.as_str(),
                    reason_code: &r.reason_code,
                    reason: &r.reason,
                })
                .collect(),
            principal: d.principal.as_deref(),
            replaces: d.replaces.as_ref().map(|id| id.as_str()),
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
