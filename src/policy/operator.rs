//! Leaf operators: parsing `op` and `value` from the file (regexes, durations and windows are
//! compiled here, once), and testing one evidence value against them.

use chrono::{DateTime, Utc};
use marked_yaml::Node;
use regex::Regex;
use serde_json::Value;

use super::file::{Diagnostics, Map, Pos, Text, clip, closest, to_json};
use super::reason::show;
use super::window::{Window, parse_timestamp, parse_windows, show_time};

/// Every operator name, as written in policy files.
pub(crate) const OPERATORS: &[&str] = &[
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "in",
    "not_in",
    "exists",
    "absent",
    "matches",
    "contains",
    "older_than",
    "newer_than",
    "before",
    "after",
    "within_window",
    "within_windows",
    "outside_windows",
];

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Eq(Value),
    Ne(Value),
    Order(Ordering, Value),
    In(Vec<Value>),
    NotIn(Vec<Value>),
    Exists,
    Absent,
    Matches(Regex),
    Contains(Value),
    OlderThan(Age),
    NewerThan(Age),
    /// The time is at or before now (or the `relative_to` fact).
    Before,
    /// The time is at or after now (or the `relative_to` fact).
    After,
    WithinWindow {
        start: String,
        end: String,
    },
    WithinWindows(Vec<Window>),
    OutsideWindows(Vec<Window>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ordering {
    Lt,
    Le,
    Gt,
    Ge,
}

/// A duration as written (`7d`) and as a value.
#[derive(Debug, Clone)]
pub(crate) struct Age {
    text: String,
    value: chrono::Duration,
}

/// The result of testing one value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    Pass,
    /// The value does not satisfy the operator; an optional note adds context (an age, a window).
    Fail(Option<String>),
    /// The value has the wrong type for the operator, said in words.
    Mismatch(String),
}

impl Op {
    /// Parses `op` with its `value` (absent when the leaf has none).
    pub(crate) fn parse(
        op: &Text,
        value: Option<&Node>,
        leaf: &Map<'_>,
        d: &mut Diagnostics,
    ) -> Option<Op> {
        let name = op.value.as_str();
        if !OPERATORS.contains(&name) {
            let help = match closest(name, OPERATORS) {
                Some(s) => format!("did you mean `{s}`? operators: {}", OPERATORS.join(" ")),
                None => format!("operators: {}", OPERATORS.join(" ")),
            };
            d.error(op.pos, format!("unknown operator `{}`", clip(name)), help);
            return None;
        }
        let takes_no_value = matches!(name, "exists" | "absent" | "before" | "after");
        let optional_value = name == "within_window";
        let value = match (value, takes_no_value, optional_value) {
            (Some(v), true, _) => {
                d.error(
                    Pos::of(v),
                    format!("`{name}` takes no `value`"),
                    "remove `value`; `exists` and `absent` only look at the path, `before` and `after` compare it with now or the `relative_to` fact",
                );
                return None;
            }
            (None, false, false) => {
                d.error(
                    leaf.pos,
                    format!("missing `value` for operator `{name}`"),
                    value_help(name),
                );
                return None;
            }
            (v, _, _) => v,
        };
        let Some(value) = value else {
            return Some(match name {
                "exists" => Op::Exists,
                "absent" => Op::Absent,
                "before" => Op::Before,
                "after" => Op::After,
                _ => Op::WithinWindow {
                    start: "start".into(),
                    end: "end".into(),
                },
            });
        };
        let json = to_json(value);
        let at = Pos::of(value);
        let bad = |d: &mut Diagnostics, what: &str| {
            d.error(
                at,
                format!("`{name}` needs {what}, found `{}`", clip(&show(&json))),
                value_help(name),
            );
            None
        };
        Some(match name {
            "==" => Op::Eq(json),
            "!=" => Op::Ne(json),
            "<" | "<=" | ">" | ">=" => {
                if !(json.is_number() || json.is_string()) {
                    return bad(d, "a number or a string");
                }
                let ord = match name {
                    "<" => Ordering::Lt,
                    "<=" => Ordering::Le,
                    ">" => Ordering::Gt,
                    _ => Ordering::Ge,
                };
                Op::Order(ord, json)
            }
            "in" | "not_in" => match json {
                Value::Array(items) if !items.is_empty() && items.iter().all(is_scalar) => {
                    if name == "in" {
                        Op::In(items)
                    } else {
                        Op::NotIn(items)
                    }
                }
                _ => return bad(d, "a non-empty list of values"),
            },
            "contains" => {
                if !is_scalar(&json) {
                    return bad(d, "a single value");
                }
                Op::Contains(json)
            }
            "matches" => {
                let Value::String(pattern) = &json else {
                    return bad(d, "a regular expression string");
                };
                match regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                {
                    Ok(re) => Op::Matches(re),
                    Err(e) => {
                        let detail = e
                            .to_string()
                            .lines()
                            .last()
                            .unwrap_or("")
                            .trim()
                            .trim_start_matches("error: ")
                            .to_string();
                        d.error(at, format!("invalid regular expression `{}`: {detail}", clip(pattern)), "use Rust regex syntax (https://docs.rs/regex); quote the pattern with single quotes so backslashes stay literal");
                        return None;
                    }
                }
            }
            "older_than" | "newer_than" => {
                let Value::String(text) = &json else {
                    return bad(d, "a duration such as `7d` or `12h`");
                };
                let parsed = humantime::parse_duration(text)
                    .ok()
                    .and_then(|std| chrono::Duration::from_std(std).ok());
                let Some(dur) = parsed else {
                    return bad(d, "a duration such as `7d` or `12h`");
                };
                let age = Age {
                    text: text.clone(),
                    value: dur,
                };
                if name == "older_than" {
                    Op::OlderThan(age)
                } else {
                    Op::NewerThan(age)
                }
            }
            "within_window" => {
                let map = Map::new(value, "the window's field names", d)?;
                map.allow_only(&["start", "end"], d);
                let start = map
                    .optional_str("start", d)
                    .map_or_else(|| "start".to_string(), |t| t.value);
                let end = map
                    .optional_str("end", d)
                    .map_or_else(|| "end".to_string(), |t| t.value);
                Op::WithinWindow { start, end }
            }
            "within_windows" => Op::WithinWindows(parse_windows(value, d)?),
            _ => Op::OutsideWindows(parse_windows(value, d)?),
        })
    }

