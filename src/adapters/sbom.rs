//! SBOM adapter (`kind: sbom`; contract `source-and-findings.md` §5–§7): CycloneDX JSON 1.4–1.6
//! and SPDX JSON 2.3 SBOMs, OpenVEX and CycloneDX VEX documents, submitted for an image digest
//! through the evidence API and kept in a directory; facts are the components (name, version,
//! purl, licenses), the vulnerabilities the SBOM carries as common findings, and what VEX did.
//!
//! ```yaml
//! adapters:
//!   - kind: sbom
//!     name: sbom
//!     documents_dir: /var/lib/portcullis/sbom  # POST /v1/evidence/sbom/{digest} stores here
//!     max_age: 30d                  # an older SBOM is a fault, not evidence (default 30d)
//!     require_justification: true  # `not_affected` without a justification label is ignored
//!     cache_ttl: 30s
//! ```
//!
//! Traps honoured: a document binds to an image only when its subject names the digest
//! (CycloneDX `metadata.component`, the SPDX packages the document describes, OpenVEX products);
//! a document without a creation time, or dated in the future, is refused; SPDX `NOASSERTION`
//! is an unknown license, never an allowed one; nested CycloneDX components and
//! `metadata.component` are walked; an SBOM without a `vulnerabilities` section gives no
//! findings facts (unknown, not zero); CycloneDX `analysis` covers only its `affects[]`.

mod cyclonedx;
mod spdx;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::cache::FactCache;
use super::instance::{self, invalid};
use super::trivy::IngestError;
use super::vex::{self, Statement, VexReport};
use super::{Adapter, AdapterBuildError, AdapterError, Facts, Submission};
use crate::clock::Clock;
use crate::domain::finding::summary;
use crate::domain::{CheckRequest, Digest, Finding, ImageRef};

/// Largest document accepted or read.
const MAX_DOCUMENT_BYTES: u64 = 64 * 1024 * 1024;
/// How far in the future a document's time may be (clock skew between CI and the gate).
const CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(5);

fn default_max_age() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}

fn default_true() -> bool {
    true
}

/// Configuration of one `kind: sbom` instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SbomConfig {
    pub name: String,
    pub documents_dir: PathBuf,
    #[serde(default = "default_max_age", with = "humantime_serde")]
    pub max_age: Duration,
    #[serde(default = "default_true")]
    pub require_justification: bool,
    #[serde(default = "instance::default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
}

/// A component of an SBOM, as facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Component {
    pub name: String,
    /// CycloneDX `group`, Maven groupId and the like.
    pub group: Option<String>,
    pub version: Option<String>,
    pub purl: Option<String>,
    /// License ids, names or expressions; empty when the SBOM gives none or `NOASSERTION`.
    pub licenses: Vec<String>,
    /// `concluded`, `declared` (SPDX) or `sbom` (CycloneDX); `None` when unknown.
    pub license_source: Option<&'static str>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub bom_ref: Option<String>,
    pub subject: String,
}

/// One parsed document stored for a digest.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    pub file: String,
    pub format: &'static str,
    pub spec_version: String,
    pub created: DateTime<Utc>,
    pub tools: Vec<String>,
    /// `Some` for SBOMs (CycloneDX with `components`, SPDX); `None` for VEX-only documents.
    pub components: Option<Vec<Component>>,
    /// `Some` when the SBOM carries a `vulnerabilities` section.
    pub findings: Option<Vec<Finding>>,
    pub statements: Vec<Statement>,
    /// The identities of the subject that names the digest (purls, names, references): what
    /// ties the document to an image repository for the submitter's scope.
    pub subject_ids: Vec<String>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    dir: PathBuf,
    max_age: Duration,
    require_justification: bool,
}

/// A built `kind: sbom` adapter.
pub struct SbomAdapter {
    inner: Arc<Inner>,
    cache: FactCache<Value>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SbomAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SbomAdapter")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl SbomAdapter {
    pub fn build(config: &SbomConfig, clock: Arc<dyn Clock>) -> Result<Self, AdapterBuildError> {
        if !config.documents_dir.is_dir() {
            return Err(invalid(
                &config.name,
                "documents_dir",
                format!("`{}` is not a directory", config.documents_dir.display()),
            ));
        }
        Ok(Self {
            inner: Arc::new(Inner {
                name: config.name.clone(),
                dir: config.documents_dir.clone(),
                max_age: config.max_age,
                require_justification: config.require_justification,
            }),
            cache: FactCache::new(config.cache_ttl),
            clock,
        })
    }
}

