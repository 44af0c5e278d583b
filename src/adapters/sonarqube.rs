//! SonarQube adapter (`kind: sonarqube`): the quality-gate status of the deployed revision, with
//! its conditions as evidence (contract §1).
//!
//! ```yaml
//! adapters:
//!   - kind: sonarqube
//!     name: sonarqube                   # evidence namespace
//!     base_url: https://sonar.example.com   # a context path is fine
//!     auth: {type: bearer, token: {env: SONAR_TOKEN}}   # 10.0+; `token_as_login` before 10.0
//!     project_key: "{application}"      # template; default `{application}`
//!     analyses_page_size: 100           # `api/project_analyses/search` page size (1–500)
//!     analyses_max_pages: 5             # how far back to look for the deployed commit
//!     timeout: 5s                       # per call; the gate's deadline still wins
//!     retries: 2
//!     max_concurrency: 16
//!     cache_ttl: 30s                    # 0s: no caching (identical calls still coalesce)
//! ```
//!
//! Which analysis: the label `sonarqube_ce_task` (the `ceTaskId` the scanner wrote) is resolved
//! through `api/ce/task` (polled while PENDING / IN_PROGRESS) to an `analysisId`, which closes
//! the race with a report the Compute Engine has not processed; otherwise the project's status
//! for the pull request (label `sonarqube_pull_request`) or for the first source's branch. Only
//! with neither is the main branch asked, and the facts say so (`selector`).
//!
//! The deployed commit: when the check names one (`sources[0].commit`), the analysis used must be
//! of that commit. The branch's (or pull request's) analyses are read newest first from
//! `api/project_analyses/search` and the gate is read for the analysis whose `revision` is the
//! deployed commit (`project_status?analysisId=`); an analysis named by a compute-engine task
//! must have that revision too. No analysis of the commit leaves the quality gate missing with
//! the reason, never the branch's latest status. The pages are checked against the `total`
//! they announced: a page that ends early is a bad response.
//!
//! Traps honoured: `NONE` and `WARN` are not a pass (`passed` is true only for `OK`); a 404 for a
//! branch or pull request names the edition (Community has only the main branch) and never
//! falls back to the main branch; 401 bodies are not parsed; numbers stay strings.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, header};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::cache::FactCache;
use super::credentials::{AuthConfig, Credentials};
use super::http_client::{HttpClient, HttpRequest, HttpResponse};
use super::instance::{self, invalid};
use super::template::{Encoding, Template};
use super::{Adapter, AdapterBuildError, AdapterError, Facts};
use crate::clock::Clock;
use crate::domain::CheckRequest;

/// Label naming the scanner's compute-engine task (`ceTaskId` in `report-task.txt`).
pub const CE_TASK_LABEL: &str = "sonarqube_ce_task";
/// Label naming the pull request analysed.
pub const PULL_REQUEST_LABEL: &str = "sonarqube_pull_request";
/// How often a pending compute-engine task is polled.
const CE_POLL: Duration = Duration::from_millis(200);

/// Configuration of one `kind: sonarqube` instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SonarQubeConfig {
    pub name: String,
    pub base_url: String,
    pub auth: AuthConfig,
    #[serde(default = "default_project_key")]
    pub project_key: String,
    #[serde(default = "default_analyses_page_size")]
    pub analyses_page_size: u32,
    #[serde(default = "default_analyses_max_pages")]
    pub analyses_max_pages: u32,
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

fn default_project_key() -> String {
    "{application}".into()
}

fn default_analyses_page_size() -> u32 {
    100
}

fn default_analyses_max_pages() -> u32 {
    5
}

/// Shortest commit prefix matched against an analysis revision.
const MIN_COMMIT_PREFIX: usize = 7;

struct Inner {
    name: String,
    base: Url,
    headers: HeaderMap,
    client: HttpClient,
    timeout: Duration,
    page_size: u32,
    max_pages: u32,
}

/// A built `kind: sonarqube` adapter.
pub struct SonarQubeAdapter {
    inner: Arc<Inner>,
    project_key: Template,
    cache: FactCache<Facts>,
}

impl std::fmt::Debug for SonarQubeAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SonarQubeAdapter")
            .field("name", &self.inner.name)
            .field("base_url", &self.inner.base.as_str())
            .finish_non_exhaustive()
    }
}

/// What to ask SonarQube for.
#[derive(Debug, Clone)]
enum Selector {
    Task(String),
    PullRequest(String, String),
    Branch(String, String),
    MainBranch(String),
}

