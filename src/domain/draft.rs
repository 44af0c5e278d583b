//! A check request as plain strings, the shape every transport decodes into first. Parsing a
//! draft is the one place that turns caller input into a `CheckRequest`, so HTTP, gRPC and the
//! caller contracts reject the same input with the same message.

use std::collections::BTreeMap;

use super::{
    Application, Caller, CallerKind, ChangeNumber, ChangeRefs, CheckRequest, CommitSha, Digest,
    Environment, IdempotencyKey, ImageRef, JiraKey, SourceRevision, ValidationError,
};

/// An image as callers send it: a full reference, or parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageDraft {
    pub reference: String,
    pub registry: String,
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceDraft {
    pub repository: String,
    pub commit: String,
    pub branch: String,
    /// The commit's author, when known (kept from approving the deploy).
    pub author: String,
}

/// Empty strings mean "not given", as in proto3.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckRequestDraft {
    pub application: String,
    pub environment: String,
    pub images: Vec<ImageDraft>,
    pub sources: Vec<SourceDraft>,
    /// Empty means the transport's default kind.
    pub caller_kind: String,
    pub caller_ids: BTreeMap<String, String>,
    pub triggered_by: String,
    pub jira_keys: Vec<String>,
    pub servicenow_changes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub idempotency_key: String,
}

fn opt(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty()).then_some(t)
}

impl CheckRequestDraft {
    /// Parses every field; the first problem is returned with its field path.
    pub fn parse(self, default_caller: CallerKind) -> Result<CheckRequest, ValidationError> {
        let application = Application::parse(self.application.trim()).map_err(|e| {
            if self.application.trim().is_empty() {
                ValidationError::new(
                    "application",
                    "is required",
                    "name the application being deployed",
                )
            } else {
                e
            }
        })?;
        let environment = Environment::parse(self.environment.trim()).map_err(|e| {
            if self.environment.trim().is_empty() {
                ValidationError::new(
                    "environment",
                    "is required",
                    "name the target environment, e.g. `prod`",
                )
            } else {
                e
            }
        })?;
        let images = self
            .images
            .into_iter()
            .enumerate()
            .map(|(i, d)| parse_image(d).map_err(|e| e.within(&format!("images[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        let sources = self
            .sources
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let commit = opt(&s.commit).map(CommitSha::parse).transpose()?;
                SourceRevision::new(
                    s.repository.trim().to_string(),
                    commit,
                    opt(&s.branch).map(str::to_string),
                )
                .and_then(|r| r.with_author(opt(&s.author).map(str::to_string)))
                .map_err(|e| e.within(&format!("sources[{i}]")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let kind = match opt(&self.caller_kind) {
            Some(k) => CallerKind::parse(k)?,
            None => default_caller,
        };
        let jira_keys = self
            .jira_keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                JiraKey::parse(k.trim())
                    .map_err(|e| e.within(&format!("change_refs.jira_keys[{i}]")).renamed())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let servicenow_changes = self
            .servicenow_changes
            .iter()
            .enumerate()
            .map(|(i, k)| {
                ChangeNumber::parse(k.trim()).map_err(|e| {
                    e.within(&format!("change_refs.servicenow_changes[{i}]"))
                        .renamed()
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let idempotency_key = opt(&self.idempotency_key)
            .map(IdempotencyKey::parse)
            .transpose()?;
        let request = CheckRequest {
            application,
            environment,
            images,
            sources,
            caller: Caller {
                kind,
                ids: self.caller_ids,
            },
            triggered_by: opt(&self.triggered_by).map(str::to_string),
            change_refs: ChangeRefs {
                jira_keys,
                servicenow_changes,
            },
            labels: self.labels,
            idempotency_key,
        };
        request.validate_limits()?;
        Ok(request)
    }
}

impl ValidationError {
    /// `change_refs.jira_keys[0].jira_keys` → `change_refs.jira_keys[0]`: the inner parser names
    /// the list, the outer one already did.
    fn renamed(mut self) -> Self {
        if let Some((head, _)) = self.field.rsplit_once('.') {
            if head.ends_with(']') {
                self.field = head.to_string();
            }
        }
        self
    }
}

fn parse_image(d: ImageDraft) -> Result<ImageRef, ValidationError> {
    if let Some(reference) = opt(&d.reference) {
        let mut image = ImageRef::parse(reference)?;
        // A separately given digest pins a tag-only reference; a conflicting one is an error.
        if let Some(digest) = opt(&d.digest) {
            let digest = Digest::parse(digest)?;
            match &image.digest {
                Some(existing) if *existing != digest => {
                    return Err(ValidationError::new(
                        "digest",
                        "differs from the digest inside `reference`",
                        "send one digest, or make both the same",
                    ));
                }
                _ => image.digest = Some(digest),
            }
        }
        return Ok(image);
    }
    let repository = opt(&d.repository).ok_or_else(|| {
        ValidationError::new(
            "reference",
            "an image needs `reference` or `repository`",
            "send `reference: registry/repository[:tag]@sha256:<digest>`",
        )
    })?;
    let digest = opt(&d.digest).map(Digest::parse).transpose()?;
    ImageRef::from_parts(
        opt(&d.registry).unwrap_or("docker.io").to_string(),
        repository.to_string(),
        opt(&d.tag).map(str::to_string),
        digest,
    )
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn draft() -> CheckRequestDraft {
        CheckRequestDraft {
            application: "payments".into(),
            environment: "prod".into(),
            images: vec![ImageDraft {
                reference: format!("ghcr.io/acme/payments:1.4@sha256:{}", "c".repeat(64)),
                ..Default::default()
            }],
            jira_keys: vec!["OPS-1".into()],
            ..Default::default()
        }
    }

    #[test]
    fn a_good_draft_parses() {
        let r = draft().parse(CallerKind::Api).unwrap();
        assert_eq!(r.caller.kind, CallerKind::Api);
        assert_eq!(r.images[0].registry, "ghcr.io");
    }

    #[test]
    fn errors_carry_field_paths() {
        let mut d = draft();
        d.images.push(ImageDraft {
            reference: "ghcr.io/acme/x@sha256:nothex".into(),
            ..Default::default()
        });
        let e = d.parse(CallerKind::Api).unwrap_err();
        assert_eq!(e.field, "images[1].reference.digest");

        let mut d = draft();
        d.jira_keys = vec!["OPS-1".into(), "nope".into()];
        assert_eq!(
            d.parse(CallerKind::Api).unwrap_err().field,
            "change_refs.jira_keys[1]"
        );

        let mut d = draft();
        d.environment = String::new();
        let e = d.parse(CallerKind::Api).unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("environment", "is required")
        );
    }

    #[test]
    fn conflicting_digests_are_refused() {
        let mut d = draft();
        d.images[0].digest = format!("sha256:{}", "d".repeat(64));
        assert_eq!(
            d.parse(CallerKind::Api).unwrap_err().field,
            "images[0].digest"
        );
    }
}
