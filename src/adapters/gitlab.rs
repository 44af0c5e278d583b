//! GitLab adapter (`kind: gitlab`, GitLab.com and self-managed REST v4; contract
//! `source-and-findings.md` §4, §11): the protected-branch entries that match the deployed
//! branch (exact names and wildcards), the project's approval settings and rules, whether the
//! deployed commit came through a merged merge request into that branch approved by someone
//! other than its author, the latest pipeline for that commit on that branch, and the commit's
//! signature.
//!
//! ```yaml
//! adapters:
//!   - kind: gitlab
//!     name: gitlab
//!     base_url: https://gitlab.example.com     # the instance; the API is `<base_url>/api/v4`
//!     auth: {type: private_token, token: {env: GITLAB_TOKEN}}   # or {type: bearer, token: …}
//! ```
//!
//! Fail closed as `github.rs`: any HTTP fault, a 401/403/404 on a read that must answer, a
//! listing cut short (an empty page after `x-next-page` promised one, fewer items than `x-total`)
//! or longer than `max_pages` is an `AdapterError`. The signature endpoint's 404 means unsigned
//! only because the commit was read first (§4.7 trap 7).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::HeaderValue;
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::cache::FactCache;
use super::deployed_source::DeployedSource;
use super::github::{next_link, segment};
use super::http_client::{HttpClient, HttpRequest, HttpResponse};
use super::instance::{self, invalid};
use super::{Adapter, AdapterBuildError, AdapterError, Facts};
use crate::clock::Clock;
use crate::domain::CheckRequest;
use crate::secret::SecretSource;

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_page_size() -> u32 {
    100
}

fn default_max_pages() -> u32 {
    20
}

fn default_base_url() -> String {
    "https://gitlab.com".into()
}

/// `auth:` of a `kind: gitlab` instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum GitLabAuth {
    /// `PRIVATE-TOKEN: <token>` (personal, project or group access token with `read_api`).
    PrivateToken { token: SecretSource },
    /// `Authorization: Bearer <token>` (the same tokens, or an OAuth access token).
    Bearer { token: SecretSource },
}

/// Configuration of one `kind: gitlab` instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitLabConfig {
    pub name: String,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    pub auth: GitLabAuth,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    #[serde(default = "default_max_pages")]
    pub max_pages: u32,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "instance::default_retries")]
    pub retries: u32,
    #[serde(default = "instance::default_max_concurrency")]
    pub max_concurrency: usize,
    #[serde(default = "instance::default_cache_ttl", with = "humantime_serde")]
    pub cache_ttl: Duration,
}

struct Inner {
    name: String,
    api: Url,
    client: HttpClient,
    header: (http::HeaderName, HeaderValue),
    page_size: u32,
    max_pages: u32,
    timeout: Duration,
}

/// A built `kind: gitlab` adapter.
pub struct GitLabAdapter {
    inner: Arc<Inner>,
    cache: FactCache<Facts>,
}

impl std::fmt::Debug for GitLabAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLabAdapter")
            .field("name", &self.inner.name)
            .field("api", &self.inner.api.as_str())
            .finish_non_exhaustive()
    }
}

impl GitLabAdapter {
    pub fn build(config: &GitLabConfig, clock: Arc<dyn Clock>) -> Result<Self, AdapterBuildError> {
        let name = &config.name;
        let base = instance::base_url(name, &config.base_url)?;
        let api = base
            .join("api/v4/")
            .map_err(|e| invalid(name, "base_url", e))?;
        if !(1..=100).contains(&config.page_size) {
            return Err(invalid(name, "page_size", "must be 1 to 100"));
        }
        if config.max_pages == 0 {
            return Err(invalid(name, "max_pages", "must be at least 1"));
        }
        let (header_name, token) = match &config.auth {
            GitLabAuth::PrivateToken { token } => (
                http::HeaderName::from_static("private-token"),
                token
                    .resolve()
                    .map_err(|e| invalid(name, "auth", e))?
                    .expose()
                    .to_string(),
            ),
            GitLabAuth::Bearer { token } => (
                http::header::AUTHORIZATION,
                format!(
                    "Bearer {}",
                    token
                        .resolve()
                        .map_err(|e| invalid(name, "auth", e))?
                        .expose()
                ),
            ),
        };
        let mut value = HeaderValue::from_str(token.trim())
            .map_err(|_| invalid(name, "auth", "the token is not a valid header value"))?;
        value.set_sensitive(true);
        let client = instance::client(
            name,
            config.timeout,
            config.retries,
            config.max_concurrency,
            None,
            clock,
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.clone(),
                api,
                client,
                header: (header_name, value),
                page_size: config.page_size,
                max_pages: config.max_pages,
                timeout: config.timeout,
            }),
            cache: FactCache::new(config.cache_ttl),
        })
    }
}