#[async_trait]
impl Adapter for SbomAdapter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "sbom"
    }

    fn ingest(
        &self,
        digest: &Digest,
        report: &[u8],
        submission: &Submission,
    ) -> Option<Result<String, IngestError>> {
        let stored = ingest_document(
            &self.inner.dir,
            digest.as_str(),
            report,
            self.clock.now(),
            submission,
        );
        if stored.is_ok() {
            self.cache.invalidate(digest.as_str());
        }
        Some(stored)
    }

    async fn collect(
        &self,
        request: &CheckRequest,
        _deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        if request.images.is_empty() {
            return Err(AdapterError::NotFound {
                detail: "the check names no image, so no SBOM can be bound to it".into(),
            });
        }
        let now = self.clock.now();
        let mut images = Vec::new();
        for image in &request.images {
            let digest = image
                .digest
                .as_ref()
                .map(|d| d.as_str().to_string())
                .ok_or_else(|| AdapterError::NotFound {
                    detail: format!("`{image}` has no digest, so no SBOM can be bound to it"),
                })?;
            let inner = Arc::clone(&self.inner);
            let key = digest.clone();
            let fact = self
                .cache
                .get_or_fetch(&key, async move {
                    tokio::task::spawn_blocking(move || inner.image_facts(&digest))
                        .await
                        .map_err(|e| AdapterError::BadResponse {
                            detail: format!("reading the documents failed: {e}"),
                        })?
                })
                .await?;
            images.push(fact);
        }
        document(images, now, self.inner.max_age, &self.inner.dir)
    }
}

