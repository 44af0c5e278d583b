//! What the gate answers: a verdict, whether it can still change, and why.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Channel, CheckRequest, DecisionId, Evidence, ValidationError};

/// The gate's answer. Ordered from most to least permissive, so the strictest of several
/// verdicts is their maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The deploy may proceed.
    Continue,
    /// A human (or the change process) must decide.
    ManualReview,
    /// The deploy must stop.
    Terminate,
}

impl Verdict {
    pub const ALL: [Verdict; 3] = [Verdict::Continue, Verdict::ManualReview, Verdict::Terminate];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Continue => "continue",
            Verdict::ManualReview => "manual_review",
            Verdict::Terminate => "terminate",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "verdict",
                    format!("unknown verdict `{s}`"),
                    "use continue, manual_review or terminate",
                )
            })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a decision can still change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionStatus {
    /// Awaiting a manual review; the verdict may still change.
    Pending,
    /// Nothing about this decision changes any more.
    Final,
}

impl DecisionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DecisionStatus::Pending => "pending",
            DecisionStatus::Final => "final",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        match s {
            "pending" => Ok(DecisionStatus::Pending),
            "final" => Ok(DecisionStatus::Final),
            _ => Err(ValidationError::new(
                "status",
                format!("unknown status `{s}`"),
                "use pending or final",
            )),
        }
    }
}

/// How bad a rule's failure is; decides its default verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }

    /// The verdict of a failing rule when its policy does not say: critical stops the deploy,
    /// high asks a human, medium and low let it through with a warning.
    pub fn default_on_fail(self) -> Verdict {
        match self {
            Severity::Critical => Verdict::Terminate,
            Severity::High => Verdict::ManualReview,
            Severity::Medium | Severity::Low => Verdict::Continue,
        }
    }
}

/// What one rule found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOutcome {
    /// The condition held.
    Pass,
    /// The condition did not hold.
    Fail,
    /// The evidence the condition needs was unavailable; `on_missing` decided the effect.
    Missing,
}

impl RuleOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleOutcome::Pass => "pass",
            RuleOutcome::Fail => "fail",
            RuleOutcome::Missing => "missing",
        }
    }
}

/// One applicable rule's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleResult {
    pub rule_id: String,
    pub title: String,
    pub category: String,
    pub severity: Severity,
    pub outcome: RuleOutcome,
    /// The verdict this rule asks for (`continue` for a pass or a warning).
    pub effect: Verdict,
    /// Why, in words an engineer can act on (what was found, where).
    pub reason: String,
    pub remediation: String,
    /// The policy file (relative to its directory, or `builtin:<name>`) the rule came from.
    pub policy_file: String,
}

/// A stored answer to one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub id: DecisionId,
    pub verdict: Verdict,
    pub status: DecisionStatus,
    pub request: CheckRequest,
    pub rule_results: Vec<RuleResult>,
    pub evidence: Evidence,
    /// Content digest of the policy set that decided (`sha256:…`).
    pub policy_version: String,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    /// One line for people: the verdict and the rules that drove it.
    pub summary: String,
    /// How a pending decision ended, when it did not end by evaluation alone. Absent in decisions
    /// stored before reviews existed, hence the default.
    #[serde(default)]
    pub resolution: Option<Resolution>,
    /// When a pending review expires (terminate) if nobody resolves it first.
    #[serde(default)]
    pub review_deadline: Option<DateTime<Utc>>,
    /// Approvals so far, when a review needs several distinct approvers.
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// The change request (or ticket) the review was routed to, once opened or attached.
    /// Left out of the stored body when absent, so decisions stored before it existed still
    /// compare equal in a compare-and-set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_ticket: Option<ReviewTicket>,
    /// Review attempts the gate refused (separation of duties, approver groups, a repeated
    /// approval), with who, when, why and through which channel. Left out when empty, like
    /// `review_ticket`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_attempts: Vec<RefusedAttempt>,
    /// The authenticated principal (token name; `anonymous` in loopback development mode) that
    /// requested the check — unlike `request.triggered_by`, which is what the caller claims.
    /// Absent only in decisions stored before principals were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// The earlier decision for the same idempotency key that this one re-evaluated, because
    /// that answer was no longer sound (older than `gate.replay_window`, or another policy
    /// version decided it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<DecisionId>,
    /// How many re-evaluations of the same idempotency key came before this decision (0 for the
    /// first); the store keys each generation separately, so replicas racing to re-evaluate
    /// one key store exactly one decision per generation.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub key_generation: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One refused attempt to resolve a review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedAttempt {
    pub by: String,
    /// The authenticated principal that made the attempt (for an outside channel, the token or
    /// follower that relayed it; `by` is then the person the system named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    pub at: DateTime<Utc>,
    pub channel: Channel,
    /// `review.separation_of_duties`, `review.not_in_approver_group`, `review.already_approved`.
    pub reason_code: String,
    pub reason: String,
}