#[async_trait]
impl Adapter for GitLabAdapter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "gitlab"
    }

    async fn collect(
        &self,
        request: &CheckRequest,
        deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let source =
            DeployedSource::of(request, project_path, "a GitLab project (`group/project`)")?;
        let key = source.cache_key();
        let DeployedSource {
            repository: project,
            commit,
            branch,
        } = source;
        let inner = Arc::clone(&self.inner);
        let deadline = instance::call_deadline(deadline, self.inner.timeout);
        self.cache
            .get_or_fetch(&key, async move {
                inner
                    .facts(&project, commit.as_deref(), branch.as_deref(), deadline)
                    .await
            })
            .await
    }
}

/// The project path (`group/sub/project`) of `group/project`, `gitlab.example.com/group/project`,
/// `https://host/group/project(.git)` or `git@host:group/project.git`. A first segment with a dot
/// is taken for a host.
pub fn project_path(repository: &str) -> Option<String> {
    let text = repository.trim().trim_end_matches('/');
    let text = text.strip_suffix(".git").unwrap_or(text);
    let text = match text.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, p)| p)?,
        None => match text.split_once(':') {
            Some((_, p)) => p,
            None => {
                let (first, rest) = text.split_once('/')?;
                if first.contains('.') { rest } else { text }
            }
        },
    };
    let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty()).collect();
    let ok = parts.len() >= 2
        && parts.iter().all(|s| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        });
    ok.then(|| parts.join("/"))
}

/// Whether a protected-branch entry's `name` (an exact name or a wildcard with `*`) covers
/// `branch`.
pub fn branch_matches(pattern: &str, branch: &str) -> bool {
    if !pattern.contains('*') {
        return pattern == branch;
    }
    let parts: Vec<&str> = pattern.split('*').collect();
    let mut rest = branch;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

/// The protection facts of the entries matching `branch` (several may: the weakest push level
/// and any force push allowance decide).
pub fn protection(entries: &[Value], branch: &str) -> Value {
    let matching: Vec<&Value> = entries
        .iter()
        .filter(|e| {
            e["name"]
                .as_str()
                .is_some_and(|n| branch_matches(n, branch))
        })
        .collect();
    let level = |e: &Value, key: &str| -> Option<i64> {
        e[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["access_level"].as_i64())
            // Per-user, group or deploy-key entries come with level 40 or none; `0` is "no one".
            .filter(|l| *l > 0)
            .min()
    };
    let weakest = |key: &str| matching.iter().filter_map(|e| level(e, key)).min();
    json!({
        "protected": !matching.is_empty(),
        "entries": matching.iter().map(|e| e["name"].clone()).collect::<Vec<_>>(),
        "push_access_level": weakest("push_access_levels").unwrap_or(0),
        "merge_access_level": weakest("merge_access_levels").unwrap_or(0),
        "developers_can_push": weakest("push_access_levels").is_some_and(|l| l <= 30),
        "allow_force_push": matching.is_empty() || matching.iter().any(|e| e["allow_force_push"] == true),
        "allow_deletions": matching.is_empty(),
        "code_owner_approval_required": matching.iter().any(|e| e["code_owner_approval_required"] == true),
    })
}

/// The merged merge request that produced `sha` on `branch`.
fn merged_request<'a>(mrs: &'a [Value], sha: &str, branch: &str) -> Option<&'a Value> {
    mrs.iter().find(|m| {
        m["state"] == "merged"
            && m["target_branch"] == branch
            && (m["merge_commit_sha"] == sha || m["squash_commit_sha"] == sha || m["sha"] == sha)
    })
}

