//! Trivy adapter (`kind: trivy`; contract §5): Trivy JSON reports (SchemaVersion 2) produced in
//! CI, read from a directory the pipeline writes to, bound to the deployed image by its
//! registry digest, with the scan's age as a fact.
//!
//! ```yaml
//! adapters:
//!   - kind: trivy
//!     name: trivy                       # the built-in pack reads $.trivy.vulnerabilities.critical
//!     reports_dir: /var/lib/portcullis/trivy   # `trivy image --format json -o <dir>/<any>.json`
//!     max_age: 24h                      # default 24h: an older report is a fault, not evidence
//!     library_only: false               # true: accept reports where no OS was detected
//!     cache_ttl: 30s
//! ```
//!
//! Traps honoured: only `SchemaVersion: 2` is read (v1 was a bare array); a report binds to an
//! image only through `Metadata.RepoDigests` (`repo@sha256:…`), never through `ImageID` (the
//! config digest) or `ArtifactName` (often a tag); a report with no `Results` or no detected OS
//! proves nothing about "zero vulnerabilities" and gives no counts (missing evidence) unless
//! `library_only` says so; severities are normalised to lower case; the newest report for a
//! digest wins; its `Trivy.Version` is recorded, since suppressed findings never reach the file.
//!
//! Freshness: a report's age is its `CreatedAt` (RFC 3339), never the file's modification time.
//! A report whose `CreatedAt` is missing, unparseable or later than now (beyond
//! [`CLOCK_SKEW`]) is refused at ingestion and skipped when reading, so it can neither count as
//! fresh nor outrank a real report; "newest" compares times, not strings. Time comes from the
//! injected [`Clock`] (the gate's: the system clock in service, a manual one in tests).
//!
//! [`ingest_report`] validates a report submitted for a digest and stores it where this adapter
//! reads; the ingestion API (`POST /v1/evidence/{source}/{digest}`, gRPC `SubmitEvidence`,
//! through `Gate::ingest_evidence`) calls it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::cache::FactCache;
use super::instance::{self, invalid};
use super::vex::{self, VexReport};
use super::{Adapter, AdapterBuildError, AdapterError, Facts, Submission};
use crate::clock::Clock;
use crate::domain::finding::summary;
use crate::domain::{
    CheckRequest, Digest, Finding, FindingKind, FindingSeverity, ImageRef, Location, Package,
};

/// Largest report file read.
const MAX_REPORT_BYTES: u64 = 64 * 1024 * 1024;
/// Severities in Trivy's order, as fact keys.
const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "unknown"];
/// Findings listed by id per image (critical and high only; the legacy `images[*].findings`).
const LISTED_FINDINGS: usize = 20;
/// How far in the future a `CreatedAt` may lie (clocks of CI runners drift).
pub const CLOCK_SKEW: Duration = Duration::from_secs(5 * 60);
/// `max_age` when the configuration gives none.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
/// The per-image key holding every finding until `collect` moves them to `findings`.
const FINDING_LIST: &str = "finding_list";

/// Configuration of one `kind: trivy` instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrivyConfig {
    pub name: String,
    pub reports_dir: PathBuf,
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(default)]
    pub library_only: bool,
    /// Where VEX documents for a digest are kept (a `kind: sbom` source's `documents_dir`).
    #[serde(default)]
    pub vex_dir: Option<PathBuf>,
    #[serde(default = "instance::default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
}

fn default_max_age() -> Duration {
    DEFAULT_MAX_AGE
}

#[derive(Debug)]
struct Inner {
    name: String,
    dir: PathBuf,
    max_age: Duration,
    library_only: bool,
    vex_dir: Option<PathBuf>,
}

/// A built `kind: trivy` adapter.
pub struct TrivyAdapter {
    inner: Arc<Inner>,
    cache: FactCache<Value>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for TrivyAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrivyAdapter")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl TrivyAdapter {
    pub fn build(config: &TrivyConfig, clock: Arc<dyn Clock>) -> Result<Self, AdapterBuildError> {
        if !config.reports_dir.is_dir() {
            return Err(invalid(
                &config.name,
                "reports_dir",
                format!("`{}` is not a directory", config.reports_dir.display()),
            ));
        }
        if let Some(v) = config.vex_dir.as_ref().filter(|v| !v.is_dir()) {
            return Err(invalid(
                &config.name,
                "vex_dir",
                format!("`{}` is not a directory", v.display()),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                name: config.name.clone(),
                dir: config.reports_dir.clone(),
                max_age: config.max_age,
                library_only: config.library_only,
                vex_dir: config.vex_dir.clone(),
            }),
            cache: FactCache::new(config.cache_ttl),
            clock,
        })
    }
}

