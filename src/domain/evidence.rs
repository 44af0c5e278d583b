//! Evidence: the JSON document rules are evaluated over, and a report per source saying whether
//! that source answered.

use serde::{Deserialize, Serialize};

/// Everything a decision was based on.
///
/// `document` has a `request` namespace (what the caller said, plus derived facts) and one
/// namespace per evidence source that answered, named after the source's configured name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub document: serde_json::Value,
    pub sources: Vec<SourceReport>,
}

impl Evidence {
    /// The report for the source named `name`, if it was consulted.
    pub fn source(&self, name: &str) -> Option<&SourceReport> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// Whether one source answered, and the trail an auditor needs (URL called, response excerpt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReport {
    /// The source's name, also its namespace in the evidence document.
    pub name: String,
    /// The adapter kind (`http`, `sonarqube` …), or `none` when nothing is configured by that name.
    pub kind: String,
    pub status: SourceStatus,
    /// Why it is unavailable, when it is.
    pub reason: Option<FailureReason>,
    /// A sentence for people; never contains credentials.
    pub message: String,
    pub duration_ms: u64,
    /// The URL called, without credentials or query secrets.
    pub url: Option<String>,
    /// The first bytes of the response body, for the audit trail.
    pub excerpt: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceStatus {
    Ok,
    Unavailable,
}

impl SourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceStatus::Ok => "ok",
            SourceStatus::Unavailable => "unavailable",
        }
    }
}

/// Why evidence is unavailable. Every fault lands in one of these; rules treat all of them as
/// missing evidence (fail-closed unless the rule says otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// No answer within the call's deadline.
    Timeout,
    /// Connection refused, DNS failure, TLS failure, reset.
    Unreachable,
    /// 401 / 403: credentials missing, wrong or lacking permission.
    Auth,
    /// 429, or the retry budget ran out while rate limited.
    RateLimited,
    /// 5xx, malformed JSON, a missing field, pagination that ended early.
    BadResponse,
    /// The tool does not know the thing asked about (404, empty result).
    NotFound,
    /// A rule needs a source that is not configured.
    NotConfigured,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::Unreachable => "unreachable",
            FailureReason::Auth => "auth",
            FailureReason::RateLimited => "rate_limited",
            FailureReason::BadResponse => "bad_response",
            FailureReason::NotFound => "not_found",
            FailureReason::NotConfigured => "not_configured",
        }
    }
}
