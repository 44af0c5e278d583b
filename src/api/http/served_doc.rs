//! The OpenAPI document as this service serves it: the embedded document with the request
//! bodies' `environment` narrowed to the declared environments, so a client (or a schema-based
//! fuzzer) reading the document learns which environments the gate answers for instead of
//! finding out through a 400.

use serde_json::{Value, json};

use crate::domain::Environments;

/// Name characters after the first (see `Environment::parse`).
const NAME_CHAR: &str = "[a-z0-9._-]";
/// The first character of a name.
const FIRST_CHAR: &str = "[a-z0-9]";

/// `document` (the embedded OpenAPI text) with every request body's `environment` property
/// limited to the declared environments. A document that does not parse is served as it is.
pub(crate) fn document(document: &str, envs: &Environments) -> String {
    let Ok(mut doc) = serde_json::from_str::<Value>(document) else {
        return document.to_string();
    };
    let declared = envs.names().join(", ");
    let constraint = json!({
        "type": "string",
        "maxLength": 63,
        "pattern": pattern(envs),
        "description": format!(
            "A declared environment (`gate.environments`): {declared}. Any other is refused with 400 `request.invalid`."
        ),
    });
    let mut refs = Vec::new();
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for op in paths.values_mut().filter_map(Value::as_object_mut) {
            for method in op.values_mut() {
                let Some(content) = method
                    .pointer_mut("/requestBody/content")
                    .and_then(Value::as_object_mut)
                else {
                    continue;
                };
                for media in content.values_mut() {
                    let Some(schema) = media.get_mut("schema") else {
                        continue;
                    };
                    match schema.get("$ref").and_then(Value::as_str) {
                        Some(r) => refs.push(r.to_string()),
                        None => narrow(schema, &constraint),
                    }
                }
            }
        }
    }
    for r in refs {
        // Local references only: `#/components/schemas/CheckRequest`.
        if let Some(schema) = r.strip_prefix('#').and_then(|p| doc.pointer_mut(p)) {
            narrow(schema, &constraint);
        }
    }
    serde_json::to_string_pretty(&doc).unwrap_or_else(|_| document.to_string())
}

fn narrow(schema: &mut Value, constraint: &Value) {
    if let Some(env) = schema.pointer_mut("/properties/environment") {
        if env.get("type").and_then(Value::as_str) == Some("string") {
            *env = constraint.clone();
        }
    }
}

/// One regular expression matching exactly the valid environment names the declarations cover.
fn pattern(envs: &Environments) -> String {
    let alternatives: Vec<String> = envs.names().iter().map(|n| glob_to_regex(n)).collect();
    format!("^(?:{})$", alternatives.join("|"))
}

/// A glob over environment names as a regex over valid names: `*` and `?` stand for name
/// characters, and in the first position for what a name may start with.
fn glob_to_regex(glob: &str) -> String {
    let mut out = String::new();
    let mut in_braces = false;
    let mut in_class = false;
    for (i, c) in glob.chars().enumerate() {
        let first = i == 0;
        match c {
            _ if in_class => {
                out.push(c);
                in_class = c != ']';
            }
            '[' => {
                in_class = true;
                out.push(c);
            }
            '*' if first => out.push_str(&format!("(?:{FIRST_CHAR}{NAME_CHAR}*)")),
            '*' => out.push_str(&format!("{NAME_CHAR}*")),
            '?' if first => out.push_str(FIRST_CHAR),
            '?' => out.push_str(NAME_CHAR),
            '{' => {
                in_braces = true;
                out.push_str("(?:");
            }
            '}' if in_braces => {
                in_braces = false;
                out.push(')');
            }
            ',' if in_braces => out.push('|'),
            _ => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    out
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_matches_exactly_the_declared_environments() {
        let re = regex::Regex::new(&pattern(&Environments::default())).unwrap();
        for ok in [
            "prod",
            "production",
            "prod-eu",
            "eu-prod",
            "eu-prod-1",
            "staging-2",
            "dev",
        ] {
            assert!(re.is_match(ok), "{ok}");
        }
        for bad in ["prd", "live", "production-eu", "prod_eu", "-prod", "prodx"] {
            assert!(!re.is_match(bad), "{bad}");
        }
        assert_eq!(glob_to_regex("a.{b,c}?"), "a\\.(?:b|c)[a-z0-9._-]");
    }

    #[test]
    fn request_bodies_are_narrowed_and_responses_are_not() {
        let doc = json!({
            "paths": {
                "/a": {"post": {"requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/A"}}}}}},
                "/b": {"post": {"requestBody": {"content": {"application/json": {"schema": {"properties": {"environment": {"type": "string"}}}}}}}}
            },
            "components": {"schemas": {
                "A": {"properties": {"environment": {"type": "string"}}},
                "View": {"properties": {"environment": {"type": "string"}}}
            }}
        });
        let served: Value =
            serde_json::from_str(&document(&doc.to_string(), &Environments::default())).unwrap();
        let a = &served["components"]["schemas"]["A"]["properties"]["environment"];
        assert!(
            a["pattern"]
                .as_str()
                .unwrap()
                .starts_with("^(?:prod|production|")
        );
        assert_eq!(a["maxLength"], 63);
        let b = served
            .pointer("/paths/~1b/post/requestBody/content/application~1json/schema/properties/environment")
            .unwrap();
        assert_eq!(b, a);
        assert_eq!(
            served["components"]["schemas"]["View"]["properties"]["environment"],
            json!({"type": "string"})
        );
    }
}