impl Inner {
    async fn facts(
        &self,
        project: &str,
        commit: Option<&str>,
        branch: Option<&str>,
        deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let id = segment(project);
        let p = self.get(&format!("projects/{id}"), deadline).await?;
        let branch = match branch {
            Some(b) => b.to_string(),
            None => p.json["default_branch"]
                .as_str()
                .ok_or_else(|| AdapterError::BadResponse {
                    detail: format!("`{}` has no `default_branch`", p.url),
                })?
                .to_string(),
        };
        let entries = self
            .list(&format!("projects/{id}/protected_branches"), deadline)
            .await?;
        let mut protection = protection(&entries, &branch);
        protection["only_allow_merge_if_pipeline_succeeds"] =
            json!(p.json["only_allow_merge_if_pipeline_succeeds"] == true);
        let settings = self
            .optional(&format!("projects/{id}/approvals"), deadline)
            .await?;
        let rules = match self
            .optional(&format!("projects/{id}/approval_rules"), deadline)
            .await?
        {
            Some(Value::Array(rules)) => Some(rules),
            _ => None,
        };
        protection["required_approvals"] = match &rules {
            // Free tier or no permission: the count is unknown, not zero.
            None => Value::Null,
            Some(rules) => json!(
                rules
                    .iter()
                    .filter(|r| r["applies_to_all_protected_branches"] == true
                        || r["protected_branches"]
                            .as_array()
                            .is_none_or(|b| b.is_empty())
                        || r["protected_branches"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|b| b["name"]
                                .as_str()
                                .is_some_and(|n| branch_matches(n, &branch))))
                    .filter_map(|r| r["approvals_required"].as_u64())
                    .max()
                    .unwrap_or(0)
            ),
        };
        protection["author_can_approve"] = settings.as_ref().map_or(Value::Null, |s| {
            json!(s["merge_requests_author_approval"] == true)
        });
        protection["reset_approvals_on_push"] = settings
            .as_ref()
            .map_or(Value::Null, |s| json!(s["reset_approvals_on_push"] == true));
        let commit_facts = match commit {
            None => json!({"sha": null, "problems": ["the check names no commit"]}),
            Some(c) => self.commit(&id, c, &branch, deadline).await?,
        };
        Ok(Facts {
            document: json!({
                "project": project,
                "branch": branch,
                "default_branch": p.json["default_branch"],
                "protection": protection,
                "commit": commit_facts,
            }),
            url: Some(p.url.clone()),
            excerpt: Some(p.excerpt.clone()),
        })
    }

    async fn commit(
        &self,
        id: &str,
        commit: &str,
        branch: &str,
        deadline: Instant,
    ) -> Result<Value, AdapterError> {
        let c = self
            .get(
                &format!("projects/{id}/repository/commits/{}", segment(commit)),
                deadline,
            )
            .await?;
        let sha = c.json["id"]
            .as_str()
            .ok_or_else(|| AdapterError::BadResponse {
                detail: format!("`{}` has no `id`", c.url),
            })?;
        let signature = self
            .optional(
                &format!("projects/{id}/repository/commits/{sha}/signature"),
                deadline,
            )
            .await?;
        let mrs = self
            .list(
                &format!("projects/{id}/repository/commits/{sha}/merge_requests"),
                deadline,
            )
            .await?;
        let mut facts = json!({
            "sha": sha,
            "author_email": c.json["author_email"],
            "signature_verified": signature.as_ref().is_some_and(|s| s["verification_status"] == "verified"),
            "signature": signature.as_ref().map(|s| json!({"type": s["signature_type"], "verification_status": s["verification_status"]})),
        });
        match merged_request(&mrs, sha, branch) {
            None => {
                facts["via_merge_request"] = json!(false);
                facts["merge_request"] = Value::Null;
                facts["approved_by_other"] = json!(false);
                facts["self_approved"] = json!(false);
                facts["approvals"] = json!(0);
            }
            Some(mr) => {
                let iid = mr["iid"]
                    .as_u64()
                    .ok_or_else(|| AdapterError::BadResponse {
                        detail: "a merge request without an `iid`".into(),
                    })?;
                let approvals = self
                    .get(
                        &format!("projects/{id}/merge_requests/{iid}/approvals"),
                        deadline,
                    )
                    .await?;
                let author = mr["author"]["username"].as_str().unwrap_or("");
                let approved_by: Vec<&str> = approvals.json["approved_by"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["user"]["username"].as_str())
                    .collect();
                let others: Vec<&str> = approved_by
                    .iter()
                    .copied()
                    .filter(|u| *u != author)
                    .collect();
                facts["via_merge_request"] = json!(true);
                facts["merge_request"] = json!({"iid": iid, "author": author,
                    "target_branch": mr["target_branch"], "merge_commit_sha": mr["merge_commit_sha"],
                    "squash_commit_sha": mr["squash_commit_sha"], "merged_at": mr["merged_at"]});
                facts["approvers"] = json!(others);
                facts["approvals"] = json!(others.len());
                facts["approved_by_other"] = json!(!others.is_empty());
                facts["self_approved"] = json!(approved_by.contains(&author));
            }
        }
        let pipelines = self
            .list(
                &format!("projects/{id}/pipelines?sha={sha}&ref={}", segment(branch)),
                deadline,
            )
            .await?;
        let latest = pipelines
            .iter()
            .max_by_key(|p| p["id"].as_u64().unwrap_or(0));
        let statuses = self
            .list(
                &format!("projects/{id}/repository/commits/{sha}/statuses"),
                deadline,
            )
            .await?;
        let failed: Vec<Value> = statuses
            .iter()
            .filter(|s| s["status"] != "success" && s["allow_failure"] != true)
            .map(|s| s["name"].clone())
            .collect();
        facts["pipeline"] = latest.map_or(
            Value::Null,
            |p| json!({"id": p["id"], "status": p["status"]}),
        );
        facts["failed_statuses"] = json!(failed);
        facts["required_checks_passed"] =
            json!(latest.is_some_and(|p| p["status"] == "success") && failed.is_empty());
        Ok(facts)
    }

