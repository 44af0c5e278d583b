//! Policy test cases as data: YAML files of evidence in, expected verdict and results (or an
//! expected load error) out. `portcullis policy test` and this crate's own tests run the same
//! runner, so the product feature and the test suite cannot drift apart.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{EvalInput, Evaluation, PolicySet, PolicySource};
use crate::domain::{
    Application, CallerKind, Environment, Environments, FailureReason, RuleResult, Subject, Tier,
    Verdict,
};

/// The time cases run at unless they say otherwise: a Wednesday noon, outside the usual freezes.
pub const DEFAULT_NOW: &str = "2025-06-04T12:00:00Z";

/// The outcome of every case in every file.
#[derive(Debug, Clone, Default)]
pub struct CaseReport {
    pub cases: Vec<CaseResult>,
}

/// One case's outcome.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub file: String,
    /// 1-based position of the case in its file (0 when the file itself could not be read).
    pub index: usize,
    pub note: String,
    /// What differed from the expectation, one line each; empty when the case passed.
    pub failures: Vec<String>,
}

impl CaseResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

impl CaseReport {
    pub fn all_passed(&self) -> bool {
        self.cases.iter().all(CaseResult::passed)
    }

    pub fn failed(&self) -> usize {
        self.cases.iter().filter(|c| !c.passed()).count()
    }

    /// `ok` / `FAIL` per case, each failure with what was wanted and what was got.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        for c in &self.cases {
            let status = if c.passed() { "ok  " } else { "FAIL" };
            let _ = writeln!(out, "{status} {}#{} {}", c.file, c.index, c.note);
            for f in &c.failures {
                for line in f.lines() {
                    let _ = writeln!(out, "       {line}");
                }
            }
        }
        let _ = writeln!(
            out,
            "{} passed, {} failed",
            self.cases.len() - self.failed(),
            self.failed()
        );
        out
    }
}

/// Runs every case of every file.
pub fn run_case_files(paths: &[PathBuf]) -> CaseReport {
    let mut report = CaseReport::default();
    for p in paths {
        run_file(p, &mut report);
    }
    report
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    #[serde(default)]
    defaults: Defaults,
    cases: Vec<Case>,
}

