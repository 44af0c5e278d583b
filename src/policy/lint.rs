//! `portcullis policy lint`: every load error plus warnings about rules that load but are
//! probably wrong (a scope that can never match or that selects environments by name instead of
//! tier, an unknown evidence namespace, a missing description or remediation, a critical rule
//! that lets missing evidence through).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::file::{Pos, closest};
use super::rule::{Patterns, Rule};
use super::{PolicySet, PolicySource};
use crate::domain::{Severity, Verdict};

/// Evidence namespaces the gate knows without a declaration: the adapter kinds, and `sast`, the
/// name the built-in pack gives a `kind: sarif` source.
pub const KNOWN_SOURCES: [&str; 11] = [
    "request",
    "sonarqube",
    "aqua",
    "trivy",
    "jira",
    "servicenow",
    "registry",
    "sbom",
    "sast",
    "github",
    "gitlab",
];

/// Everything lint found in a directory.
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    pub files: usize,
    pub rules: usize,
    pub diagnostics: Vec<LintDiagnostic>,
}

/// One finding, located like a compiler message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LintDiagnostic {
    pub severity: LintSeverity,
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub help: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LintSeverity {
    /// The set does not load; the gate would refuse it.
    Error,
    /// The set loads, but a rule is probably not what its author meant.
    Warning,
}

impl LintReport {
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == LintSeverity::Error)
    }

    pub fn error_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == LintSeverity::Error)
            .count()
    }

    pub fn warning_count(&self) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == LintSeverity::Warning)
            .count()
    }

    /// One `file:line:col: severity: message` line per finding, its help indented below, then a
    /// summary line.
    pub fn render_human(&self) -> String {
        let mut out = String::new();
        for d in &self.diagnostics {
            let sev = match d.severity {
                LintSeverity::Error => "error",
                LintSeverity::Warning => "warning",
            };
            let _ = writeln!(out, "{}:{}:{}: {sev}: {}", d.file, d.line, d.col, d.message);
            if let Some(h) = &d.help {
                let _ = writeln!(out, "  = help: {h}");
            }
        }
        let _ = writeln!(
            out,
            "{} error(s), {} warning(s) in {} file(s), {} rule(s)",
            self.error_count(),
            self.warning_count(),
            self.files,
            self.rules
        );
        out
    }
}

/// Lints the policy files of `dir`.
pub fn lint_dir(dir: &Path) -> LintReport {
    lint_dir_for(dir, None)
}

/// `lint_dir` against the adapter instances a configuration defines (`policy lint --config`):
/// then a rule reading a namespace that is neither `request` nor one of `instances` is an error,
/// since the gate would have no source of that name and the rule's evidence would always be
/// missing. Without `instances` the adapter kinds and the files' `sources:` are assumed.
pub fn lint_dir_for(dir: &Path, instances: Option<&[String]>) -> LintReport {
    match PolicySource::read_dir(dir) {
        Ok(sources) if sources.is_empty() => LintReport {
            files: 0,
            rules: 0,
            diagnostics: vec![LintDiagnostic {
                severity: LintSeverity::Error,
                file: dir.display().to_string(),
                line: 1,
                col: 1,
                message: "no policy files in the directory".into(),
                help: Some(
                    "policy files end in `.yaml` or `.yml` (`*.cases.yaml` are test cases)".into(),
                ),
            }],
        },
        Ok(sources) => lint_sources_for(sources, instances),
        Err(errors) => LintReport {
            files: 0,
            rules: 0,
            diagnostics: errors
                .0
                .into_iter()
                .map(|e| error_diag(e.file, e.line, e.col, e.message, e.help))
                .collect(),
        },
    }
}

/// Lints policy files given as text.
pub fn lint_sources(sources: Vec<PolicySource>) -> LintReport {
    lint_sources_for(sources, None)
}

/// `lint_sources` against configured adapter `instances` (see `lint_dir_for`).
pub fn lint_sources_for(sources: Vec<PolicySource>, instances: Option<&[String]>) -> LintReport {
    let files = sources.len();
    let (set, errors) = PolicySet::load_partial(sources);
    let mut diagnostics: Vec<LintDiagnostic> = errors
        .into_iter()
        .map(|e| error_diag(e.file, e.line, e.col, e.message, e.help))
        .collect();
    // As when loading: reported when nothing else is wrong (a broken rule is already refused).
    if let Some(e) = set.empty_error().filter(|_| diagnostics.is_empty()) {
        diagnostics.push(error_diag(e.file, e.line, e.col, e.message, e.help));
    }
    for info in set.files() {
        if info.rules_pos.is_some()
            && !set.rules().iter().any(|r| r.file == info.name)
            && !diagnostics.iter().any(|d| d.file == info.name)
        {
            let at = info.rules_pos.unwrap_or(Pos::START);
            diagnostics.push(warning(
                &info.name,
                at,
                "the file has no rules".into(),
                "add rules under `rules:` or delete the file",
            ));
        }
    }
    for rule in set.rules() {
        let declared: Vec<&str> = set
            .files()
            .iter()
            .filter(|f| f.name == rule.file)
            .flat_map(|f| f.sources.iter().map(|t| t.value.as_str()))
            .collect();
        // With a configuration its instances are the namespaces there are, checked instead of
        // the assumed kinds and declarations.
        lint_rule(rule, &declared, instances.is_none(), &mut diagnostics);
        if let Some(instances) = instances {
            unconfigured_sources(rule, instances, &mut diagnostics);
        }
    }
    diagnostics.sort_by(|a, b| (&a.file, a.line, a.col).cmp(&(&b.file, b.line, b.col)));
    LintReport {
        files,
        rules: set.rule_count(),
        diagnostics,
    }
}

