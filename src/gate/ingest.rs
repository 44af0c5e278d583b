//! Evidence ingestion: pipelines submit evidence produced long before the deploy (a Trivy report
//! written in CI) for an artifact digest. The named source validates and stores it; later checks
//! of that digest read it, with its age as a fact, so stale evidence is a fault, not a pass.
//!
//! Scoped like checks: a report is accepted only when it binds the digest to an image
//! repository the token may deploy (`scopes.images`). A digest is content, not a name — any
//! check deploying it reads the report — so the report's own `Metadata.RepoDigests` is what
//! ties it to a repository, and the submitting principal is stored with it (the fact
//! `submitted_by`) so policy and auditors see who vouched for the image.

use chrono::{DateTime, Utc};
use tracing::info;

use super::{Gate, GateError, require};
use crate::adapters::{IngestError, Submission};
use crate::auth::{Principal, Role};
use crate::domain::{CommitSha, Digest, ValidationError};

/// What was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReceipt {
    pub source: String,
    pub digest: Digest,
    /// Where the source keeps it (a file name for `kind: trivy`).
    pub stored_as: String,
    pub received_at: DateTime<Utc>,
}

impl Gate {
    /// The configured adapter named `source`; `help` says which kinds accept what was sent.
    fn evidence_source(
        &self,
        source: &str,
        help: &str,
    ) -> Result<std::sync::Arc<dyn crate::adapters::Adapter>, ValidationError> {
        self.adapters
            .iter()
            .find(|a| a.name() == source)
            .cloned()
            .ok_or_else(|| {
                ValidationError::new(
                    "source",
                    format!("no evidence source named `{source}` is configured"),
                    help,
                )
            })
    }

    /// Hands `report` for `digest` to the evidence source named `source`.
    pub async fn ingest_evidence(
        &self,
        principal: &Principal,
        source: &str,
        digest: Digest,
        report: bytes::Bytes,
    ) -> Result<IngestReceipt, GateError> {
        require(principal, &[Role::Pipeline])?;
        let adapter = self.evidence_source(
            source,
            "use the `name` of a configured adapter that accepts reports (kind `trivy` or `sbom`)",
        )?;
        let d = digest.clone();
        let kind = adapter.kind();
        let scope = principal.clone();
        let submission = Submission {
            submitted_by: principal.name.clone(),
            submitted_at: self.clock.now(),
            any_image: principal.scope().covers_every_image(),
            may_deploy: std::sync::Arc::new(move |image| scope.scope().covers_image(image)),
        };
        let stored = tokio::task::spawn_blocking(move || adapter.ingest(&d, &report, &submission))
            .await
            .map_err(|e| GateError::Internal(format!("storing the report failed: {e}")))?;
        let stored_as = match stored {
            None => {
                return Err(ValidationError::new(
                    "source",
                    format!(
                        "the `{source}` source (kind `{kind}`) does not accept submitted reports"
                    ),
                    "submit to a source of kind `trivy` or `sbom`",
                )
                .into());
            }
            Some(Err(IngestError::OutOfScope {
                digest,
                repositories,
            })) => {
                return Err(GateError::EvidenceOutOfScope {
                    principal: principal.name.clone(),
                    digest,
                    repositories,
                });
            }
            Some(Err(e)) => {
                return Err(ValidationError::new(
                    "report",
                    e.to_string(),
                    match kind {
                        "sbom" => "send a CycloneDX 1.4–1.6 or SPDX 2.3 JSON SBOM, or an OpenVEX or CycloneDX VEX document, made for this digest",
                        _ => "send the JSON that `trivy image --format json` writes for this digest",
                    },
                )
                .into());
            }
            Some(Ok(name)) => name,
        };
        info!(source, digest = digest.as_str(), principal = %principal.name, stored_as, "evidence ingested");
        Ok(IngestReceipt {
            source: source.to_string(),
            digest,
            stored_as,
            received_at: self.clock.now(),
        })
    }
}

/// What was stored for a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitIngestReceipt {
    pub source: String,
    pub commit: CommitSha,
    pub stored_as: String,
    pub received_at: DateTime<Utc>,
}

impl Gate {
    /// Hands `report` about `commit` (a SARIF log) to the evidence source named `source`.
    pub async fn ingest_commit_evidence(
        &self,
        principal: &Principal,
        source: &str,
        commit: CommitSha,
        report: bytes::Bytes,
    ) -> Result<CommitIngestReceipt, GateError> {
        require(principal, &[Role::Pipeline])?;
        let adapter = self.evidence_source(
            source,
            "use the `name` of a configured adapter that accepts logs for a commit (kind `sarif`)",
        )?;
        let c = commit.clone();
        let kind = adapter.kind();
        let submission = Submission {
            submitted_by: principal.name.clone(),
            submitted_at: self.clock.now(),
            // A log is about a commit, not an image: image scopes do not apply to it.
            any_image: true,
            may_deploy: std::sync::Arc::new(|_| true),
        };
        let stored =
            tokio::task::spawn_blocking(move || adapter.ingest_commit(&c, &report, &submission))
                .await
                .map_err(|e| GateError::Internal(format!("storing the log failed: {e}")))?;
        let stored_as = match stored {
            None => {
                return Err(ValidationError::new(
                    "source",
                    format!(
                        "the `{source}` source (kind `{kind}`) does not accept evidence for a commit"
                    ),
                    "submit SARIF logs to a source of kind `sarif`, image evidence for a digest",
                )
                .into());
            }
            Some(Err(e)) => {
                return Err(ValidationError::new(
                    "report",
                    e.to_string(),
                    "send the SARIF 2.1.0 log the scanner wrote for this commit",
                )
                .into());
            }
            Some(Ok(name)) => name,
        };
        info!(source, commit = commit.as_str(), principal = %principal.name, stored_as, "evidence ingested");
        Ok(CommitIngestReceipt {
            source: source.to_string(),
            commit,
            stored_as,
            received_at: self.clock.now(),
        })
    }
}