/// Values every case of a file starts from; `evidence` is merged with each case's.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    policies: Option<String>,
    subject: Option<SubjectSpec>,
    evidence: Option<Value>,
    unavailable: Option<BTreeMap<String, Unavailable>>,
    now: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    note: String,
    policies: Option<String>,
    policy: Option<String>,
    policy_name: Option<String>,
    subject: Option<SubjectSpec>,
    evidence: Option<Value>,
    unavailable: Option<BTreeMap<String, Unavailable>>,
    now: Option<String>,
    want_verdict: Option<Verdict>,
    want_results: Option<Vec<WantResult>>,
    #[serde(default)]
    exhaustive: bool,
    want_error: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectSpec {
    application: Option<String>,
    environment: Option<String>,
    /// The environment's tier; by default the one the built-in environment list gives it.
    tier: Option<String>,
    caller: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Unavailable {
    Code(FailureReason),
    Full {
        reason: FailureReason,
        message: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WantResult {
    rule: String,
    /// `pass`, `fail`, `missing`, or `not_applicable` (the rule must have no result).
    outcome: String,
    effect: Option<Verdict>,
    reason_contains: Option<String>,
}

/// Policy sets loaded once per directory for a whole run.
type Cache = HashMap<PathBuf, Result<Arc<PolicySet>, String>>;

fn run_file(path: &Path, report: &mut CaseReport) {
    let file = path.display().to_string();
    let broken = |report: &mut CaseReport, why: String| {
        report.cases.push(CaseResult {
            file: file.clone(),
            index: 0,
            note: "(case file)".into(),
            failures: vec![why],
        });
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return broken(report, format!("cannot read the case file: {e}")),
    };
    let parsed: CaseFile = match serde_norway::from_str(&text) {
        Ok(f) => f,
        Err(e) => return broken(report, format!("invalid case file: {e}")),
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let mut cache = Cache::new();
    for (i, case) in parsed.cases.iter().enumerate() {
        let failures = run_case(case, &parsed.defaults, base, &mut cache);
        report.cases.push(CaseResult {
            file: file.clone(),
            index: i + 1,
            note: case.note.clone(),
            failures,
        });
    }
}

fn run_case(case: &Case, defaults: &Defaults, base: &Path, cache: &mut Cache) -> Vec<String> {
    let wants_eval = case.want_verdict.is_some() || case.want_results.is_some();
    if wants_eval == case.want_error.is_some() {
        return vec!["a case needs either `want_verdict`/`want_results` or `want_error`".into()];
    }
    let set = match load_policies(case, defaults, base, cache) {
        Ok(set) => set,
        Err(errors) => {
            return match &case.want_error {
                Some(want) if errors.contains(want.as_str()) => Vec::new(),
                Some(want) => vec![format!(
                    "want error containing:\n  {want}\ngot errors:\n{}",
                    indent(&errors)
                )],
                None => vec![format!("the policies do not load:\n{}", indent(&errors))],
            };
        }
    };
    if let Some(want) = &case.want_error {
        return vec![format!(
            "want error containing:\n  {want}\nbut the policies loaded"
        )];
    }
    let spec = case
        .subject
        .clone()
        .or_else(|| defaults.subject.clone())
        .unwrap_or_default();
    let application = Application::parse(spec.application.as_deref().unwrap_or("demo-app"));
    let environment = Environment::parse(spec.environment.as_deref().unwrap_or("prod"));
    let caller = CallerKind::parse(spec.caller.as_deref().unwrap_or("api"));
    let (application, environment, caller) = match (application, environment, caller) {
        (Ok(a), Ok(e), Ok(c)) => (a, e, c),
        (a, e, c) => {
            let errs = [a.err(), e.err(), c.err()]
                .into_iter()
                .flatten()
                .map(|e| format!("invalid subject: {e}"));
            return errs.collect();
        }
    };
    let tier = match spec.tier.as_deref() {
        Some(t) => match Tier::parse(t) {
            Some(t) => t,
            None => {
                let names: Vec<&str> = Tier::ALL.iter().map(|t| t.as_str()).collect();
                return vec![format!(
                    "invalid subject: unknown tier `{t}` (tiers: {})",
                    names.join(", ")
                )];
            }
        },
        None => match Environments::default().tier_of(&environment) {
            Ok(t) => t,
            Err(e) => {
                return vec![format!(
                    "invalid subject: {}; give the subject a `tier`",
                    e.message
                )];
            }
        },
    };
    let now_text = case
        .now
        .as_deref()
        .or(defaults.now.as_deref())
        .unwrap_or(DEFAULT_NOW);
    let now = match DateTime::parse_from_rfc3339(now_text) {
        Ok(t) => t.with_timezone(&Utc),
        Err(e) => return vec![format!("invalid `now` `{now_text}`: {e}")],
    };
    let mut document = defaults
        .evidence
        .clone()
        .unwrap_or_else(|| Value::Object(Default::default()));
    if let Some(e) = &case.evidence {
        merge(&mut document, e);
    }
    if let Value::Object(map) = &mut document {
        map.entry("request").or_insert_with(|| {
            serde_json::json!({
                "application": application.as_str(),
                "environment": environment.as_str(),
                "caller": { "kind": caller.as_str() },
            })
        });
    }
    let unavailable: BTreeMap<String, (FailureReason, String)> = defaults
        .unavailable
        .iter()
        .chain(case.unavailable.iter())
        .flatten()
        .map(|(k, u)| {
            let v = match u {
                Unavailable::Code(r) => (*r, String::new()),
                Unavailable::Full { reason, message } => {
                    (*reason, message.clone().unwrap_or_default())
                }
            };
            (k.clone(), v)
        })
        .collect();
    let subject = Subject {
        application: &application,
        environment: &environment,
        tier,
        caller,
    };
    let evaluation = set.evaluate(&EvalInput {
        subject,
        document: &document,
        unavailable: &unavailable,
        now,
        no_rules_verdict: Verdict::ManualReview,
    });
    compare(case, &evaluation)
}

fn load_policies(
    case: &Case,
    defaults: &Defaults,
    base: &Path,
    cache: &mut Cache,
) -> Result<Arc<PolicySet>, String> {
    if let Some(text) = &case.policy {
        let name = case
            .policy_name
            .clone()
            .unwrap_or_else(|| "policy.yaml".into());
        return PolicySet::from_sources(vec![PolicySource {
            name,
            text: text.clone(),
        }])
        .map(Arc::new)
        .map_err(|e| e.to_string());
    }
    let dir = case
        .policies
        .as_ref()
        .or(defaults.policies.as_ref())
        .map(|p| base.join(p));
    let key = dir.clone().unwrap_or_default();
    cache
        .entry(key)
        .or_insert_with(|| {
            let loaded = match &dir {
                Some(d) => PolicySet::load_dir(d),
                None => PolicySet::builtin(),
            };
            loaded.map(Arc::new).map_err(|e| e.to_string())
        })
        .clone()
}

fn compare(case: &Case, got: &Evaluation) -> Vec<String> {
    let mut failures = Vec::new();
    if let Some(want) = case.want_verdict {
        if want != got.verdict {
            failures.push(format!("verdict: want {want}, got {}", got.verdict));
        }
    }
    let wants = case.want_results.as_deref().unwrap_or_default();
    for w in wants {
        let found = got.results.iter().find(|r| r.rule_id == w.rule);
        match (w.outcome.as_str(), found) {
            ("not_applicable", None) => {}
            ("not_applicable", Some(r)) => failures.push(format!(
                "rule `{}`: want not applicable, got {}",
                w.rule,
                describe(r)
            )),
            (_, None) => failures.push(format!(
                "rule `{}`: want {}, got no result (not applicable, or no such rule)",
                w.rule, w.outcome
            )),
            (outcome, Some(r)) => {
                if !["pass", "fail", "missing"].contains(&outcome) {
                    failures.push(format!("rule `{}`: unknown outcome `{outcome}`; use pass, fail, missing or not_applicable", w.rule));
                } else if r.outcome.as_str() != outcome {
                    failures.push(format!(
                        "rule `{}`: outcome: want {outcome}, got {}",
                        w.rule,
                        describe(r)
                    ));
                }
                if let Some(e) = w.effect.filter(|e| *e != r.effect) {
                    failures.push(format!(
                        "rule `{}`: effect: want {e}, got {}",
                        w.rule,
                        describe(r)
                    ));
                }
                if let Some(s) = w
                    .reason_contains
                    .as_ref()
                    .filter(|s| !r.reason.contains(s.as_str()))
                {
                    failures.push(format!(
                        "rule `{}`: reason does not contain `{s}`\n  reason: {}",
                        w.rule, r.reason
                    ));
                }
            }
        }
    }
    if case.exhaustive {
        for r in &got.results {
            if !wants.iter().any(|w| w.rule == r.rule_id) {
                failures.push(format!(
                    "rule `{}`: unexpected result (case is exhaustive): {}",
                    r.rule_id,
                    describe(r)
                ));
            }
        }
    }
    if !failures.is_empty() {
        let mut all = String::from("all results:");
        for r in &got.results {
            let _ = write!(all, "\n  {}: {}", r.rule_id, describe(r));
        }
        failures.push(all);
    }
    failures
}

fn describe(r: &RuleResult) -> String {
    format!("{} → {} ({})", r.outcome.as_str(), r.effect, r.reason)
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Deep merge: objects merge key by key, `null` deletes a key, anything else replaces.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                if v.is_null() {
                    b.remove(k);
                } else {
                    merge(b.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_in(dir: &str, suffix: &str) -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.to_string_lossy().ends_with(suffix));
        files.sort();
        files
    }

    #[test]
    fn builtin_pack_cases_pass() {
        let files = files_in("src/policy/builtin", ".cases.yaml");
        assert!(
            files.len() >= 5,
            "expected a case file per built-in policy file"
        );
        let report = run_case_files(&files);
        assert!(report.all_passed(), "{}", report.render_human());
    }

    #[test]
    fn repository_policy_cases_pass() {
        let files = files_in("tests/policy_cases", ".yaml");
        assert!(!files.is_empty());
        let report = run_case_files(&files);
        assert!(report.all_passed(), "{}", report.render_human());
        assert!(report.cases.len() >= 10);
    }

    #[test]
    fn failures_show_what_differed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| unreachable!("{e}"));
        let path = dir.path().join("c.yaml");
        let text = "cases:\n  - note: wrong on purpose\n    evidence: {request: {images: []}}\n    want_verdict: continue\n    want_results: [{rule: at-least-one-image, outcome: pass}]\n";
        std::fs::write(&path, text).unwrap_or_else(|e| unreachable!("{e}"));
        let report = run_case_files(&[path]);
        let human = report.render_human();
        assert!(!report.all_passed());
        assert!(
            human.contains("verdict: want continue, got terminate"),
            "{human}"
        );
        assert!(
            human.contains("rule `at-least-one-image`: outcome: want pass, got fail"),
            "{human}"
        );
        assert!(human.contains("0 passed, 1 failed"), "{human}");
    }

    #[test]
    fn evidence_merges_and_null_deletes() {
        let mut base = serde_json::json!({"a": {"b": 1, "c": 2}, "d": 3});
        merge(
            &mut base,
            &serde_json::json!({"a": {"b": 5, "c": null}, "e": [1]}),
        );
        assert_eq!(base, serde_json::json!({"a": {"b": 5}, "d": 3, "e": [1]}));
    }
}
