//! JSONPath expressions, compiled once at load time. Plain paths (names, indices, `[*]`) are
//! walked directly, keeping each value's parent for naming it in reasons; anything richer
//! (filters, slices, `..`) is handed to the `jsonpath-rust` engine.

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};

use jsonpath_rust::parser::model::{JpQuery, Segment, Selector};

mod filter;
use serde_json::Value;

/// A compiled path and the evidence namespace it reads.
#[derive(Debug, Clone)]
pub(crate) struct Path {
    text: String,
    source: String,
    query: Query,
}

#[derive(Debug, Clone)]
enum Query {
    Steps(Vec<Step>),
    Full(JpQuery),
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(i64),
    Wildcard,
    /// A filter in the subset `filter.rs` evaluates; picks children like `Wildcard`.
    Filter(filter::Cond),
}

/// Why a path did not compile; `offset` is a 0-based character offset into the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathError {
    pub(crate) message: String,
    pub(crate) offset: usize,
}

/// One value a path yielded, with what is needed to say where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Hit<'a> {
    pub(crate) value: &'a Value,
    /// The object or array holding `value`, for plain paths.
    pub(crate) parent: Option<&'a Value>,
    picks: [Option<Pick<'a>>; 2],
    /// The normalized location, for paths evaluated by the engine.
    location: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Pick<'a> {
    Index(usize),
    Key(&'a str),
}

/// The path yielded more values than the evaluation bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooMany;

impl Path {
    pub(crate) fn compile(text: &str) -> Result<Path, PathError> {
        let parsed = catch_unwind(|| jsonpath_rust::parser::parse_json_path(text));
        let query = match parsed {
            Ok(Ok(q)) => q,
            Ok(Err(e)) => return Err(syntax_error(&e.to_string())),
            Err(_) => {
                return Err(PathError {
                    message: "the JSONPath parser could not read it".into(),
                    offset: 0,
                });
            }
        };
        let source = match query.segments.first() {
            Some(Segment::Selector(Selector::Name(name))) => name.clone(),
            _ => {
                return Err(PathError {
                    message: "must start with an evidence namespace".into(),
                    offset: 1,
                });
            }
        };
        let steps: Option<Vec<Step>> = query
            .segments
            .iter()
            .map(|s| match s {
                Segment::Selector(Selector::Name(n)) => Some(Step::Key(n.clone())),
                Segment::Selector(Selector::Index(i)) => Some(Step::Index(*i)),
                Segment::Selector(Selector::Wildcard) => Some(Step::Wildcard),
                Segment::Selector(Selector::Filter(f)) => filter::compile(f).map(Step::Filter),
                _ => None,
            })
            .collect();
        Ok(Path {
            text: text.to_string(),
            source,
            query: steps.map_or(Query::Full(query), Query::Steps),
        })
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The first segment after `$.`: the evidence namespace (`request` or a source's name).
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Every value the path yields, in document order, or `TooMany` past `limit`.
    pub(crate) fn select<'a>(&self, doc: &'a Value, limit: usize) -> Result<Vec<Hit<'a>>, TooMany> {
        match &self.query {
            Query::Steps(steps) => select_steps(steps, doc, limit),
            Query::Full(q) => select_full(q, doc, limit),
        }
    }

    /// Where a hit was, e.g. `$.request.images[1].pinned`.
    pub(crate) fn location(&self, hit: &Hit<'_>) -> String {
        if let Some(l) = &hit.location {
            return l.clone();
        }
        let Query::Steps(steps) = &self.query else {
            return self.text.clone();
        };
        let mut out = String::from("$");
        let mut picks = hit.picks.iter();
        for step in steps {
            match step {
                Step::Key(k) => push_key(&mut out, k),
                Step::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
                Step::Wildcard | Step::Filter(_) => match picks.next().copied().flatten() {
                    Some(Pick::Index(i)) => {
                        let _ = write!(out, "[{i}]");
                    }
                    Some(Pick::Key(k)) => push_key(&mut out, k),
                    None => out.push_str("[*]"),
                },
            }
        }
        out
    }

    /// Whether the path can yield more than one value.
    pub(crate) fn is_plural(&self) -> bool {
        match &self.query {
            Query::Steps(steps) => steps
                .iter()
                .any(|s| matches!(s, Step::Wildcard | Step::Filter(_))),
            Query::Full(_) => true,
        }
    }
}

fn push_key(out: &mut String, k: &str) {
    let plain = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        out.push('.');
        out.push_str(k);
    } else {
        let _ = write!(out, "['{}']", k.replace('\\', "\\\\").replace('\'', "\\'"));
    }
}