#[async_trait]
impl Adapter for TrivyAdapter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "trivy"
    }

    fn ingest(
        &self,
        digest: &Digest,
        report: &[u8],
        submission: &Submission,
    ) -> Option<Result<String, IngestError>> {
        let stored = ingest_report(
            &self.inner.dir,
            digest.as_str(),
            report,
            self.clock.now(),
            submission,
        );
        if stored.is_ok() {
            // The next check of this digest must see the new report, not a cached answer.
            self.cache.invalidate(digest.as_str());
        }
        Some(stored)
    }

    async fn collect(
        &self,
        request: &CheckRequest,
        _deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let mut images = Vec::new();
        for image in &request.images {
            let digest = image
                .digest
                .as_ref()
                .map(|d| d.as_str().to_string())
                .ok_or_else(|| AdapterError::NotFound {
                    detail: format!(
                        "`{image}` has no digest, so no Trivy report can be bound to it"
                    ),
                })?;
            let inner = Arc::clone(&self.inner);
            let key = digest.clone();
            let now = self.clock.now();
            let fact = self
                .cache
                .get_or_fetch(&key, async move {
                    tokio::task::spawn_blocking(move || inner.newest_report(&digest, now))
                        .await
                        .map_err(|e| AdapterError::BadResponse {
                            detail: format!("reading the reports failed: {e}"),
                        })?
                })
                .await?;
            images.push(fact);
        }
        let now = self.clock.now();
        let max = self.inner.max_age;
        for f in &mut images {
            let scanned = f["scanned_at"]
                .as_str()
                .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                .ok_or_else(|| AdapterError::BadResponse {
                    detail: format!(
                        "the Trivy report for `{}` has no scan time",
                        f["digest"].as_str().unwrap_or("?")
                    ),
                })?;
            // Within the clock-skew allowance a report may be slightly ahead: its age is zero.
            let age = (now - scanned.with_timezone(&Utc)).num_seconds().max(0);
            f["age_seconds"] = age.into();
            if u64::try_from(age).unwrap_or(0) > max.as_secs() {
                return Err(AdapterError::BadResponse {
                    detail: format!(
                        "the Trivy report for `{}` is stale: {} old, more than `max_age` {}",
                        f["digest"].as_str().unwrap_or("?"),
                        humantime::format_duration(Duration::from_secs(
                            u64::try_from(age).unwrap_or(0)
                        )),
                        humantime::format_duration(max)
                    ),
                });
            }
        }
        // Every finding of every image, in the common shape; only when every image's report
        // proves its findings (as for the counts), so an unproven report is never "no findings".
        let lists: Vec<Value> = images
            .iter_mut()
            .filter_map(|f| f.as_object_mut().and_then(|o| o.remove(FINDING_LIST)))
            .collect();
        let mut document = json!({ "images": images });
        if !images_empty_or_unproven(&lists, document["images"].as_array().map_or(0, Vec::len)) {
            let mut all: Vec<Finding> = Vec::new();
            let mut report = VexReport::default();
            for list in lists {
                let Ok(mut list) = serde_json::from_value::<Vec<Finding>>(list) else {
                    continue;
                };
                // VEX submitted for the digest (to a `kind: sbom` source) marks these findings.
                if let (Some(dir), Some(digest)) = (
                    &self.inner.vex_dir,
                    list.first().and_then(|f| f.subject.clone()),
                ) {
                    let (statements, documents) = vex::stored_statements(dir, &digest);
                    report.documents.extend(documents);
                    vex::apply(&mut list, &statements, &digest, true, &mut report);
                }
                all.extend(list);
            }
            if self.inner.vex_dir.is_some() {
                document["vex"] = serde_json::to_value(report).unwrap_or(Value::Null);
            }
            document["findings_summary"] = summary(&all);
            document["findings"] = serde_json::to_value(all).unwrap_or(Value::Null);
        }
        let oldest = images
            .iter()
            .filter_map(|f| f["scanned_at"].as_str())
            .min()
            .map(str::to_string);
        if images.iter().all(|f| f["scanned_at"].is_string()) && !images.is_empty() {
            document["scanned_at"] = oldest.into();
            document["age_seconds"] = images
                .iter()
                .filter_map(|f| f["age_seconds"].as_i64())
                .max()
                .into();
        }
        if !images.is_empty() && images.iter().all(|f| f["vulnerabilities"].is_object()) {
            let mut total = json!({});
            for s in SEVERITIES {
                total[s] = images
                    .iter()
                    .map(|f| f["vulnerabilities"][s].as_u64().unwrap_or(0))
                    .sum::<u64>()
                    .into();
            }
            document["vulnerabilities"] = total;
        }
        let shown = images
            .iter()
            .filter_map(|f| f["report"].as_str())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(Facts {
            excerpt: Some(serde_json::to_string(&document["vulnerabilities"]).unwrap_or_default()),
            url: Some(format!("file://{}/{{{shown}}}", self.inner.dir.display())),
            document,
        })
    }
}

