//! Placeholders (`{application}`, `{image.digest}`, `{labels.team}` …) that put values of the
//! check request into adapter URLs and bodies. Parsed once at build time, so a typo in a
//! placeholder stops start-up instead of failing every check.
//!
//! Grammar: `{application}`, `{environment}`, `{image.F}` (first image) or `{images[N].F}` with
//! F in `registry`, `repository`, `tag`, `digest`, `reference`; `{source.F}` (first source) or
//! `{sources[N].F}` with F in `repository`, `commit`, `branch`; `{labels.KEY}`. `{{` and `}}` are
//! literal braces.

use std::fmt;

use crate::domain::{CheckRequest, CommitSha, Digest};

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(String),
    Value(Placeholder),
}

/// One value of the request a template can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placeholder {
    Application,
    Environment,
    Image { index: usize, field: ImageField },
    Source { index: usize, field: SourceField },
    Label(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageField {
    Registry,
    Repository,
    Tag,
    Digest,
    Reference,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceField {
    Repository,
    Commit,
    Branch,
}

/// How values are written into the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Everything but RFC 3986 unreserved characters is percent-encoded, `/` included, so a
    /// value can never add a path segment or a query parameter.
    Url,
    /// As is (JSON bodies: `serde_json` escapes when the body is written).
    Raw,
}

/// A template that does not parse. `Display` is one sentence naming the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(String);

/// The request lacks a value a placeholder needs: the tool cannot be asked, which the gate
/// reports as "not found" rather than asking the tool about an empty string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request has no {what} for `{{{placeholder}}}`")]
pub struct MissingValue {
    pub what: String,
    pub placeholder: String,
}

impl Template {
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|(_, c)| *c) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|(_, c)| *c) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let rest = &text[i + 1..];
                    let Some(end) = rest.find('}') else {
                        return Err(TemplateError(format!(
                            "`{{` at byte {i} is not closed; write `{{{{` for a literal brace"
                        )));
                    };
                    let inner = &rest[..end];
                    for _ in 0..=inner.chars().count() {
                        chars.next();
                    }
                    if !literal.is_empty() {
                        parts.push(Part::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Value(Placeholder::parse(inner)?));
                }
                '}' => {
                    return Err(TemplateError(format!(
                        "`}}` at byte {i} closes nothing; write `}}}}` for a literal brace"
                    )));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Self { parts })
    }

    /// Whether the template has no placeholder.
    pub fn is_literal(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, Part::Literal(_)))
    }

    /// The text for `request`.
    pub fn render(
        &self,
        request: &CheckRequest,
        encoding: Encoding,
    ) -> Result<String, MissingValue> {
        self.render_with(encoding, |p| p.value(request))
    }

    /// The text with every placeholder replaced by `value(placeholder)`; used at build time
    /// with sample values to check that the result is a valid URL.
    pub fn render_with(
        &self,
        encoding: Encoding,
        mut value: impl FnMut(&Placeholder) -> Result<String, MissingValue>,
    ) -> Result<String, MissingValue> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(s) => out.push_str(s),
                Part::Value(p) => {
                    let v = value(p)?;
                    match encoding {
                        Encoding::Url => percent_encode(&v, &mut out),
                        Encoding::Raw => out.push_str(&v),
                    }
                }
            }
        }
        Ok(out)
    }
}

impl Placeholder {
    fn parse(inner: &str) -> Result<Self, TemplateError> {
        let unknown = || {
            TemplateError(format!(
                "unknown placeholder `{{{inner}}}`; use application, environment, image.<field>, \
                 images[N].<field>, source.<field>, sources[N].<field> or labels.<key>"
            ))
        };
        match inner {
            "application" => return Ok(Placeholder::Application),
            "environment" => return Ok(Placeholder::Environment),
            _ => {}
        }
        if let Some(key) = inner.strip_prefix("labels.") {
            let ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
            return if ok {
                Ok(Placeholder::Label(key.to_string()))
            } else {
                Err(unknown())
            };
        }
        let (head, field) = inner.split_once('.').ok_or_else(unknown)?;
        let (list, index) = match head.split_once('[') {
            Some((list, idx)) => {
                let n = idx
                    .strip_suffix(']')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(unknown)?;
                (list, Some(n))
            }
            None => (head, None),
        };
        match (list, index) {
            ("image", None) | ("images", Some(_)) => {
                let field = match field {
                    "registry" => ImageField::Registry,
                    "repository" => ImageField::Repository,
                    "tag" => ImageField::Tag,
                    "digest" => ImageField::Digest,
                    "reference" => ImageField::Reference,
                    _ => return Err(unknown()),
                };
                Ok(Placeholder::Image {
                    index: index.unwrap_or(0),
                    field,
                })
            }
            ("source", None) | ("sources", Some(_)) => {
                let field = match field {
                    "repository" => SourceField::Repository,
                    "commit" => SourceField::Commit,
                    "branch" => SourceField::Branch,
                    _ => return Err(unknown()),
                };
                Ok(Placeholder::Source {
                    index: index.unwrap_or(0),
                    field,
                })
            }
            _ => Err(unknown()),
        }
    }

