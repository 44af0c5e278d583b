//! Evaluation: runs a rule's condition over the evidence with three-valued logic (pass, fail,
//! missing) and words the outcome. Pure and bounded: no I/O, no clock, no panics.
//!
//! `all` fails if any part fails, else is missing if any part is missing, else passes. `any`
//! passes if any part passes, else is missing if any part is missing, else fails — except that
//! parts missing only because their source is not configured at all cannot hold, so beside a
//! failing part they leave `any` failed (one rule can cover GitHub and GitLab). `not` swaps pass
//! and fail and keeps missing. So a missing branch never decides alone when the others already
//! do, and never counts as a pass.
//!
//! Some failures say only that the evidence is not what the rule expects, not that the condition
//! is false: a value of the wrong type (the tool changed shape), no value for `exists`, more
//! values than a rule may examine. Such a failure is *inconclusive*: it fails where it stands,
//! but `not` turns it into missing rather than a pass, so negating a rule can never make broken
//! or absent evidence let a deploy through.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::condition::{Condition, Leaf, Quantifier};
use super::operator::{Check, Op};
use super::path::{Hit, Path};
use super::reason::{Facts, name_of, show};
use super::rule::Rule;
use super::window::parse_timestamp;
use crate::domain::{FailureReason, RuleOutcome, RuleResult, Verdict};

/// Most values one path may yield; past it the leaf fails instead of doing unbounded work.
pub const MAX_VALUES: usize = 10_000;

/// What evaluation needs from the input.
pub(crate) struct Ctx<'a> {
    pub(crate) document: &'a Value,
    pub(crate) unavailable: &'a BTreeMap<String, (FailureReason, String)>,
    pub(crate) now: DateTime<Utc>,
}

/// One condition's outcome and words.
#[derive(Debug, Clone)]
pub(crate) struct Eval {
    pub(crate) outcome: RuleOutcome,
    pub(crate) reason: String,
    pub(crate) facts: Option<Facts>,
    /// A failure that only shows the evidence is unusable (see the module docs); `not` of it is
    /// missing, not a pass.
    pub(crate) inconclusive: bool,
    /// Missing only because a source the condition reads is not configured at all (as opposed
    /// to configured and failing): the rule's `on_not_configured` applies.
    pub(crate) not_configured: bool,
}

pub(crate) fn evaluate_rule(rule: &Rule, ctx: &Ctx<'_>) -> RuleResult {
    let e = eval(&rule.condition, ctx);
    let (effect, reason) = match e.outcome {
        RuleOutcome::Pass => (Verdict::Continue, e.reason),
        RuleOutcome::Fail => {
            let reason = match &rule.message {
                Some(t) => t.render(&rule.id, &e.reason, e.facts.as_ref()),
                None => e.reason,
            };
            (rule.on_fail, reason)
        }
        RuleOutcome::Missing if e.not_configured => (rule.on_not_configured, e.reason),
        RuleOutcome::Missing => (rule.on_missing, e.reason),
    };
    RuleResult {
        rule_id: rule.id.clone(),
        title: rule.title.clone(),
        category: rule.category.clone(),
        severity: rule.severity,
        outcome: e.outcome,
        effect,
        reason,
        remediation: rule.remediation.clone().unwrap_or_default(),
        policy_file: rule.file.clone(),
    }
}

