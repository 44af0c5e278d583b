//! SARIF adapter (`kind: sarif`; contract `source-and-findings.md` §8): SARIF 2.1.0 logs from
//! any code scanner (Semgrep, CodeQL, gosec, Bandit, Snyk, Trivy, ZAP …) submitted for a
//! commit; facts per tool and per level, rule ids, new-vs-baseline, as common findings.
//!
//! ```yaml
//! adapters:
//!   - kind: sarif
//!     name: sast
//!     logs_dir: /var/lib/portcullis/sarif   # POST /v1/evidence/sast/{commit sha} stores here
//!     allow_author_suppressions: false      # status-less suppressions (`nosemgrep`) stay open
//!     cache_ttl: 30s
//! ```
//!
//! A log is read in bounded memory ([`log`]: typed fields only, no `Value` tree) when it is
//! submitted, and only its resolved summary is kept. Traps honoured: a log whose
//! `versionControlProvenance[].revisionId` names another commit is refused; an absent `level`
//! resolves through the rule, else `warning`; `pass`/`notApplicable`/`informational` are not
//! findings and `open`/`review` are counted as needing review; `baselineState: absent` is not a
//! finding, `unchanged` still is; suppressions count only when accepted; a run without
//! `results`, with a failed invocation or an error notification is incomplete; several logs for
//! one commit aggregate per (tool, `automationDetails.id`), the newest replacing the older.

mod log;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

use super::cache::FactCache;
use super::instance::{self, invalid};
use super::trivy::IngestError;
use super::{Adapter, AdapterBuildError, AdapterError, Facts, Submission};
use crate::domain::finding::summary;
use crate::domain::{CheckRequest, CommitSha, Finding, FindingStatus};
use log::{RunSummary, level_counts};

/// Largest log accepted.
const MAX_LOG_BYTES: usize = 64 * 1024 * 1024;
/// Findings listed in facts at most; counts always cover every finding.
const MAX_LISTED: usize = 5000;

/// Configuration of one `kind: sarif` instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SarifConfig {
    pub name: String,
    pub logs_dir: PathBuf,
    #[serde(default)]
    pub allow_author_suppressions: bool,
    #[serde(default = "instance::default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
}

/// What is stored per submitted log: the resolved runs, not the log.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    commit: String,
    received_at: DateTime<Utc>,
    /// The authenticated principal that submitted the log (absent in logs stored before it was
    /// recorded).
    #[serde(default)]
    submitted_by: Option<String>,
    log_sha256: String,
    runs: Vec<RunSummary>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    dir: PathBuf,
    allow_author_suppressions: bool,
}

/// A built `kind: sarif` adapter.
#[derive(Debug)]
pub struct SarifAdapter {
    inner: Arc<Inner>,
    cache: FactCache<Value>,
}

impl SarifAdapter {
    pub fn build(config: &SarifConfig) -> Result<Self, AdapterBuildError> {
        if !config.logs_dir.is_dir() {
            return Err(invalid(
                &config.name,
                "logs_dir",
                format!("`{}` is not a directory", config.logs_dir.display()),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                name: config.name.clone(),
                dir: config.logs_dir.clone(),
                allow_author_suppressions: config.allow_author_suppressions,
            }),
            cache: FactCache::new(config.cache_ttl),
        })
    }
}

#[async_trait]
impl Adapter for SarifAdapter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "sarif"
    }

    fn ingest_commit(
        &self,
        commit: &CommitSha,
        report: &[u8],
        submission: &Submission,
    ) -> Option<Result<String, IngestError>> {
        let stored = ingest_log(
            &self.inner.dir,
            commit.as_str(),
            report,
            self.inner.allow_author_suppressions,
            submission,
        );
        if stored.is_ok() {
            self.cache.invalidate_all();
        }
        Some(stored)
    }

    async fn collect(
        &self,
        request: &CheckRequest,
        _deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let commits: Vec<String> = request
            .sources
            .iter()
            .filter_map(|s| s.commit.as_ref().map(|c| c.as_str().to_string()))
            .collect();
        if commits.is_empty() {
            return Err(AdapterError::NotFound {
                detail: "the check names no commit, so no SARIF log can be bound to it".into(),
            });
        }
        let inner = Arc::clone(&self.inner);
        let key = commits.join(",");
        let document = self
            .cache
            .get_or_fetch(&key, async move {
                tokio::task::spawn_blocking(move || facts(&inner.dir, &commits))
                    .await
                    .map_err(|e| AdapterError::BadResponse {
                        detail: format!("reading the logs failed: {e}"),
                    })?
            })
            .await?;
        Ok(Facts {
            excerpt: Some(document["counts"].to_string()),
            url: Some(format!("file://{}", self.inner.dir.display())),
            document,
        })
    }
}

/// Whether a stored commit id and a requested one name the same commit (one may be short).
fn same_commit(a: &str, b: &str) -> bool {
    a.len().min(b.len()) >= 7 && (a.starts_with(b) || b.starts_with(a))
}