    /// Whether the operator may be used without `path`, testing the evaluation time itself.
    pub(crate) fn tests_now(&self) -> bool {
        matches!(self, Op::WithinWindows(_) | Op::OutsideWindows(_))
    }

    /// What the operator expects, for reasons: "`== true`", "older than `7d`".
    pub(crate) fn expected(&self) -> String {
        match self {
            Op::Eq(v) => format!("`== {}`", show(v)),
            Op::Ne(v) => format!("`!= {}`", show(v)),
            Op::Order(o, v) => {
                let sym = match o {
                    Ordering::Lt => "<",
                    Ordering::Le => "<=",
                    Ordering::Gt => ">",
                    Ordering::Ge => ">=",
                };
                format!("`{sym} {}`", show(v))
            }
            Op::In(vs) => format!("one of `{}`", show(&Value::Array(vs.clone()))),
            Op::NotIn(vs) => format!("none of `{}`", show(&Value::Array(vs.clone()))),
            Op::Exists => "a value".into(),
            Op::Absent => "no value".into(),
            Op::Matches(re) => format!("a match for `{}`", clip(re.as_str())),
            Op::Contains(v) => format!("to contain `{}`", show(v)),
            Op::OlderThan(a) => format!("older than `{}`", a.text),
            Op::NewerThan(a) => format!("newer than `{}`", a.text),
            Op::Before => "a time at or before now".into(),
            Op::After => "a time at or after now".into(),
            Op::WithinWindow { start, end } => format!("now between `{start}` and `{end}`"),
            Op::WithinWindows(ws) => format!("a time inside {}", names(ws)),
            Op::OutsideWindows(ws) => format!("a time outside {}", names(ws)),
        }
    }

