//! Evidence sources behind one trait. Each adapter turns one tool's API into facts under its own
//! namespace of the evidence document, and classifies every failure into an `AdapterError`.
//!
//! The contract every adapter MUST honour:
//! - finish (successfully or not) before the deadline it is given; never retry past it;
//! - classify every failure (timeout, refused, 5xx, 429, 401/403, 404, malformed JSON,
//!   pagination ending early) into an `AdapterError` variant;
//! - never put a credential in a fact, an error message, a URL it reports or a log line;
//! - follow pagination to the end or fail.
//!
//! The fan-out (concurrency, deadlines, turning an error into "evidence unavailable") lives once,
//! in `gate`, not here. What every HTTP adapter shares (deadline-bounded retries, `Retry-After`,
//! size cap, classification, redaction) lives once, in `http_client` and `redact`.
//!
//! Adding a tool: a new file under `adapters/`, a new `AdapterConfig` variant, a new arm in
//! `build` (the compiler points at these three), and one `conformance!` line plus its case in
//! tests/it/adapters.rs, the one conformance suite every adapter passes (the report-ingestion
//! adapters through its `ingestion!` list).

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::domain::{CheckRequest, CommitSha, Digest, FailureReason};

pub mod aqua;
pub mod cache;
pub mod called;
pub mod credentials;
mod deployed_source;
pub mod github;
pub mod gitlab;
pub mod http_client;
pub mod http_jsonpath;
pub mod instance;
pub mod jira;
pub mod redact;
pub mod registry;
pub mod sarif;
pub mod sbom;
pub mod servicenow;
pub mod sonarqube;
pub mod template;
pub mod trivy;
pub mod vex;

pub use aqua::{AquaAdapter, AquaConfig};
pub use github::{GitHubAdapter, GitHubConfig};
pub use gitlab::{GitLabAdapter, GitLabConfig};
pub use http_jsonpath::{HttpAdapterConfig, HttpJsonPathAdapter};
pub use jira::{JiraAdapter, JiraConfig};
pub use registry::{RegistryAdapter, RegistryConfig};
pub use sarif::{SarifAdapter, SarifConfig};
pub use sbom::{SbomAdapter, SbomConfig};
pub use servicenow::{ServiceNowAdapter, ServiceNowConfig};
pub use sonarqube::{SonarQubeAdapter, SonarQubeConfig};
pub use trivy::{IngestError, TrivyAdapter, TrivyConfig};

/// Who submits evidence, and the image repositories they may deploy — and so may vouch for.
/// The gate builds it from the authenticated principal's scope; an adapter that accepts
/// reports refuses one that binds its digest to no repository `may_deploy` admits.
#[derive(Clone)]
pub struct Submission {
    /// The authenticated principal (token name), stored with the report.
    pub submitted_by: String,
    pub submitted_at: chrono::DateTime<chrono::Utc>,
    pub may_deploy: std::sync::Arc<dyn Fn(&crate::domain::ImageRef) -> bool + Send + Sync>,
    /// Whether the token's image scope is not narrowed: only then is evidence whose subject
    /// names no image repository accepted.
    pub any_image: bool,
}

impl std::fmt::Debug for Submission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Submission")
            .field("submitted_by", &self.submitted_by)
            .field("submitted_at", &self.submitted_at)
            .field("any_image", &self.any_image)
            .finish_non_exhaustive()
    }
}

/// Facts one adapter gathered for one check.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The adapter's namespace of the evidence document.
    pub document: serde_json::Value,
    /// The URL called, without credentials.
    pub url: Option<String>,
    /// The first bytes of the response, for the audit trail.
    pub excerpt: Option<String>,
}

#[async_trait]
pub trait Adapter: Send + Sync + std::fmt::Debug {
    /// The configured instance name; also its evidence namespace.
    fn name(&self) -> &str;
    /// The adapter kind, as in configuration (`http`, `sonarqube` …).
    fn kind(&self) -> &'static str;
    /// Gathers facts for one deploy. Must return before `deadline`.
    async fn collect(
        &self,
        request: &CheckRequest,
        deadline: Instant,
    ) -> Result<Facts, AdapterError>;

    /// Accepts evidence a pipeline submits ahead of the deploy (a scanner report for an image
    /// digest) and returns where it was stored. Sources that only read from a tool keep this
    /// default: `None`, they accept nothing. Blocking I/O is allowed: the gate calls it off the
    /// async runtime.
    fn ingest(
        &self,
        digest: &Digest,
        report: &[u8],
        submission: &Submission,
    ) -> Option<Result<String, IngestError>> {
        let _ = (digest, report, submission);
        None
    }

