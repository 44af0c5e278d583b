//! Rules: decoding one policy file's `rules` (metadata, `applies_to`, verdicts) into compiled
//! rules, and deciding which rules apply to a subject.

use std::collections::BTreeSet;

use globset::{Glob, GlobSet, GlobSetBuilder};
use marked_yaml::Node;

use super::condition::Condition;
use super::file::{self, Diagnostics, Map, Pos, Text, clip, closest, sequence, string_list};
use super::operator::Op;
use super::reason::Template;
use crate::domain::{CallerKind, Severity, Subject, Tier, Verdict};

const FILE_FIELDS: &[&str] = &["rules", "sources"];
const RULE_FIELDS: &[&str] = &[
    "id",
    "title",
    "category",
    "severity",
    "description",
    "remediation",
    "applies_to",
    "condition",
    "message",
    "on_fail",
    "on_missing",
    "on_not_configured",
    "allow_absent",
];
const SCOPE_FIELDS: &[&str] = &["tiers", "environments", "applications", "callers"];

/// A compiled rule.
#[derive(Debug, Clone)]
pub(crate) struct Rule {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) category: String,
    pub(crate) severity: Severity,
    pub(crate) description: Option<String>,
    pub(crate) remediation: Option<String>,
    pub(crate) scope: Scope,
    pub(crate) condition: Condition,
    pub(crate) message: Option<Template>,
    pub(crate) on_fail: Verdict,
    pub(crate) on_missing: Verdict,
    /// Where `on_missing` was written, if it was (a written `continue` is a choice).
    pub(crate) on_missing_pos: Option<Pos>,
    /// The verdict when a source the rule reads is not configured at all (default:
    /// `on_missing`). A configured source that fails is still `on_missing`.
    pub(crate) on_not_configured: Verdict,
    pub(crate) file: String,
    pub(crate) pos: Pos,
    pub(crate) id_pos: Pos,
    /// Evidence namespaces read, `request` excluded.
    pub(crate) sources: BTreeSet<String>,
}

/// `applies_to`: each present list must match; an absent list matches everything.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    /// Tiers of the declared environments (`production` …): the robust way to say "production",
    /// since a newly declared production environment is covered at once.
    pub(crate) tiers: Option<Vec<Tier>>,
    pub(crate) environments: Option<Patterns>,
    pub(crate) applications: Option<Patterns>,
    pub(crate) callers: Option<Vec<CallerKind>>,
    pub(crate) pos: Option<Pos>,
}

/// Glob patterns compiled into one matcher.
#[derive(Debug, Clone)]
pub(crate) struct Patterns {
    pub(crate) set: GlobSet,
    pub(crate) texts: Vec<Text>,
}

/// What one file declares besides its rules.
#[derive(Debug, Clone, Default)]
pub(crate) struct FileInfo {
    pub(crate) name: String,
    /// Extra evidence namespaces the file's author says exist (custom HTTP sources).
    pub(crate) sources: Vec<Text>,
    pub(crate) rules_pos: Option<Pos>,
}

impl Scope {
    pub(crate) fn matches(&self, s: Subject<'_>) -> bool {
        self.tiers.as_ref().is_none_or(|t| t.contains(&s.tier))
            && self
                .environments
                .as_ref()
                .is_none_or(|p| p.set.is_match(s.environment.as_str()))
            && self
                .applications
                .as_ref()
                .is_none_or(|p| p.set.is_match(s.application.as_str()))
            && self.callers.as_ref().is_none_or(|c| c.contains(&s.caller))
    }
}