/// The facts for `commits`: the newest log per (commit, tool, category), aggregated.
fn facts(dir: &Path, commits: &[String]) -> Result<Value, AdapterError> {
    let entries = std::fs::read_dir(dir).map_err(|e| AdapterError::Unreachable {
        detail: format!("cannot list `{}`: {}", dir.display(), e.kind()),
    })?;
    let mut stored: Vec<(String, Stored)> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("commit-") && n.ends_with(".json"))
        .filter_map(|n| {
            let bytes = std::fs::read(dir.join(&n)).ok()?;
            Some((n, serde_json::from_slice::<Stored>(&bytes).ok()?))
        })
        .collect();
    stored.sort_by_key(|(_, s)| s.received_at);
    // (commit, tool, category) → (stored file, received, run)
    type Latest =
        BTreeMap<(String, String, String), (String, DateTime<Utc>, Option<String>, RunSummary)>;
    let mut latest = Latest::new();
    for commit in commits {
        let mut any = false;
        for (file, s) in stored
            .iter()
            .filter(|(_, s)| same_commit(&s.commit, commit))
        {
            for run in &s.runs {
                any = true;
                let key = (
                    commit.clone(),
                    run.tool.clone(),
                    run.category.clone().unwrap_or_default(),
                );
                // Sorted by arrival: a later log of the same category replaces the earlier.
                latest.insert(
                    key,
                    (
                        file.clone(),
                        s.received_at,
                        s.submitted_by.clone(),
                        run.clone(),
                    ),
                );
            }
        }
        if !any {
            return Err(AdapterError::NotFound {
                detail: format!("no SARIF log was submitted for commit `{commit}`"),
            });
        }
    }
    let mut tools = Vec::new();
    let mut all: Vec<Finding> = Vec::new();
    let mut needs_review = 0;
    for ((commit, _, _), (file, received, submitted_by, run)) in latest {
        let counts = level_counts(run.findings.iter());
        let with_baseline = run.findings.iter().any(|f| f.baseline_state.is_some());
        let new = with_baseline.then(|| {
            level_counts(
                run.findings
                    .iter()
                    .filter(|f| f.baseline_state.as_deref() == Some("new")),
            )
        });
        let rule_ids: BTreeSet<&str> = run
            .findings
            .iter()
            .filter(|f| f.status == FindingStatus::Open)
            .map(|f| f.id.as_str())
            .collect();
        needs_review += run.needs_review;
        tools.push(json!({
            "name": run.tool, "version": run.tool_version, "category": run.category,
            "commit": commit, "complete": run.complete, "counts": counts, "new": new,
            "rule_ids": rule_ids, "needs_review": run.needs_review, "log": file,
            "received_at": received.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "submitted_by": submitted_by,
        }));
        all.extend(run.findings);
    }
    let counts = level_counts(all.iter());
    let baseline_present = tools.iter().all(|t| t["new"].is_object());
    let new = baseline_present.then(|| {
        level_counts(
            all.iter()
                .filter(|f| f.baseline_state.as_deref() == Some("new")),
        )
    });
    let rule_ids: BTreeSet<&str> = all
        .iter()
        .filter(|f| f.status == FindingStatus::Open)
        .map(|f| f.id.as_str())
        .collect();
    let complete = tools.iter().all(|t| t["complete"] == true);
    let truncated = all.len() > MAX_LISTED;
    let findings_summary = summary(&all);
    let rule_ids: Vec<String> = rule_ids.into_iter().map(str::to_string).collect();
    all.truncate(MAX_LISTED);
    Ok(json!({
        "commits": commits,
        "tools": tools,
        "counts": counts,
        "new": new,
        "rule_ids": rule_ids,
        "complete": complete,
        "needs_review": needs_review,
        "findings_summary": findings_summary,
        "findings": all,
        "findings_truncated": truncated,
    }))
}

/// Validates a SARIF 2.1.0 log submitted for `commit`, resolves its runs and stores the summary
/// in `dir` (atomically, as `commit-<sha>-<uuid>.json`). Returns the stored file's name.
pub fn ingest_log(
    dir: &Path,
    commit: &str,
    body: &[u8],
    allow_author_suppressions: bool,
    submission: &Submission,
) -> Result<String, IngestError> {
    if body.len() > MAX_LOG_BYTES {
        return Err(IngestError::TooLarge);
    }
    let parsed: log::Log =
        serde_json::from_slice(body).map_err(|e| IngestError::NotJson(e.to_string()))?;
    if parsed.version.as_deref() != Some("2.1.0") {
        return Err(IngestError::Invalid(format!(
            "the log has SARIF version `{}`; only SARIF 2.1.0 is accepted",
            parsed.version.as_deref().unwrap_or("")
        )));
    }
    let runs = parsed.runs.filter(|r| !r.is_empty()).ok_or_else(|| {
        IngestError::Invalid("the log has no `runs`; a scan writes at least one".into())
    })?;
    for run in &runs {
        let named: Vec<&str> = run
            .version_control_provenance
            .iter()
            .filter_map(|p| p.revision_id.as_deref())
            .collect();
        if !named.is_empty()
            && !named
                .iter()
                .any(|r| same_commit(&r.to_ascii_lowercase(), commit))
        {
            return Err(IngestError::Invalid(format!(
                "the log's `versionControlProvenance` names commit `{}`, not `{commit}`; submit it for the commit it scanned",
                named[0]
            )));
        }
    }
    let stored = Stored {
        commit: commit.to_string(),
        received_at: submission.submitted_at,
        submitted_by: Some(submission.submitted_by.clone()),
        log_sha256: format!("sha256:{}", hex::encode(Sha256::digest(body))),
        runs: runs
            .into_iter()
            .map(|r| r.summarise(commit, allow_author_suppressions))
            .collect(),
    };
    let text = serde_json::to_vec(&stored).map_err(|e| IngestError::Io(e.to_string()))?;
    let name = format!("commit-{commit}-{}.json", uuid::Uuid::now_v7().simple());
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).map_err(|e| IngestError::Io(e.kind().to_string()))?;
    std::fs::rename(&tmp, dir.join(&name)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        IngestError::Io(e.kind().to_string())
    })?;
    Ok(name)
}

#[cfg(test)]
mod tests;
