//! GitHub adapter (`kind: github`, GitHub.com and Enterprise Server REST; contract
//! `source-and-findings.md` §1–§3, §11): the source-control posture of the repository and commit
//! a check names — the effective protection of the deployed branch (classic protection and
//! active rulesets), whether the deployed commit came through a merged pull request approved by
//! someone other than its author with its required checks green and a verified signature, and
//! what the repository's workflows ask of the `GITHUB_TOKEN`.
//!
//! ```yaml
//! adapters:
//!   - kind: github
//!     name: github                       # evidence namespace
//!     base_url: https://api.github.com   # GHES: https://ghe.example.com/api/v3
//!     auth: {type: bearer, token: {env: GITHUB_TOKEN}}
//!     # or: {type: app, app_id: 12345, private_key: {file: /etc/portcullis/gh-app.pem}, installation_id: 678}
//!     page_size: 100
//!     max_pages: 20
//!     timeout: 10s
//! ```
//!
//! Fail closed: any HTTP fault, a 404 `Not Found` or a 403 on a read (not visible, not
//! permitted, plan), a paged list that ends before the pages it promised, or more pages than
//! `max_pages` is an `AdapterError` — missing evidence with a reason. Only GitHub's own
//! `Branch not protected` answer becomes the fact `protected: false`. A workflow file that cannot
//! be read or parsed leaves the workflow summary facts `null` (missing), never "no write".

mod api;
pub mod auth;
pub mod posture;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use http::HeaderValue;
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

pub use self::api::next_link;
use self::api::{Answer, refusal};
use self::auth::{Auth, GitHubAuth};
use super::cache::FactCache;
use super::deployed_source::DeployedSource;
use super::http_client::HttpClient;
use super::instance::{self, invalid};
use super::{Adapter, AdapterBuildError, AdapterError, Facts};
use crate::clock::Clock;
use crate::domain::CheckRequest;

/// The REST API version the adapter is written against.
const API_VERSION: &str = "2022-11-28";
const WORKFLOWS_DIR: &str = ".github/workflows";
/// Workflow files read per commit; more is reported, not silently skipped.
const MAX_WORKFLOW_FILES: usize = 50;

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_page_size() -> u32 {
    100
}

fn default_max_pages() -> u32 {
    20
}

/// Configuration of one `kind: github` instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitHubConfig {
    pub name: String,
    #[serde(default = "default_base_url")]
    pub base_url: String,
    pub auth: GitHubAuth,
    /// `per_page` of every listing (GitHub allows 1–100).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Pages read per listing; a listing with more is missing evidence, not a partial answer.
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

fn default_base_url() -> String {
    "https://api.github.com".into()
}

struct Inner {
    name: String,
    base: Url,
    client: HttpClient,
    auth: Auth,
    page_size: u32,
    max_pages: u32,
    timeout: Duration,
    clock: Arc<dyn Clock>,
}

/// A built `kind: github` adapter.
pub struct GitHubAdapter {
    inner: Arc<Inner>,
    cache: FactCache<Facts>,
}

impl std::fmt::Debug for GitHubAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHubAdapter")
            .field("name", &self.inner.name)
            .field("base_url", &self.inner.base.as_str())
            .field("auth", &self.inner.auth)
            .finish_non_exhaustive()
    }
}

impl GitHubAdapter {
    pub fn build(config: &GitHubConfig, clock: Arc<dyn Clock>) -> Result<Self, AdapterBuildError> {
        let name = &config.name;
        let base = instance::base_url(name, &config.base_url)?;
        if !(1..=100).contains(&config.page_size) {
            return Err(invalid(name, "page_size", "must be 1 to 100"));
        }
        if config.max_pages == 0 {
            return Err(invalid(name, "max_pages", "must be at least 1"));
        }
        let auth = Auth::resolve(&config.auth).map_err(|e| invalid(name, "auth", e))?;
        let client = instance::client(
            name,
            config.timeout,
            config.retries,
            config.max_concurrency,
            None,
            Arc::clone(&clock),
        )?;
        Ok(Self {
            inner: Arc::new(Inner {
                name: name.clone(),
                base,
                client,
                auth,
                page_size: config.page_size,
                max_pages: config.max_pages,
                timeout: config.timeout,
                clock,
            }),
            cache: FactCache::new(config.cache_ttl),
        })
    }
}

#[async_trait]
impl Adapter for GitHubAdapter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "github"
    }

    async fn collect(
        &self,
        request: &CheckRequest,
        deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let source = DeployedSource::of(
            request,
            owner_and_name,
            "a GitHub repository (`owner/name`)",
        )?;
        let key = source.cache_key();
        let DeployedSource {
            repository: repo,
            commit,
            branch,
        } = source;
        let inner = Arc::clone(&self.inner);
        let deadline = instance::call_deadline(deadline, self.inner.timeout);
        self.cache
            .get_or_fetch(&key, async move {
                inner
                    .facts(&repo, commit.as_deref(), branch.as_deref(), deadline)
                    .await
            })
            .await
    }
}

