//! Reading policy YAML: parses text into a span-carrying node tree and offers typed accessors that
//! record every problem (with its `line:col`) instead of stopping at the first.

use std::panic::{AssertUnwindSafe, catch_unwind};

use marked_yaml::types::{MarkedMappingNode, MarkedScalarNode, MarkedSequenceNode};
use marked_yaml::{LoadError, LoaderOptions, Node, Span};

use super::PolicyError;

/// A 1-based position in a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) col: usize,
}

impl Pos {
    pub(crate) const START: Pos = Pos { line: 1, col: 1 };

    pub(crate) fn of_span(span: &Span) -> Pos {
        span.start().map_or(Pos::START, |m| Pos {
            line: m.line().max(1),
            col: m.column().max(1),
        })
    }

    /// Where a node starts. The loader marks a block mapping one column late, so a mapping is
    /// located at its first key, which is where a reader's eye goes anyway.
    pub(crate) fn of(node: &Node) -> Pos {
        match node {
            Node::Mapping(m) => m
                .keys()
                .next()
                .map_or_else(|| Pos::of_span(m.span()), |k| Pos::of_span(k.span())),
            Node::Scalar(s) => Pos::of_span(s.span()),
            Node::Sequence(s) => s.first().map_or_else(|| Pos::of_span(s.span()), Pos::of),
        }
    }
}

/// Collects the problems of one file.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    file: String,
    pub(crate) errors: Vec<PolicyError>,
}

impl Diagnostics {
    pub(crate) fn new(file: &str) -> Self {
        Self {
            file: file.to_string(),
            errors: Vec::new(),
        }
    }

    pub(crate) fn file(&self) -> &str {
        &self.file
    }

    pub(crate) fn error(&mut self, at: Pos, message: impl Into<String>, help: impl Into<String>) {
        self.errors.push(PolicyError {
            file: self.file.clone(),
            line: at.line,
            col: at.col,
            message: message.into(),
            help: Some(help.into()),
        });
    }
}

/// Parses YAML whose top level must be a mapping. Duplicate keys are errors, and quoted scalars
/// stay strings (`"true"` is text, `true` is a boolean).
pub(crate) fn parse(text: &str, d: &mut Diagnostics) -> Option<Node> {
    let opts = || {
        LoaderOptions::default()
            .error_on_duplicate_keys(true)
            .prevent_coercion(true)
    };
    // The YAML loader asserts on a few parser states it considers impossible; a policy file is
    // user input, so a loader bug must become an error here rather than take the service down.
    let parsed = catch_unwind(AssertUnwindSafe(|| {
        marked_yaml::parse_yaml_with_options(0, text, opts())
    }));
    match parsed {
        Ok(Ok(node)) => Some(node),
        Ok(Err(e)) => {
            let (at, message, help) = describe_load_error(&e);
            d.error(at, message, help);
            None
        }
        Err(_) => {
            d.error(
                Pos::START,
                "the YAML parser could not read this file",
                "check the file is valid YAML, e.g. with `yamllint`",
            );
            None
        }
    }
}

fn describe_load_error(e: &LoadError) -> (Pos, String, &'static str) {
    let pos = |m: &marked_yaml::Marker| Pos {
        line: m.line().max(1),
        col: m.column().max(1),
    };
    match e {
        LoadError::TopLevelMustBeMapping(m) => (
            pos(m),
            "the top level must be a mapping with a `rules` list".into(),
            "start the file with `rules:`",
        ),
        LoadError::TopLevelMustBeSequence(m) => (
            pos(m),
            "the top level must be a sequence".into(),
            "start the file with `rules:`",
        ),
        LoadError::UnexpectedAnchor(m) => (
            pos(m),
            "YAML anchors and aliases are not supported".into(),
            "write the value out in full",
        ),
        LoadError::MappingKeyMustBeScalar(m) => (
            pos(m),
            "mapping keys must be plain strings".into(),
            "use a plain key such as `path:`",
        ),
        LoadError::UnexpectedTag(m) => (
            pos(m),
            "YAML tags are not supported".into(),
            "remove the `!tag`; quote the value if it is a string",
        ),
        LoadError::ScanError(m, se) => (
            pos(m),
            format!("invalid YAML: {}", se.info()),
            "fix the YAML syntax; check indentation and quotes",
        ),
        LoadError::DuplicateKey(inner) => {
            let first = Pos::of_span(inner.prev_key.span());
            (
                Pos::of_span(inner.key.span()),
                format!(
                    "duplicate key `{}` (first at line {})",
                    inner.key.as_str(),
                    first.line
                ),
                "remove one of the two keys",
            )
        }
    }
}

/// A mapping being decoded: typed getters that report missing or mistyped fields.
pub(crate) struct Map<'n> {
    pub(crate) node: &'n MarkedMappingNode,
    pub(crate) pos: Pos,
}