/// The source-wide facts from the per-image facts: ages checked against `max_age` at `now`,
/// components, licenses and findings gathered.
fn document(
    mut images: Vec<Value>,
    now: DateTime<Utc>,
    max_age: Duration,
    dir: &Path,
) -> Result<Facts, AdapterError> {
    let mut components = Vec::new();
    let mut findings: Option<Vec<Value>> = Some(Vec::new());
    let mut vex_total =
        json!({"documents": [], "statements": 0, "applied": 0, "unjustified": 0, "ignored": []});
    let mut oldest: Option<DateTime<Utc>> = None;
    for f in &mut images {
        let created = f["created_at"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| AdapterError::BadResponse {
                detail: "the SBOM has no creation time".into(),
            })?;
        if created > now + CLOCK_SKEW {
            return Err(AdapterError::BadResponse {
                detail: format!(
                    "the SBOM `{}` is dated in the future ({created}); it proves nothing",
                    f["document"].as_str().unwrap_or("?")
                ),
            });
        }
        let age = (now - created).num_seconds().max(0);
        if u64::try_from(age).unwrap_or(0) > max_age.as_secs() {
            return Err(AdapterError::BadResponse {
                detail: format!(
                    "the SBOM for `{}` is stale: {} old, more than `max_age` {}",
                    f["digest"].as_str().unwrap_or("?"),
                    humantime::format_duration(Duration::from_secs(
                        u64::try_from(age).unwrap_or(0)
                    )),
                    humantime::format_duration(max_age)
                ),
            });
        }
        f["age_seconds"] = age.into();
        oldest = Some(oldest.map_or(created, |o| o.min(created)));
        let Some(o) = f.as_object_mut() else { continue };
        if let Some(Value::Array(c)) = o.remove("components") {
            components.extend(c);
        }
        match (o.remove("findings"), findings.as_mut()) {
            (Some(Value::Array(list)), Some(all)) => all.extend(list),
            _ => findings = None,
        }
        if let Some(v) = o.get("vex") {
            for k in ["statements", "applied", "unjustified"] {
                vex_total[k] =
                    (vex_total[k].as_u64().unwrap_or(0) + v[k].as_u64().unwrap_or(0)).into();
            }
            for k in ["documents", "ignored"] {
                if let (Some(dst), Some(src)) = (vex_total[k].as_array().cloned(), v[k].as_array())
                {
                    vex_total[k] = dst.into_iter().chain(src.iter().cloned()).collect();
                }
            }
        }
    }
    let licenses: BTreeSet<&str> = components
        .iter()
        .flat_map(|c| c["licenses"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let unlicensed = components
        .iter()
        .filter(|c| c["licenses"].as_array().is_none_or(Vec::is_empty))
        .count();
    let mut document = json!({
        "images": images,
        "component_count": components.len(),
        "licenses": licenses,
        "components_without_license": unlicensed,
        "vex": vex_total,
        "created_at": oldest.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        "age_seconds": oldest.map(|t| (now - t).num_seconds().max(0)),
    });
    document["components"] = components.into();
    if let Some(list) = findings {
        let typed: Vec<Finding> = list
            .iter()
            .filter_map(|f| serde_json::from_value(f.clone()).ok())
            .collect();
        document["findings_summary"] = summary(&typed);
        document["findings"] = list.into();
    }
    Ok(Facts {
        excerpt: Some(format!(
            "{} components, findings {}",
            document["component_count"], document["findings_summary"]
        )),
        url: Some(format!("file://{}", dir.display())),
        document,
    })
}

impl Inner {
    /// Facts for one digest: the newest SBOM bound to it, with every VEX statement stored for
    /// it applied to the SBOM's findings.
    fn image_facts(&self, digest: &str) -> Result<Value, AdapterError> {
        let docs = stored(&self.dir, digest);
        let sbom = docs
            .iter()
            .filter(|d| d.components.is_some())
            .max_by_key(|d| d.created)
            .ok_or_else(|| AdapterError::NotFound {
                detail: format!(
                    "no SBOM (CycloneDX 1.4–1.6 or SPDX 2.3) was submitted for `{digest}`"
                ),
            })?;
        let statements: Vec<Statement> = docs
            .iter()
            .flat_map(|d| d.statements.iter().cloned())
            .collect();
        let mut report = VexReport {
            documents: docs
                .iter()
                .filter(|d| !d.statements.is_empty())
                .map(|d| d.file.clone())
                .collect(),
            ..VexReport::default()
        };
        let findings = sbom.findings.clone().map(|mut f| {
            vex::apply(
                &mut f,
                &statements,
                digest,
                self.require_justification,
                &mut report,
            );
            f
        });
        Ok(json!({
            "digest": digest,
            "document": sbom.file,
            "format": sbom.format,
            "spec_version": sbom.spec_version,
            "created_at": sbom.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "tools": sbom.tools,
            "has_vulnerabilities": findings.is_some(),
            "components": sbom.components,
            "findings": findings,
            "vex": report,
        }))
    }
}

/// Every readable document stored in `dir` for `digest`, parsed.
pub(crate) fn stored(dir: &Path, digest: &str) -> Vec<Parsed> {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let prefix = format!("sha256-{hex}-");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(&prefix) && n.ends_with(".json"))
        .collect();
    names.sort();
    let docs: Vec<(String, Value)> = names
        .into_iter()
        .filter_map(|name| {
            let path = dir.join(&name);
            let meta = std::fs::metadata(&path).ok()?;
            if meta.len() > MAX_DOCUMENT_BYTES {
                return None;
            }
            let v: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            Some((name, v))
        })
        .collect();
    // CycloneDX bom-links (`urn:cdx:<serial>/<version>#<bom-ref>`) resolve into any stored BOM.
    let index = cyclonedx::RefIndex::new(docs.iter().map(|(_, v)| v));
    docs.iter()
        .filter_map(|(name, v)| parse(v, name, digest, &index).ok())
        .collect()
}

/// Parses one document of any accepted format and checks it names `digest`.
fn parse(
    doc: &Value,
    file: &str,
    digest: &str,
    index: &cyclonedx::RefIndex,
) -> Result<Parsed, String> {
    if !doc.is_object() {
        return Err("the document is not a json object".into());
    }
    if doc["bomFormat"] == "CycloneDX" {
        cyclonedx::parse(doc, file, digest, index)
    } else if doc.get("spdxVersion").is_some() {
        spdx::parse(doc, file, digest)
    } else if vex::is_openvex(doc) {
        let statements = vex::openvex(doc, file)?;
        if !statements
            .iter()
            .flat_map(|s| &s.products)
            .any(|p| vex::names_digest(p, digest))
        {
            return Err(format!(
                "no statement of the OpenVEX document is about `{digest}`; name the image (e.g. `pkg:oci/<name>@sha256%3A<hex>`) as a product"
            ));
        }
        let created = vex_time(doc)?;
        Ok(Parsed {
            file: file.to_string(),
            format: "openvex",
            spec_version: doc["@context"].as_str().unwrap_or_default().to_string(),
            created,
            tools: doc["tooling"]
                .as_str()
                .map(str::to_string)
                .into_iter()
                .collect(),
            components: None,
            findings: None,
            subject_ids: statements
                .iter()
                .flat_map(|s| &s.products)
                .filter(|p| vex::names_digest(p, digest))
                .cloned()
                .collect(),
            statements,
        })
    } else {
        Err("the document is not CycloneDX JSON (1.4–1.6), SPDX JSON 2.3 or OpenVEX".into())
    }
}

fn vex_time(doc: &Value) -> Result<DateTime<Utc>, String> {
    doc["timestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| "the OpenVEX document has no valid `timestamp`".into())
}

/// Validates a submitted document for `digest` and stores it in `dir` (atomically, as
/// `sha256-<hex>-<uuid>.json`). Returns the stored file's name.
///
/// Scope: a digest is content, not a name, so what ties the document to an image repository is
/// its own subject — an image reference (`ghcr.io/acme/payments@sha256:…`), a `pkg:oci` purl's
/// `repository_url` or a `pkg:docker` purl. The submitter's token must cover one of those
/// repositories; a document whose subject names no repository is accepted only from a token
/// whose image scope is not narrowed.
pub fn ingest_document(
    dir: &Path,
    digest: &str,
    body: &[u8],
    now: DateTime<Utc>,
    submission: &Submission,
) -> Result<String, IngestError> {
    if body.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(IngestError::TooLarge);
    }
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| IngestError::BadDigest(digest.chars().take(80).collect()))?;
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| IngestError::NotJson(e.to_string()))?;
    let index = cyclonedx::RefIndex::new(std::iter::once(&doc));
    let parsed = parse(&doc, "submitted", digest, &index).map_err(IngestError::Invalid)?;
    if parsed.created > now + CLOCK_SKEW {
        return Err(IngestError::Invalid(format!(
            "the document is dated {}, in the future; send it with its real creation time",
            parsed
                .created
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )));
    }
    let repositories: Vec<ImageRef> = parsed
        .subject_ids
        .iter()
        .filter_map(|id| subject_image(id))
        .collect();
    let in_scope = if repositories.is_empty() {
        submission.any_image
    } else {
        repositories.iter().any(|r| (submission.may_deploy)(r))
    };
    if !in_scope {
        return Err(IngestError::OutOfScope {
            digest: digest.to_string(),
            repositories: if repositories.is_empty() {
                "no image repository (its subject names none)".to_string()
            } else {
                repositories
                    .iter()
                    .map(|r| format!("`{}/{}`", r.registry, r.repository))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    }
    let name = format!("sha256-{hex}-{}.json", uuid::Uuid::now_v7().simple());
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, body).map_err(|e| IngestError::Io(e.kind().to_string()))?;
    std::fs::rename(&tmp, dir.join(&name)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        IngestError::Io(e.kind().to_string())
    })?;
    Ok(name)
}

/// The image repository one identity of a document's subject names, if any: an image reference
/// with a registry path, a `pkg:oci` purl with `repository_url`, or a `pkg:docker` purl
/// (`repository_url` or Docker Hub).
fn subject_image(id: &str) -> Option<ImageRef> {
    if id.starts_with("pkg:") {
        let (path, _, qualifiers) = vex::purl_parts(id)?;
        let repository_url =
            qualifiers
                .iter()
                .find(|(k, _)| k == "repository_url")
                .map(|(_, v)| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                });
        let reference = match (path.split_once('/')?, repository_url) {
            (("oci", _), Some(url)) => url,
            (("docker", name), Some(registry)) => format!("{registry}/{name}"),
            (("docker", name), None) => format!("docker.io/{name}"),
            _ => return None,
        };
        return ImageRef::parse(&reference).ok();
    }
    // A bare name (`payments`) is not a repository anyone can scope.
    if !id.contains('/') || id.contains(char::is_whitespace) {
        return None;
    }
    ImageRef::parse(id).ok()
}

#[cfg(test)]
mod tests;