/// No images, or some image's findings are not proven (no OS detected): no `findings` fact.
fn images_empty_or_unproven(lists: &[Value], images: usize) -> bool {
    images == 0 || lists.len() != images || lists.iter().any(|l| !l.is_array())
}

impl Inner {
    /// The facts of the newest report in the directory that binds to `digest` and has a
    /// usable `CreatedAt` at `now`; reports without one are skipped and named in the error.
    fn newest_report(&self, digest: &str, now: DateTime<Utc>) -> Result<Value, AdapterError> {
        let entries = std::fs::read_dir(&self.dir).map_err(|e| AdapterError::Unreachable {
            detail: format!("cannot list `{}`: {}", self.dir.display(), e.kind()),
        })?;
        let mut best: Option<(DateTime<Utc>, Value)> = None;
        let mut skipped: Vec<String> = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let Some(report) = read_report(&path) else {
                continue;
            };
            if !binds_to(&report, digest) {
                continue;
            }
            let created = match created_at(&report, now) {
                Ok(t) => t,
                Err(why) => {
                    let file = path.file_name().map(|f| f.to_string_lossy().to_string());
                    skipped.push(format!("`{}` {why}", file.unwrap_or_default()));
                    continue;
                }
            };
            if best.as_ref().is_some_and(|(t, _)| *t >= created) {
                continue;
            }
            let fact = facts(&report, &path, digest, self.library_only, created)?;
            best = Some((created, fact));
        }
        best.map(|(_, f)| f).ok_or_else(|| AdapterError::NotFound {
            detail: if skipped.is_empty() {
                format!(
                    "no Trivy report (SchemaVersion 2) lists `{digest}` in `Metadata.RepoDigests`"
                )
            } else {
                format!(
                    "no Trivy report for `{digest}` has a usable scan time: {}",
                    skipped.join("; ")
                )
            },
        })
    }
}

/// Why a submitted report was refused. Messages name the problem, never echo the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    #[error("the report is not a json object: {0}")]
    NotJson(String),
    #[error(
        "the report has SchemaVersion {0}; only Trivy JSON reports with SchemaVersion 2 are accepted"
    )]
    Schema(String),
    #[error("`{0}` is not a digest (`sha256:` and 64 hex digits)")]
    BadDigest(String),
    #[error(
        "the report does not list `{0}` in `Metadata.RepoDigests`; scan the image by digest or push it before scanning"
    )]
    NotBound(String),
    #[error(
        "the report binds `{digest}` only to {repositories}, none of which the submitting token may deploy"
    )]
    OutOfScope {
        digest: String,
        repositories: String,
    },
    #[error("the report is larger than {} MiB", MAX_REPORT_BYTES / 1024 / 1024)]
    TooLarge,
    #[error(
        "the report {0}; send the report as `trivy` wrote it, from a runner whose clock is right"
    )]
    CreatedAt(String),
    #[error("cannot store the report: {0}")]
    Io(String),
    /// A document of another format (SBOM, VEX, SARIF) that its source refused.
    #[error("{0}")]
    Invalid(String),
}