    /// Like [`Adapter::ingest`], for evidence about a commit (a SARIF log of a code scan).
    fn ingest_commit(
        &self,
        commit: &CommitSha,
        report: &[u8],
        submission: &Submission,
    ) -> Option<Result<String, IngestError>> {
        let _ = (commit, report, submission);
        None
    }
}

/// Why an adapter could not produce facts. Messages never contain credentials; each is one
/// lowercase sentence.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AdapterError {
    #[error("no answer within {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    #[error("could not connect: {detail}")]
    Unreachable { detail: String },
    /// The TLS handshake failed for a named reason (`untrusted issuer`, `expired certificate`,
    /// `hostname mismatch` …); see `tls::TlsProblem`.
    #[error("tls handshake failed ({problem}): {help}")]
    Tls {
        problem: &'static str,
        help: &'static str,
    },
    #[error("the tool refused the credentials (HTTP {status})")]
    Auth { status: u16 },
    #[error("rate limited (HTTP 429){}", retry_after_s.map(|s| format!(", retry after {s} s")).unwrap_or_default())]
    RateLimited { retry_after_s: Option<u64> },
    #[error("unusable response: {detail}")]
    BadResponse { detail: String },
    #[error("not found: {detail}")]
    NotFound { detail: String },
}

impl AdapterError {
    pub fn reason(&self) -> FailureReason {
        match self {
            AdapterError::Timeout { .. } => FailureReason::Timeout,
            AdapterError::Unreachable { .. } | AdapterError::Tls { .. } => {
                FailureReason::Unreachable
            }
            AdapterError::Auth { .. } => FailureReason::Auth,
            AdapterError::RateLimited { .. } => FailureReason::RateLimited,
            AdapterError::BadResponse { .. } => FailureReason::BadResponse,
            AdapterError::NotFound { .. } => FailureReason::NotFound,
        }
    }

    /// Stable code for audit records and metric labels, e.g. `adapter.timeout`.
    pub fn reason_code(&self) -> &'static str {
        match self {
            AdapterError::Timeout { .. } => "adapter.timeout",
            AdapterError::Unreachable { .. } => "adapter.unreachable",
            AdapterError::Tls { .. } => "adapter.tls",
            AdapterError::Auth { .. } => "adapter.auth",
            AdapterError::RateLimited { .. } => "adapter.rate_limited",
            AdapterError::BadResponse { .. } => "adapter.bad_response",
            AdapterError::NotFound { .. } => "adapter.not_found",
        }
    }
}

/// One configured adapter instance. The set of kinds is closed: a new tool is a new variant.
///
/// Unknown keys are rejected by each variant's payload struct (`deny_unknown_fields` there):
/// serde takes the `kind` tag out before handing the other keys to the newtype variant, so the
/// struct sees exactly the user's keys. The attribute on this enum would not reach them, and
/// `#[serde(flatten)]` in a payload would silently disable the check; a test in
/// `http_jsonpath` (`unknown_keys_are_rejected_by_name`) keeps this true.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdapterConfig {
    Http(HttpAdapterConfig),
    Sonarqube(SonarQubeConfig),
    Jira(JiraConfig),
    Servicenow(ServiceNowConfig),
    Aqua(AquaConfig),
    Trivy(TrivyConfig),
    Registry(RegistryConfig),
    Sbom(SbomConfig),
    Sarif(SarifConfig),
    Github(GitHubConfig),
    Gitlab(GitLabConfig),
}