    /// The request's value for this placeholder.
    pub fn value(&self, request: &CheckRequest) -> Result<String, MissingValue> {
        let missing = |what: String| MissingValue {
            what,
            placeholder: self.to_string(),
        };
        let nth = |index: usize, len: usize, noun: &str| {
            if index == 0 {
                noun.to_string()
            } else {
                format!("{noun} at index {index} (it has {len})")
            }
        };
        match self {
            Placeholder::Application => Ok(request.application.as_str().to_string()),
            Placeholder::Environment => Ok(request.environment.as_str().to_string()),
            Placeholder::Label(key) => request
                .labels
                .get(key)
                .cloned()
                .ok_or_else(|| missing(format!("label `{key}`"))),
            Placeholder::Image { index, field } => {
                let image = request
                    .images
                    .get(*index)
                    .ok_or_else(|| missing(nth(*index, request.images.len(), "image")))?;
                match field {
                    ImageField::Registry => Ok(image.registry.clone()),
                    ImageField::Repository => Ok(image.repository.clone()),
                    ImageField::Reference => Ok(image.to_string()),
                    ImageField::Tag => image.tag.clone().ok_or_else(|| missing("image tag".into())),
                    ImageField::Digest => image
                        .digest
                        .as_ref()
                        .map(|d| Digest::as_str(d).to_string())
                        .ok_or_else(|| missing("image digest".into())),
                }
            }
            Placeholder::Source { index, field } => {
                let source = request
                    .sources
                    .get(*index)
                    .ok_or_else(|| missing(nth(*index, request.sources.len(), "source")))?;
                match field {
                    SourceField::Repository => Ok(source.repository.clone()),
                    SourceField::Commit => source
                        .commit
                        .as_ref()
                        .map(|c| CommitSha::as_str(c).to_string())
                        .ok_or_else(|| missing("source commit".into())),
                    SourceField::Branch => source
                        .branch
                        .clone()
                        .ok_or_else(|| missing("source branch".into())),
                }
            }
        }
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placeholder::Application => f.write_str("application"),
            Placeholder::Environment => f.write_str("environment"),
            Placeholder::Label(k) => write!(f, "labels.{k}"),
            Placeholder::Image { index, field } => {
                let field = match field {
                    ImageField::Registry => "registry",
                    ImageField::Repository => "repository",
                    ImageField::Tag => "tag",
                    ImageField::Digest => "digest",
                    ImageField::Reference => "reference",
                };
                if *index == 0 {
                    write!(f, "image.{field}")
                } else {
                    write!(f, "images[{index}].{field}")
                }
            }
            Placeholder::Source { index, field } => {
                let field = match field {
                    SourceField::Repository => "repository",
                    SourceField::Commit => "commit",
                    SourceField::Branch => "branch",
                };
                if *index == 0 {
                    write!(f, "source.{field}")
                } else {
                    write!(f, "sources[{index}].{field}")
                }
            }
        }
    }
}

