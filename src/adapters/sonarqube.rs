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
    #[serde(default = "instance::default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "instance::default_retries")]
    pub retries: u32,
    #[serde(default = "instance::default_max_concurrency")]
    pub max_concurrency: usize,
    #[serde(default = "instance::default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
}

fn default_project_key() -> String {
    "{application}".into()
}

struct Inner {
    name: String,
    base: Url,
    headers: HeaderMap,
    client: HttpClient,
    timeout: Duration,
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
    pub fn build(config: &SonarQubeConfig) -> Result<Self, AdapterBuildError> {
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
        let client =
            instance::client(name, config.timeout, config.retries, config.max_concurrency)?;
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.clone(),
                base,
                headers,
                client,
                timeout: config.timeout,
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
        let key = format!("{selector:?}");
        let inner = Arc::clone(&self.inner);
        let deadline = instance::call_deadline(deadline, self.inner.timeout);
        self.cache
            .get_or_fetch(&key, async move { inner.fetch(selector, deadline).await })
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

    async fn fetch(&self, selector: Selector, deadline: Instant) -> Result<Facts, AdapterError> {
        let (query, selector_name, project, branch, pr, task, analysis) = match &selector {
            Selector::Task(task) => {
                let (analysis, project) = self.resolve_task(task, deadline).await?;
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
            }),
            url: Some(response.url),
            excerpt: Some(response.excerpt),
        })
    }

    /// `ceTaskId` → (`analysisId`, project key), polling while the task waits or runs.
    async fn resolve_task(
        &self,
        task: &str,
        deadline: Instant,
    ) -> Result<(String, String), AdapterError> {
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
                    return Ok((analysis.to_string(), project.to_string()));
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
                    tokio::time::sleep(CE_POLL).await;
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