    /// Tests one value. `exists`/`absent` are decided by the caller from the set of values.
    pub(crate) fn test(&self, v: &Value, now: DateTime<Utc>) -> Check {
        match self {
            Op::Eq(want) => equal(v, want).map_or_else(|| mismatch(v, want), pass_if),
            Op::Ne(want) => equal(v, want).map_or_else(|| mismatch(v, want), |eq| pass_if(!eq)),
            Op::Order(o, want) => match compare(v, want) {
                Some(c) => pass_if(match o {
                    Ordering::Lt => c.is_lt(),
                    Ordering::Le => c.is_le(),
                    Ordering::Gt => c.is_gt(),
                    Ordering::Ge => c.is_ge(),
                }),
                None => mismatch(v, want),
            },
            Op::In(set) | Op::NotIn(set) => {
                if !set.iter().any(|w| equal(v, w).is_some()) {
                    return Check::Mismatch(format!(
                        "a {} where the list holds {}",
                        type_name(v),
                        list_types(set)
                    ));
                }
                let found = set.iter().any(|w| equal(v, w) == Some(true));
                pass_if(found == matches!(self, Op::In(_)))
            }
            Op::Exists => pass_if(!v.is_null()),
            Op::Absent => pass_if(v.is_null()),
            Op::Matches(re) => match v {
                Value::String(s) => pass_if(re.is_match(s)),
                other => Check::Mismatch(format!(
                    "a {} where a string was expected",
                    type_name(other)
                )),
            },
            Op::Contains(want) => match (v, want) {
                (Value::String(s), Value::String(w)) => pass_if(s.contains(w.as_str())),
                (Value::Array(items), w) => {
                    pass_if(items.iter().any(|i| equal(i, w) == Some(true)))
                }
                (other, _) => Check::Mismatch(format!(
                    "a {} where a list or a string was expected",
                    type_name(other)
                )),
            },
            Op::OlderThan(_) | Op::NewerThan(_) | Op::Before | Op::After => {
                self.test_relative(v, now, None)
            }
            Op::WithinWindow { start, end } => {
                let field = |k: &str| v.get(k).and_then(Value::as_str).and_then(parse_timestamp);
                let Some(obj) = v.as_object() else {
                    return Check::Mismatch(format!(
                        "a {} where an object with `{start}` and `{end}` was expected",
                        type_name(v)
                    ));
                };
                match (field(start), field(end)) {
                    (Some(s), Some(e)) if s <= now && now < e => Check::Pass,
                    (Some(s), Some(_)) if now < s => Check::Fail(Some(format!(
                        "now, {}, is before `{start}`",
                        show_time(now)
                    ))),
                    (Some(_), Some(_)) => {
                        Check::Fail(Some(format!("now, {}, is after `{end}`", show_time(now))))
                    }
                    _ => {
                        let k = if field(start).is_none() { start } else { end };
                        let got = obj
                            .get(k)
                            .map_or_else(|| "absent".to_string(), |x| format!("`{}`", show(x)));
                        Check::Mismatch(format!("its `{k}` is {got}, not a timestamp"))
                    }
                }
            }
            Op::WithinWindows(ws) | Op::OutsideWindows(ws) => {
                let Some(t) = v.as_str().and_then(parse_timestamp) else {
                    return not_a_time(v);
                };
                self.test_time(t, ws)
            }
        }
    }

    /// `older_than` / `newer_than`: the time between `v` and `anchor` — now, or the fact a leaf's
    /// `relative_to` names (`anchor_name`) — against the bound.
    pub(crate) fn test_relative(
        &self,
        v: &Value,
        anchor: DateTime<Utc>,
        anchor_name: Option<&str>,
    ) -> Check {
        let Some(t) = v.as_str().and_then(parse_timestamp) else {
            return not_a_time(v);
        };
        let than = anchor_name.map_or_else(|| "now".to_string(), |n| format!("`{n}`"));
        match self {
            Op::Before if t <= anchor => return Check::Pass,
            Op::After if t >= anchor => return Check::Pass,
            Op::Before => {
                return Check::Fail(Some(format!(
                    "{} after {than}, {}",
                    human(t.signed_duration_since(anchor)),
                    show_time(anchor)
                )));
            }
            Op::After => {
                return Check::Fail(Some(format!(
                    "{} before {than}, {}",
                    human(anchor.signed_duration_since(t)),
                    show_time(anchor)
                )));
            }
            _ => {}
        }
        let (Op::OlderThan(age) | Op::NewerThan(age)) = self else {
            return Check::Mismatch("an operator that does not compare times".into());
        };
        let elapsed = anchor.signed_duration_since(t);
        // Evidence dated after now cannot be aged: a clean report dated 2099 would otherwise be
        // "newer than" every bound forever. Beyond a small allowance for clock skew between the
        // tool and the gate it is unusable, never fresh. Against another fact, a time after it
        // (a window that ends before it starts) is as unusable.
        if -elapsed > FUTURE_SKEW {
            return Check::Mismatch(match anchor_name {
                None => format!(
                    "a timestamp {} in the future (`{}`): evidence dated after now cannot be \
                     aged; check the tool's clock",
                    human(-elapsed),
                    show_time(t)
                ),
                Some(name) => format!(
                    "a timestamp {} after `{name}` (`{}`)",
                    human(-elapsed),
                    show_time(anchor)
                ),
            });
        }
        let older = elapsed > age.value;
        let ok = if matches!(self, Op::OlderThan(_)) {
            older
        } else {
            !older
        };
        match (ok, anchor_name) {
            (true, _) => Check::Pass,
            (false, None) => Check::Fail(Some(format!("it is {} old", human(elapsed)))),
            (false, Some(name)) => {
                Check::Fail(Some(format!("it is {} before `{name}`", human(elapsed))))
            }
        }
    }

