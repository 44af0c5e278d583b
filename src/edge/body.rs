//! The one JSON body decoder every route uses. It goes through `serde_path_to_error`, so an
//! error names where the body is wrong: the field of a type error (`images[0]`, `labels.x`),
//! the field a missing or unknown key would be, or — for JSON that does not parse — `body`
//! with the line and column. It never names an empty field.

use serde::de::DeserializeOwned;

use crate::domain::ValidationError;

/// The field named when the body as a whole is wrong (it does not parse, or is not an object).
const BODY: &str = "body";

/// Decodes `bytes` as JSON into `T`. `what` names the body in messages ("the payload", "the
/// callback body"); `help` says how to send a good one.
pub fn decode_json<T: DeserializeOwned>(
    bytes: &[u8],
    what: &str,
    help: &str,
) -> Result<T, ValidationError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let (field, message) = describe(&path, &inner, what);
        // A key that is itself empty (`{"": 1}`) must not make an empty field name either.
        let field = if field.is_empty() {
            BODY.to_string()
        } else {
            field
        };
        ValidationError::new(field, message, help)
    })
}

/// (field, message) for one decoding error at `path` (`.` is the top level).
fn describe(path: &str, e: &serde_json::Error, what: &str) -> (String, String) {
    let at_top = path == ".";
    // serde_json ends its messages with " at line L column C"; the field says where instead,
    // or the message says it once, in words.
    let position = format!(" at line {} column {}", e.line(), e.column());
    let full = e.to_string();
    let reason = full.strip_suffix(&position).unwrap_or(&full);
    if e.is_syntax() || e.is_eof() {
        let inside = if at_top {
            String::new()
        } else {
            format!(" (inside `{path}`)")
        };
        return (
            BODY.to_string(),
            format!(
                "malformed JSON: {what} is not valid JSON at line {}, column {}{inside}: {reason}",
                e.line(),
                e.column()
            ),
        );
    }
    let child = |name: &str| {
        if at_top {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(name) = quoted_after(reason, "missing field `") {
        return (child(name), "is required".to_string());
    }
    if let Some(name) = quoted_after(reason, "unknown field `") {
        // The path already ends at the unknown key.
        let named = path == name || path.ends_with(&format!(".{name}"));
        let field = if named { path.to_string() } else { child(name) };
        return (field, reason.to_string());
    }
    let field = if at_top {
        BODY.to_string()
    } else {
        path.to_string()
    };
    (field, reason.to_string())
}

/// The name in `` prefix`name` … ``, when `text` starts with `prefix`.
fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(prefix)?;
    let (name, _) = rest.split_once('`')?;
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Body {
        request_id: String,
        #[serde(default)]
        count: u32,
        #[serde(default)]
        inner: Inner,
        #[serde(default)]
        labels: BTreeMap<String, String>,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        #[serde(default)]
        items: Vec<u32>,
        #[serde(default)]
        name: String,
    }

    fn err(body: &str) -> ValidationError {
        decode_json::<Body>(body.as_bytes(), "the body", "send a Body").unwrap_err()
    }

    #[test]
    fn a_good_body_decodes() {
        let b: Body = decode_json(
            br#"{"requestId": "r", "count": 2, "inner": {"items": [1], "name": "n"}, "labels": {"a": "b"}}"#,
            "the body",
            "",
        )
        .unwrap();
        assert_eq!((b.request_id.as_str(), b.count), ("r", 2));
        assert_eq!((b.inner.items, b.inner.name.as_str()), (vec![1], "n"));
        assert_eq!(b.labels["a"], "b");
    }

    #[test]
    fn syntax_errors_name_the_body_and_the_place() {
        let e = err("{\"requestId\": \"a\"b\"}");
        assert_eq!(e.field, BODY);
        assert!(e.message.starts_with("malformed JSON"), "{e}");
        assert!(e.message.contains("not valid JSON"), "{e}");
        assert!(e.message.contains("line 1, column 18"), "{e}");
        assert_eq!(e.help, "send a Body");
        let e = err("{\"requestId\": ");
        assert_eq!(e.field, BODY);
        assert!(e.message.contains("EOF"), "{e}");
        let e = err("");
        assert_eq!(e.field, BODY);
        let e = err("{\"requestId\": \"a\",\n \"inner\": {\"name\": x}}");
        assert_eq!(e.field, BODY);
        assert!(e.message.contains("line 2, column"), "{e}");
        assert!(e.message.contains("inside `inner"), "{e}");
    }

    #[test]
    fn type_errors_name_the_field() {
        let e = err(r#"{"requestId": 7}"#);
        assert_eq!(e.field, "requestId");
        assert!(e.message.starts_with("invalid type: integer `7`"), "{e}");
        assert!(!e.message.contains("at line"), "{e}");
        let e = err(r#"{"requestId": "a", "inner": {"items": [1, "two"]}}"#);
        assert_eq!(e.field, "inner.items[1]");
        let e = err(r#"{"requestId": "a", "labels": {"x": 1}}"#);
        assert_eq!(e.field, "labels.x");
        let e = err(r#""requestId""#);
        assert_eq!(e.field, BODY);
    }

    #[test]
    fn missing_and_unknown_keys_name_the_field_they_would_be() {
        let e = err(r#"{"count": 1}"#);
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("requestId", "is required")
        );
        let e = err(r#"{"requestId": "a", "colour": "red"}"#);
        assert_eq!(e.field, "colour");
        assert!(e.message.contains("unknown field `colour`"), "{e}");
        let e = err(r#"{"requestId": "a", "inner": {"nmae": "x"}}"#);
        assert_eq!(e.field, "inner.nmae");
    }

    #[test]
    fn no_error_names_an_empty_field() {
        for body in [
            "",
            " ",
            "\u{0}",
            "null",
            "7",
            "\"x\"",
            "[]",
            "{",
            "{}",
            "{\"\": 1}",
        ] {
            let e = err(body);
            assert!(!e.field.is_empty(), "{body:?}: {e}");
        }
    }
}
