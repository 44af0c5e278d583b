//! What a check asks about: one deploy of one application to one environment.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::ids::truncate;
use super::{
    Application, ChangeNumber, CommitSha, Digest, Environment, IdempotencyKey, JiraKey, Tier,
    ValidationError,
};

/// Most artifacts, labels or change references one check may carry; beyond this a request is
/// almost certainly a bug in the caller, and unbounded lists make evaluation cost unbounded.
pub(crate) const MAX_LIST: usize = 100;

/// One deploy, as the caller describes it. Built only through transports' decoders, which
/// parse every field into its domain type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRequest {
    pub application: Application,
    pub environment: Environment,
    pub images: Vec<ImageRef>,
    pub sources: Vec<SourceRevision>,
    pub caller: Caller,
    pub triggered_by: Option<String>,
    pub change_refs: ChangeRefs,
    pub labels: BTreeMap<String, String>,
    pub idempotency_key: Option<IdempotencyKey>,
}

impl CheckRequest {
    /// The part of the request that decides which rules apply, with the tier the declared
    /// environments give its environment.
    pub fn subject(&self, tier: Tier) -> Subject<'_> {
        Subject {
            application: &self.application,
            environment: &self.environment,
            tier,
            caller: self.caller.kind,
        }
    }

    /// A stable hash of everything the request says, used to refuse an idempotency key reused for
    /// a different deploy. Serialization of these types is deterministic (ordered maps).
    pub fn fingerprint(&self) -> String {
        /// Hashes the JSON as it is written, instead of writing it all out first.
        struct HashWriter(Sha256);
        impl std::io::Write for HashWriter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.update(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut hasher = HashWriter(Sha256::new());
        if serde_json::to_writer(&mut hasher, self).is_err() {
            // What `to_vec(..).unwrap_or_default()` hashed: nothing. Unreachable with these
            // types (string-keyed maps only), and it keeps fingerprints as they were.
            return hex::encode(Sha256::digest([]));
        }
        hex::encode(hasher.0.finalize())
    }

    /// Checks the limits that span fields (list sizes, label shapes).
    pub fn validate_limits(&self) -> Result<(), ValidationError> {
        for (name, len) in [
            ("images", self.images.len()),
            ("sources", self.sources.len()),
            ("labels", self.labels.len()),
            ("change_refs.jira_keys", self.change_refs.jira_keys.len()),
            (
                "change_refs.servicenow_changes",
                self.change_refs.servicenow_changes.len(),
            ),
            ("caller.ids", self.caller.ids.len()),
        ] {
            if len > MAX_LIST {
                return Err(ValidationError::new(
                    name,
                    format!("has {len} entries, more than the limit of {MAX_LIST}"),
                    "split the deploy or drop entries the gate does not need",
                ));
            }
        }
        for (k, v) in self.labels.iter().chain(self.caller.ids.iter()) {
            check_label(k, v)?;
        }
        if let Some(t) = &self.triggered_by {
            check_text("triggered_by", t, 256)?;
        }
        Ok(())
    }

    /// The request as the `request` namespace of the evidence document, with derived facts
    /// (registry, whether each image is pinned by digest) that rules can test directly.
    pub fn evidence_view(&self) -> serde_json::Value {
        let images: Vec<_> = self
            .images
            .iter()
            .map(|i| {
                serde_json::json!({
                    "reference": i.to_string(),
                    "registry": i.registry,
                    "repository": i.repository,
                    "tag": i.tag,
                    "digest": i.digest.as_ref().map(Digest::as_str),
                    "pinned": i.digest.is_some(),
                })
            })
            .collect();
        let sources: Vec<_> = self
            .sources
            .iter()
            .map(|s| {
                serde_json::json!({
                    "repository": s.repository,
                    "commit": s.commit.as_ref().map(CommitSha::as_str),
                    "branch": s.branch,
                    "author": s.author,
                })
            })
            .collect();
        serde_json::json!({
            "application": self.application.as_str(),
            "environment": self.environment.as_str(),
            "images": images,
            "sources": sources,
            "caller": { "kind": self.caller.kind.as_str(), "ids": self.caller.ids },
            "triggered_by": self.triggered_by,
            "change_refs": {
                "jira_keys": self.change_refs.jira_keys.iter().map(JiraKey::as_str).collect::<Vec<_>>(),
                "servicenow_changes": self.change_refs.servicenow_changes.iter().map(ChangeNumber::as_str).collect::<Vec<_>>(),
            },
            "labels": self.labels,
        })
    }
}