/// Validates a submitted Trivy JSON report for `digest` and stores it in `dir`, where a
/// `kind: trivy` adapter reading that directory finds it (after its `cache_ttl`). The write is
/// atomic (a temporary file renamed into place). Returns the stored file's name.
///
/// This is the storage half of evidence ingestion; an API that accepts reports from pipelines
/// calls it with the body and the artifact digest. The report must bind the digest to a
/// repository the submitter may deploy (`Metadata.RepoDigests`), and is stored with who
/// submitted it and when (`Portcullis.SubmittedBy` / `SubmittedAt`, read back as the facts
/// `submitted_by` / `submitted_at`).
pub fn ingest_report(
    dir: &Path,
    digest: &str,
    body: &[u8],
    now: DateTime<Utc>,
    submission: &Submission,
) -> Result<String, IngestError> {
    if body.len() as u64 > MAX_REPORT_BYTES {
        return Err(IngestError::TooLarge);
    }
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| IngestError::BadDigest(digest.chars().take(80).collect()))?;
    let report: Value =
        serde_json::from_slice(body).map_err(|e| IngestError::NotJson(e.to_string()))?;
    if !report.is_object() {
        return Err(IngestError::NotJson(
            "a top-level array is a SchemaVersion 1 report".into(),
        ));
    }
    if report["SchemaVersion"] != 2 {
        return Err(IngestError::Schema(report["SchemaVersion"].to_string()));
    }
    if !binds_to(&report, digest) {
        return Err(IngestError::NotBound(digest.to_string()));
    }
    created_at(&report, now).map_err(IngestError::CreatedAt)?;
    let repositories = bound_repositories(&report, digest);
    if !repositories.iter().any(|r| (submission.may_deploy)(r)) {
        return Err(IngestError::OutOfScope {
            digest: digest.to_string(),
            repositories: repositories
                .iter()
                .map(|r| format!("`{}/{}`", r.registry, r.repository))
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    // Who submitted it travels with the report (replacing anything the body claimed).
    let mut report = report;
    report["Portcullis"] = json!({
        "SubmittedBy": submission.submitted_by,
        "SubmittedAt": submission
            .submitted_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    });
    let body = serde_json::to_vec(&report).map_err(|e| IngestError::NotJson(e.to_string()))?;
    let name = format!("sha256-{hex}-{}.json", uuid::Uuid::now_v7().simple());
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, body).map_err(|e| IngestError::Io(e.kind().to_string()))?;
    std::fs::rename(&tmp, dir.join(&name)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        IngestError::Io(e.kind().to_string())
    })?;
    Ok(name)
}

/// A report file as JSON; `None` for anything that is not a readable JSON object of a sane size
/// (other files may share the directory). The file's times are never read: a copy or a restore
/// makes an old scan look new.
fn read_report(path: &Path) -> Option<Value> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_REPORT_BYTES {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    let json: Value = serde_json::from_slice(&bytes).ok()?;
    json.is_object().then_some(json)
}

