//! Policy as code: rules loaded from YAML files, validated with `file:line:col` errors, and
//! evaluated over an evidence document. Pure: no I/O except reading the policy files.
//!
//! The file format reference (every field, every operator, the three-valued logic and the
//! defaults) is `docs/policy.md`, included below.
#![doc = include_str!("../docs/policy.md")]

mod builtin;
pub mod cases;
mod condition;
mod eval;
mod file;
pub mod lint;
mod operator;
mod path;
mod reason;
pub mod reload;
mod rule;
mod window;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::{
    FailureReason, PolicyFile, PolicyVersion, RuleResult, Subject, Verdict, policy_digest,
};
use file::Diagnostics;
use rule::{FileInfo, Rule};

pub use eval::MAX_VALUES;
pub use reload::{PolicyHandle, ReloadOutcome, reload_once, watch_dir};

/// A loaded, validated set of rules with its content digest and the text it was built from.
#[derive(Debug, Clone)]
pub struct PolicySet {
    version: String,
    rules: Arc<[Rule]>,
    files: Arc<[FileInfo]>,
    /// Every file read, name and text as they were: `version` is their digest, so a stored copy
    /// re-explains any decision this set made.
    text: Arc<PolicyVersion>,
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
    /// The answer when no rule applies at all (`gate.no_rules_verdict`).
    pub no_rules_verdict: Verdict,
}

/// Result of evaluating every applicable rule.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The strictest effect across results; when no rule applies, `no_rules_verdict`, with one
    /// result (rule id [`NO_APPLICABLE_RULE`]) that says so.
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
    /// The built-in example pack (`src/policy/builtin/*.yaml`), named `builtin:<name>.yaml`.
    pub fn builtin() -> Result<PolicySet, PolicyErrors> {
        Self::from_sources(builtin::sources())
    }

    /// Loads every `*.yaml` / `*.yml` file directly in `dir` (not `*.cases.yaml`, not hidden
    /// files). A directory without policy files is an error: an empty gate would allow anything.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyErrors> {
        let sources = PolicySource::read_dir(dir)?;
        if sources.is_empty() {
            return Err(PolicyErrors(vec![PolicyError {
                file: dir.display().to_string(),
                line: 1,
                col: 1,
                message: "no policy files in the directory".into(),
                help: Some(
                    "add `*.yaml` policy files, or point the gate at the directory that has them"
                        .into(),
                ),
            }]));
        }
        Self::from_sources(sources)
    }

    /// Loads a set from its files. A set with no rules at all (no files, only `rules: []`) is
    /// refused like a broken edit: a gate without rules would let every deploy through.
    pub fn from_sources(sources: Vec<PolicySource>) -> Result<PolicySet, PolicyErrors> {
        let (set, mut errors) = Self::load_partial(sources);
        if errors.is_empty() {
            errors.extend(set.empty_error());
        }
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(PolicyErrors(errors))
        }
    }

    /// The error for a set that loaded without a single rule, if it did.
    pub(crate) fn empty_error(&self) -> Option<PolicyError> {
        if !self.rules.is_empty() {
            return None;
        }
        let first = self.files.first();
        let pos = first.and_then(|f| f.rules_pos).unwrap_or(file::Pos::START);
        Some(PolicyError {
            file: first.map_or_else(|| "policy".to_string(), |f| f.name.clone()),
            line: pos.line,
            col: pos.col,
            message: format!(
                "the policy set has no rules ({} file{} read): a gate without rules would let every deploy through",
                self.files.len(),
                if self.files.len() == 1 { "" } else { "s" }
            ),
            help: Some(
                "add at least one rule under `rules:`, or point `policy.dir` at the directory that has them"
                    .into(),
            ),
        })
    }

    /// Content digest: `sha256:` over the sorted (name, text) of every file
    /// (`domain::policy_digest`, the rule written out in `docs/policy.md`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The files this set was built from (names relative to the policy directory, or
    /// `builtin:<file>.yaml`), whose digest is [`PolicySet::version`]. Shared, not copied.
    pub fn text(&self) -> &Arc<PolicyVersion> {
        &self.text
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Names of the evidence sources (top-level document namespaces other than `request`) that
    /// the rules applicable to `subject` read.
    pub fn required_sources(&self, subject: Subject<'_>) -> BTreeSet<String> {
        self.rules
            .iter()
            .filter(|r| r.scope.matches(subject))
            .flat_map(|r| r.sources.iter().cloned())
            .collect()
    }

    pub fn evaluate(&self, input: &EvalInput<'_>) -> Evaluation {
        let ctx = eval::Ctx {
            document: input.document,
            unavailable: input.unavailable,
            now: input.now,
        };
        let mut results: Vec<RuleResult> = self
            .rules
            .iter()
            .filter(|r| r.scope.matches(input.subject))
            .map(|r| eval::evaluate_rule(r, &ctx))
            .collect();
        if results.is_empty() {
            // Nothing was checked, which is not the same as everything passing.
            results.push(no_applicable_rule(input.subject, input.no_rules_verdict));
        }
        let verdict = results
            .iter()
            .map(|r| r.effect)
            .max()
            .unwrap_or(input.no_rules_verdict);
        Evaluation { verdict, results }
    }

    /// The ids of every rule, in load order (files by name, rules as written).
    pub fn rule_ids(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.id.as_str()).collect()
    }

    /// Loads what can be loaded: the rules without errors, and every error. Lint uses the rules
    /// to look for warnings even when some of the files are broken.
    pub(crate) fn load_partial(mut sources: Vec<PolicySource>) -> (PolicySet, Vec<PolicyError>) {
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        let mut errors = Vec::new();
        let mut rules: Vec<Rule> = Vec::new();
        let mut files = Vec::new();
        let mut seen_ids: HashMap<String, (String, usize)> = HashMap::new();
        let mut previous_name: Option<&str> = None;
        for src in &sources {
            let mut d = Diagnostics::new(&src.name);
            if previous_name == Some(src.name.as_str()) {
                d.error(
                    file::Pos::START,
                    format!("a second policy file is named `{}`", src.name),
                    "give every policy file a distinct name",
                );
            }
            previous_name = Some(&src.name);
            let (info, file_rules) = rule::parse_file(&src.text, &mut d);
            for r in file_rules {
                if let Some((first_file, first_line)) = seen_ids.get(&r.id) {
                    d.error(r.id_pos, format!("duplicate rule id `{}` (first defined in `{first_file}` at line {first_line})", r.id), "give every rule a unique `id` across all policy files");
                    continue;
                }
                seen_ids.insert(r.id.clone(), (src.name.clone(), r.id_pos.line));
                rules.push(r);
            }
            // Reading order, not discovery order: a reader fixes a file top to bottom.
            d.errors.sort_by_key(|e| (e.line, e.col));
            errors.extend(d.errors);
            files.push(info);
        }
        // The text is what the version is the digest of, so the two are made together.
        let text = PolicyVersion::from_files(
            sources
                .into_iter()
                .map(|s| PolicyFile {
                    path: s.name,
                    content: s.text,
                })
                .collect(),
        );
        let set = PolicySet {
            version: text.version.clone(),
            rules: rules.into(),
            files: files.into(),
            text: Arc::new(text),
        };
        (set, errors)
    }

    pub(crate) fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub(crate) fn files(&self) -> &[FileInfo] {
        &self.files
    }
}

