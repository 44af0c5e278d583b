//! Jira adapter (`kind: jira`, Cloud REST v3 or Data Center v2; contract §2): the status of the
//! change tickets the check names, an optional JQL search, and issue creation for reviews.
//!
//! ```yaml
//! adapters:
//!   - kind: jira
//!     name: jira
//!     base_url: https://acme.atlassian.net    # scoped tokens: https://api.atlassian.com/ex/jira/<cloudId>
//!     deployment: cloud                       # or data_center (REST v2, PAT)
//!     auth: {type: basic, username: ci-bot@acme.example, password: {env: JIRA_API_TOKEN}}
//!     # auth: {type: bearer, token: {file: /var/run/secrets/jira-pat}}
//!     jql: 'project = OPS AND labels = "{application}"'   # optional template
//!     page_size: 50
//!     max_pages: 20
//!     timeout: 5s
//!     retries: 2
//!     max_concurrency: 16
//!     cache_ttl: 30s
//! ```
//!
//! Traps honoured: a 404 (no such issue *or* no permission) fails the source, never "not
//! required"; status name, id and category are all recorded (policies decide which count);
//! `done` does not imply a resolution; a moved issue is recorded with its new key (`moved`);
//! Cloud searches use `search/jql` with `fields` and page by `nextPageToken` until `isLast`
//! (a page that says more follow but gives no token is an error); v3 bodies use ADF.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::try_join_all;
use http::{HeaderMap, Method, header};
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

const ISSUE_FIELDS: &str = "summary,status,resolution,issuetype,project,labels,updated";

/// Cloud (REST v3, token-paged search) or Data Center (REST v2, `startAt` search).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deployment {
    #[default]
    Cloud,
    DataCenter,
}

/// Configuration of one `kind: jira` instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    pub name: String,
    pub base_url: String,
    #[serde(default)]
    pub deployment: Deployment,
    pub auth: AuthConfig,
    #[serde(default)]
    pub jql: Option<String>,
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

/// What `POST /rest/api/{3,2}/issue` answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedIssue {
    pub id: String,
    pub key: String,
}

struct Inner {
    name: String,
    base: Url,
    deployment: Deployment,
    headers: HeaderMap,
    client: HttpClient,
    timeout: Duration,
    page_size: u32,
    max_pages: u32,
}

/// A built `kind: jira` adapter.
pub struct JiraAdapter {
    inner: Arc<Inner>,
    jql: Option<Template>,
    cache: FactCache<Facts>,
}

impl std::fmt::Debug for JiraAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JiraAdapter")
            .field("name", &self.inner.name)
            .field("base_url", &self.inner.base.as_str())
            .field("deployment", &self.inner.deployment)
            .finish_non_exhaustive()
    }
}