impl SonarQubeAdapter {
    pub fn build(
        config: &SonarQubeConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AdapterBuildError> {
        let name = &config.name;
        let base = instance::base_url(name, &config.base_url)?;
        let mut headers = HeaderMap::new();
        match config
            .auth
            .resolve()
            .map_err(|e| invalid(name, "auth", e))?
        {
            Credentials::Header(h) => {
                headers.insert(header::AUTHORIZATION, h);
            }
            Credentials::Login { .. } | Credentials::Oauth(_) => {
                return Err(invalid(
                    name,
                    "auth.type",
                    "SonarQube takes `bearer` (10.0+) or `token_as_login` (before 10.0), or `basic`",
                ));
            }
        }
        let project_key =
            Template::parse(&config.project_key).map_err(|e| invalid(name, "project_key", e))?;
        if !(1..=500).contains(&config.analyses_page_size) || config.analyses_max_pages == 0 {
            return Err(invalid(
                name,
                "analyses_page_size",
                "`analyses_page_size` must be 1 to 500 and `analyses_max_pages` at least 1",
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
                headers,
                client,
                timeout: config.timeout,
                page_size: config.analyses_page_size,
                max_pages: config.analyses_max_pages,
            }),
            project_key,
            cache: FactCache::new(config.cache_ttl),
        })
    }

    fn selector(&self, request: &CheckRequest) -> Result<Selector, AdapterError> {
        if let Some(task) = request.labels.get(CE_TASK_LABEL) {
            return Ok(Selector::Task(task.clone()));
        }
        let project = self
            .project_key
            .render(request, Encoding::Raw)
            .map_err(|e| AdapterError::NotFound {
                detail: format!("no SonarQube project key: {e}"),
            })?;
        if let Some(pr) = request.labels.get(PULL_REQUEST_LABEL) {
            return Ok(Selector::PullRequest(project, pr.clone()));
        }
        match request.sources.first().and_then(|s| s.branch.clone()) {
            Some(branch) => Ok(Selector::Branch(project, branch)),
            None => Ok(Selector::MainBranch(project)),
        }
    }
}

#[async_trait]
impl Adapter for SonarQubeAdapter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "sonarqube"
    }

    async fn collect(
        &self,
        request: &CheckRequest,
        deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let selector = self.selector(request)?;
        let revision = request
            .sources
            .first()
            .and_then(|s| s.commit.as_ref())
            .map(|c| c.to_string().to_ascii_lowercase());
        let key = format!("{selector:?} {revision:?}");
        let inner = Arc::clone(&self.inner);
        let deadline = instance::call_deadline(deadline, self.inner.timeout);
        self.cache
            .get_or_fetch(&key, async move {
                inner.fetch(selector, revision, deadline).await
            })
            .await
    }
}