fn eval(c: &Condition, ctx: &Ctx<'_>) -> Eval {
    match c {
        Condition::Leaf(l) => eval_leaf(l, ctx),
        Condition::Not(inner) => {
            let e = eval(inner, ctx);
            match e.outcome {
                RuleOutcome::Pass => Eval {
                    outcome: RuleOutcome::Fail,
                    reason: format!("expected the opposite of: {}", e.reason),
                    facts: e.facts,
                    inconclusive: false,
                    not_configured: false,
                },
                RuleOutcome::Fail if e.inconclusive => missing(format!(
                    "cannot negate a condition over unusable evidence: {}",
                    e.reason
                )),
                RuleOutcome::Fail => Eval {
                    outcome: RuleOutcome::Pass,
                    ..e
                },
                RuleOutcome::Missing => e,
            }
        }
        Condition::All(cs) => {
            let mut missing: Option<Eval> = None;
            let mut inconclusive: Option<Eval> = None;
            let mut passes = Vec::with_capacity(cs.len());
            for c in cs {
                let e = eval(c, ctx);
                match e.outcome {
                    // A conclusive failure decides `all` (and its negation) on its own.
                    RuleOutcome::Fail if !e.inconclusive => return e,
                    RuleOutcome::Fail => {
                        inconclusive.get_or_insert(e);
                    }
                    RuleOutcome::Missing => {
                        missing.get_or_insert(e);
                    }
                    RuleOutcome::Pass => passes.push(e.reason),
                }
            }
            inconclusive
                .or(missing)
                .unwrap_or_else(|| pass(passes.join("; ")))
        }
        Condition::Any(cs) => {
            let mut others = Vec::with_capacity(cs.len());
            let mut any_missing = false;
            // Every missing alternative is missing only for want of configuration.
            let mut not_configured = true;
            let mut missing_count = 0;
            let mut inconclusive = false;
            let mut facts = None;
            for c in cs {
                let e = eval(c, ctx);
                match e.outcome {
                    RuleOutcome::Pass => return e,
                    RuleOutcome::Missing => {
                        any_missing = true;
                        missing_count += 1;
                        not_configured &= e.not_configured;
                    }
                    RuleOutcome::Fail => {
                        inconclusive |= e.inconclusive;
                        if facts.is_none() {
                            facts = e.facts;
                        }
                    }
                }
                others.push(e.reason);
            }
            // An alternative whose source nobody configured can never hold: when the others
            // failed conclusively it does not turn their failure into missing (a GitHub
            // repository that is unprotected fails even where no GitLab source exists).
            let vacuous = any_missing && not_configured && others.len() > missing_count;
            let outcome = if any_missing && !vacuous {
                RuleOutcome::Missing
            } else {
                RuleOutcome::Fail
            };
            let reason = if others.len() == 1 {
                others.join("")
            } else {
                format!("no alternative holds: {}", others.join("; "))
            };
            Eval {
                outcome,
                reason,
                facts,
                inconclusive,
                not_configured: any_missing && not_configured && !vacuous,
            }
        }
    }
}

fn pass(reason: String) -> Eval {
    Eval {
        outcome: RuleOutcome::Pass,
        reason,
        facts: None,
        inconclusive: false,
        not_configured: false,
    }
}

fn missing(reason: String) -> Eval {
    Eval {
        outcome: RuleOutcome::Missing,
        reason,
        facts: None,
        inconclusive: false,
        not_configured: false,
    }
}

fn fail(reason: String, facts: Facts) -> Eval {
    Eval {
        outcome: RuleOutcome::Fail,
        reason,
        facts: Some(facts),
        inconclusive: false,
        not_configured: false,
    }
}

/// A failure that says only that the evidence is unusable; see the module docs.
fn unusable(e: Eval) -> Eval {
    Eval {
        inconclusive: true,
        ..e
    }
}