/// When the scan ran: the report's `CreatedAt`, which must be RFC 3339 and not later than `now`
/// plus [`CLOCK_SKEW`]. The error completes "the report …".
fn created_at(report: &Value, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let Some(text) = report["CreatedAt"].as_str() else {
        return Err(
            "has no `CreatedAt` (Trivy before 0.52 does not write it; upgrade Trivy)".into(),
        );
    };
    let shown: String = text.chars().take(40).collect();
    let t = DateTime::parse_from_rfc3339(text)
        .map_err(|_| format!("has a `CreatedAt` of `{shown}`, which is not an RFC 3339 time"))?
        .with_timezone(&Utc);
    let skew = chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default();
    if t > now + skew {
        return Err(format!(
            "is dated `{shown}`, in the future (now is {})",
            now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    Ok(t)
}

fn binds_to(report: &Value, digest: &str) -> bool {
    report["Metadata"]["RepoDigests"]
        .as_array()
        .is_some_and(|ds| {
            ds.iter()
                .filter_map(Value::as_str)
                .any(|d| d.rsplit_once('@').is_some_and(|(_, x)| x == digest))
        })
}

/// The repositories whose `RepoDigests` entry names `digest` (parsed with Docker's defaults).
fn bound_repositories(report: &Value, digest: &str) -> Vec<ImageRef> {
    report["Metadata"]["RepoDigests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|d| d.rsplit_once('@').is_some_and(|(_, x)| x == digest))
        .filter_map(|d| ImageRef::parse(d).ok())
        .collect()
}

/// The normalised facts of one report for one digest.
pub fn facts(
    report: &Value,
    path: &Path,
    digest: &str,
    library_only: bool,
    scanned_at: DateTime<Utc>,
) -> Result<Value, AdapterError> {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().to_string())
        .unwrap_or_default();
    if report["SchemaVersion"] != 2 {
        return Err(AdapterError::BadResponse {
            detail: format!(
                "Trivy report `{file}` has SchemaVersion {}, and only 2 is read",
                report["SchemaVersion"]
            ),
        });
    }
    let os_family = report["Metadata"]["OS"]["Family"].as_str();
    let os_detected = os_family.is_some_and(|f| !f.is_empty() && f != "none");
    let results = report["Results"].as_array();
    let mut counts = [0u64; 5];
    let mut listed = Vec::new();
    let mut all = Vec::new();
    for (target, v) in results.into_iter().flatten().flat_map(|r| {
        r["Vulnerabilities"]
            .as_array()
            .into_iter()
            .flatten()
            .map(move |v| (r["Target"].as_str(), v))
    }) {
        all.push(finding(v, target, digest));
        let severity = v["Severity"].as_str().unwrap_or("UNKNOWN").to_lowercase();
        let i = SEVERITIES
            .iter()
            .position(|s| *s == severity)
            .unwrap_or(SEVERITIES.len() - 1);
        counts[i] += 1;
        if i <= 1 && listed.len() < LISTED_FINDINGS {
            listed.push(json!({
                "id": v["VulnerabilityID"], "severity": severity, "package": v["PkgName"],
                "installed": v["InstalledVersion"], "fixed": v["FixedVersion"],
            }));
        }
    }
    // Zero findings prove something only when the scanner saw the OS (or the policy accepts
    // library-only images); otherwise the counts are unknown, never zero.
    let proven = os_detected || library_only;
    let vulnerabilities = if proven {
        let mut v = json!({});
        for (s, n) in SEVERITIES.iter().zip(counts) {
            v[*s] = n.into();
        }
        v
    } else {
        Value::Null
    };
    Ok(json!({
        "digest": digest,
        "report": file,
        "artifact_name": report["ArtifactName"],
        "trivy_version": report["Trivy"]["Version"],
        "scanned_at": scanned_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "scanned_at_source": "created_at",
        "os_family": os_family,
        "os_detected": os_detected,
        "has_results": results.is_some(),
        "vulnerabilities": vulnerabilities,
        "findings": listed,
        // Set when the report came through the ingestion API; absent for files put in place.
        "submitted_by": report["Portcullis"]["SubmittedBy"],
        "submitted_at": report["Portcullis"]["SubmittedAt"],
        // Taken out by `collect` into the source-wide `findings` list.
        FINDING_LIST: if proven { serde_json::to_value(all).unwrap_or(Value::Null) } else { Value::Null },
    }))
}

/// One `Results[].Vulnerabilities[]` entry in the common finding shape (contract §9).
fn finding(v: &Value, target: Option<&str>, digest: &str) -> Finding {
    let id = v["VulnerabilityID"].as_str().unwrap_or_default();
    let label = v["Severity"].as_str().unwrap_or("UNKNOWN");
    let mut f = Finding::new(
        FindingKind::Vulnerability,
        id,
        "trivy",
        FindingSeverity::from_label(label),
    );
    f.tool_severity = Some(label.to_string());
    f.aliases.extend(
        v["VendorIDs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string),
    );
    f.subject = Some(digest.to_string());
    f.package = v["PkgName"].as_str().map(|name| Package {
        name: name.to_string(),
        version: v["InstalledVersion"].as_str().map(str::to_string),
        purl: v["PkgIdentifier"]["PURL"].as_str().map(str::to_string),
    });
    f.location = target.map(|t| Location {
        uri: Some(t.to_string()),
        ..Location::default()
    });
    // `FixedVersion` is a comma list or absent; Trivy's `Status: fixed` means "a fix exists".
    f.fixed_version = v["FixedVersion"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    f.fix_available = f.fixed_version.is_some() || v["Status"] == "fixed";
    f
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::adapters::template::tests::request;
    use crate::clock::ManualClock;

    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn report(created: &str, os: Option<&str>, vulns: &[&str]) -> Value {
        let mut r = json!({
            "SchemaVersion": 2, "Trivy": {"Version": "0.69.3"}, "CreatedAt": created,
            "ArtifactName": "ghcr.io/acme/payments:1.2", "ArtifactType": "container_image",
            "Metadata": {
                "ImageID": "sha256:cccc",
                "RepoDigests": [format!("ghcr.io/acme/payments@{DIGEST}")],
            },
        });
        if let Some(os) = os {
            r["Metadata"]["OS"] = json!({"Family": os, "Name": "12"});
            let vs: Vec<Value> = vulns
                .iter()
                .enumerate()
                .map(|(i, s)| json!({"VulnerabilityID": format!("CVE-2026-{i}"), "PkgName": "openssl", "InstalledVersion": "3.0.7", "Severity": s}))
                .collect();
            r["Results"] = json!([{"Target": "debian", "Class": "os-pkgs", "Type": "debian", "Vulnerabilities": vs}, {"Target": "app.jar", "Class": "lang-pkgs"}]);
        }
        r
    }

    /// The tests' fixed "now".
    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-12T16:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn ago(d: chrono::Duration) -> String {
        (now() - d).to_rfc3339()
    }

    fn adapter(dir: &Path, max_age: Option<&str>) -> TrivyAdapter {
        let max = max_age.map_or(String::new(), |m| format!(", max_age: {m}"));
        let c: TrivyConfig = serde_norway::from_str(&format!(
            "{{name: trivy, reports_dir: '{}', cache_ttl: 0s{max}}}",
            dir.display()
        ))
        .unwrap();
        TrivyAdapter::build(&c, Arc::new(ManualClock::new(now()))).unwrap()
    }

    async fn collect(a: &TrivyAdapter) -> Result<Value, AdapterError> {
        a.collect(&request(), Instant::now() + Duration::from_secs(5))
            .await
            .map(|f| f.document)
    }

    #[tokio::test]
    async fn the_newest_bound_report_gives_counts_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let old = ago(chrono::Duration::days(3));
        let new = ago(chrono::Duration::hours(2));
        let write =
            |name: &str, v: &Value| std::fs::write(dir.path().join(name), v.to_string()).unwrap();
        write("old.json", &report(&old, Some("debian"), &["CRITICAL"]));
        write(
            "new.json",
            &report(&new, Some("debian"), &["HIGH", "MEDIUM", "LOW", "HIGH"]),
        );
        let mut other = report(&new, Some("debian"), &["CRITICAL"]);
        other["Metadata"]["RepoDigests"] = json!(["ghcr.io/acme/x@sha256:bbbb"]);
        write("other.json", &other);
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let f = collect(&adapter(dir.path(), Some("7d"))).await.unwrap();
        assert_eq!(
            f["vulnerabilities"],
            json!({"critical": 0, "high": 2, "medium": 1, "low": 1, "unknown": 0}),
            "{f}"
        );
        assert_eq!(f["images"][0]["report"], "new.json");
        // Every finding, in the common shape, next to the counts.
        assert_eq!(f["findings_summary"]["total"], 4, "{f}");
        assert_eq!(f["findings_summary"]["open"]["high"], 2);
        let first = &f["findings"][0];
        assert_eq!(first["id"], "CVE-2026-0");
        assert_eq!(first["severity"], "high");
        assert_eq!(first["tool_severity"], "HIGH");
        assert_eq!(first["tool"], "trivy");
        assert_eq!(first["subject"], DIGEST);
        assert_eq!(first["package"]["name"], "openssl");
        assert_eq!(first["location"]["uri"], "debian");
        assert_eq!(first["fix_available"], false);
        assert!(f["images"][0].get(FINDING_LIST).is_none(), "{f}");
        assert_eq!(f["images"][0]["trivy_version"], "0.69.3");
        assert_eq!(f["age_seconds"], 7200);
        // Stale evidence is a fault.
        let e = collect(&adapter(dir.path(), Some("1h"))).await.unwrap_err();
        assert!(e.to_string().contains("stale"), "{e}");
    }

    fn anyone() -> Submission {
        Submission {
            submitted_by: "ci".into(),
            submitted_at: now(),
            may_deploy: std::sync::Arc::new(|_| true),
            any_image: true,
        }
    }

    #[tokio::test]
    async fn a_report_for_a_repository_out_of_scope_is_refused_and_the_submitter_is_a_fact() {
        let dir = tempfile::tempdir().unwrap();
        let good = report(&now().to_rfc3339(), Some("debian"), &[]).to_string();
        let team_b = Submission {
            may_deploy: std::sync::Arc::new(|i: &ImageRef| i.repository.starts_with("team-b/")),
            ..anyone()
        };
        let e = ingest_report(
            dir.path(),
            DIGEST,
            good.as_bytes(),
            super::tests::now(),
            &team_b,
        )
        .unwrap_err();
        assert!(matches!(e, IngestError::OutOfScope { .. }), "{e}");
        assert!(e.to_string().contains("ghcr.io/acme/payments"), "{e}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        ingest_report(
            dir.path(),
            DIGEST,
            good.as_bytes(),
            super::tests::now(),
            &anyone(),
        )
        .unwrap();
        let f = collect(&adapter(dir.path(), None)).await.unwrap();
        assert_eq!(f["images"][0]["submitted_by"], "ci");
    }

    #[tokio::test]
    async fn all_findings_are_read_with_purls_aliases_and_fixes() {
        let dir = tempfile::tempdir().unwrap();
        let now = ago(chrono::Duration::hours(1));
        let mut r = report(&now, Some("alpine"), &["CRITICAL"; 45]);
        r["Results"][1]["Vulnerabilities"] = json!([{
            "VulnerabilityID": "GHSA-jfh8-c2jp-5v3q", "VendorIDs": ["CVE-2021-44228"],
            "PkgName": "org.apache.logging.log4j:log4j-core", "InstalledVersion": "2.14.1",
            "FixedVersion": "2.15.0, 2.12.2", "Status": "fixed", "Severity": "CRITICAL",
            "PkgIdentifier": {"PURL": "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"},
        }]);
        std::fs::write(dir.path().join("r.json"), r.to_string()).unwrap();
        let f = collect(&adapter(dir.path(), None)).await.unwrap();
        assert_eq!(f["vulnerabilities"]["critical"], 46);
        assert_eq!(f["findings"].as_array().unwrap().len(), 46);
        assert_eq!(f["images"][0]["findings"].as_array().unwrap().len(), 20);
        let log4j = &f["findings"][45];
        assert_eq!(
            log4j["aliases"],
            json!(["CVE-2021-44228", "GHSA-jfh8-c2jp-5v3q"])
        );
        assert_eq!(
            log4j["package"]["purl"],
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1"
        );
        assert_eq!(log4j["fixed_version"], "2.15.0, 2.12.2");
        assert_eq!(log4j["fix_available"], true);
        assert_eq!(log4j["location"]["uri"], "app.jar");
    }

    #[tokio::test]
    async fn ingested_reports_are_validated_stored_and_found() {
        let dir = tempfile::tempdir().unwrap();
        let now = ago(chrono::Duration::minutes(5));
        let good = report(&now, Some("debian"), &["CRITICAL"]).to_string();
        let name = ingest_report(
            dir.path(),
            DIGEST,
            good.as_bytes(),
            super::tests::now(),
            &anyone(),
        )
        .unwrap();
        assert!(
            name.starts_with("sha256-aaaa") && name.ends_with(".json"),
            "{name}"
        );
        let f = collect(&adapter(dir.path(), None)).await.unwrap();
        assert_eq!(f["vulnerabilities"]["critical"], 1);
        let other = format!("sha256:{}", "b".repeat(64));
        assert_eq!(
            ingest_report(
                dir.path(),
                &other,
                good.as_bytes(),
                super::tests::now(),
                &anyone()
            ),
            Err(IngestError::NotBound(other.clone()))
        );
        assert!(matches!(
            ingest_report(
                dir.path(),
                "latest",
                good.as_bytes(),
                super::tests::now(),
                &anyone()
            ),
            Err(IngestError::BadDigest(_))
        ));
        assert!(matches!(
            ingest_report(dir.path(), DIGEST, b"[]", super::tests::now(), &anyone()),
            Err(IngestError::NotJson(_))
        ));
        let mut v1 = report(&now, Some("debian"), &[]);
        v1["SchemaVersion"] = 1.into();
        assert!(matches!(
            ingest_report(
                dir.path(),
                DIGEST,
                v1.to_string().as_bytes(),
                super::tests::now(),
                &anyone()
            ),
            Err(IngestError::Schema(_))
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn no_os_or_no_results_is_not_zero_and_v1_or_unbound_reports_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let now = ago(chrono::Duration::minutes(1));
        std::fs::write(
            dir.path().join("r.json"),
            report(&now, None, &[]).to_string(),
        )
        .unwrap();
        let f = collect(&adapter(dir.path(), None)).await.unwrap();
        assert_eq!(f["images"][0]["vulnerabilities"], Value::Null);
        assert!(f.get("vulnerabilities").is_none(), "{f}");
        assert!(f.get("findings").is_none(), "unproven findings: {f}");

        let mut v1 = report(&now, Some("alpine"), &[]);
        v1["SchemaVersion"] = 1.into();
        std::fs::write(dir.path().join("r.json"), v1.to_string()).unwrap();
        let e = collect(&adapter(dir.path(), None)).await.unwrap_err();
        assert!(e.to_string().contains("SchemaVersion"), "{e}");

        let mut tag_only = report(&now, Some("alpine"), &[]);
        tag_only["Metadata"]["RepoDigests"] = json!([]);
        tag_only["Metadata"]["ImageID"] = DIGEST.into();
        std::fs::write(dir.path().join("r.json"), tag_only.to_string()).unwrap();
        let e = collect(&adapter(dir.path(), None)).await.unwrap_err();
        assert!(matches!(e, AdapterError::NotFound { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn a_report_from_the_future_is_refused_and_never_outranks_a_real_one() {
        let dir = tempfile::tempdir().unwrap();
        let clean_2099 = report("2099-01-01T00:00:00Z", Some("debian"), &[]).to_string();
        let e =
            ingest_report(dir.path(), DIGEST, clean_2099.as_bytes(), now(), &anyone()).unwrap_err();
        assert!(
            matches!(&e, IngestError::CreatedAt(w) if w.contains("in the future")),
            "{e}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        // Written straight into the directory, it is skipped: the real, later-read report wins.
        std::fs::write(dir.path().join("forged.json"), &clean_2099).unwrap();
        let real = report(
            &ago(chrono::Duration::hours(1)),
            Some("debian"),
            &["CRITICAL"],
        );
        std::fs::write(dir.path().join("real.json"), real.to_string()).unwrap();
        let f = collect(&adapter(dir.path(), None)).await.unwrap();
        assert_eq!(f["images"][0]["report"], "real.json", "{f}");
        assert_eq!(f["vulnerabilities"]["critical"], 1, "{f}");
        assert_eq!(f["age_seconds"], 3600);

        // Alone, it is no evidence at all, and the reason says why.
        std::fs::remove_file(dir.path().join("real.json")).unwrap();
        let e = collect(&adapter(dir.path(), None)).await.unwrap_err();
        assert!(matches!(e, AdapterError::NotFound { .. }), "{e:?}");
        assert!(e.to_string().contains("in the future"), "{e}");

        // Within the clock-skew allowance a report is accepted, with age zero.
        let ahead = (now() + chrono::Duration::minutes(2)).to_rfc3339();
        let slightly = report(&ahead, Some("debian"), &[]).to_string();
        ingest_report(dir.path(), DIGEST, slightly.as_bytes(), now(), &anyone()).unwrap();
        let f = collect(&adapter(dir.path(), None)).await.unwrap();
        assert_eq!(f["age_seconds"], 0, "{f}");
    }

    #[tokio::test]
    async fn a_missing_or_unparseable_created_at_is_refused_and_the_file_time_never_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut missing = report("x", Some("debian"), &[]);
        missing.as_object_mut().unwrap().remove("CreatedAt");
        let garbage = report("last tuesday", Some("debian"), &[]);
        for (r, why) in [
            (&missing, "no `CreatedAt`"),
            (&garbage, "not an RFC 3339 time"),
        ] {
            let e = ingest_report(
                dir.path(),
                DIGEST,
                r.to_string().as_bytes(),
                now(),
                &anyone(),
            )
            .unwrap_err();
            assert!(
                matches!(&e, IngestError::CreatedAt(w) if w.contains(why)),
                "{e}"
            );
        }
        // A file written just now (a fresh modification time) without `CreatedAt` is not fresh.
        std::fs::write(dir.path().join("copied.json"), missing.to_string()).unwrap();
        let e = collect(&adapter(dir.path(), None)).await.unwrap_err();
        assert!(matches!(e, AdapterError::NotFound { .. }), "{e:?}");
        assert!(
            e.to_string().contains("`copied.json` has no `CreatedAt`"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn max_age_defaults_to_a_day() {
        let dir = tempfile::tempdir().unwrap();
        let r = report(&ago(chrono::Duration::hours(25)), Some("debian"), &[]);
        std::fs::write(dir.path().join("r.json"), r.to_string()).unwrap();
        let e = collect(&adapter(dir.path(), None)).await.unwrap_err();
        assert!(e.to_string().contains("stale"), "{e}");
        assert!(e.to_string().contains("`max_age` 1day"), "{e}");
        collect(&adapter(dir.path(), Some("2d"))).await.unwrap();
    }
}