impl Inner {
    async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        deadline: Instant,
    ) -> Result<HttpResponse, AdapterError> {
        let mut url = instance::endpoint(&self.base, path)?;
        url.query_pairs_mut().extend_pairs(query);
        let mut req = HttpRequest::get(url);
        req.headers = self.headers.clone();
        // 404 carries the reason (project, branch or pull request unknown): read it.
        req.expect_status = Some(vec![200, 404]);
        self.client.send(&req, deadline).await
    }

    async fn fetch(
        &self,
        selector: Selector,
        revision: Option<String>,
        deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let (query, selector_name, project, branch, pr, task, analysis) = match &selector {
            Selector::Task(task) => {
                let (analysis, project, scope) = self.resolve_task(task, deadline).await?;
                if let Some(rev) = &revision {
                    let found = self
                        .find_analysis(&project, &scope, deadline, |a| {
                            a["key"] == analysis.as_str()
                        })
                        .await?;
                    let analysed = found
                        .as_ref()
                        .and_then(|a| a["revision"].as_str())
                        .unwrap_or_default();
                    if !revision_matches(analysed, rev) {
                        return Err(AdapterError::NotFound {
                            detail: if analysed.is_empty() {
                                format!(
                                    "SonarQube does not say which commit analysis `{analysis}` (task `{task}`) is of, so it cannot stand for the deployed commit `{rev}`"
                                )
                            } else {
                                format!(
                                    "analysis `{analysis}` (task `{task}`) is of commit `{analysed}`, not the deployed commit `{rev}`"
                                )
                            },
                        });
                    }
                }
                (
                    vec![("analysisId", analysis.clone())],
                    "analysis",
                    Some(project),
                    None,
                    None,
                    Some(task.clone()),
                    Some(analysis),
                )
            }
            Selector::PullRequest(p, pr) => (
                vec![("projectKey", p.clone()), ("pullRequest", pr.clone())],
                "pull_request",
                Some(p.clone()),
                None,
                Some(pr.clone()),
                None,
                None,
            ),
            Selector::Branch(p, b) => (
                vec![("projectKey", p.clone()), ("branch", b.clone())],
                "branch",
                Some(p.clone()),
                Some(b.clone()),
                None,
                None,
                None,
            ),
            Selector::MainBranch(p) => (
                vec![("projectKey", p.clone())],
                "project_main_branch",
                Some(p.clone()),
                None,
                None,
                None,
                None,
            ),
        };
        // With the deployed commit named, the branch's live status is not enough: read the
        // gate of the analysis of that very commit.
        let (query, analysis, analysed) = match (&revision, &selector, &project) {
            (
                Some(rev),
                Selector::PullRequest(..) | Selector::Branch(..) | Selector::MainBranch(_),
                Some(p),
            ) => {
                let scope: Vec<(&str, String)> = query
                    .iter()
                    .filter(|(k, _)| matches!(*k, "branch" | "pullRequest"))
                    .cloned()
                    .collect();
                let found = self
                    .find_analysis(p, &scope, deadline, |a| {
                        a["revision"]
                            .as_str()
                            .is_some_and(|r| revision_matches(r, rev))
                    })
                    .await?;
                let Some(found) = found else {
                    let on = match &selector {
                        Selector::PullRequest(_, pr) => format!("pull request `{pr}`"),
                        Selector::Branch(_, b) => format!("branch `{b}`"),
                        _ => "the main branch".to_string(),
                    };
                    return Err(AdapterError::NotFound {
                        detail: format!(
                            "SonarQube has no analysis of the deployed commit `{rev}` on {on} of project `{p}` among its newest {} analyses; the branch's latest status is not used instead (analyse that commit, or deploy an analysed one)",
                            self.page_size * self.max_pages
                        ),
                    });
                };
                let key = found["key"].as_str().unwrap_or_default().to_string();
                (vec![("analysisId", key.clone())], Some(key), Some(found))
            }
            _ => (query, analysis, None),
        };
        let pairs: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let response = self
            .get("api/qualitygates/project_status", &pairs, deadline)
            .await?;
        if response.status == 404 {
            return Err(not_found(&response.json, &selector));
        }
        let gate = quality_gate(&response.json)?;
        Ok(Facts {
            document: json!({
                "quality_gate": gate,
                "selector": selector_name,
                "project_key": project,
                "branch": branch,
                "pull_request": pr,
                "ce_task_id": task,
                "analysis_id": analysis,
                "deployed_revision": revision,
                "analysis": analysed.map(|a| json!({
                    "key": a["key"],
                    "revision": a["revision"],
                    "date": a["date"],
                })),
            }),
            url: Some(response.url),
            excerpt: Some(response.excerpt),
        })
    }

    /// The newest analysis of `project` in `scope` (branch or pull request; the main branch
    /// when empty) that `wanted` accepts, reading pages newest first; `None` when none of the
    /// pages read has it. Pages are checked against the `total` they announced.
    async fn find_analysis(
        &self,
        project: &str,
        scope: &[(&str, String)],
        deadline: Instant,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<Option<Value>, AdapterError> {
        let size = self.page_size.to_string();
        let mut announced: u64 = 0;
        let mut read: u64 = 0;
        for page in 1..=self.max_pages {
            let page_text = page.to_string();
            let mut query: Vec<(&str, &str)> =
                vec![("project", project), ("p", &page_text), ("ps", &size)];
            query.extend(scope.iter().map(|(k, v)| (*k, v.as_str())));
            let response = self
                .get("api/project_analyses/search", &query, deadline)
                .await?;
            if response.status == 404 {
                return Err(not_found_scope(&response.json, !scope.is_empty()));
            }
            let total = response.json["paging"]["total"].as_u64().ok_or_else(|| {
                AdapterError::BadResponse {
                    detail: "`paging.total` is missing from `api/project_analyses/search`".into(),
                }
            })?;
            let analyses =
                response.json["analyses"]
                    .as_array()
                    .ok_or_else(|| AdapterError::BadResponse {
                        detail: "`analyses` is missing from `api/project_analyses/search`".into(),
                    })?;
            announced = announced.max(total);
            if let Some(a) = analyses.iter().find(|a| wanted(a)) {
                return Ok(Some(a.clone()));
            }
            read += analyses.len() as u64;
            if read >= announced {
                return Ok(None);
            }
            if analyses.is_empty() {
                return Err(AdapterError::BadResponse {
                    detail: format!(
                        "SonarQube announced {announced} analyses of `{project}` but page {page} came back empty after {read}: pagination ended early"
                    ),
                });
            }
        }
        Ok(None)
    }

    /// `ceTaskId` → (`analysisId`, project key, branch or pull request), polling while the task
    /// waits or runs.
    async fn resolve_task(
        &self,
        task: &str,
        deadline: Instant,
    ) -> Result<(String, String, Vec<(&'static str, String)>), AdapterError> {
        let started = Instant::now();
        loop {
            let response = self.get("api/ce/task", &[("id", task)], deadline).await?;
            let t = &response.json["task"];
            if response.status == 404 {
                return Err(AdapterError::NotFound {
                    detail: format!("SonarQube has no compute-engine task `{task}`"),
                });
            }
            let status = t["status"]
                .as_str()
                .ok_or_else(|| AdapterError::BadResponse {
                    detail: "`task.status` is missing from `api/ce/task`".into(),
                })?;
            match status {
                "SUCCESS" => {
                    let analysis =
                        t["analysisId"]
                            .as_str()
                            .ok_or_else(|| AdapterError::BadResponse {
                                detail: format!("task `{task}` succeeded without an `analysisId`"),
                            })?;
                    let project = t["componentKey"].as_str().unwrap_or_default();
                    let scope = match (t["branch"].as_str(), t["pullRequest"].as_str()) {
                        (_, Some(pr)) => vec![("pullRequest", pr.to_string())],
                        (Some(b), None) => vec![("branch", b.to_string())],
                        (None, None) => Vec::new(),
                    };
                    return Ok((analysis.to_string(), project.to_string(), scope));
                }
                "PENDING" | "IN_PROGRESS" => {
                    if Instant::now() + CE_POLL >= deadline {
                        return Err(AdapterError::Timeout {
                            timeout_ms: u64::try_from(
                                deadline.saturating_duration_since(started).as_millis(),
                            )
                            .unwrap_or(u64::MAX),
                        });
                    }
                    self.client.clock().sleep(CE_POLL).await;
                }
                other => {
                    let why = t["errorMessage"].as_str().unwrap_or("no error message");
                    return Err(AdapterError::BadResponse {
                        detail: format!(
                            "the analysis of compute-engine task `{task}` is `{other}`: {why}"
                        ),
                    });
                }
            }
        }
    }
}

fn not_found(body: &Value, selector: &Selector) -> AdapterError {
    let msg = body["errors"][0]["msg"]
        .as_str()
        .unwrap_or("not found")
        .to_string();
    let detail = match selector {
        Selector::Branch(..) | Selector::PullRequest(..) => format!(
            "SonarQube says `{msg}`; branch and pull-request analysis needs Developer Edition or higher (Community Edition has only the main branch), so check the edition and the name; the main branch is not asked instead"
        ),
        _ => format!("SonarQube says `{msg}`"),
    };
    AdapterError::NotFound { detail }
}

/// A 404 from the analysis search, naming the edition when a branch or pull request is asked.
fn not_found_scope(body: &Value, scoped: bool) -> AdapterError {
    let msg = body["errors"][0]["msg"].as_str().unwrap_or("not found");
    AdapterError::NotFound {
        detail: if scoped {
            format!(
                "SonarQube says `{msg}`; branch and pull-request analysis needs Developer Edition or higher (Community Edition has only the main branch), so check the edition and the name; the main branch is not asked instead"
            )
        } else {
            format!("SonarQube says `{msg}`")
        },
    }
}

/// Whether an analysis `revision` (a full SHA) is the deployed `commit` (full, or a prefix of
/// at least seven characters).
fn revision_matches(revision: &str, commit: &str) -> bool {
    let revision = revision.to_ascii_lowercase();
    revision == commit || (commit.len() >= MIN_COMMIT_PREFIX && revision.starts_with(commit))
}

/// The normalised quality gate; unknown statuses and a missing status are unusable answers.
fn quality_gate(body: &Value) -> Result<Value, AdapterError> {
    let ps = &body["projectStatus"];
    let status = ps["status"]
        .as_str()
        .ok_or_else(|| AdapterError::BadResponse {
            detail: "`projectStatus.status` is missing".into(),
        })?;
    if !matches!(status, "OK" | "WARN" | "ERROR" | "NONE") {
        return Err(AdapterError::BadResponse {
            detail: format!("`projectStatus.status` is `{status}`, not OK, WARN, ERROR or NONE"),
        });
    }
    let conditions: Vec<Value> = ps["conditions"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| {
                    json!({
                        "metric_key": c["metricKey"],
                        "status": c["status"],
                        "comparator": c["comparator"],
                        "error_threshold": c.get("errorThreshold").cloned().unwrap_or(Value::Null),
                        "actual_value": c.get("actualValue").cloned().unwrap_or(Value::Null),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let failing: Vec<Value> = conditions
        .iter()
        .filter(|c| c["status"] != "OK")
        .map(|c| c["metric_key"].clone())
        .collect();
    Ok(json!({
        "status": status,
        "passed": status == "OK",
        "conditions": conditions,
        "failing_conditions": failing,
        "ignored_conditions": ps.get("ignoredConditions").cloned().unwrap_or(Value::Null),
        "cayc_status": ps.get("caycStatus").cloned().unwrap_or(Value::Null),
    }))
}