    async fn get(&self, path: &str, deadline: Instant) -> Result<HttpResponse, AdapterError> {
        let url = instance::endpoint(&self.api, path)?;
        self.client.send(&self.request(url, None), deadline).await
    }

    /// A read whose 403/404 means "not available here" (Free tier, unsigned): `None`.
    async fn optional(&self, path: &str, deadline: Instant) -> Result<Option<Value>, AdapterError> {
        let url = instance::endpoint(&self.api, path)?;
        let r = self
            .client
            .send(&self.request(url, Some(vec![200, 403, 404])), deadline)
            .await?;
        Ok((r.status == 200).then_some(r.json))
    }

    fn request(&self, url: Url, expect: Option<Vec<u16>>) -> HttpRequest {
        let mut request = HttpRequest::get(url);
        request
            .headers
            .insert(self.header.0.clone(), self.header.1.clone());
        request.expect_status = expect;
        request
    }

    /// Every item of an offset-paged listing: `Link: rel="next"`, else `x-next-page`, to the
    /// end; checked against `x-total` when GitLab states it.
    async fn list(&self, path: &str, deadline: Instant) -> Result<Vec<Value>, AdapterError> {
        let mut url = instance::endpoint(&self.api, path)?;
        url.query_pairs_mut()
            .append_pair("per_page", &self.page_size.to_string());
        let mut items: Vec<Value> = Vec::new();
        let mut total: Option<usize> = None;
        for page in 1..=self.max_pages {
            let r = self
                .client
                .send(&self.request(url.clone(), None), deadline)
                .await?;
            let list = r.json.as_array().ok_or_else(|| AdapterError::BadResponse {
                detail: format!("`{}` is not a list", r.url),
            })?;
            if page > 1 && list.is_empty() {
                return Err(AdapterError::BadResponse {
                    detail: format!(
                        "short read: `{}` ended early (an empty page after `x-next-page`)",
                        r.url
                    ),
                });
            }
            if let Some(t) = header(&r.headers, "x-total").and_then(|t| t.parse().ok()) {
                total = Some(t);
            }
            items.extend(list.iter().cloned());
            let next = match next_link(&r.headers) {
                Some(link) => {
                    Some(
                        self.api
                            .join(&link)
                            .map_err(|e| AdapterError::BadResponse {
                                detail: format!("bad `next` link: {e}"),
                            })?,
                    )
                }
                None => header(&r.headers, "x-next-page")
                    .filter(|n| !n.is_empty())
                    .map(|n| {
                        let mut u = url.clone();
                        let pairs: Vec<(String, String)> = u
                            .query_pairs()
                            .filter(|(k, _)| k != "page")
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect();
                        u.query_pairs_mut()
                            .clear()
                            .extend_pairs(pairs)
                            .append_pair("page", &n);
                        u
                    }),
            };
            match next {
                None => {
                    if let Some(t) = total
                        && items.len() < t
                    {
                        return Err(AdapterError::BadResponse {
                            detail: format!(
                                "short read: `{}` ended early ({} of the {t} items it announced)",
                                r.url,
                                items.len()
                            ),
                        });
                    }
                    return Ok(items);
                }
                Some(next) => {
                    if next.origin() != self.api.origin() {
                        return Err(AdapterError::BadResponse {
                            detail: "a `next` link points to another host; it is not followed"
                                .into(),
                        });
                    }
                    url = next;
                }
            }
        }
        Err(AdapterError::BadResponse {
            detail: format!(
                "`{path}` has more than {} pages of {}; raise `max_pages`",
                self.max_pages, self.page_size
            ),
        })
    }
}

fn header(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projects_are_named_by_their_full_path() {
        for text in [
            "group/sub/proj",
            "gitlab.example.com/group/sub/proj",
            "https://gitlab.example.com/group/sub/proj.git",
            "git@gitlab.example.com:group/sub/proj.git",
        ] {
            assert_eq!(
                project_path(text).as_deref(),
                Some("group/sub/proj"),
                "{text}"
            );
        }
        assert_eq!(project_path("proj"), None);
    }

    #[test]
    fn wildcard_entries_protect_matching_branches() {
        assert!(branch_matches("release/*", "release/1.8"));
        assert!(branch_matches("*-stable", "16-stable"));
        assert!(!branch_matches("release/*", "main"));
        let entries = [
            json!({"name": "release/*", "push_access_levels": [{"access_level": 30}], "allow_force_push": false}),
            json!({"name": "main", "push_access_levels": [{"access_level": 40}]}),
        ];
        let p = protection(&entries, "release/1.8");
        assert_eq!(p["protected"], true);
        assert_eq!(p["developers_can_push"], true);
        assert_eq!(p["allow_force_push"], false);
        assert_eq!(protection(&entries, "dev")["protected"], false);
    }
}