impl JiraAdapter {
    pub fn build(config: &JiraConfig, clock: Arc<dyn Clock>) -> Result<Self, AdapterBuildError> {
        let name = &config.name;
        let base = instance::base_url(name, &config.base_url)?;
        let mut headers = HeaderMap::new();
        match (
            &config.auth,
            config
                .auth
                .resolve()
                .map_err(|e| invalid(name, "auth", e))?,
        ) {
            (AuthConfig::Basic { .. } | AuthConfig::Bearer { .. }, Credentials::Header(h)) => {
                headers.insert(header::AUTHORIZATION, h);
            }
            _ => {
                return Err(invalid(
                    name,
                    "auth.type",
                    "Jira takes `basic` (email + API token) or `bearer` (PAT or OAuth token)",
                ));
            }
        }
        let jql = config
            .jql
            .as_deref()
            .map(Template::parse)
            .transpose()
            .map_err(|e| invalid(name, "jql", e))?;
        if config.page_size == 0 || config.page_size > 5000 {
            return Err(invalid(name, "page_size", "must be 1 to 5000"));
        }
        if config.max_pages == 0 {
            return Err(invalid(name, "max_pages", "must be at least 1"));
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
                deployment: config.deployment,
                headers,
                client,
                timeout: config.timeout,
                page_size: config.page_size,
                max_pages: config.max_pages,
            }),
            jql,
            cache: FactCache::new(config.cache_ttl),
        })
    }

    /// All issues matching `jql`, following pagination to the end (or failing).
    pub async fn search(&self, jql: &str, deadline: Instant) -> Result<Vec<Value>, AdapterError> {
        self.inner.search(jql, deadline).await
    }

    /// One issue as it stands now (`key`, `id`, `status.{name,id,category_key}`,
    /// `resolution`), by key or id; a moved issue answers under its new key.
    pub async fn issue_status(
        &self,
        key_or_id: &str,
        deadline: Instant,
    ) -> Result<Value, AdapterError> {
        let inner = &self.inner;
        let (_, fact) = inner
            .issue(key_or_id, instance::call_deadline(deadline, inner.timeout))
            .await?;
        Ok(fact)
    }

    /// Who last moved the issue into the status with id `status_id`, from its changelog (Cloud:
    /// the paged `issue/{key}/changelog`; Data Center: `expand=changelog`), named as approvers
    /// are: the author's `emailAddress`, else `name` (Data Center), else `accountId`. `None`
    /// when the changelog has no such move or names nobody.
    pub async fn status_changed_by(
        &self,
        key_or_id: &str,
        status_id: &str,
        deadline: Instant,
    ) -> Result<Option<String>, AdapterError> {
        let inner = &self.inner;
        let deadline = instance::call_deadline(deadline, inner.timeout);
        let key = encode_segment(key_or_id);
        let histories: Vec<Value> = match inner.deployment {
            Deployment::DataCenter => {
                let r = inner
                    .get(
                        &format!("rest/api/2/issue/{key}"),
                        &[("fields", "status"), ("expand", "changelog")],
                        deadline,
                    )
                    .await?;
                r.json["changelog"]["histories"]
                    .as_array()
                    .cloned()
                    .ok_or_else(|| bad("`changelog.histories` is missing from the issue"))?
            }
            Deployment::Cloud => {
                let mut out = Vec::new();
                let mut announced: u64 = 0;
                for _ in 0..inner.max_pages {
                    let start = out.len().to_string();
                    let r = inner
                        .get(
                            &format!("rest/api/3/issue/{key}/changelog"),
                            &[("startAt", start.as_str()), ("maxResults", "100")],
                            deadline,
                        )
                        .await?;
                    let values = r.json["values"]
                        .as_array()
                        .ok_or_else(|| bad("`values` is missing from the changelog page"))?;
                    announced = announced.max(r.json["total"].as_u64().unwrap_or(0));
                    let empty = values.is_empty();
                    out.extend(values.iter().cloned());
                    let read = out.len() as u64;
                    if r.json["isLast"] == true || read >= announced {
                        if read < announced {
                            return Err(bad(
                                "the changelog ended before its `total`: pagination ended early",
                            ));
                        }
                        break;
                    }
                    if empty {
                        return Err(bad(
                            "a changelog page came back empty before its `total`: pagination ended early",
                        ));
                    }
                }
                out
            }
        };
        let moved_to = |h: &Value| {
            h["items"].as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|i| i["field"] == "status" && i["to"] == status_id)
            })
        };
        Ok(histories.iter().rev().find(|h| moved_to(h)).and_then(|h| {
            let a = &h["author"];
            ["emailAddress", "name", "accountId"]
                .iter()
                .find_map(|k| a[*k].as_str().filter(|s| !s.trim().is_empty()))
                .map(str::to_string)
        }))
    }

    /// Creates an issue (for manual reviews): ADF description on Cloud, plain text on DC.
    pub async fn create_issue(
        &self,
        project: &str,
        issue_type: &str,
        summary: &str,
        description: &str,
        labels: &[String],
        deadline: Instant,
    ) -> Result<CreatedIssue, AdapterError> {
        let inner = &self.inner;
        let description = match inner.deployment {
            Deployment::Cloud => json!({
                "type": "doc", "version": 1,
                "content": [{"type": "paragraph", "content": [{"type": "text", "text": description}]}],
            }),
            Deployment::DataCenter => json!(description),
        };
        let url = instance::endpoint(&inner.base, &format!("{}/issue", inner.api()))?;
        let mut req = HttpRequest::new(Method::POST, url);
        req.headers = inner.headers.clone();
        req.body = Some(json!({"fields": {
            "project": {"key": project}, "issuetype": {"name": issue_type},
            "summary": summary, "description": description, "labels": labels,
        }}));
        req.expect_status = Some(vec![201]);
        let response = inner
            .client
            .send(&req, instance::call_deadline(deadline, inner.timeout))
            .await?;
        let text = |k: &str| {
            response.json[k]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| AdapterError::BadResponse {
                    detail: format!("the created issue has no `{k}`"),
                })
        };
        Ok(CreatedIssue {
            id: text("id")?,
            key: text("key")?,
        })
    }
}