/// Decodes one file. Rules that have errors are left out; the errors are in `d`.
pub(crate) fn parse_file(text: &str, d: &mut Diagnostics) -> (FileInfo, Vec<Rule>) {
    let mut info = FileInfo {
        name: d.file().to_string(),
        ..FileInfo::default()
    };
    let Some(root) = file::parse(text, d) else {
        return (info, Vec::new());
    };
    let Some(map) = Map::new(&root, "a policy file", d) else {
        return (info, Vec::new());
    };
    map.allow_only(FILE_FIELDS, d);
    if let Some(n) = map.get("sources") {
        info.sources = string_list(n, "sources", d).unwrap_or_default();
    }
    let Some(rules_node) = map.required(
        "rules",
        "start the file with `rules:` followed by a list of rules",
        d,
    ) else {
        return (info, Vec::new());
    };
    info.rules_pos = Some(map.key_pos("rules"));
    let Some(seq) = sequence(rules_node, "rules", d) else {
        return (info, Vec::new());
    };
    let rules = seq.iter().filter_map(|n| parse_rule(n, d)).collect();
    (info, rules)
}

fn parse_rule(node: &Node, d: &mut Diagnostics) -> Option<Rule> {
    let map = Map::new(node, "a rule", d)?;
    map.allow_only(RULE_FIELDS, d);
    let before = d.errors.len();
    let id = map.required_str(
        "id",
        "add `id:`, a unique name such as `image-pinned-by-digest`",
        d,
    );
    if let Some(t) = &id {
        let ok = !t.value.is_empty()
            && t.value.len() <= 64
            && t.value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            d.error(
                t.pos,
                format!("rule id `{}` is not valid", clip(&t.value)),
                "use 1 to 64 lower-case letters, digits and `-`, e.g. `image-pinned-by-digest`",
            );
        }
    }
    let title = map.required_str(
        "title",
        "add `title:`, one line saying what the rule checks",
        d,
    );
    let category = map
        .optional_str("category", d)
        .map_or_else(|| "general".to_string(), |t| t.value);
    let severity = map
        .required_str(
            "severity",
            "add `severity:` critical, high, medium or low",
            d,
        )
        .and_then(|t| parse_severity(&t, d));
    let description = map.optional_str("description", d).map(|t| t.value);
    let remediation = map.optional_str("remediation", d).map(|t| t.value);
    let scope = match map.get("applies_to") {
        Some(n) => parse_scope(n, d),
        None => Some(Scope::default()),
    };
    let condition = map
        .required(
            "condition",
            "add `condition:` with `all`, `any`, `not`, or `path` and `op`",
            d,
        )
        .and_then(|n| Condition::parse(n, d));
    let message = map
        .optional_str("message", d)
        .and_then(|t| Template::parse(&t, d));
    let on_fail = map.optional_str("on_fail", d).map(|t| parse_verdict(&t, d));
    let on_missing = map
        .optional_str("on_missing", d)
        .map(|t| parse_verdict(&t, d));
    let on_not_configured = map
        .optional_str("on_not_configured", d)
        .map(|t| parse_verdict(&t, d));
    let allow_absent = map.optional_bool("allow_absent", d);
    if d.errors.len() != before {
        return None;
    }
    let (id, title, severity, scope, condition) = (id?, title?, severity?, scope?, condition?);
    let on_fail = on_fail
        .flatten()
        .unwrap_or_else(|| severity.default_on_fail());
    // Fail-closed: evidence nobody could read never lets a deploy through unless the author
    // wrote `on_missing: continue` on purpose.
    let on_missing_pos = on_missing.is_some().then(|| map.key_pos("on_missing"));
    let on_missing = on_missing
        .flatten()
        .unwrap_or_else(|| on_fail.max(Verdict::ManualReview));
    let on_not_configured = on_not_configured.flatten().unwrap_or(on_missing);
    refuse_unmeant_absent(&condition, allow_absent, d);
    if d.errors.len() != before {
        return None;
    }
    let mut sources = condition.sources();
    sources.remove("request");
    Some(Rule {
        id: id.value,
        title: title.value,
        category,
        severity,
        description,
        remediation,
        scope,
        condition,
        message,
        on_fail,
        on_missing,
        on_missing_pos,
        on_not_configured,
        file: d.file().to_string(),
        pos: map.pos,
        id_pos: id.pos,
        sources,
    })
}

