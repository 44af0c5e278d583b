//! Words for results: how values are shown, how a value from a list is named (its image
//! reference, its CVE id …), and the `message` templates rule authors write.

use serde_json::Value;

use super::file::{Diagnostics, Pos, Text, clip};
use super::path::Hit;

/// Fields that name the object holding a value, tried in order when a rule has no `label`.
const NAME_FIELDS: [&str; 5] = ["reference", "name", "id", "key", "number"];

/// A value as compact JSON, cut to a readable length.
pub(crate) fn show(v: &Value) -> String {
    clip(&v.to_string())
}

/// The name of the object that holds a hit's value: its `label` field, or a usual name field.
pub(crate) fn name_of(hit: &Hit<'_>, label: Option<&str>) -> Option<String> {
    let parent = hit.parent?.as_object()?;
    let candidates: &[&str] = match label {
        Some(l) => &[l][..],
        None => &NAME_FIELDS[..],
    };
    candidates.iter().find_map(|k| {
        let v = parent.get(*k)?;
        // Naming a value by itself says nothing (`reference` is `x` for `x`).
        if std::ptr::eq(v, hit.value) {
            return None;
        }
        match v {
            Value::String(s) => Some(clip(s)),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    })
}

/// Facts about the first failing leaf, available to `message` templates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    pub(crate) path: String,
    pub(crate) found: String,
    pub(crate) expected: String,
}

/// A parsed `message`: text with `{reason}`, `{path}`, `{found}`, `{expected}`, `{rule}`
/// placeholders; `{{` and `}}` are literal braces.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Reason,
    Path,
    Found,
    Expected,
    Rule,
}

const PLACEHOLDERS: &str = "{reason}, {path}, {found}, {expected}, {rule}";

impl Template {
    pub(crate) fn parse(t: &Text, d: &mut Diagnostics) -> Option<Template> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = t.value.as_str();
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("{{") || rest.starts_with("}}") {
                lit.push(c);
                rest = rest.get(2..).unwrap_or("");
                continue;
            }
            if c == '{' {
                let Some(end) = rest.find('}') else {
                    d.error(
                        t.pos,
                        "unclosed `{` in `message`",
                        format!("write `{{{{` for a literal brace; placeholders: {PLACEHOLDERS}"),
                    );
                    return None;
                };
                let name = rest.get(1..end).unwrap_or("");
                let part = match name {
                    "reason" => Part::Reason,
                    "path" => Part::Path,
                    "found" => Part::Found,
                    "expected" => Part::Expected,
                    "rule" => Part::Rule,
                    other => {
                        d.error(
                            t.pos,
                            format!("unknown placeholder `{{{}}}` in `message`", clip(other)),
                            format!("placeholders: {PLACEHOLDERS}"),
                        );
                        return None;
                    }
                };
                parts.push(Part::Text(std::mem::take(&mut lit)));
                parts.push(part);
                rest = rest.get(end + 1..).unwrap_or("");
                continue;
            }
            if c == '}' {
                d.error(
                    t.pos,
                    "unmatched `}` in `message`",
                    "write `}}` for a literal brace",
                );
                return None;
            }
            lit.push(c);
            rest = rest.get(c.len_utf8()..).unwrap_or("");
        }
        parts.push(Part::Text(lit));
        Some(Template { parts })
    }

    pub(crate) fn render(&self, rule: &str, reason: &str, facts: Option<&Facts>) -> String {
        let empty = Facts::default();
        let f = facts.unwrap_or(&empty);
        self.parts
            .iter()
            .map(|p| match p {
                Part::Text(s) => s.as_str(),
                Part::Reason => reason,
                Part::Path => f.path.as_str(),
                Part::Found => f.found.as_str(),
                Part::Expected => f.expected.as_str(),
                Part::Rule => rule,
            })
            .collect()
    }
}

/// `pos` shifted right by `offset` characters inside a scalar (plus its opening quote).
pub(crate) fn inside(t: &Text, offset: usize) -> Pos {
    Pos {
        line: t.pos.line,
        col: t.pos.col + offset + usize::from(t.quoted),
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn text(s: &str) -> Text {
        Text {
            value: s.into(),
            pos: Pos::START,
            quoted: false,
        }
    }

    #[test]
    fn templates_fill_placeholders_and_reject_unknown_ones() {
        let mut d = Diagnostics::new("f.yaml");
        let t = Template::parse(&text("{rule}: {found} at {path} {{x}}"), &mut d).unwrap();
        let f = Facts {
            path: "$.a".into(),
            found: "1".into(),
            expected: "`== 2`".into(),
        };
        assert_eq!(t.render("r", "why", Some(&f)), "r: 1 at $.a {x}");
        assert!(Template::parse(&text("{nope}"), &mut d).is_none());
        assert!(d.errors[0].message.contains("`{nope}`"));
    }
}
