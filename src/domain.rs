//! Domain types shared by every module: what a check asks, what a decision answers, and the
//! evidence in between. Values here are parsed once at the edge ("parse, don't validate"), so the
//! rest of the crate never re-checks a digest or an environment name.
//!
//! Architecture invariant: this module depends on nothing else in the crate, and knows no wire
//! format. Serde derives here define the *stored* shape (see `store`), not an API.

mod channel;
mod decision;
mod draft;
mod environments;
mod event;
mod evidence;
pub mod finding;
mod ids;
mod policy_version;
mod request;

pub use channel::Channel;
pub use decision::{
    Approval, Decision, DecisionStatus, RefusedAttempt, Resolution, ResolutionOutcome,
    ReviewTicket, RuleOutcome, RuleResult, Severity, Verdict,
};
pub use draft::{CheckRequestDraft, ImageDraft, SourceDraft};
pub use environments::{
    DEFAULT_ENVIRONMENTS, EnvironmentDecl, Environments, EnvironmentsError, Tier,
};
pub use event::{DecisionEvent, EventKind, GroupRule, MAX_REFUSALS, Refusal, apply, replay};
pub use evidence::{Evidence, FailureReason, SourceReport, SourceStatus};
pub use finding::{
    Finding, FindingKind, FindingSeverity, FindingStatus, Location, Package, Suppression,
};
pub use ids::{
    Application, ChangeNumber, CommitSha, DecisionId, Digest, Environment, IdempotencyKey, JiraKey,
    split_change_refs,
};
pub use policy_version::{
    PolicyFile, PolicyVersion, PolicyVersionRecord, parse_policy_version, policy_digest,
};
pub use request::{
    Caller, CallerKind, ChangeRefs, CheckRequest, ImageRef, SourceRevision, Subject,
};

/// Why a value from outside could not become a domain value: what was wrong, where, and how to fix
/// it. Transports turn this into a 400 / `INVALID_ARGUMENT` naming `field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct ValidationError {
    /// Path of the offending field in the caller's terms, e.g. `images[0].digest`.
    pub field: String,
    /// What is wrong, one lowercase sentence.
    pub message: String,
    /// How to fix it.
    pub help: String,
}

impl ValidationError {
    pub fn new(
        field: impl Into<String>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            help: help.into(),
        }
    }

    /// The same error, one level deeper: `images[0]` + `digest` → `images[0].digest`.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else if self.field.starts_with('[') {
            format!("{parent}{}", self.field)
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
}