impl AdapterConfig {
    /// The instance name, also its evidence namespace.
    pub fn name(&self) -> &str {
        match self {
            AdapterConfig::Http(c) => &c.name,
            AdapterConfig::Sonarqube(c) => &c.name,
            AdapterConfig::Jira(c) => &c.name,
            AdapterConfig::Servicenow(c) => &c.name,
            AdapterConfig::Aqua(c) => &c.name,
            AdapterConfig::Trivy(c) => &c.name,
            AdapterConfig::Registry(c) => &c.name,
            AdapterConfig::Sbom(c) => &c.name,
            AdapterConfig::Sarif(c) => &c.name,
            AdapterConfig::Github(c) => &c.name,
            AdapterConfig::Gitlab(c) => &c.name,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AdapterBuildError {
    #[error("adapter `{name}`: {message}")]
    Invalid { name: String, message: String },
}

/// Builds the configured adapters. Names must be unique and must not be `request`.
///
/// Everything that can be checked without calling a tool is checked here (names, templates,
/// JSONPaths, secrets), so a bad configuration stops start-up instead of failing checks. Every
/// adapter reads the time, and waits before a retry, by `clock` (the gate's).
pub fn build(
    configs: &[AdapterConfig],
    clock: &Arc<dyn Clock>,
) -> Result<Vec<Arc<dyn Adapter>>, AdapterBuildError> {
    let mut seen = HashSet::new();
    let mut adapters: Vec<Arc<dyn Adapter>> = Vec::with_capacity(configs.len());
    for config in configs {
        let name = config.name();
        check_name(name)?;
        if !seen.insert(name) {
            return Err(AdapterBuildError::Invalid {
                name: name.to_string(),
                message: "`name`: is used by another adapter; names are evidence namespaces and must be unique".into(),
            });
        }
        adapters.push(match config {
            AdapterConfig::Http(c) => Arc::new(HttpJsonPathAdapter::build(c, Arc::clone(clock))?),
            AdapterConfig::Sonarqube(c) => Arc::new(SonarQubeAdapter::build(c, Arc::clone(clock))?),
            AdapterConfig::Jira(c) => Arc::new(JiraAdapter::build(c, Arc::clone(clock))?),
            AdapterConfig::Servicenow(c) => {
                Arc::new(ServiceNowAdapter::build(c, Arc::clone(clock))?)
            }
            AdapterConfig::Aqua(c) => Arc::new(AquaAdapter::build(c, Arc::clone(clock))?),
            AdapterConfig::Trivy(c) => Arc::new(TrivyAdapter::build(c, Arc::clone(clock))?),
            AdapterConfig::Registry(c) => Arc::new(RegistryAdapter::build(c, Arc::clone(clock))?),
            AdapterConfig::Sbom(c) => Arc::new(SbomAdapter::build(c, Arc::clone(clock))?),
            AdapterConfig::Sarif(c) => Arc::new(SarifAdapter::build(c)?),
            AdapterConfig::Github(c) => Arc::new(GitHubAdapter::build(c, Arc::clone(clock))?),
            AdapterConfig::Gitlab(c) => Arc::new(GitLabAdapter::build(c, Arc::clone(clock))?),
        });
    }
    Ok(adapters)
}

/// Names are evidence namespaces that rules write as `name.fact`, hence identifier-shaped;
/// `request` is the namespace of the request itself.
fn check_name(name: &str) -> Result<(), AdapterBuildError> {
    let invalid = |message: &str| AdapterBuildError::Invalid {
        name: name.to_string(),
        message: format!("`name`: {message}"),
    };
    let shape_ok = name.len() <= 63
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !shape_ok {
        return Err(invalid(
            "must be 1 to 63 lower-case letters, digits or `_`, starting with a letter",
        ));
    }
    if name == "request" {
        return Err(invalid(
            "`request` is the namespace of the check request itself; choose another name",
        ));
    }
    Ok(())
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// [`super::build`] on the system clock: nothing here reads the time or waits.
    fn build(configs: &[AdapterConfig]) -> Result<Vec<Arc<dyn Adapter>>, AdapterBuildError> {
        super::build(
            configs,
            &(Arc::new(crate::clock::SystemClock) as Arc<dyn Clock>),
        )
    }

    fn configs(yaml: &str) -> Vec<AdapterConfig> {
        serde_norway::from_str(yaml).unwrap()
    }

    #[test]
    fn names_are_unique_identifiers_and_not_request() {
        let e = build(&configs(
            "[{kind: http, name: a, url: 'http://h/'}, {kind: http, name: a, url: 'http://h/'}]",
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("adapter `a`: `name`: is used by another"),
            "{e}"
        );
        let e = build(&configs("[{kind: http, name: request, url: 'http://h/'}]")).unwrap_err();
        assert!(e.to_string().contains("`request` is the namespace"), "{e}");
        for bad in ["Sonar", "1x", "a-b", ""] {
            let e = build(&configs(&format!(
                "[{{kind: http, name: '{bad}', url: 'http://h/'}}]"
            )));
            assert!(e.is_err(), "{bad}");
        }
        let built = build(&configs(
            "[{kind: http, name: sonar, url: 'http://h/'}, {kind: http, name: jira_2, url: 'http://h/'}]",
        ))
        .unwrap();
        let names: Vec<_> = built.iter().map(|a| (a.name(), a.kind())).collect();
        assert_eq!(names, [("sonar", "http"), ("jira_2", "http")]);
    }

    #[test]
    fn reason_codes_match_reasons() {
        let errors = [
            AdapterError::Timeout { timeout_ms: 1 },
            AdapterError::Unreachable { detail: "x".into() },
            AdapterError::Auth { status: 401 },
            AdapterError::RateLimited {
                retry_after_s: Some(3),
            },
            AdapterError::BadResponse { detail: "x".into() },
            AdapterError::NotFound { detail: "x".into() },
        ];
        for e in errors {
            assert_eq!(e.reason_code(), format!("adapter.{}", e.reason().as_str()));
            let msg = e.to_string();
            assert!(
                msg.starts_with(|c: char| c.is_lowercase()) && !msg.ends_with('.'),
                "{msg}"
            );
        }
    }
}
