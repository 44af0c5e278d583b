//! The JSON body of `POST /v1/checks`, decoded into a `CheckRequestDraft` by the edge's one JSON
//! decoder (`edge::decode_json`), so a type error names its field.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::domain::{CheckRequestDraft, ImageDraft, SourceDraft, ValidationError};
use crate::edge::decode_json;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckBody {
    #[serde(default)]
    application: String,
    #[serde(default)]
    environment: String,
    /// Each entry is a reference string or an object with parts.
    #[serde(default)]
    images: Vec<ImageBody>,
    #[serde(default)]
    sources: Vec<SourceBody>,
    #[serde(default)]
    caller: CallerBody,
    #[serde(default)]
    triggered_by: String,
    #[serde(default)]
    change_refs: ChangeRefsBody,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    idempotency_key: String,
}

#[derive(Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "an image reference string or an object with `reference` or `repository`"
)]
enum ImageBody {
    Reference(String),
    Parts(ImageParts),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImageParts {
    #[serde(default)]
    reference: String,
    #[serde(default)]
    registry: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    digest: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceBody {
    #[serde(default)]
    repository: String,
    #[serde(default)]
    commit: String,
    #[serde(default)]
    branch: String,
    #[serde(default)]
    author: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallerBody {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    ids: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeRefsBody {
    #[serde(default)]
    jira_keys: Vec<String>,
    #[serde(default)]
    servicenow_changes: Vec<String>,
}

/// Decodes a JSON body into a draft, naming the field of any type error.
pub(crate) fn decode(bytes: &[u8]) -> Result<CheckRequestDraft, ValidationError> {
    let body: CheckBody = decode_json(
        bytes,
        "the check request",
        "send a JSON object as documented at /openapi.json (schema `CheckRequest`)",
    )?;
    Ok(body.into_draft())
}

impl CheckBody {
    fn into_draft(self) -> CheckRequestDraft {
        CheckRequestDraft {
            application: self.application,
            environment: self.environment,
            images: self
                .images
                .into_iter()
                .map(|i| match i {
                    ImageBody::Reference(reference) => ImageDraft {
                        reference,
                        ..Default::default()
                    },
                    ImageBody::Parts(p) => ImageDraft {
                        reference: p.reference,
                        registry: p.registry,
                        repository: p.repository,
                        tag: p.tag,
                        digest: p.digest,
                    },
                })
                .collect(),
            sources: self
                .sources
                .into_iter()
                .map(|s| SourceDraft {
                    repository: s.repository,
                    commit: s.commit,
                    branch: s.branch,
                    author: s.author,
                })
                .collect(),
            caller_kind: self.caller.kind,
            caller_ids: self.caller.ids,
            triggered_by: self.triggered_by,
            jira_keys: self.change_refs.jira_keys,
            servicenow_changes: self.change_refs.servicenow_changes,
            labels: self.labels,
            idempotency_key: self.idempotency_key,
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::CallerKind;

    #[test]
    fn type_errors_name_the_field() {
        let e = decode(br#"{"application":"a","environment":"prod","images":[{"tag": 3}]}"#)
            .unwrap_err();
        assert_eq!(e.field, "images[0]");
        let e = decode(br#"{"application":"a","labels":{"x":1}}"#).unwrap_err();
        assert_eq!(e.field, "labels.x");
        let e = decode(br#"{"application":"a","colour":"red"}"#).unwrap_err();
        assert!(e.message.contains("colour"), "{e}");
    }

    #[test]
    fn malformed_json_says_so() {
        let e = decode(b"{\"application\": ").unwrap_err();
        assert!(e.message.starts_with("malformed JSON"), "{e}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(d) = decode(&bytes) {
                let _ = d.parse(CallerKind::Api);
            }
        }

        #[test]
        fn arbitrary_field_values_never_panic(
            app in ".{0,40}", env in ".{0,20}", image in ".{0,120}", key in ".{0,40}", jira in ".{0,20}"
        ) {
            let body = serde_json::json!({
                "application": app, "environment": env, "images": [image],
                "idempotency_key": key, "change_refs": {"jira_keys": [jira]}
            });
            let d = decode(body.to_string().as_bytes()).unwrap();
            if let Ok(r) = d.parse(CallerKind::Api) {
                prop_assert_eq!(r.application.as_str(), app.trim());
            }
        }
    }
}