#[async_trait]
impl Adapter for JiraAdapter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "jira"
    }

    async fn collect(
        &self,
        request: &CheckRequest,
        deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let keys: Vec<String> = request
            .change_refs
            .jira_keys
            .iter()
            .map(|k| k.as_str().to_string())
            .collect();
        let jql = self
            .jql
            .as_ref()
            .map(|t| t.render(request, Encoding::Raw))
            .transpose()
            .map_err(|e| AdapterError::NotFound {
                detail: format!("cannot build the jql: {e}"),
            })?;
        let cache_key = format!("{keys:?}|{jql:?}");
        let inner = Arc::clone(&self.inner);
        let deadline = instance::call_deadline(deadline, self.inner.timeout);
        self.cache
            .get_or_fetch(&cache_key, async move {
                inner.collect(keys, jql, deadline).await
            })
            .await
    }
}

impl Inner {
    fn api(&self) -> &'static str {
        match self.deployment {
            Deployment::Cloud => "rest/api/3",
            Deployment::DataCenter => "rest/api/2",
        }
    }

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
        self.client.send(&req, deadline).await
    }

    async fn collect(
        &self,
        keys: Vec<String>,
        jql: Option<String>,
        deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let reads = keys.iter().map(|k| self.issue(k, deadline));
        let read = try_join_all(reads).await?;
        let mut document = json!({
            "issues": read.iter().map(|(_, fact)| fact.clone()).collect::<Vec<_>>(),
        });
        if !read.is_empty() {
            document["all_done"] = read
                .iter()
                .all(|(_, f)| f["status"]["category_key"] == "done")
                .into();
        }
        let (url, excerpt) = read
            .last()
            .map(|(r, _)| (Some(r.url.clone()), Some(r.excerpt.clone())))
            .unwrap_or((None, None));
        if let Some(jql) = jql {
            let found = self.search(&jql, deadline).await?;
            document["search"] = json!({"jql": jql, "count": found.len(), "issues": found});
        }
        Ok(Facts {
            document,
            url,
            excerpt,
        })
    }

    async fn issue(
        &self,
        key: &str,
        deadline: Instant,
    ) -> Result<(HttpResponse, Value), AdapterError> {
        let path = format!("{}/issue/{}", self.api(), encode_segment(key));
        let response = self
            .get(&path, &[("fields", ISSUE_FIELDS)], deadline)
            .await
            .map_err(|e| match e {
                AdapterError::NotFound { .. } => AdapterError::NotFound {
                    detail: format!(
                        "Jira issue `{key}` does not exist or the integration user may not see it"
                    ),
                },
                other => other,
            })?;
        let mut fact = normalise(&response.json)?;
        fact["requested_key"] = key.into();
        fact["moved"] = (fact["key"] != key).into();
        Ok((response, fact))
    }

    async fn search(&self, jql: &str, deadline: Instant) -> Result<Vec<Value>, AdapterError> {
        let mut out = Vec::new();
        let size = self.page_size.to_string();
        let fields = "summary,status,resolution,updated";
        let mut token: Option<String> = None;
        // The largest `total` a Data Center page announced: a later page may not shrink it.
        let mut announced: u64 = 0;
        for page in 0..self.max_pages {
            let (issues, more) = match self.deployment {
                Deployment::Cloud => {
                    let mut q = vec![("jql", jql), ("fields", fields), ("maxResults", &size)];
                    if let Some(t) = &token {
                        q.push(("nextPageToken", t));
                    }
                    let r = self.get("rest/api/3/search/jql", &q, deadline).await?;
                    let is_last = r.json["isLast"]
                        .as_bool()
                        .ok_or_else(|| bad("`isLast` is missing from the search page"))?;
                    let next = r.json["nextPageToken"].as_str().map(str::to_string);
                    if !is_last && (next.is_none() || next == token) {
                        return Err(bad(
                            "the search says more pages follow but gives no new `nextPageToken`: pagination ended early",
                        ));
                    }
                    token = next;
                    let issues = issues_of(&r.json)?;
                    if page > 0 && issues.is_empty() {
                        return Err(bad(
                            "a search page after `nextPageToken` came back empty: pagination ended early",
                        ));
                    }
                    (issues, !is_last)
                }
                Deployment::DataCenter => {
                    let start = out.len().to_string();
                    let q = [
                        ("jql", jql),
                        ("fields", fields),
                        ("maxResults", size.as_str()),
                        ("startAt", &start),
                    ];
                    let r = self.get("rest/api/2/search", &q, deadline).await?;
                    let total = r.json["total"]
                        .as_u64()
                        .ok_or_else(|| bad("`total` is missing from the search page"))?;
                    announced = announced.max(total);
                    let issues = issues_of(&r.json)?;
                    let seen = (out.len() + issues.len()) as u64;
                    if issues.is_empty() && seen < announced {
                        return Err(bad(&format!(
                            "the search announced {announced} issues but a page ended after {seen}: pagination ended early"
                        )));
                    }
                    (issues, seen < announced)
                }
            };
            for i in &issues {
                out.push(normalise(i)?);
            }
            if !more {
                return Ok(out);
            }
        }
        Err(bad(&format!(
            "the search has more than {} pages of {}; narrow the jql or raise `max_pages`",
            self.max_pages, self.page_size
        )))
    }
}

