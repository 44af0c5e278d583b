//! Aqua adapter (`kind: aqua`, Aqua Enterprise / Platform self-hosted console; contract §4): logs
//! in for a token, then reads each deployed image's scan result, vulnerability counts by
//! severity and the assurance-policy verdict, for the deployed **digest**.
//!
//! ```yaml
//! adapters:
//!   - kind: aqua
//!     name: aqua
//!     base_url: https://aqua.example.com
//!     auth: {type: login, username: administrator, password: {env: AQUA_PASSWORD}}
//!     # auth: {type: bearer, token: {file: /var/run/secrets/aqua-token}}
//!     registries:                 # image registry host → the registry's *name* in Aqua
//!       - {host: ghcr.io, name: GHCR}
//!       - {host: docker.io, name: Docker Hub}
//!     page_size: 50               # rows per page of the vulnerability list
//!     max_pages: 20
//!     timeout: 5s
//!     retries: 2
//!     max_concurrency: 16
//!     cache_ttl: 30s
//! ```
//!
//! Traps honoured: a result scanned from another digest than the deployed one (the tag was
//! re-pushed) is recorded as a mismatch (`digest_matches: false`, `passed: false`) and its
//! counts are not reported as the deployed image's; `passed` needs `scan_status == finished`,
//! no partial results, not `disallowed` and not `pending_disallowed`; a 401 renews the login
//! once, then fails; the registry in the URL is Aqua's registry name, not the host. The
//! vulnerability list (`/api/v2/risks/vulnerabilities`) is read page by page for the deployed
//! image and checked against the `count` its first page announced: a page that ends early is a
//! bad response, and a list Aqua marks partial or estimated leaves the counts unknown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::try_join_all;
use http::{HeaderMap, HeaderValue, Method, header};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::cache::FactCache;
use super::credentials::{AuthConfig, Credentials, sensitive};
use super::http_client::{HttpClient, HttpRequest, HttpResponse};
use super::instance::{self, invalid};
use super::{Adapter, AdapterBuildError, AdapterError, Facts};
use crate::clock::Clock;
use crate::domain::finding::summary;
use crate::domain::{
    CheckRequest, Finding, FindingKind, FindingSeverity, ImageRef, Location, Package,
};
use crate::secret::Secret;

/// Configuration of one `kind: aqua` instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AquaConfig {
    pub name: String,
    pub base_url: String,
    pub auth: AuthConfig,
    /// A list rather than a map: configuration keys containing `.` (host names) would be read
    /// as nested paths by the settings loader.
    #[serde(default)]
    pub registries: Vec<RegistryName>,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    #[serde(default = "instance::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "instance::default_retries")]
    pub retries: u32,
    #[serde(default = "instance::default_max_concurrency")]
    pub max_concurrency: usize,
    #[serde(default = "instance::default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Trusted CAs beyond the system roots, and a client certificate for mTLS.
    #[serde(default)]
    pub tls: Option<crate::tls::ClientTlsConfig>,
}

fn default_page_size() -> u32 {
    50
}

fn default_max_pages() -> u32 {
    20
}

/// One image registry host and the name the Aqua console knows it by.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryName {
    pub host: String,
    pub name: String,
}

enum Auth {
    Static(HeaderValue),
    Login {
        username: String,
        password: Secret,
        token: Mutex<Option<HeaderValue>>,
    },
}

struct Inner {
    name: String,
    base: Url,
    auth: Auth,
    registries: BTreeMap<String, String>,
    client: HttpClient,
    timeout: Duration,
    page_size: u32,
    max_pages: u32,
}

/// A built `kind: aqua` adapter.
pub struct AquaAdapter {
    inner: Arc<Inner>,
    cache: FactCache<Facts>,
}

impl std::fmt::Debug for AquaAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AquaAdapter")
            .field("name", &self.inner.name)
            .field("base_url", &self.inner.base.as_str())
            .finish_non_exhaustive()
    }
}

impl AquaAdapter {
    pub fn build(config: &AquaConfig, clock: Arc<dyn Clock>) -> Result<Self, AdapterBuildError> {
        let name = &config.name;
        let base = instance::base_url(name, &config.base_url)?;
        let auth = match (
            &config.auth,
            config
                .auth
                .resolve()
                .map_err(|e| invalid(name, "auth", e))?,
        ) {
            (AuthConfig::Bearer { .. }, Credentials::Header(h)) => Auth::Static(h),
            (_, Credentials::Login { username, password }) => Auth::Login {
                username,
                password,
                token: Mutex::new(None),
            },
            _ => {
                return Err(invalid(
                    name,
                    "auth.type",
                    "Aqua takes `login` (user and password for /api/v1/login) or `bearer`",
                ));
            }
        };
        if config.page_size == 0 || config.page_size > 1000 || config.max_pages == 0 {
            return Err(invalid(
                name,
                "page_size",
                "`page_size` must be 1 to 1000 and `max_pages` at least 1",
            ));
        }
        let client = instance::client(
            name,
            config.timeout,
            config.retries,
            config.max_concurrency,
            config.tls.as_ref(),
            clock,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.clone(),
                base,
                auth,
                registries: config
                    .registries
                    .iter()
                    .map(|r| (r.host.clone(), r.name.clone()))
                    .collect(),
                client,
                timeout: config.timeout,
                page_size: config.page_size,
                max_pages: config.max_pages,
            }),
            cache: FactCache::new(config.cache_ttl),
        })
    }
}