/// Where a routed review is decided: a ServiceNow change request (or a Jira issue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewTicket {
    /// `servicenow` (the channel its resolution is recorded under).
    pub system: String,
    /// The adapter instance it lives in (`servicenow`).
    pub adapter: String,
    /// `CHG0040001`.
    pub number: String,
    /// The record's id in that system (a ServiceNow `sys_id`).
    pub id: String,
    /// True when the gate opened it; false when it attached to a change named in the check.
    pub opened_by_gate: bool,
    pub at: DateTime<Utc>,
}

/// One approver's approval of a pending review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub by: String,
    /// The authenticated principal that recorded the approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    pub at: DateTime<Utc>,
    pub comment: String,
    pub channel: Channel,
}

/// How a manual review ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolutionOutcome {
    /// An approver let the deploy through: the verdict becomes continue.
    Approved,
    /// An approver stopped it: terminate.
    Rejected,
    /// Nobody decided before the review's deadline: terminate.
    Expired,
    /// The caller withdrew it (e.g. the Spinnaker pipeline was canceled): terminate.
    Canceled,
}

impl ResolutionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ResolutionOutcome::Approved => "approved",
            ResolutionOutcome::Rejected => "rejected",
            ResolutionOutcome::Expired => "expired",
            ResolutionOutcome::Canceled => "canceled",
        }
    }

    /// The verdict a decision takes when its review ends this way.
    pub fn verdict(self) -> Verdict {
        match self {
            ResolutionOutcome::Approved => Verdict::Continue,
            _ => Verdict::Terminate,
        }
    }
}

/// Who ended a review, when, why and through which channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub outcome: ResolutionOutcome,
    /// The principal (token name) or system that resolved it.
    pub by: String,
    /// The authenticated principal that caused the resolution (the token that approved or
    /// canceled, the follower or token that relayed an outside system's word, `portcullis`
    /// for an expiry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    pub at: DateTime<Utc>,
    pub comment: String,
    /// `api`, `grpc`, `spinnaker`, `servicenow` …
    pub channel: Channel,
}

impl Decision {
    /// Why `who` may not approve this decision, if they may not: they triggered the deploy, or
    /// (where the caller said who wrote the commits) authored a commit in it.
    pub fn conflict_of_duties(&self, who: &str) -> Option<&'static str> {
        if self.request.triggered_by.as_deref() == Some(who) {
            Some("triggered this deploy")
        } else if self
            .request
            .sources
            .iter()
            .any(|s| s.author.as_deref() == Some(who))
        {
            Some("authored a commit in this deploy")
        } else {
            None
        }
    }

    /// Results that asked for more than `continue`, strictest first.
    pub fn blocking_results(&self) -> Vec<&RuleResult> {
        let mut v: Vec<_> = self
            .rule_results
            .iter()
            .filter(|r| r.effect != Verdict::Continue)
            .collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.effect));
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictest_verdict_is_the_maximum() {
        let v = [Verdict::Continue, Verdict::Terminate, Verdict::ManualReview];
        assert_eq!(v.iter().max(), Some(&Verdict::Terminate));
        assert!(Verdict::Continue < Verdict::ManualReview);
    }
}
