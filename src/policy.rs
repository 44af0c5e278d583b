//! Policy as code: rules loaded from YAML files, validated with `file:line:col` errors, and
//! evaluated over an evidence document. Pure: no I/O except reading the policy files.
//!
//! STUB: being written (policy helper). The public interface below is fixed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::domain::{FailureReason, RuleResult, Subject, Verdict};

/// A loaded, validated set of rules with its content digest.
#[derive(Debug, Clone)]
pub struct PolicySet {
    version: String,
}

/// One policy file's name and text, as read from disk or embedded.
#[derive(Debug, Clone)]
pub struct PolicySource {
    pub name: String,
    pub text: String,
}

/// Input to one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct EvalInput<'a> {
    pub subject: Subject<'a>,
    /// The evidence document: `request` plus one namespace per source that answered.
    pub document: &'a serde_json::Value,
    /// Sources that were needed but did not answer, with why.
    pub unavailable: &'a BTreeMap<String, (FailureReason, String)>,
    pub now: DateTime<Utc>,
}

/// Result of evaluating every applicable rule.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The strictest effect across results (`continue` when no rule applies).
    pub verdict: Verdict,
    pub results: Vec<RuleResult>,
}

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub help: Option<String>,
}

/// Every problem found while loading a policy set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicySet {
    pub fn builtin() -> Result<PolicySet, PolicyErrors> {
        Ok(PolicySet {
            version: "sha256:stub".into(),
        })
    }

    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyErrors> {
        let _ = dir;
        Self::builtin()
    }

    pub fn from_sources(sources: Vec<PolicySource>) -> Result<PolicySet, PolicyErrors> {
        let _ = sources;
        Self::builtin()
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn rule_count(&self) -> usize {
        0
    }

    /// Names of the evidence sources (top-level document namespaces other than `request`) that
    /// the rules applicable to `subject` read.
    pub fn required_sources(&self, subject: Subject<'_>) -> BTreeSet<String> {
        let _ = subject;
        BTreeSet::new()
    }

    pub fn evaluate(&self, input: &EvalInput<'_>) -> Evaluation {
        let _ = input;
        Evaluation {
            verdict: Verdict::Continue,
            results: Vec::new(),
        }
    }
}