#[async_trait]
impl Adapter for AquaAdapter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "aqua"
    }

    async fn collect(
        &self,
        request: &CheckRequest,
        deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let deadline = instance::call_deadline(deadline, self.inner.timeout);
        let lookups = request.images.iter().map(|image| {
            let image = image.clone();
            let key = image.to_string();
            let inner = Arc::clone(&self.inner);
            async move {
                self.cache
                    .get_or_fetch(&key, async move { inner.image(&image, deadline).await })
                    .await
            }
        });
        let images = try_join_all(lookups).await?;
        // Each lookup already handed out its own copy (the cache's); the trail is the last one's.
        let (url, excerpt) = images
            .last()
            .map_or((None, None), |f| (f.url.clone(), f.excerpt.clone()));
        let mut facts: Vec<Value> = images.into_iter().map(|f| f.document).collect();
        let lists: Vec<Option<Vec<Finding>>> = facts
            .iter_mut()
            .map(|f| {
                f.as_object_mut()
                    .and_then(|o| o.remove(FINDING_LIST))
                    .and_then(|l| serde_json::from_value(l).ok())
            })
            .collect();
        let mut document = json!({
            "images": facts,
            "all_passed": !facts.is_empty() && facts.iter().all(|f| f["passed"] == true),
            "digest_mismatch": facts.iter().any(|f| f["digest_matches"] != true),
        });
        // Counts only when every image's result is for the deployed digest and complete.
        let mut total = json!({"critical": 0, "high": 0, "medium": 0, "low": 0, "negligible": 0});
        let trusted = facts.iter().all(|f| f["vulnerabilities"].is_object());
        if trusted && !facts.is_empty() {
            for f in &facts {
                for s in ["critical", "high", "medium", "low", "negligible"] {
                    let n = total[s].as_u64().unwrap_or(0)
                        + f["vulnerabilities"][s].as_u64().unwrap_or(0);
                    total[s] = n.into();
                }
            }
            document["vulnerabilities"] = total;
        }
        // Findings only when every image's listing was read in full.
        if !lists.is_empty() && lists.iter().all(Option::is_some) {
            let all: Vec<Finding> = lists.into_iter().flatten().flatten().collect();
            document["findings_summary"] = summary(&all);
            document["findings"] = serde_json::to_value(all).unwrap_or(Value::Null);
        }
        Ok(Facts {
            document,
            url,
            excerpt,
        })
    }
}

/// The per-image key holding the image's findings until `collect` gathers them.
const FINDING_LIST: &str = "finding_list";

/// A purl for the package formats whose purl needs no namespace Aqua does not give.
fn purl(format: &str, name: &str, version: &str) -> Option<String> {
    let ty = match format {
        "npm" => "npm",
        "python" | "pypi" => "pypi",
        "gem" | "gemspec" => "gem",
        "go" | "gobinary" | "gomod" => "golang",
        "cargo" | "rust" => "cargo",
        "nuget" => "nuget",
        _ => return None,
    };
    (!name.is_empty() && !version.is_empty()).then(|| format!("pkg:{ty}/{name}@{version}"))
}

/// One `/api/v2/risks/vulnerabilities` row in the common finding shape (contract §9).
fn finding(row: &Value, digest: &str) -> Finding {
    let label = row["aqua_severity"].as_str().unwrap_or("unknown");
    let mut f = Finding::new(
        FindingKind::Vulnerability,
        row["name"].as_str().unwrap_or_default(),
        "aqua",
        FindingSeverity::from_label(label),
    );
    f.tool_severity = Some(label.to_string());
    f.subject = Some(digest.to_string());
    let r = &row["resource"];
    f.package = r["name"].as_str().map(|name| {
        let version = r["version"].as_str().filter(|v| !v.is_empty());
        Package {
            name: name.to_string(),
            version: version.map(str::to_string),
            purl: purl(
                r["format"].as_str().unwrap_or_default(),
                name,
                version.unwrap_or_default(),
            ),
        }
    });
    f.location = r["path"]
        .as_str()
        .filter(|p| !p.is_empty())
        .map(|p| Location {
            uri: Some(p.to_string()),
            ..Location::default()
        });
    f.fixed_version = row["fix_version"]
        .as_str()
        .filter(|v| !v.is_empty())
        .map(str::to_string);
    f.fix_available = f.fixed_version.is_some();
    f
}