    /// The operator of a leaf whose operand is another fact (`value_from`), before that fact is
    /// read: `None` for operators that cannot take one.
    pub(crate) fn for_operand(name: &str) -> Option<Op> {
        Some(match name {
            "==" => Op::Eq(Value::Null),
            "!=" => Op::Ne(Value::Null),
            "<" => Op::Order(Ordering::Lt, Value::Null),
            "<=" => Op::Order(Ordering::Le, Value::Null),
            ">" => Op::Order(Ordering::Gt, Value::Null),
            ">=" => Op::Order(Ordering::Ge, Value::Null),
            "in" => Op::In(Vec::new()),
            "not_in" => Op::NotIn(Vec::new()),
            "contains" => Op::Contains(Value::Null),
            _ => return None,
        })
    }

    /// The same operator with the operand read from the evidence: the values a `value_from`
    /// path yielded (for `in` / `not_in`, the list — one array value is taken as the list).
    /// `Err` says in words why the values cannot be an operand.
    pub(crate) fn with_operand(&self, values: &[&Value]) -> Result<Op, String> {
        let one = || match values {
            [v] if is_scalar(v) => Ok((*v).clone()),
            [v] => Err(format!(
                "a {} where a single value was expected",
                type_name(v)
            )),
            _ => Err(format!("{} values where one was expected", values.len())),
        };
        Ok(match self {
            Op::Eq(_) => Op::Eq(one()?),
            Op::Ne(_) => Op::Ne(one()?),
            Op::Order(o, _) => Op::Order(*o, one()?),
            Op::Contains(_) => Op::Contains(one()?),
            Op::In(_) | Op::NotIn(_) => {
                let list: Vec<Value> = match values {
                    [Value::Array(items)] => items.clone(),
                    _ => values.iter().map(|v| (*v).clone()).collect(),
                };
                if list.is_empty() || !list.iter().all(is_scalar) {
                    return Err("not a non-empty list of single values".into());
                }
                if matches!(self, Op::In(_)) {
                    Op::In(list)
                } else {
                    Op::NotIn(list)
                }
            }
            _ => return Err("an operator that takes no fact as its value".into()),
        })
    }

    /// Tests a time against windows (`now` when the leaf has no path).
    pub(crate) fn test_now(&self, now: DateTime<Utc>) -> Check {
        match self {
            Op::WithinWindows(ws) | Op::OutsideWindows(ws) => self.test_time(now, ws),
            _ => Check::Mismatch("an operator that needs a path".into()),
        }
    }

    fn test_time(&self, t: DateTime<Utc>, ws: &[Window]) -> Check {
        let inside = ws.iter().find(|w| w.contains(t));
        match (self, inside) {
            (Op::WithinWindows(_), Some(_)) | (Op::OutsideWindows(_), None) => Check::Pass,
            (Op::OutsideWindows(_), Some(w)) => {
                Check::Fail(Some(format!("{} is inside `{}`", show_time(t), w.name)))
            }
            _ => Check::Fail(Some(format!("{} is outside {}", show_time(t), names(ws)))),
        }
    }
}

fn value_help(op: &str) -> &'static str {
    match op {
        "in" | "not_in" => "add `value: [a, b]`",
        "matches" => "add `value: '^pattern$'`",
        "older_than" | "newer_than" => "add `value: 7d` (units: s, m, h, d, w)",
        "within_windows" | "outside_windows" => {
            "add `value:` with a list of windows, e.g. `- {name: weekend, days: [sat, sun]}`"
        }
        "within_window" => {
            "`value` is optional: `{start: start_date, end: end_date}` names the fields"
        }
        _ => "add `value:` with the value to compare against",
    }
}