fn check_label(k: &str, v: &str) -> Result<(), ValidationError> {
    let key_ok = !k.is_empty()
        && k.len() <= 63
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if !key_ok {
        return Err(ValidationError::new(
            format!("labels.{}", truncate(k, 40)),
            "label keys must be 1 to 63 letters, digits, `.`, `_`, `-` or `/`",
            "rename the label key",
        ));
    }
    check_text(&format!("labels.{k}"), v, 1024)
}

fn check_text(field: &str, v: &str, max: usize) -> Result<(), ValidationError> {
    if v.len() > max {
        return Err(ValidationError::new(
            field,
            format!("is longer than {max} bytes"),
            "shorten the value",
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "contains control characters",
            "remove newlines and other control characters",
        ));
    }
    Ok(())
}

/// Who asks, so rules can apply to some callers only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerKind {
    Spinnaker,
    Argocd,
    Servicenow,
    Api,
    Cli,
    /// Argo Rollouts' `web` metric (`POST /v1/analysis`): its own kind, so rules and the
    /// decision list tell a step analysis from an Argo CD sync.
    Rollouts,
}

impl CallerKind {
    pub const ALL: [CallerKind; 6] = [
        CallerKind::Spinnaker,
        CallerKind::Argocd,
        CallerKind::Servicenow,
        CallerKind::Api,
        CallerKind::Cli,
        CallerKind::Rollouts,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallerKind::Spinnaker => "spinnaker",
            CallerKind::Argocd => "argocd",
            CallerKind::Servicenow => "servicenow",
            CallerKind::Api => "api",
            CallerKind::Cli => "cli",
            CallerKind::Rollouts => "rollouts",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                ValidationError::new(
                    "caller.kind",
                    format!("unknown caller kind `{}`", truncate(s, 40)),
                    "use one of spinnaker, argocd, servicenow, api, cli, rollouts",
                )
            })
    }
}

impl fmt::Display for CallerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller and its own identifiers for this deploy (execution id, sync id, job name …).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    pub kind: CallerKind,
    pub ids: BTreeMap<String, String>,
}

/// Change tickets the deploy claims to belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeRefs {
    pub jira_keys: Vec<JiraKey>,
    pub servicenow_changes: Vec<ChangeNumber>,
}

/// A container image, split into the parts rules test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