impl Inner {
    async fn token(&self, renew: bool, deadline: Instant) -> Result<HeaderValue, AdapterError> {
        let (username, password, slot) = match &self.auth {
            Auth::Static(h) => return Ok(h.clone()),
            Auth::Login {
                username,
                password,
                token,
            } => (username, password, token),
        };
        let mut slot = slot.lock().await;
        if let (Some(t), false) = (slot.as_ref(), renew) {
            return Ok(t.clone());
        }
        let url = instance::endpoint(&self.base, "api/v1/login")?;
        let mut req = HttpRequest::new(Method::POST, url);
        req.body = Some(json!({"id": username, "password": password.expose()}));
        req.body_secrets = vec![password.clone()];
        req.expect_status = Some(vec![200]);
        // A login changes nothing on the console, so a 502/503/504 may be retried.
        req.idempotent = true;
        let response = self.client.send(&req, deadline).await?;
        let token = response.json["token"]
            .as_str()
            .ok_or_else(|| AdapterError::BadResponse {
                detail: "the login answer has no `token`".into(),
            })?;
        let value = sensitive(&format!("Bearer {token}"))
            .map_err(|detail| AdapterError::BadResponse { detail })?;
        *slot = Some(value.clone());
        Ok(value)
    }

    async fn get(&self, url: &Url, deadline: Instant) -> Result<HttpResponse, AdapterError> {
        let mut renewed = false;
        loop {
            let mut req = HttpRequest::get(url.clone());
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, self.token(renewed, deadline).await?);
            req.headers = headers;
            match self.client.send(&req, deadline).await {
                // A login token expired: log in again once, then give up.
                Err(AdapterError::Auth { status: 401 })
                    if !renewed && matches!(self.auth, Auth::Login { .. }) =>
                {
                    renewed = true;
                }
                other => return other,
            }
        }
    }

    async fn image(&self, image: &ImageRef, deadline: Instant) -> Result<Facts, AdapterError> {
        let registry =
            self.registries
                .get(&image.registry)
                .ok_or_else(|| AdapterError::NotFound {
                    detail: format!(
                        "no Aqua registry name is configured for `{}` (add it under `registries`)",
                        image.registry
                    ),
                })?;
        let tag = image.tag.as_deref().ok_or_else(|| AdapterError::NotFound {
            detail: format!("`{image}` has no tag, and Aqua looks images up by tag"),
        })?;
        let mut url = instance::endpoint(&self.base, "api/v2/images")?;
        {
            let mut segments = url
                .path_segments_mut()
                .map_err(|()| AdapterError::BadResponse {
                    detail: "the base url cannot take a path".into(),
                })?;
            segments.pop_if_empty().push(registry);
            // The repository keeps its `/`: the console reads the first segment as the
            // registry and the last as the tag.
            segments.extend(image.repository.split('/'));
            segments.push(tag);
        }
        let response = self.get(&url, deadline).await.map_err(|e| match e {
            AdapterError::NotFound { .. } => AdapterError::NotFound {
                detail: format!(
                    "Aqua has no scan of `{}:{tag}` in registry `{registry}`",
                    image.repository
                ),
            },
            other => other,
        })?;
        let j = &response.json;
        let scanned = j["digest"].as_str().unwrap_or_default();
        let repo_digests: Vec<&str> = j["metadata"]["repo_digests"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let deployed = image.digest.as_ref().map(|d| d.as_str().to_string());
        let matches = deployed.as_deref().is_some_and(|d| {
            scanned == d || repo_digests.iter().any(|r| r.ends_with(&format!("@{d}")))
        });
        let status = j["scan_status"]
            .as_str()
            .ok_or_else(|| AdapterError::BadResponse {
                detail: "`scan_status` is missing from the image".into(),
            })?;
        let flag = |k: &str| j[k].as_bool().unwrap_or(false);
        let finished = status == "finished";
        let partial = flag("partial_results");
        let disallowed = flag("disallowed") || j["assurance_results"]["disallowed"] == true;
        let counts = [
            "crit_vulns",
            "high_vulns",
            "med_vulns",
            "low_vulns",
            "neg_vulns",
        ]
        .map(|k| j[k].as_u64());
        // The list is read only for a complete scan of the deployed digest; anything else does
        // not pass whatever it lists.
        let list = if finished && matches && !partial {
            Some(
                self.vulnerability_list(
                    registry,
                    &format!("{}:{tag}", image.repository),
                    deployed.as_deref().unwrap_or_default(),
                    deadline,
                )
                .await?,
            )
        } else {
            None
        };
        let list_trusted = list.as_ref().is_some_and(|l| l.trusted);
        let vulnerabilities = match (finished && matches && !partial && list_trusted, counts) {
            (true, [Some(c), Some(h), Some(m), Some(l), n]) => json!({
                "critical": c, "high": h, "medium": m, "low": l, "negligible": n.unwrap_or(0),
                "total": j["vulns_found"],
            }),
            _ => Value::Null,
        };
        let failed_checks: Vec<Value> = j["assurance_results"]["checks_performed"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|c| c["failed"] == true)
                    .map(|c| c["policy_name"].clone())
                    .collect()
            })
            .unwrap_or_default();
        let passed = finished
            && matches
            && !partial
            && !disallowed
            && !flag("pending_disallowed")
            && vulnerabilities.is_object();
        // The findings behind the counts, only for a complete scan of the deployed digest.
        let findings = match (vulnerabilities.is_object(), &list) {
            (true, Some(l)) => serde_json::to_value(&l.findings).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        Ok(Facts {
            document: json!({
                "reference": image.to_string(),
                "registry": registry,
                "repository": image.repository,
                "tag": tag,
                "deployed_digest": deployed,
                "scanned_digest": scanned,
                "digest_matches": matches,
                "scan_status": status,
                "scan_date": j["scan_date"],
                "partial_results": partial,
                "disallowed": disallowed,
                "pending_disallowed": flag("pending_disallowed"),
                "whitelisted": flag("whitelisted"),
                "permission_author": j["permission_author"],
                "failed_checks": failed_checks,
                "vulnerabilities": vulnerabilities,
                "vulnerability_list": list.map(|l| json!({
                    "count": l.rows.len(),
                    "trusted": l.trusted,
                    "items": l.rows,
                })),
                "passed": passed,
                FINDING_LIST: findings,
            }),
            url: Some(response.url),
            excerpt: Some(response.excerpt),
        })
    }

    /// Every page of the image's vulnerability list, checked against the `count` the pages
    /// announced: an empty page before that many rows is a short read, not the whole list.
    async fn vulnerability_list(
        &self,
        registry: &str,
        image_name: &str,
        digest: &str,
        deadline: Instant,
    ) -> Result<VulnerabilityList, AdapterError> {
        let size = self.page_size.to_string();
        let mut rows = Vec::new();
        let mut findings = Vec::new();
        let mut announced: u64 = 0;
        let mut trusted = true;
        for page in 1..=self.max_pages {
            let mut url = instance::endpoint(&self.base, "api/v2/risks/vulnerabilities")?;
            url.query_pairs_mut().extend_pairs([
                ("registry_name", registry),
                ("image_name", image_name),
                ("image_name_exact_match", "true"),
                ("show_negligible", "true"),
                ("include_vpatch_info", "true"),
                ("hide_base_image", "false"),
                ("page", &page.to_string()),
                ("pagesize", &size),
            ]);
            let response = self.get(&url, deadline).await?;
            let j = &response.json;
            let count = j["count"]
                .as_u64()
                .ok_or_else(|| AdapterError::BadResponse {
                    detail: "`count` is missing from the vulnerability list".into(),
                })?;
            let result = j["result"]
                .as_array()
                .ok_or_else(|| AdapterError::BadResponse {
                    detail: "`result` is missing from the vulnerability list".into(),
                })?;
            announced = announced.max(count);
            trusted &= j["is_partial_data"] != true && j["is_estimated_count"] != true;
            for r in result {
                // A row of another digest than the deployed one is not this image's finding.
                if r["image_digest"].as_str().is_none_or(|d| d == digest) {
                    findings.push(finding(r, digest));
                }
                rows.push(json!({
                    "id": r["name"],
                    "severity": r["aqua_severity"],
                    "package": r["resource"]["name"],
                    "installed_version": r["resource"]["version"],
                    "fix_version": r["fix_version"],
                }));
            }
            let read = rows.len() as u64;
            if read >= announced {
                return Ok(VulnerabilityList {
                    rows,
                    trusted,
                    findings,
                });
            }
            if result.is_empty() {
                return Err(AdapterError::BadResponse {
                    detail: format!(
                        "Aqua announced {announced} vulnerabilities for `{image_name}` but page {page} came back empty after {read}: pagination ended early"
                    ),
                });
            }
        }
        Err(AdapterError::BadResponse {
            detail: format!(
                "the vulnerability list of `{image_name}` has more than {} pages of {}; raise `max_pages`",
                self.max_pages, self.page_size
            ),
        })
    }
}

/// The rows of an image's vulnerability list, and whether Aqua vouches for them (not partial,
/// not an estimate).
struct VulnerabilityList {
    rows: Vec<Value>,
    trusted: bool,
    /// The same rows in the common finding shape.
    findings: Vec<Finding>,
}