fn percent_encode(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// A JSON body whose strings may hold placeholders; values are inserted raw and escaped by JSON.
#[derive(Debug, Clone)]
pub enum JsonTemplate {
    Other(serde_json::Value),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

impl JsonTemplate {
    /// Parses every string of `value`; errors name the JSON path of the bad string.
    pub fn parse(value: &serde_json::Value) -> Result<Self, TemplateError> {
        Self::parse_at(value, "body")
    }

    fn parse_at(value: &serde_json::Value, at: &str) -> Result<Self, TemplateError> {
        let within = |e: TemplateError| TemplateError(format!("`{at}`: {}", e.0));
        Ok(match value {
            serde_json::Value::String(s) => {
                JsonTemplate::String(Template::parse(s).map_err(within)?)
            }
            serde_json::Value::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Self::parse_at(v, &format!("{at}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ),
            serde_json::Value::Object(map) => JsonTemplate::Object(
                map.iter()
                    .map(|(k, v)| Ok((k.clone(), Self::parse_at(v, &format!("{at}.{k}"))?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => JsonTemplate::Other(other.clone()),
        })
    }

    pub fn render(&self, request: &CheckRequest) -> Result<serde_json::Value, MissingValue> {
        Ok(match self {
            JsonTemplate::Other(v) => v.clone(),
            JsonTemplate::String(t) => serde_json::Value::String(t.render(request, Encoding::Raw)?),
            JsonTemplate::Array(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|t| t.render(request))
                    .collect::<Result<_, _>>()?,
            ),
            JsonTemplate::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, t)| Ok((k.clone(), t.render(request)?)))
                    .collect::<Result<_, MissingValue>>()?,
            ),
        })
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::domain::{
        Application, Caller, CallerKind, ChangeRefs, Environment, ImageRef, SourceRevision,
    };

    /// A request with one pinned image, one source with a commit and a `team` label.
    pub(crate) fn request() -> CheckRequest {
        let digest = format!("sha256:{}", "a".repeat(64));
        CheckRequest {
            application: Application::parse("payments-api").unwrap(),
            environment: Environment::parse("prod").unwrap(),
            images: vec![ImageRef::parse(&format!("ghcr.io/acme/payments:1.2@{digest}")).unwrap()],
            sources: vec![
                SourceRevision::new(
                    "acme/payments".into(),
                    Some(CommitSha::parse("abcdef1").unwrap()),
                    Some("main".into()),
                )
                .unwrap(),
            ],
            caller: Caller {
                kind: CallerKind::Api,
                ids: BTreeMap::new(),
            },
            triggered_by: None,
            change_refs: ChangeRefs::default(),
            labels: BTreeMap::from([("team".to_string(), "pay & go".to_string())]),
            idempotency_key: None,
        }
    }

    #[test]
    fn renders_and_encodes_request_values() {
        let t = Template::parse(
            "https://t/{application}/{image.repository}/{image.digest}?e={environment}&team={labels.team}&c={source.commit}&lit={{x}}",
        )
        .unwrap();
        let url = t.render(&request(), Encoding::Url).unwrap();
        assert_eq!(
            url,
            format!(
                "https://t/payments-api/acme%2Fpayments/sha256%3A{}?e=prod&team=pay%20%26%20go&c=abcdef1&lit={{x}}",
                "a".repeat(64)
            )
        );
    }

    #[test]
    fn unknown_placeholders_fail_to_parse() {
        for bad in [
            "{app}",
            "{image.size}",
            "{images[x].digest}",
            "{labels.}",
            "{image",
            "a}b",
            "{images.digest}",
        ] {
            assert!(Template::parse(bad).is_err(), "{bad} parsed");
        }
        let e = Template::parse("https://t/{aplication}").unwrap_err();
        assert!(e.to_string().contains("`{aplication}`"), "{e}");
    }

    #[test]
    fn absent_values_say_what_is_missing() {
        let mut r = request();
        r.images[0].digest = None;
        let t = Template::parse("{image.digest}").unwrap();
        assert_eq!(
            t.render(&r, Encoding::Url).unwrap_err().to_string(),
            "request has no image digest for `{image.digest}`"
        );
        let t = Template::parse("{images[3].tag}").unwrap();
        assert_eq!(
            t.render(&r, Encoding::Url).unwrap_err().to_string(),
            "request has no image at index 3 (it has 1) for `{images[3].tag}`"
        );
        let t = Template::parse("{labels.owner}").unwrap();
        assert_eq!(
            t.render(&r, Encoding::Url).unwrap_err().to_string(),
            "request has no label `owner` for `{labels.owner}`"
        );
    }

    #[test]
    fn json_bodies_insert_raw_values() {
        let body = serde_json::json!({"q": "team = \"{labels.team}\"", "n": [1, "{environment}"]});
        let t = JsonTemplate::parse(&body).unwrap();
        assert_eq!(
            t.render(&request()).unwrap(),
            serde_json::json!({"q": "team = \"pay & go\"", "n": [1, "prod"]})
        );
        let e = JsonTemplate::parse(&serde_json::json!({"a": ["{nope}"]})).unwrap_err();
        assert!(e.to_string().starts_with("`body.a[0]`"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn parsing_any_text_returns(text in "\\PC{0,40}") {
            let _ = Template::parse(&text);
        }

        #[test]
        fn values_cannot_change_the_url_structure(value in "\\PC{0,30}") {
            let mut r = request();
            r.labels.insert("v".into(), value.clone());
            let t = Template::parse("https://h/p/{labels.v}?q={labels.v}").unwrap();
            let url = reqwest::Url::parse(&t.render(&r, Encoding::Url).unwrap()).unwrap();
            proptest::prop_assert_eq!(url.host_str(), Some("h"));
            proptest::prop_assert_eq!(url.path_segments().unwrap().count(), 2);
            proptest::prop_assert!(url.fragment().is_none());
            let pairs: Vec<_> = url.query_pairs().collect();
            proptest::prop_assert_eq!(pairs.len(), 1);
            proptest::prop_assert_eq!(pairs[0].1.as_ref(), value.as_str());
        }
    }
}