fn pass_if(ok: bool) -> Check {
    if ok { Check::Pass } else { Check::Fail(None) }
}

fn is_scalar(v: &Value) -> bool {
    !(v.is_array() || v.is_object())
}

/// Equality with numbers compared numerically; `None` when the types differ.
pub(crate) fn equal(a: &Value, b: &Value) -> Option<bool> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => Some(match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        }),
        (Value::Null, Value::Null) => Some(true),
        (Value::Bool(x), Value::Bool(y)) => Some(x == y),
        (Value::String(x), Value::String(y)) => Some(x == y),
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => Some(a == b),
        _ => None,
    }
}

fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => Some(i.cmp(&j)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn mismatch(v: &Value, want: &Value) -> Check {
    Check::Mismatch(format!(
        "a {} where a {} was expected",
        type_name(v),
        type_name(want)
    ))
}

/// How far ahead of the gate's clock a timestamp may be before it is future-dated evidence.
const FUTURE_SKEW: chrono::Duration = chrono::Duration::minutes(5);

fn not_a_time(v: &Value) -> Check {
    Check::Mismatch(format!(
        "a {} where an RFC 3339 timestamp was expected",
        if v.is_string() {
            "string that is not a timestamp"
        } else {
            type_name(v)
        }
    ))
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn list_types(set: &[Value]) -> String {
    let mut types: Vec<&str> = set.iter().map(type_name).collect();
    types.sort_unstable();
    types.dedup();
    types
        .iter()
        .map(|t| format!("{t}s"))
        .collect::<Vec<_>>()
        .join(" and ")
}

fn names(ws: &[Window]) -> String {
    ws.iter()
        .map(|w| format!("`{}`", w.name))
        .collect::<Vec<_>>()
        .join(", ")
}

fn human(d: chrono::Duration) -> String {
    let s = d.num_seconds();
    if s.abs() >= 86_400 {
        format!("{}d", s / 86_400)
    } else if s.abs() >= 3_600 {
        format!("{}h", s / 3_600)
    } else if s.abs() >= 60 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    /// A fixed evaluation time: tests never read the wall clock.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn numbers_compare_numerically_and_types_must_match() {
        assert_eq!(equal(&json!(1), &json!(1.0)), Some(true));
        assert_eq!(equal(&json!("1"), &json!(1)), None);
        let now = now();
        assert_eq!(
            Op::Order(Ordering::Le, json!(5)).test(&json!(4.5), now),
            Check::Pass
        );
        assert!(matches!(
            Op::Eq(json!("OK")).test(&json!(5), now),
            Check::Mismatch(_)
        ));
        assert!(matches!(
            Op::Ne(json!("OK")).test(&json!(null), now),
            Check::Mismatch(_)
        ));
        assert_eq!(
            Op::In(vec![json!("a"), json!("b")]).test(&json!("b"), now),
            Check::Pass
        );
        assert_eq!(
            Op::NotIn(vec![json!("a")]).test(&json!("a"), now),
            Check::Fail(None)
        );
        assert_eq!(
            Op::Contains(json!("x")).test(&json!(["x", "y"]), now),
            Check::Pass
        );
    }

    #[test]
    fn future_dated_timestamps_are_never_fresh_nor_old() {
        let now = now();
        let age = || Age {
            text: "1d".into(),
            value: chrono::Duration::days(1),
        };
        let at = |d: chrono::Duration| json!((now + d).to_rfc3339());
        for op in [Op::NewerThan(age()), Op::OlderThan(age())] {
            let far = op.test(&json!("2099-01-01T00:00:00Z"), now);
            assert!(
                matches!(&far, Check::Mismatch(m) if m.contains("in the future")),
                "{far:?}"
            );
            assert!(matches!(
                op.test(&at(chrono::Duration::hours(1)), now),
                Check::Mismatch(_)
            ));
        }
        // Within the skew allowance a timestamp is as good as now.
        assert_eq!(
            Op::NewerThan(age()).test(&at(chrono::Duration::minutes(2)), now),
            Check::Pass
        );
    }
}