fn eval_leaf(l: &Leaf, ctx: &Ctx<'_>) -> Eval {
    let Some(path) = &l.path else {
        return match l.op.test_now(ctx.now) {
            Check::Pass => pass(format!(
                "now is {}",
                expected(l, &l.op).replacen("a time ", "", 1)
            )),
            Check::Fail(note) => {
                let note = note.unwrap_or_default();
                let expected = expected(l, &l.op);
                fail(
                    format!("{note}, expected {expected}"),
                    Facts {
                        path: "now".into(),
                        found: note.clone(),
                        expected: expected.into_owned(),
                    },
                )
            }
            Check::Mismatch(what) => missing(format!("cannot test the time: {what}")),
        };
    };
    if let Some(e) = unreadable(path, ctx) {
        return e;
    }
    // The operand and the anchor of a leaf that compares two facts are read first: if either
    // is missing, so is the answer.
    let resolved;
    let op = match &l.value_from {
        None => &l.op,
        Some(from) => match operand(&l.op, from, ctx) {
            Ok(op) => {
                resolved = op;
                &resolved
            }
            Err(e) => return e,
        },
    };
    let anchor = match &l.relative_to {
        None => None,
        Some(to) => match anchor(to, ctx) {
            Ok(t) => Some((t, to.text())),
            Err(e) => return e,
        },
    };
    let Ok(hits) = path.select(ctx.document, MAX_VALUES) else {
        let reason = format!(
            "`{}` yields more than {MAX_VALUES} values, more than one rule may examine",
            path.text()
        );
        return unusable(fail(
            reason,
            Facts {
                path: path.text().into(),
                found: format!("more than {MAX_VALUES} values"),
                expected: expected(l, op).into_owned(),
            },
        ));
    };
    if hits.is_empty() {
        return match op {
            Op::Exists => unusable(fail(
                format!("no value at `{}`, expected a value", path.text()),
                Facts {
                    path: path.text().into(),
                    found: "nothing".into(),
                    expected: expected(l, op).into_owned(),
                },
            )),
            Op::Absent => pass(format!("no value at `{}`, as expected", path.text())),
            _ => missing(format!("no value at `{}`", path.text())),
        };
    }
    let checks: Vec<Check> = hits
        .iter()
        .map(|h| match anchor {
            Some((t, name)) => op.test_relative(h.value, t, Some(name)),
            None => op.test(h.value, ctx.now),
        })
        .collect();
    let passed = checks.iter().filter(|c| **c == Check::Pass).count();
    let ok = match l.quantifier {
        Quantifier::All => passed == hits.len(),
        Quantifier::Any => passed > 0,
    };
    let n = hits.len();
    if ok {
        let first = checks
            .iter()
            .position(|c| *c == Check::Pass)
            .and_then(|i| hits.get(i));
        if matches!(op, Op::Exists) {
            let values = if n == 1 { "1 value" } else { "values" };
            return pass(format!(
                "`{}` has {}",
                path.text(),
                if n == 1 {
                    values.to_string()
                } else {
                    format!("{n} {values}")
                }
            ));
        }
        return pass(match (n, first) {
            (1, Some(h)) => format!(
                "`{}` is `{}`, meeting {}",
                path.text(),
                show(h.value),
                expected(l, op)
            ),
            _ if l.quantifier == Quantifier::All => format!(
                "all {n} values of `{}` meet {}",
                path.text(),
                expected(l, op)
            ),
            _ => format!(
                "{passed} of {n} values of `{}` meet {}",
                path.text(),
                expected(l, op)
            ),
        });
    }
    // Conclusive only when a value of the right type fails: for `all`, one such value decides;
    // for `any`, every value must be of the right type and fail.
    // `exists` fails only on nulls: no value, which is never a conclusive answer.
    let conclusive = !matches!(op, Op::Exists)
        && match l.quantifier {
            Quantifier::All => checks.iter().any(|c| matches!(c, Check::Fail(_))),
            Quantifier::Any => !checks.iter().any(|c| matches!(c, Check::Mismatch(_))),
        };
    let Some((hit, check)) = hits.iter().zip(&checks).find(|(_, c)| **c != Check::Pass) else {
        return missing(format!("no value at `{}`", path.text()));
    };
    let e = fail_reason(l, op, path, hit, check, n - passed, n);
    if conclusive { e } else { unusable(e) }
}

/// What the leaf expects: worded when the policy loaded, unless its operand is a fact.
fn expected<'a>(l: &'a Leaf, op: &Op) -> Cow<'a, str> {
    match &l.expected {
        Some(text) => Cow::Borrowed(text),
        None => Cow::Owned(expected_of(l, op)),
    }
}

/// What the leaf expects, naming the facts it compared with.
pub(super) fn expected_of(l: &Leaf, op: &Op) -> String {
    let base = op.expected();
    match (&l.value_from, &l.relative_to) {
        (Some(from), _) => format!("{base} (`{}`)", from.text()),
        (_, Some(to)) if matches!(op, Op::Before | Op::After) => {
            base.replace("now", &format!("`{}`", to.text()))
        }
        (_, Some(to)) => format!("{base} before `{}`", to.text()),
        (None, None) => base,
    }
}