fn bad(detail: &str) -> AdapterError {
    AdapterError::BadResponse {
        detail: detail.to_string(),
    }
}

fn issues_of(page: &Value) -> Result<Vec<Value>, AdapterError> {
    page["issues"]
        .as_array()
        .cloned()
        .ok_or_else(|| bad("`issues` is missing from the search page"))
}

/// The facts of one `IssueBean`; status name, id and category are required.
fn normalise(issue: &Value) -> Result<Value, AdapterError> {
    let key = issue["key"]
        .as_str()
        .ok_or_else(|| bad("an issue has no `key`"))?;
    let status = &issue["fields"]["status"];
    let need = |v: &Value, what: &str| {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(&format!("issue `{key}` has no `{what}`")))
    };
    let category = &status["statusCategory"];
    Ok(json!({
        "key": key,
        "id": issue["id"],
        "summary": issue["fields"]["summary"],
        "status": {
            "name": need(&status["name"], "fields.status.name")?,
            "id": need(&status["id"], "fields.status.id")?,
            "category_key": need(&category["key"], "fields.status.statusCategory.key")?,
            "category_name": category["name"],
        },
        "resolution": issue["fields"]["resolution"]["name"],
        "updated": issue["fields"]["updated"],
    }))
}

/// A path segment, percent-encoded (issue keys are `[A-Z0-9_]+-\d+`, but ids come from users).
fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
