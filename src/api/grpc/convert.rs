//! Conversions between generated protobuf types and domain values.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::{
    CallerKind, CheckRequest, CheckRequestDraft, Decision, DecisionStatus, ImageDraft,
    PolicyVersionRecord, RuleOutcome, SourceDraft, SourceStatus, ValidationError, Verdict,
};
use crate::pb;
use crate::store::RuleOutcomeFilter;

pub(super) fn draft(r: pb::CheckRequest) -> CheckRequestDraft {
    let caller = r.caller.unwrap_or_default();
    let kind = pb::CallerKind::try_from(caller.kind).unwrap_or(pb::CallerKind::Unspecified);
    let change = r.change_refs.unwrap_or_default();
    CheckRequestDraft {
        application: r.application,
        environment: r.environment,
        images: r
            .images
            .into_iter()
            .map(|i| ImageDraft {
                reference: i.reference,
                registry: i.registry,
                repository: i.repository,
                tag: i.tag,
                digest: i.digest,
            })
            .collect(),
        sources: r
            .sources
            .into_iter()
            .map(|s| SourceDraft {
                repository: s.repository,
                commit: s.commit,
                branch: s.branch,
                author: s.author,
            })
            .collect(),
        caller_kind: caller_kind_from_pb(kind)
            .map(|k| k.as_str().to_string())
            .unwrap_or_default(),
        caller_ids: caller.ids.into_iter().collect(),
        triggered_by: r.triggered_by,
        jira_keys: change.jira_keys,
        servicenow_changes: change.servicenow_changes,
        labels: r.labels.into_iter().collect(),
        idempotency_key: r.idempotency_key,
    }
}

pub(super) fn caller_kind_from_pb(k: pb::CallerKind) -> Option<CallerKind> {
    match k {
        pb::CallerKind::Unspecified => None,
        pb::CallerKind::Spinnaker => Some(CallerKind::Spinnaker),
        pb::CallerKind::Argocd => Some(CallerKind::Argocd),
        pb::CallerKind::Servicenow => Some(CallerKind::Servicenow),
        pb::CallerKind::Api => Some(CallerKind::Api),
        pb::CallerKind::Cli => Some(CallerKind::Cli),
        pb::CallerKind::Rollouts => Some(CallerKind::Rollouts),
    }
}

fn caller_kind_to_pb(k: CallerKind) -> pb::CallerKind {
    match k {
        CallerKind::Spinnaker => pb::CallerKind::Spinnaker,
        CallerKind::Argocd => pb::CallerKind::Argocd,
        CallerKind::Servicenow => pb::CallerKind::Servicenow,
        CallerKind::Api => pb::CallerKind::Api,
        CallerKind::Cli => pb::CallerKind::Cli,
        CallerKind::Rollouts => pb::CallerKind::Rollouts,
    }
}

pub(super) fn verdict_from_pb(v: pb::Verdict) -> Option<Verdict> {
    match v {
        pb::Verdict::Unspecified => None,
        pb::Verdict::Continue => Some(Verdict::Continue),
        pb::Verdict::ManualReview => Some(Verdict::ManualReview),
        pb::Verdict::Terminate => Some(Verdict::Terminate),
    }
}

fn verdict_to_pb(v: Verdict) -> pb::Verdict {
    match v {
        Verdict::Continue => pb::Verdict::Continue,
        Verdict::ManualReview => pb::Verdict::ManualReview,
        Verdict::Terminate => pb::Verdict::Terminate,
    }
}

pub(super) fn status_from_pb(s: pb::DecisionStatus) -> Option<DecisionStatus> {
    match s {
        pb::DecisionStatus::Unspecified => None,
        pb::DecisionStatus::Pending => Some(DecisionStatus::Pending),
        pb::DecisionStatus::Final => Some(DecisionStatus::Final),
    }
}

fn status_to_pb(s: DecisionStatus) -> pb::DecisionStatus {
    match s {
        DecisionStatus::Pending => pb::DecisionStatus::Pending,
        DecisionStatus::Final => pb::DecisionStatus::Final,
    }
}

/// A list request's `rule_outcome`: unspecified is none; a number this build does not know is
/// refused rather than read as "any".
pub(super) fn rule_outcome_from_pb(v: i32) -> Result<Option<RuleOutcomeFilter>, ValidationError> {
    match pb::RuleOutcomeFilter::try_from(v) {
        Ok(pb::RuleOutcomeFilter::Unspecified) => Ok(None),
        Ok(pb::RuleOutcomeFilter::Failed) => Ok(Some(RuleOutcomeFilter::Failed)),
        Ok(pb::RuleOutcomeFilter::Passed) => Ok(Some(RuleOutcomeFilter::Passed)),
        Err(_) => Err(ValidationError::new(
            "rule_outcome",
            format!("unknown rule outcome {v}"),
            "use RULE_OUTCOME_FILTER_FAILED or RULE_OUTCOME_FILTER_PASSED",
        )),
    }
}

/// A request's time field (`name`), when set; one outside what a time can be (nanos not in
/// 0..1e9, seconds past year 262143) is refused.
pub(super) fn time_from_pb(
    name: &str,
    t: Option<&prost_types::Timestamp>,
) -> Result<Option<DateTime<Utc>>, ValidationError> {
    t.map(|t| {
        u32::try_from(t.nanos)
            .ok()
            .filter(|n| *n < 1_000_000_000)
            .and_then(|nanos| DateTime::<Utc>::from_timestamp(t.seconds, nanos))
            .ok_or_else(|| {
                ValidationError::new(
                    name,
                    format!("seconds {} and nanos {} are not a time", t.seconds, t.nanos),
                    "send a google.protobuf.Timestamp with nanos in 0..999999999",
                )
            })
    })
    .transpose()
}

fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn request(r: &CheckRequest) -> pb::CheckRequest {
    pb::CheckRequest {
        application: r.application.to_string(),
        environment: r.environment.to_string(),
        images: r
            .images
            .iter()
            .map(|i| pb::Image {
                reference: i.to_string(),
                registry: i.registry.clone(),
                repository: i.repository.clone(),
                tag: i.tag.clone().unwrap_or_default(),
                digest: i.digest.as_ref().map(|d| d.to_string()).unwrap_or_default(),
            })
            .collect(),
        sources: r
            .sources
            .iter()
            .map(|s| pb::SourceRevision {
                repository: s.repository.clone(),
                commit: s.commit.as_ref().map(|c| c.to_string()).unwrap_or_default(),
                branch: s.branch.clone().unwrap_or_default(),
                author: s.author.clone().unwrap_or_default(),
            })
            .collect(),
        caller: Some(pb::Caller {
            kind: caller_kind_to_pb(r.caller.kind) as i32,
            ids: r.caller.ids.clone().into_iter().collect(),
        }),
        triggered_by: r.triggered_by.clone().unwrap_or_default(),
        change_refs: Some(pb::ChangeRefs {
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
        }),
        labels: r.labels.clone().into_iter().collect(),
        idempotency_key: r
            .idempotency_key
            .as_ref()
            .map(|k| k.to_string())
            .unwrap_or_default(),
    }
}

pub(super) fn decision(d: &Decision) -> pb::Decision {
    pb::Decision {
        id: d.id.to_string(),
        verdict: verdict_to_pb(d.verdict) as i32,
        status: status_to_pb(d.status) as i32,
        request: Some(request(&d.request)),
        rule_results: d
            .rule_results
            .iter()
            .map(|r| pb::RuleResult {
                rule_id: r.rule_id.clone(),
                title: r.title.clone(),
                category: r.category.clone(),
                severity: r.severity.as_str().to_string(),
                outcome: outcome(r.outcome).to_string(),
                effect: verdict_to_pb(r.effect) as i32,
                reason: r.reason.clone(),
                remediation: r.remediation.clone(),
                policy_file: r.policy_file.clone(),
            })
            .collect(),
        sources: d
            .evidence
            .sources
            .iter()
            .map(|s| pb::SourceReport {
                name: s.name.clone(),
                kind: s.kind.clone(),
                status: match s.status {
                    SourceStatus::Ok => "ok",
                    SourceStatus::Unavailable => "unavailable",
                }
                .to_string(),
                reason_code: s.reason.map(|r| r.as_str().to_string()).unwrap_or_default(),
                message: s.message.clone(),
                duration_ms: s.duration_ms,
                url: s.url.clone().unwrap_or_default(),
            })
            .collect(),
        evidence: match json_to_pb(&d.evidence.document).kind {
            Some(prost_types::value::Kind::StructValue(s)) => Some(s),
            _ => None,
        },
        policy_version: d.policy_version.clone(),
        created_at: Some(timestamp(d.created_at)),
        decided_at: d.decided_at.map(timestamp),
        summary: d.summary.clone(),
        resolution: d.resolution.as_ref().map(|r| pb::Resolution {
            outcome: r.outcome.as_str().to_string(),
            by: r.by.clone(),
            at: Some(timestamp(r.at)),
            comment: r.comment.clone(),
            channel: r.channel.to_string(),
            principal: r.principal.clone().unwrap_or_default(),
        }),
        review_deadline: d.review_deadline.map(timestamp),
        approvals: d
            .approvals
            .iter()
            .map(|a| pb::Approval {
                by: a.by.clone(),
                at: Some(timestamp(a.at)),
                comment: a.comment.clone(),
                channel: a.channel.to_string(),
                principal: a.principal.clone().unwrap_or_default(),
            })
            .collect(),
        principal: d.principal.clone().unwrap_or_default(),
        replaces: d
            .replaces
            .as_ref()
            .map(|id| id.to_string())
            .unwrap_or_default(),
        refused_attempts: d
            .refused_attempts
            .iter()
            .map(|r| pb::RefusedAttempt {
                by: r.by.clone(),
                at: Some(timestamp(r.at)),
                channel: r.channel.to_string(),
                reason_code: r.reason_code.clone(),
                reason: r.reason.clone(),
                principal: r.principal.clone().unwrap_or_default(),
            })
            .collect(),
        review_ticket: d.review_ticket.as_ref().map(|t| pb::ReviewTicket {
            system: t.system.clone(),
            number: t.number.clone(),
            id: t.id.clone(),
            opened_by_gate: t.opened_by_gate,
            at: Some(timestamp(t.at)),
        }),
    }
}

fn outcome(o: RuleOutcome) -> &'static str {
    o.as_str()
}

fn json_to_pb(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_to_pb).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(prost_types::Struct {
            fields: o
                .iter()
                .map(|(k, v)| (k.clone(), json_to_pb(v)))
                .collect::<BTreeMap<_, _>>(),
        }),
    };
    prost_types::Value { kind: Some(kind) }
}

/// A stored policy version; `stored_at` as RFC 3339 text in the same form the HTTP API writes.
pub(super) fn policy_version(r: PolicyVersionRecord) -> pb::PolicyVersion {
    pb::PolicyVersion {
        version: r.policy.version,
        stored_at: r
            .stored_at
            .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        files: r
            .policy
            .files
            .into_iter()
            .map(|f| pb::PolicyFile {
                path: f.path,
                content: f.content,
            })
            .collect(),
    }
}