/// With a configuration: every namespace a rule reads must be `request` or a configured
/// instance, else the gate answers "no evidence source named … is configured" on every check.
fn unconfigured_sources(rule: &Rule, instances: &[String], out: &mut Vec<LintDiagnostic>) {
    let mut known: Vec<&str> = vec!["request"];
    known.extend(instances.iter().map(String::as_str));
    let mut seen: Vec<&str> = Vec::new();
    for (leaf, path) in rule
        .condition
        .leaves()
        .into_iter()
        .flat_map(|l| l.paths().map(move |p| (l, p)))
    {
        let source = path.source();
        if known.contains(&source) || seen.contains(&source) {
            continue;
        }
        seen.push(source);
        let hint = closest(source, &known)
            .map(|s| format!("did you mean `{s}`? "))
            .unwrap_or_default();
        out.push(error_diag(
            rule.file.clone(),
            leaf.path_pos.line,
            leaf.path_pos.col,
            format!(
                "rule `{}` reads `{source}`, but the configuration has no adapter instance named `{source}`",
                rule.id
            ),
            Some(format!(
                "{hint}configured instances: {}; add an adapter named `{source}` under `adapters:` or read one that exists (its evidence would always be missing)",
                if instances.is_empty() { "none".to_string() } else { instances.join(", ") }
            )),
        ));
    }
}

fn lint_rule(rule: &Rule, declared: &[&str], namespaces: bool, out: &mut Vec<LintDiagnostic>) {
    let f = rule.file.as_str();
    if rule.description.is_none() {
        out.push(warning(
            f,
            rule.pos,
            format!("rule `{}` has no `description`", rule.id),
            "say what the rule protects against, for the engineer whose deploy it stops",
        ));
    }
    if rule.remediation.is_none() {
        out.push(warning(
            f,
            rule.pos,
            format!("rule `{}` has no `remediation`", rule.id),
            "say how to make the deploy pass; it is shown next to every failure",
        ));
    }
    if let (Severity::Critical, Verdict::Continue, Some(at)) =
        (rule.severity, rule.on_missing, rule.on_missing_pos)
    {
        out.push(warning(f, at, format!("critical rule `{}` lets deploys continue when its evidence is missing", rule.id), "an outage of the evidence source would silently disable the rule; use `manual_review` or `terminate`"));
    }
    let scope = &rule.scope;
    let scope_pos = scope.pos.unwrap_or(rule.pos);
    never_matching(
        f,
        scope.environments.as_ref(),
        "environments",
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'),
        scope_pos,
        out,
    );
    never_matching(
        f,
        scope.applications.as_ref(),
        "applications",
        |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'),
        scope_pos,
        out,
    );
    if scope.environments.is_some() && scope.tiers.is_none() {
        out.push(warning(
            f,
            scope_pos,
            format!("rule `{}` selects environments by name only", rule.id),
            "an environment declared later under another name (e.g. a new production region) falls outside it; select with `tiers: [production]` (tiers of `gate.environments`)",
        ));
    }
    if scope.callers.as_ref().is_some_and(Vec::is_empty) {
        out.push(warning(
            f,
            scope_pos,
            format!("rule `{}` can never apply: `callers` is empty", rule.id),
            "remove `callers` to apply to every caller, or list some",
        ));
    }
    if !namespaces {
        return;
    }
    let mut known: Vec<&str> = KNOWN_SOURCES.to_vec();
    known.extend_from_slice(declared);
    for (leaf, path) in rule
        .condition
        .leaves()
        .into_iter()
        .flat_map(|l| l.paths().map(move |p| (l, p)))
    {
        let source = path.source();
        if !known.contains(&source) {
            let hint = closest(source, &known)
                .map(|s| format!("did you mean `{s}`? "))
                .unwrap_or_default();
            out.push(warning(
                f,
                leaf.path_pos,
                format!("unknown evidence namespace `{source}`"),
                &format!("{hint}known namespaces: {}; declare a custom source with `sources: [{source}]` at the top of the file", known.join(", ")),
            ));
        }
    }
}