/// `owner/name` from `owner/name`, `github.com/owner/name`, `https://host/owner/name(.git)` or
/// `git@host:owner/name.git`.
pub fn owner_and_name(repository: &str) -> Option<String> {
    let text = repository.trim().trim_end_matches('/');
    let text = text.strip_suffix(".git").unwrap_or(text);
    let text = text.rsplit_once(':').map_or(
        text,
        |(before, after)| {
            if before.contains("//") { text } else { after }
        },
    );
    let parts: Vec<&str> = text.split('/').filter(|p| !p.is_empty()).collect();
    let [.., owner, name] = parts.as_slice() else {
        return None;
    };
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    (ok(owner) && ok(name) && !owner.contains(':')).then(|| format!("{owner}/{name}"))
}

/// A path segment, percent-encoded (a branch `release/1.2` is `release%2F1.2`).
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn endpoint(base: &Url, path: &str) -> Result<Url, AdapterError> {
    instance::endpoint(base, path)
}

/// The headers GitHub asks every client to send.
fn github_headers(request: &mut super::http_client::HttpRequest) {
    request.accept = Some(HeaderValue::from_static("application/vnd.github+json"));
    request.headers.insert(
        "x-github-api-version",
        HeaderValue::from_static(API_VERSION),
    );
}

impl Inner {
    async fn facts(
        &self,
        repo: &str,
        commit: Option<&str>,
        branch: Option<&str>,
        deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let repository = self.get(&format!("repos/{repo}"), deadline).await?;
        let branch = match branch {
            Some(b) => b.to_string(),
            None => repository.json["default_branch"]
                .as_str()
                .ok_or_else(|| AdapterError::BadResponse {
                    detail: format!("`{}` has no `default_branch`", repository.url),
                })?
                .to_string(),
        };
        let b = segment(&branch);
        let (protection, commit_facts, workflows) = futures::try_join!(
            self.protection(repo, &b, deadline),
            self.commit(repo, commit, &branch, deadline),
            self.workflows(repo, commit, deadline),
        )?;
        let required: Vec<Value> = protection["required_checks"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut commit_facts = commit_facts;
        if let Some(sha) = commit_facts["sha"].as_str().map(str::to_string) {
            let runs_path = format!("repos/{repo}/commits/{sha}/check-runs");
            let (runs, statuses) = futures::try_join!(
                self.list(&runs_path, Some("check_runs"), deadline),
                self.statuses(repo, &sha, deadline),
            )?;
            let checks = posture::required_checks(&required, &runs, &statuses);
            if let (Value::Object(c), Value::Object(k)) = (&mut commit_facts, checks) {
                c.extend(k);
            }
        }
        Ok(Facts {
            document: json!({
                "repository": repo,
                "branch": branch,
                "default_branch": repository.json["default_branch"],
                "protection": protection,
                "commit": commit_facts,
                "workflows": workflows,
            }),
            url: Some(repository.url.clone()),
            excerpt: Some(repository.excerpt.clone()),
        })
    }

    async fn protection(
        &self,
        repo: &str,
        branch: &str,
        deadline: Instant,
    ) -> Result<Value, AdapterError> {
        let path = format!("repos/{repo}/branches/{branch}/protection");
        let classic = match self.read(&path, &[404, 403], deadline).await? {
            Answer::Ok(r) => Some(r.json),
            Answer::Missing(r) => {
                let message = r.json["message"].as_str().unwrap_or("");
                if r.status == 404 && message == "Branch not protected" {
                    None
                } else {
                    return Err(refusal(&r));
                }
            }
        };
        let rules = self
            .list(
                &format!("repos/{repo}/rules/branches/{branch}"),
                None,
                deadline,
            )
            .await?;
        Ok(posture::protection(classic.as_ref(), &rules))
    }

    async fn commit(
        &self,
        repo: &str,
        commit: Option<&str>,
        branch: &str,
        deadline: Instant,
    ) -> Result<Value, AdapterError> {
        let Some(commit) = commit else {
            return Ok(json!({"sha": null, "problems": ["the check names no commit"]}));
        };
        let c = self
            .get(
                &format!("repos/{repo}/commits/{}", segment(commit)),
                deadline,
            )
            .await?;
        let sha = c.json["sha"]
            .as_str()
            .ok_or_else(|| AdapterError::BadResponse {
                detail: format!("`{}` has no `sha`", c.url),
            })?;
        let verification = &c.json["commit"]["verification"];
        let pulls = self
            .list(&format!("repos/{repo}/commits/{sha}/pulls"), None, deadline)
            .await?;
        let mut facts = json!({
            "sha": sha,
            "author": c.json["author"]["login"],
            "signature": {
                "verified": verification["verified"] == true,
                "reason": verification["reason"],
            },
            "signature_verified": verification["verified"] == true,
        });
        match posture::merged_pull(&pulls, sha, branch) {
            None => {
                facts["via_pull_request"] = json!(false);
                facts["pull_request"] = Value::Null;
                facts["approved_by_other"] = json!(false);
                facts["self_approved"] = json!(false);
                facts["approvals"] = json!(0);
            }
            Some(pull) => {
                let number = pull["number"]
                    .as_u64()
                    .ok_or_else(|| AdapterError::BadResponse {
                        detail: "a pull request without a `number`".into(),
                    })?;
                let reviews = self
                    .list(
                        &format!("repos/{repo}/pulls/{number}/reviews"),
                        None,
                        deadline,
                    )
                    .await?;
                facts["via_pull_request"] = json!(true);
                facts["pull_request"] = json!({
                    "number": number,
                    "author": pull["user"]["login"],
                    "base": pull["base"]["ref"],
                    "head_sha": pull["head"]["sha"],
                    "merge_commit_sha": pull["merge_commit_sha"],
                    "merged_at": pull["merged_at"],
                });
                if let (Value::Object(f), Value::Object(r)) =
                    (&mut facts, posture::reviews(pull, &reviews))
                {
                    f.extend(r);
                }
            }
        }
        Ok(facts)
    }

    async fn statuses(
        &self,
        repo: &str,
        sha: &str,
        deadline: Instant,
    ) -> Result<Vec<Value>, AdapterError> {
        self.list(
            &format!("repos/{repo}/commits/{sha}/status"),
            Some("statuses"),
            deadline,
        )
        .await
    }

    async fn workflows(
        &self,
        repo: &str,
        commit: Option<&str>,
        deadline: Instant,
    ) -> Result<Value, AdapterError> {
        // Advisory (contract §11.1): credentials without Actions/Administration read leave the
        // default unknown (its facts missing), not the whole source.
        let settings = match self
            .read(
                &format!("repos/{repo}/actions/permissions/workflow"),
                &[403, 404],
                deadline,
            )
            .await?
        {
            Answer::Ok(r) => Some(r.json),
            Answer::Missing(r) => match refusal(&r) {
                e @ AdapterError::RateLimited { .. } => return Err(e),
                _ => None,
            },
        };
        let Some(commit) = commit else {
            return Ok(posture::workflows(
                settings.as_ref(),
                &[],
                &["the check names no commit".into()],
            ));
        };
        let reference = segment(commit);
        let dir = match self
            .read(
                &format!("repos/{repo}/contents/{WORKFLOWS_DIR}?ref={reference}"),
                &[404],
                deadline,
            )
            .await?
        {
            Answer::Ok(r) => r.json,
            // No `.github/workflows` at that commit: no workflow asks for anything.
            Answer::Missing(_) => json!([]),
        };
        let entries = dir.as_array().ok_or_else(|| AdapterError::BadResponse {
            detail: format!("`{WORKFLOWS_DIR}` is not a directory listing"),
        })?;
        let mut files = Vec::new();
        let mut problems = Vec::new();
        let yaml: Vec<&Value> = entries
            .iter()
            .filter(|e| e["type"] == "file")
            .filter(|e| {
                e["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
            })
            .collect();
        if yaml.len() > MAX_WORKFLOW_FILES {
            problems.push(format!(
                "{} workflow files; only {MAX_WORKFLOW_FILES} are read",
                yaml.len()
            ));
        }
        for entry in yaml.into_iter().take(MAX_WORKFLOW_FILES) {
            let Some(path) = entry["path"].as_str() else {
                problems.push("a workflow entry without a `path`".into());
                continue;
            };
            let encoded: Vec<String> = path.split('/').map(segment).collect();
            let file = self
                .get(
                    &format!(
                        "repos/{repo}/contents/{}?ref={reference}",
                        encoded.join("/")
                    ),
                    deadline,
                )
                .await?;
            match decode_content(&file.json).and_then(|text| posture::workflow(path, &text)) {
                Ok(f) => files.push(f),
                Err(e) => problems.push(e),
            }
        }
        Ok(posture::workflows(settings.as_ref(), &files, &problems))
    }
}

/// The text of a contents-API file (`encoding: base64`, wrapped lines).
fn decode_content(file: &Value) -> Result<String, String> {
    let path = file["path"].as_str().unwrap_or("?");
    if file["encoding"] != "base64" {
        return Err(format!(
            "`{path}`: content is not base64 (too large for the contents API?)"
        ));
    }
    let text: String = file["content"]
        .as_str()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("`{path}`: bad base64: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("`{path}`: not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_named_by_owner_and_name() {
        for text in [
            "acme/api",
            "github.com/acme/api",
            "https://github.com/acme/api.git",
            "git@github.com:acme/api.git",
            "https://ghe.example.com/acme/api/",
        ] {
            assert_eq!(owner_and_name(text).as_deref(), Some("acme/api"), "{text}");
        }
        assert_eq!(owner_and_name("api"), None);
    }
}