impl PolicySource {
    /// Reads the policy files of `dir`, sorted by name: `*.yaml` and `*.yml` directly in it,
    /// skipping hidden entries (Kubernetes ConfigMap mounts keep their data in `..data`) and
    /// case files (`*.cases.yaml`).
    pub fn read_dir(dir: &Path) -> Result<Vec<PolicySource>, PolicyErrors> {
        let io_error = |file: &Path, e: std::io::Error| {
            PolicyErrors(vec![PolicyError {
                file: file.display().to_string(),
                line: 1,
                col: 1,
                message: format!("cannot read: {e}"),
                help: Some("check the path exists and is readable by the gate".into()),
            }])
        };
        let entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
        let mut sources = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error(dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !is_policy_file_name(&name) {
                continue;
            }
            let path = entry.path();
            // `metadata` follows symlinks, so a ConfigMap's symlinked files count as files.
            if !std::fs::metadata(&path)
                .map(|m| m.is_file())
                .unwrap_or(false)
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
            sources.push(PolicySource { name, text });
        }
        sources.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(sources)
    }
}

/// The rule id of the result that says no rule applied to a check.
pub const NO_APPLICABLE_RULE: &str = "no-applicable-rule";

fn no_applicable_rule(s: Subject<'_>, verdict: Verdict) -> RuleResult {
    RuleResult {
        rule_id: NO_APPLICABLE_RULE.into(),
        title: "A policy rule applies to this deploy".into(),
        category: "policy".into(),
        severity: crate::domain::Severity::High,
        outcome: crate::domain::RuleOutcome::Fail,
        effect: verdict,
        reason: format!(
            "no policy rule applies to `{}` in `{}` (tier {}) asked by {}, so nothing was checked; `gate.no_rules_verdict` answers {}",
            s.application,
            s.environment,
            s.tier,
            s.caller.as_str(),
            verdict.as_str()
        ),
        remediation: "add rules that apply to this environment's tier, application and caller (`applies_to`), or set `gate.no_rules_verdict`".into(),
        policy_file: "config:gate.no_rules_verdict".into(),
    }
}

/// The content digest of a set of sources, as [`PolicySet::version`] reports it: the one rule
/// in `domain::policy_digest`, so a stored text recomputes to its version.
pub fn digest(sources: &[PolicySource]) -> String {
    policy_digest(sources.iter().map(|s| (s.name.as_str(), s.text.as_str())))
}

fn is_policy_file_name(name: &str) -> bool {
    !name.starts_with('.')
        && (name.ends_with(".yaml") || name.ends_with(".yml"))
        && !name.ends_with(".cases.yaml")
        && !name.ends_with(".cases.yml")
}