/// Missing when the source `path` reads did not answer (with whether it is configured at all),
/// or answered nothing under that name.
fn unreadable(path: &Path, ctx: &Ctx<'_>) -> Option<Eval> {
    let source = path.source();
    if let Some((why, message)) = ctx.unavailable.get(source) {
        return Some(Eval {
            not_configured: *why == FailureReason::NotConfigured,
            ..missing(if message.is_empty() {
                format!("evidence unavailable: `{source}`: {}", why.as_str())
            } else {
                format!(
                    "evidence unavailable: `{source}`: {}: {message}",
                    why.as_str()
                )
            })
        });
    }
    if ctx.document.get(source).is_none() {
        return Some(missing(format!(
            "no evidence source named `{source}` answered"
        )));
    }
    None
}

/// The values `path` yields, or missing when there are none (a fact to compare with that is
/// not there is never a pass).
fn values<'a>(path: &Path, ctx: &Ctx<'a>) -> Result<Vec<&'a Value>, Eval> {
    if let Some(e) = unreadable(path, ctx) {
        return Err(e);
    }
    let hits = path.select(ctx.document, MAX_VALUES).map_err(|_| {
        missing(format!(
            "`{}` yields more than {MAX_VALUES} values, more than one rule may examine",
            path.text()
        ))
    })?;
    let values: Vec<&Value> = hits
        .iter()
        .map(|h| h.value)
        .filter(|v| !v.is_null())
        .collect();
    if values.is_empty() {
        return Err(missing(format!("no value at `{}`", path.text())));
    }
    Ok(values)
}

/// `op` with its operand read from the fact `from` names.
fn operand(op: &Op, from: &Path, ctx: &Ctx<'_>) -> Result<Op, Eval> {
    let values = values(from, ctx)?;
    op.with_operand(&values).map_err(|what| {
        missing(format!(
            "cannot compare with `{}`: it is {what}",
            from.text()
        ))
    })
}

/// The time the fact `to` names, for `relative_to`.
fn anchor(to: &Path, ctx: &Ctx<'_>) -> Result<DateTime<Utc>, Eval> {
    match values(to, ctx)?.as_slice() {
        [v] => v.as_str().and_then(parse_timestamp).ok_or_else(|| {
            missing(format!(
                "cannot measure from `{}`: `{}` is not a timestamp",
                to.text(),
                show(v)
            ))
        }),
        many => Err(missing(format!(
            "cannot measure from `{}`: it yields {} values, not one time",
            to.text(),
            many.len()
        ))),
    }
}

fn fail_reason(
    l: &Leaf,
    op: &Op,
    path: &Path,
    hit: &Hit<'_>,
    check: &Check,
    failing: usize,
    n: usize,
) -> Eval {
    let mut subject = format!("`{}` is `{}`", path.text(), show(hit.value));
    if path.is_plural() {
        match name_of(hit, l.label.as_deref()) {
            Some(name) => subject.push_str(&format!(" for `{name}`")),
            None => {
                let loc = path.location(hit);
                if loc != path.text() {
                    subject.push_str(&format!(" at `{loc}`"));
                }
            }
        }
    }
    if n > 1 {
        subject.push_str(&match l.quantifier {
            Quantifier::All => format!(" ({failing} of {n} values)"),
            Quantifier::Any => format!(" (none of {n} values match)"),
        });
    }
    let expected = expected(l, op);
    let reason = match check {
        Check::Fail(Some(note)) => format!("{subject} ({note}), expected {expected}"),
        Check::Mismatch(what) => format!("{subject}, expected {expected} but found {what}"),
        Check::Fail(None) | Check::Pass => format!("{subject}, expected {expected}"),
    };
    let facts = Facts {
        path: path.location(hit),
        found: format!("`{}`", show(hit.value)),
        expected: expected.into_owned(),
    };
    fail(reason, facts)
}