/// `absent` over a tool's evidence passes when the tool stops reporting the field, renames it or
/// moves it: a change of response shape would silently let deploys through. The request is what
/// the caller sent, so no value there is a fact. Anywhere else the author must say they mean it.
fn refuse_unmeant_absent(condition: &Condition, rule_allows: bool, d: &mut Diagnostics) {
    if rule_allows {
        return;
    }
    for leaf in condition.leaves() {
        let Some(path) = &leaf.path else { continue };
        if matches!(leaf.op, Op::Absent) && path.source() != "request" && !leaf.allow_absent {
            d.error(
                leaf.path_pos,
                format!(
                    "`absent` over `{}` also passes when `{}` changes its response shape",
                    clip(path.text()),
                    path.source()
                ),
                "test a value the tool always reports (e.g. `op: \"==\"`, `value: 0`), or, if no value really is the answer, add `allow_absent: true` to this condition",
            );
        }
    }
}

fn parse_severity(t: &Text, d: &mut Diagnostics) -> Option<Severity> {
    let all = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
    ];
    let found = all.into_iter().find(|s| s.as_str() == t.value);
    if found.is_none() {
        d.error(
            t.pos,
            format!("unknown severity `{}`", clip(&t.value)),
            "use critical, high, medium or low",
        );
    }
    found
}

fn parse_verdict(t: &Text, d: &mut Diagnostics) -> Option<Verdict> {
    let found = Verdict::parse(&t.value).ok();
    if found.is_none() {
        d.error(
            t.pos,
            format!("unknown verdict `{}`", clip(&t.value)),
            "use continue, manual_review or terminate",
        );
    }
    found
}

fn parse_scope(node: &Node, d: &mut Diagnostics) -> Option<Scope> {
    let map = Map::new(node, "`applies_to`", d)?;
    map.allow_only(SCOPE_FIELDS, d);
    let before = d.errors.len();
    let tiers = map
        .get("tiers")
        .and_then(|n| string_list(n, "tiers", d))
        .map(|items| {
            items
                .iter()
                .filter_map(|t| {
                    let tier = Tier::parse(&t.value);
                    if tier.is_none() {
                        let names: Vec<&str> = Tier::ALL.iter().map(|t| t.as_str()).collect();
                        let hint = closest(&t.value, &names)
                            .map(|s| format!("did you mean `{s}`? "))
                            .unwrap_or_default();
                        d.error(
                            t.pos,
                            format!("unknown tier `{}`", clip(&t.value)),
                            format!("{hint}tiers: {}", names.join(", ")),
                        );
                    }
                    tier
                })
                .collect()
        });
    let environments = map
        .get("environments")
        .and_then(|n| patterns(n, "environments", d));
    let applications = map
        .get("applications")
        .and_then(|n| patterns(n, "applications", d));
    let callers = map
        .get("callers")
        .and_then(|n| string_list(n, "callers", d))
        .map(|items| {
            items
                .iter()
                .filter_map(|t| {
                    let kind = CallerKind::parse(&t.value).ok();
                    if kind.is_none() {
                        d.error(
                            t.pos,
                            format!("unknown caller `{}`", clip(&t.value)),
                            "use spinnaker, argocd, servicenow, api or cli",
                        );
                    }
                    kind
                })
                .collect()
        });
    (d.errors.len() == before).then_some(Scope {
        tiers,
        environments,
        applications,
        callers,
        pos: Some(map.pos),
    })
}

fn patterns(node: &Node, field: &str, d: &mut Diagnostics) -> Option<Patterns> {
    let texts = string_list(node, field, d)?;
    let mut builder = GlobSetBuilder::new();
    let mut ok = true;
    for t in &texts {
        match Glob::new(&t.value) {
            Ok(g) => {
                builder.add(g);
            }
            Err(e) => {
                ok = false;
                d.error(
                    t.pos,
                    format!("invalid glob `{}`: {}", clip(&t.value), e.kind()),
                    "use `*` for any run of characters, `?` for one, `[abc]` for a set",
                );
            }
        }
    }
    if !ok {
        return None;
    }
    match builder.build() {
        Ok(set) => Some(Patterns { set, texts }),
        Err(e) => {
            d.error(
                Pos::of(node),
                format!("invalid globs: {e}"),
                "simplify the patterns",
            );
            None
        }
    }
}