impl<'n> Map<'n> {
    /// `what` names the node in the error, e.g. "a rule".
    pub(crate) fn new(node: &'n Node, what: &str, d: &mut Diagnostics) -> Option<Map<'n>> {
        match node {
            Node::Mapping(m) => Some(Map {
                node: m,
                pos: Pos::of(node),
            }),
            other => {
                d.error(
                    Pos::of(other),
                    format!("expected {what} (a mapping), found {}", kind(other)),
                    "write `key: value` lines indented under this item",
                );
                None
            }
        }
    }

    /// Reports every key not in `allowed`, suggesting the closest allowed one.
    pub(crate) fn allow_only(&self, allowed: &[&str], d: &mut Diagnostics) {
        for key in self.node.keys() {
            if !allowed.contains(&key.as_str()) {
                let help = match closest(key.as_str(), allowed) {
                    Some(s) => format!("did you mean `{s}`? allowed here: {}", allowed.join(", ")),
                    None => format!("allowed here: {}", allowed.join(", ")),
                };
                d.error(
                    Pos::of_span(key.span()),
                    format!("unknown field `{}`", clip(key.as_str())),
                    help,
                );
            }
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.node.get(key)
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.node.contains_key(key)
    }

    pub(crate) fn key_pos(&self, key: &str) -> Pos {
        self.node
            .keys()
            .find(|k| k.as_str() == key)
            .map_or(self.pos, |k| Pos::of_span(k.span()))
    }

    /// A required field; reports its absence at the mapping.
    pub(crate) fn required(&self, key: &str, help: &str, d: &mut Diagnostics) -> Option<&'n Node> {
        let node = self.get(key);
        if node.is_none() {
            d.error(self.pos, format!("missing required field `{key}`"), help);
        }
        node
    }

    pub(crate) fn required_str(&self, key: &str, help: &str, d: &mut Diagnostics) -> Option<Text> {
        self.required(key, help, d).and_then(|n| text(n, key, d))
    }

    pub(crate) fn optional_str(&self, key: &str, d: &mut Diagnostics) -> Option<Text> {
        self.get(key).and_then(|n| text(n, key, d))
    }

    /// An optional `true` / `false`; anything else is an error (and reads as `false`).
    pub(crate) fn optional_bool(&self, key: &str, d: &mut Diagnostics) -> bool {
        let Some(t) = self.optional_str(key, d) else {
            return false;
        };
        match (t.value.as_str(), t.quoted) {
            ("true", false) => true,
            ("false", false) => false,
            _ => {
                d.error(
                    t.pos,
                    format!(
                        "`{key}` must be `true` or `false`, found `{}`",
                        clip(&t.value)
                    ),
                    format!("write `{key}: true` (unquoted) or remove it"),
                );
                false
            }
        }
    }
}

/// A string from the file and where it was.
#[derive(Debug, Clone)]
pub(crate) struct Text {
    pub(crate) value: String,
    pub(crate) pos: Pos,
    /// Whether the scalar was quoted; quoting changes how `value` scalars are typed.
    pub(crate) quoted: bool,
}

/// A scalar as text; numbers and booleans are accepted as their spelling.
pub(crate) fn text(node: &Node, field: &str, d: &mut Diagnostics) -> Option<Text> {
    match node {
        Node::Scalar(s) => Some(Text {
            value: s.as_str().to_string(),
            pos: Pos::of_span(s.span()),
            quoted: !s.may_coerce(),
        }),
        other => {
            d.error(
                Pos::of(other),
                format!("`{field}` must be a string, found {}", kind(other)),
                "write a single value on the same line as the key",
            );
            None
        }
    }
}

pub(crate) fn sequence<'n>(
    node: &'n Node,
    field: &str,
    d: &mut Diagnostics,
) -> Option<&'n MarkedSequenceNode> {
    match node {
        Node::Sequence(s) => Some(s),
        other => {
            d.error(
                Pos::of(other),
                format!("`{field}` must be a list, found {}", kind(other)),
                format!("write `{field}: [a, b]` or one `- item` per line"),
            );
            None
        }
    }
}

/// A list of strings, each with its position.
pub(crate) fn string_list(node: &Node, field: &str, d: &mut Diagnostics) -> Option<Vec<Text>> {
    let seq = sequence(node, field, d)?;
    let items: Vec<_> = seq.iter().filter_map(|n| text(n, field, d)).collect();
    (items.len() == seq.len()).then_some(items)
}

/// The JSON value a YAML node denotes: plain scalars are typed (null, booleans, numbers), quoted
/// ones are strings.
pub(crate) fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match node {
        Node::Scalar(s) => scalar_json(s),
        Node::Sequence(s) => Value::Array(s.iter().map(to_json).collect()),
        Node::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().to_string(), to_json(v)))
                .collect(),
        ),
    }
}

fn scalar_json(s: &MarkedScalarNode) -> serde_json::Value {
    use serde_json::Value;
    if !s.may_coerce() {
        return Value::String(s.as_str().to_string());
    }
    match s.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        _ => {}
    }
    if let Some(b) = s.as_bool() {
        Value::Bool(b)
    } else if let Some(i) = s.as_i64() {
        Value::from(i)
    } else if let Some(f) = s
        .as_f64()
        .filter(|f| f.is_finite())
        .and_then(serde_json::Number::from_f64)
    {
        Value::Number(f)
    } else {
        Value::String(s.as_str().to_string())
    }
}

pub(crate) fn kind(node: &Node) -> &'static str {
    match node {
        Node::Scalar(_) => "a single value",
        Node::Sequence(_) => "a list",
        Node::Mapping(_) => "a mapping",
    }
}

/// Cuts user input for messages.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push('…');
        t
    }
}

/// The allowed word closest to a misspelling, when it is close enough to be a typo.
pub(crate) fn closest<'a>(word: &str, allowed: &[&'a str]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(word, a), *a))
        .filter(|(dist, a)| *dist <= (a.len() / 3).max(1))
        .min_by_key(|(dist, _)| *dist)
        .map(|(_, a)| a)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