impl ImageRef {
    /// Parses `[registry/]repository[:tag][@digest]` with Docker's rules for the default
    /// registry: a first path component without `.` or `:` (and not `localhost`) is part of
    /// the repository on `docker.io`, and single-name repositories live under `library/`.
    pub fn parse(reference: &str) -> Result<Self, ValidationError> {
        let help = "write the image as `registry/repository[:tag]@sha256:<digest>`";
        let bad = |msg: String| ValidationError::new("reference", msg, help);
        if reference.is_empty() {
            return Err(bad("must not be empty".into()));
        }
        if reference.len() > 512
            || reference
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad(format!(
                "`{}` is not an image reference",
                truncate(reference, 80)
            )));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((r, d)) => (
                r,
                Some(Digest::parse(d).map_err(|e| e.within("reference"))?),
            ),
            None => (reference, None),
        };
        // A tag is after the last `:` that follows the last `/` (a registry port is before it).
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                return Err(bad(format!("`{}` is not a valid tag", truncate(t, 80))));
            }
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, repo))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), repo.to_string())
            }
            Some(_) => ("docker.io".to_string(), name.to_string()),
            None => ("docker.io".to_string(), format!("library/{name}")),
        };
        Self::from_parts(registry, repository, tag, digest)
    }

    /// Builds an image from separate fields, checking each.
    pub fn from_parts(
        registry: String,
        repository: String,
        tag: Option<String>,
        digest: Option<Digest>,
    ) -> Result<Self, ValidationError> {
        let reg_ok = !registry.is_empty()
            && registry.len() <= 255
            && registry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        if !reg_ok {
            return Err(ValidationError::new(
                "registry",
                format!("`{}` is not a registry host", truncate(&registry, 80)),
                "use a host name with an optional port, e.g. `ghcr.io` or `registry.local:5000`",
            ));
        }
        let repo_ok = !repository.is_empty()
            && repository.len() <= 255
            && repository.split('/').all(|part| {
                !part.is_empty()
                    && part.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
                    })
            });
        if !repo_ok {
            return Err(ValidationError::new(
                "repository",
                format!("`{}` is not a repository path", truncate(&repository, 80)),
                "use lower-case path components separated by `/`, e.g. `team/service`",
            ));
        }
        Ok(Self {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The source revision a deploy was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRevision {
    pub repository: String,
    pub commit: Option<CommitSha>,
    pub branch: Option<String>,
    /// Who wrote the commit (as the approver identities name people), when the caller knows:
    /// they cannot approve the deploy. Left out when absent, so stored requests keep their
    /// fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

impl SourceRevision {
    pub fn new(
        repository: String,
        commit: Option<CommitSha>,
        branch: Option<String>,
    ) -> Result<Self, ValidationError> {
        // A commit alone still names what is deployed (a hook may know the revision but not
        // the repository); a source with neither says nothing.
        if repository.is_empty() && commit.is_none() {
            return Err(ValidationError::new(
                "repository",
                "must not be empty when no `commit` is given",
                "give the repository URL or `owner/name`, and the deployed commit",
            ));
        }
        check_text("repository", &repository, 512)?;
        if let Some(b) = &branch {
            check_text("branch", b, 256)?;
        }
        Ok(Self {
            repository,
            commit,
            branch,
            author: None,
        })
    }

    /// The same revision with its commit author.
    pub fn with_author(mut self, author: Option<String>) -> Result<Self, ValidationError> {
        if let Some(a) = &author {
            check_text("author", a, 256)?;
        }
        self.author = author;
        Ok(self)
    }
}

/// What decides which rules apply to a request.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    pub application: &'a Application,
    pub environment: &'a Environment,
    pub tier: Tier,
    pub caller: CallerKind,
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn digest() -> String {
        format!("sha256:{}", "b".repeat(64))
    }

    #[test]
    fn image_references_follow_docker_rules() {
        let i = ImageRef::parse(&format!("ghcr.io/acme/api:1.2@{}", digest())).unwrap();
        assert_eq!(
            (i.registry.as_str(), i.repository.as_str()),
            ("ghcr.io", "acme/api")
        );
        assert_eq!(i.tag.as_deref(), Some("1.2"));
        assert!(i.digest.is_some());

        let i = ImageRef::parse("nginx").unwrap();
        assert_eq!(
            (i.registry.as_str(), i.repository.as_str()),
            ("docker.io", "library/nginx")
        );

        let i = ImageRef::parse("localhost:5000/team/app:dev").unwrap();
        assert_eq!(i.registry, "localhost:5000");
        assert_eq!(i.repository, "team/app");
        assert_eq!(i.tag.as_deref(), Some("dev"));
        assert_eq!(i.to_string(), "localhost:5000/team/app:dev");
    }

    #[test]
    fn bad_image_references_say_where() {
        let e = ImageRef::parse("ghcr.io/acme/api@sha256:xyz").unwrap_err();
        assert_eq!(e.field, "reference.digest");
        assert!(ImageRef::parse("ghcr.io/Acme/api").is_err());
        assert!(ImageRef::parse("a b").is_err());
        assert!(ImageRef::parse("ghcr.io/acme/api:").is_err());
    }
}