fn select_steps<'a>(steps: &[Step], doc: &'a Value, limit: usize) -> Result<Vec<Hit<'a>>, TooMany> {
    let mut frontier = vec![Hit {
        value: doc,
        parent: None,
        picks: [None, None],
        location: None,
    }];
    let mut wildcards = 0;
    for step in steps {
        let mut next = Vec::with_capacity(frontier.len());
        for hit in &frontier {
            match step {
                Step::Key(k) => {
                    if let Some(v) = hit.value.as_object().and_then(|o| o.get(k)) {
                        next.push(child(hit, v, None, wildcards));
                    }
                }
                Step::Index(i) => {
                    if let Some(arr) = hit.value.as_array() {
                        let idx = if *i < 0 {
                            arr.len().checked_sub(i.unsigned_abs() as usize)
                        } else {
                            usize::try_from(*i).ok()
                        };
                        if let Some(v) = idx.and_then(|i| arr.get(i)) {
                            next.push(child(hit, v, None, wildcards));
                        }
                    }
                }
                Step::Wildcard => match hit.value {
                    Value::Array(arr) => {
                        for (i, v) in arr.iter().enumerate() {
                            next.push(child(hit, v, Some(Pick::Index(i)), wildcards));
                        }
                    }
                    Value::Object(obj) => {
                        for (k, v) in obj {
                            next.push(child(hit, v, Some(Pick::Key(k)), wildcards));
                        }
                    }
                    _ => {}
                },
                Step::Filter(cond) => match hit.value {
                    Value::Array(arr) => {
                        for (i, v) in arr.iter().enumerate() {
                            if filter::holds(cond, v) {
                                next.push(child(hit, v, Some(Pick::Index(i)), wildcards));
                            }
                        }
                    }
                    Value::Object(obj) => {
                        for (k, v) in obj {
                            if filter::holds(cond, v) {
                                next.push(child(hit, v, Some(Pick::Key(k)), wildcards));
                            }
                        }
                    }
                    _ => {}
                },
            }
            if next.len() > limit {
                return Err(TooMany);
            }
        }
        if matches!(step, Step::Wildcard | Step::Filter(_)) {
            wildcards += 1;
        }
        frontier = next;
    }
    Ok(frontier)
}

fn child<'a>(hit: &Hit<'a>, v: &'a Value, pick: Option<Pick<'a>>, wildcards: usize) -> Hit<'a> {
    let mut picks = hit.picks;
    if let (Some(p), Some(slot)) = (pick, picks.get_mut(wildcards)) {
        *slot = Some(p);
    }
    Hit {
        value: v,
        parent: Some(hit.value),
        picks,
        location: None,
    }
}

fn select_full<'a>(q: &JpQuery, doc: &'a Value, limit: usize) -> Result<Vec<Hit<'a>>, TooMany> {
    // A bug in the engine must not take the gate down; an engine failure yields nothing, which
    // evaluation reports as missing evidence (never as a pass).
    let found = catch_unwind(AssertUnwindSafe(|| {
        jsonpath_rust::query::js_path_process(q, doc)
    }));
    let refs = match found {
        Ok(Ok(refs)) => refs,
        Ok(Err(_)) | Err(_) => Vec::new(),
    };
    if refs.len() > limit {
        return Err(TooMany);
    }
    Ok(refs
        .into_iter()
        .map(|r| Hit {
            value: r.val,
            parent: None,
            picks: [None, None],
            location: Some(normalized_to_dotted(&r.path)),
        })
        .collect())
}

/// `$['a']['b'][0]` → `$.a.b[0]`, the spelling policy authors write.
fn normalized_to_dotted(p: &str) -> String {
    let mut out = String::from("$");
    let mut rest = p.strip_prefix('$').unwrap_or(p);
    while let Some(r) = rest.strip_prefix('[') {
        if let Some(r) = r.strip_prefix('\'') {
            // Keys are escaped with backslashes; find the closing quote that is not escaped.
            let mut key = String::new();
            let mut chars = r.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            key.push(e);
                        }
                    }
                    '\'' => {
                        end = Some(i);
                        break;
                    }
                    c => key.push(c),
                }
            }
            let Some(end) = end else { return p.to_string() };
            push_key(&mut out, &key);
            rest = r
                .get(end + 1..)
                .and_then(|r| r.strip_prefix(']'))
                .unwrap_or("");
        } else if let Some(close) = r.find(']') {
            let _ = write!(out, "[{}]", r.get(..close).unwrap_or(""));
            rest = r.get(close + 1..).unwrap_or("");
        } else {
            return p.to_string();
        }
    }
    out
}

/// Turns the engine's pest error text into a message and an offset.
fn syntax_error(raw: &str) -> PathError {
    // The engine's message is a multi-line pest report: ` --> 1:5`, the source line, a caret,
    // and `= expected …`. Keep the position and the expectation.
    let offset = raw
        .split("--> ")
        .nth(1)
        .and_then(|r| r.split(|c: char| c.is_whitespace()).next())
        .and_then(|lc| lc.split(':').nth(1))
        .and_then(|c| c.parse::<usize>().ok())
        .map_or(0, |c| c.saturating_sub(1));
    let expectation = raw
        .lines()
        .find_map(|l| l.trim().strip_prefix("= "))
        .map(|e| e.replace("jp_query", "`$`").replace("ALPHA", "a name"));
    let message = match expectation {
        Some(e) => format!("{e} at character {}", offset + 1),
        None => raw.lines().next().unwrap_or("syntax error").to_lowercase(),
    };
    PathError { message, offset }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_paths_keep_locations() {
        let p = Path::compile("$.request.images[*].pinned").unwrap();
        assert_eq!(p.source(), "request");
        let doc = json!({"request": {"images": [{"pinned": true}, {"pinned": false}]}});
        let hits = p.select(&doc, 10).unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(p.location(&hits[1]), "$.request.images[1].pinned");
        assert!(p.select(&doc, 1).is_err());
    }

    #[test]
    fn filters_go_through_the_engine() {
        let p = Path::compile("$.trivy.vulns[?@.severity == 'CRITICAL'].id").unwrap();
        let doc = json!({"trivy": {"vulns": [{"severity": "LOW", "id": "a"}, {"severity": "CRITICAL", "id": "b c"}]}});
        let hits = p.select(&doc, 10).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(p.location(&hits[0]), "$.trivy.vulns[1].id");
    }

    #[test]
    fn syntax_errors_have_offsets() {
        let e = Path::compile("$.a.").unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("expected"), "{}", e.message);
        assert!(Path::compile("$[0].a").is_err());
        assert!(Path::compile("$").is_err());
    }
}
