//! Evidence ingestion: pipelines submit evidence produced long before the deploy (a Trivy report
//! written in CI) for an artifact digest. The named source validates and stores it; later checks
//! of that digest read it, with its age as a fact, so stale evidence is a fault, not a pass.

use chrono::{DateTime, Utc};
use tracing::info;

use super::{Gate, GateError, require};
use crate::auth::{Principal, Role};
use crate::domain::{Digest, ValidationError};

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
    /// Hands `report` for `digest` to the evidence source named `source`.
    pub async fn ingest_evidence(
        &self,
        principal: &Principal,
        source: &str,
        digest: Digest,
        report: bytes::Bytes,
    ) -> Result<IngestReceipt, GateError> {
        require(principal, &[Role::Pipeline])?;
        let adapter = self
            .adapters
            .iter()
            .find(|a| a.name() == source)
            .cloned()
            .ok_or_else(|| {
                ValidationError::new(
                    "source",
                    format!("no evidence source named `{source}` is configured"),
                    "use the `name` of a configured adapter that accepts reports (kind `trivy`)",
                )
            })?;
        let d = digest.clone();
        let kind = adapter.kind();
        let stored = tokio::task::spawn_blocking(move || adapter.ingest(&d, &report))
            .await
            .map_err(|e| {
                GateError::Unavailable(crate::store::StoreError::Unavailable(format!(
                    "storing the report failed: {e}"
                )))
            })?;
        let stored_as = match stored {
            None => {
                return Err(ValidationError::new(
                    "source",
                    format!(
                        "the `{source}` source (kind `{kind}`) does not accept submitted reports"
                    ),
                    "submit to a source of kind `trivy`",
                )
                .into());
            }
            Some(Err(e)) => {
                return Err(ValidationError::new(
                    "report",
                    e.to_string(),
                    "send the JSON that `trivy image --format json` writes for this digest",
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
            received_at: Utc::now(),
        })
    }
}