/// Warns about patterns that no valid name can match (names are checked when a request is
/// parsed, so e.g. an upper-case environment pattern is dead).
fn never_matching(
    file: &str,
    patterns: Option<&Patterns>,
    field: &str,
    allowed: impl Fn(char) -> bool,
    scope_pos: Pos,
    out: &mut Vec<LintDiagnostic>,
) {
    let Some(p) = patterns else { return };
    if p.texts.is_empty() {
        out.push(warning(
            file,
            scope_pos,
            format!("`{field}` is empty, so the rule can never apply"),
            &format!("remove `{field}` to apply everywhere, or list some patterns"),
        ));
        return;
    }
    for t in &p.texts {
        let glob_syntax = |c: char| {
            matches!(
                c,
                '*' | '?' | '[' | ']' | '{' | '}' | '!' | ',' | '^' | '\\'
            )
        };
        if let Some(bad) = t.value.chars().find(|c| !allowed(*c) && !glob_syntax(*c)) {
            out.push(warning(
                file,
                t.pos,
                format!(
                    "pattern `{}` can never match: {field} cannot contain `{bad}`",
                    t.value
                ),
                if field == "environments" {
                    "environment names are lower-case letters, digits, `.`, `_` and `-`"
                } else {
                    "application names are letters, digits, `.`, `_`, `-` and `/`"
                },
            ));
        }
    }
}

fn warning(file: &str, at: Pos, message: String, help: &str) -> LintDiagnostic {
    LintDiagnostic {
        severity: LintSeverity::Warning,
        file: file.to_string(),
        line: at.line,
        col: at.col,
        message,
        help: Some(help.to_string()),
    }
}

fn error_diag(
    file: String,
    line: usize,
    col: usize,
    message: String,
    help: Option<String>,
) -> LintDiagnostic {
    LintDiagnostic {
        severity: LintSeverity::Error,
        file,
        line,
        col,
        message,
        help,
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn lint(text: &str) -> LintReport {
        lint_sources(vec![PolicySource {
            name: "p.yaml".into(),
            text: text.into(),
        }])
    }

    #[test]
    fn warns_about_probable_mistakes() {
        let r = lint(
            "rules:
  - id: r1
    title: T
    severity: critical
    applies_to: {environments: [Prod, staging], callers: []}
    condition: {path: $.sonarcube.status, op: exists}
    on_missing: continue
",
        );
        let msgs: Vec<String> = r
            .diagnostics
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.col, d.message))
            .collect();
        assert!(!r.has_errors(), "{msgs:?}");
        assert!(
            msgs.contains(
                &"5:33: pattern `Prod` can never match: environments cannot contain `P`"
                    .to_string()
            ),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("6:23: unknown evidence namespace `sonarcube`")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("7:5: critical rule `r1` lets deploys continue")),
            "{msgs:?}"
        );
        assert!(msgs.iter().any(|m| m.contains("no `description`")));
        assert!(msgs.iter().any(|m| m.contains("`callers` is empty")));
        assert!(
            msgs.iter()
                .any(|m| m.contains("rule `r1` selects environments by name only")),
            "{msgs:?}"
        );
        let help = &r
            .diagnostics
            .iter()
            .find(|d| d.message.contains("sonarcube"))
            .unwrap()
            .help;
        assert!(
            help.as_deref()
                .unwrap()
                .starts_with("did you mean `sonarqube`?")
        );
    }

    #[test]
    fn configured_instances_are_the_namespaces_there_are() {
        let text = "rules:\n  - id: r\n    title: T\n    severity: low\n    description: d\n    remediation: r\n    condition: {all: [{path: $.sq_main.ok, op: exists}, {path: $.request.application, op: exists}, {path: $.sonarqube.ok, op: exists}]}\n";
        let source = || {
            vec![PolicySource {
                name: "p.yaml".into(),
                text: text.into(),
            }]
        };
        let instances = vec!["sq_main".to_string()];
        let r = lint_sources_for(source(), Some(&instances));
        assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
        let d = &r.diagnostics[0];
        assert_eq!(d.severity, LintSeverity::Error);
        assert!(d.message.contains("`sonarqube`"), "{}", d.message);
        // Without a configuration the kind is assumed and the instance name is unknown.
        let r = lint_sources_for(source(), None);
        assert!(!r.has_errors());
        assert!(
            r.diagnostics
                .iter()
                .any(|d| d.message.contains("`sq_main`")),
            "{:?}",
            r.diagnostics
        );
    }

    #[test]
    fn declared_sources_are_known_and_errors_are_reported() {
        let ok = lint(
            "sources: [deploy_db]\nrules:\n  - id: r\n    title: T\n    severity: low\n    description: d\n    remediation: r\n    condition: {path: $.deploy_db.ok, op: exists}\n",
        );
        assert!(ok.diagnostics.is_empty(), "{}", ok.render_human());
        let bad = lint("rules:\n  - id: r\n    severity: nope\n");
        assert!(bad.has_errors());
        let json = serde_json::to_value(&bad).unwrap();
        assert_eq!(json["diagnostics"][0]["severity"], "error");
        assert!(
            bad.render_human()
                .contains("p.yaml:2:5: error: missing required field `title`"),
            "{}",
            bad.render_human()
        );
    }

    #[test]
    fn builtin_pack_is_lint_clean() {
        let r = lint_sources(super::super::builtin::sources());
        assert!(r.diagnostics.is_empty(), "{}", r.render_human());
    }
}
