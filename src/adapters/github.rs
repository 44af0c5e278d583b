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

use self::auth::{Auth, GitHubAuth};
use super::cache::FactCache;
use super::http_client::{HttpClient, HttpResponse};
use super::instance::{self, invalid};
use super::{Adapter, AdapterBuildError, AdapterError, Clock, Facts};
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
    clock: Clock,
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
    pub fn build(config: &GitHubConfig) -> Result<Self, AdapterBuildError> {
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
                clock: super::system_clock(),
            }),
            cache: FactCache::new(config.cache_ttl),
        })
    }

    /// The same adapter reading time (JWT claims, token expiry) from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.clock = clock;
        }
        self
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
        let source = request
            .sources
            .iter()
            .find(|s| !s.repository.is_empty())
            .ok_or_else(|| AdapterError::NotFound {
                detail: "the check names no source repository".into(),
            })?;
        let repo = owner_and_name(&source.repository).ok_or_else(|| AdapterError::NotFound {
            detail: format!(
                "`{}` does not name a GitHub repository (`owner/name`)",
                source.repository
            ),
        })?;
        let commit = source.commit.as_ref().map(|c| c.as_str().to_string());
        let branch = source.branch.clone();
        let key = format!("{repo} {commit:?} {branch:?}");
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

/// What GitHub answered, keeping 403/404 bodies the caller decides about.
enum Answer {
    Ok(HttpResponse),
    Missing(HttpResponse),
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
        let settings = self
            .get(
                &format!("repos/{repo}/actions/permissions/workflow"),
                deadline,
            )
            .await?
            .json;
        let Some(commit) = commit else {
            return Ok(posture::workflows(
                &settings,
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
        Ok(posture::workflows(&settings, &files, &problems))
    }

    /// A GET that must succeed.
    async fn get(&self, path: &str, deadline: Instant) -> Result<HttpResponse, AdapterError> {
        match self.read(path, &[404, 403], deadline).await? {
            Answer::Ok(r) => Ok(r),
            Answer::Missing(r) => Err(refusal(&r)),
        }
    }

    /// A GET whose `allowed` error statuses come back with their body.
    async fn read(
        &self,
        path: &str,
        allowed: &[u16],
        deadline: Instant,
    ) -> Result<Answer, AdapterError> {
        let url = endpoint(&self.base, path)?;
        let r = self.send(url, allowed, deadline).await?;
        Ok(if r.status < 300 {
            Answer::Ok(r)
        } else {
            Answer::Missing(r)
        })
    }

    async fn send(
        &self,
        url: Url,
        allowed: &[u16],
        deadline: Instant,
    ) -> Result<HttpResponse, AdapterError> {
        let repo = repo_of(&url);
        for attempt in 0..2 {
            let header = self
                .auth
                .header(&self.client, &self.base, &repo, &self.clock, deadline)
                .await?;
            let mut request = super::http_client::HttpRequest::get(url.clone());
            request.headers.insert(http::header::AUTHORIZATION, header);
            github_headers(&mut request);
            let mut expect = vec![200];
            expect.extend_from_slice(allowed);
            request.expect_status = Some(expect);
            match self.client.send(&request, deadline).await {
                // An installation token GitHub no longer takes: mint a new one, once.
                Err(AdapterError::Auth { status: 401 }) if attempt == 0 && self.auth.is_app() => {
                    self.auth.forget().await;
                }
                other => return other,
            }
        }
        Err(AdapterError::Auth { status: 401 })
    }

    /// Every item of a paged listing, following `Link: rel="next"` to the end. `wrapped` names
    /// the array inside an object answer (`check_runs`, `statuses`). A page that comes back empty
    /// although the previous one promised a next page, fewer items than a stated `total_count`,
    /// or more than `max_pages` pages is a short read: an error, never a partial list.
    async fn list(
        &self,
        path: &str,
        wrapped: Option<&str>,
        deadline: Instant,
    ) -> Result<Vec<Value>, AdapterError> {
        let mut url = endpoint(&self.base, path)?;
        url.query_pairs_mut()
            .append_pair("per_page", &self.page_size.to_string());
        let mut items = Vec::new();
        let mut total: Option<u64> = None;
        for page in 1..=self.max_pages {
            let r = self.send(url.clone(), &[404, 403], deadline).await?;
            if r.status >= 300 {
                return Err(refusal(&r));
            }
            let list = match wrapped {
                None => r.json.as_array(),
                Some(key) => {
                    if let Some(t) = r.json["total_count"].as_u64() {
                        total = Some(total.map_or(t, |old| old.max(t)));
                    }
                    r.json[key].as_array()
                }
            }
            .ok_or_else(|| AdapterError::BadResponse {
                detail: format!("`{}` is not a list", r.url),
            })?;
            if page > 1 && list.is_empty() {
                return Err(short_read(&r.url, "an empty page after a `next` link"));
            }
            items.extend(list.iter().cloned());
            match next_link(&r.headers) {
                None => {
                    if let Some(t) = total
                        && (items.len() as u64) < t
                    {
                        return Err(short_read(
                            &r.url,
                            &format!("{} of the {t} items it announced", items.len()),
                        ));
                    }
                    return Ok(items);
                }
                Some(next) => {
                    url = self.same_origin(&next)?;
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

    /// A `next` link, only on the configured API's origin: the credential goes nowhere else.
    fn same_origin(&self, link: &str) -> Result<Url, AdapterError> {
        let url = self
            .base
            .join(link)
            .map_err(|e| AdapterError::BadResponse {
                detail: format!("bad `next` link: {e}"),
            })?;
        if url.origin() != self.base.origin() {
            return Err(AdapterError::BadResponse {
                detail: "a `next` link points to another host; it is not followed".into(),
            });
        }
        Ok(url)
    }
}

/// The `rel="next"` target of a `Link` header (RFC 8288).
pub fn next_link(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| {
            let (target, params) = part.split_once(';')?;
            let is_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            is_next.then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
}

fn short_read(url: &str, what: &str) -> AdapterError {
    AdapterError::BadResponse {
        detail: format!("short read: `{url}` ended early ({what})"),
    }
}

/// A 403 or 404 GitHub explained in its body: not visible or not permitted is missing evidence
/// (never "unprotected" or "no reviews").
fn refusal(r: &HttpResponse) -> AdapterError {
    let message = r.json["message"]
        .as_str()
        .unwrap_or("")
        .chars()
        .take(200)
        .collect::<String>();
    if r.status == 404 {
        AdapterError::NotFound {
            detail: format!(
                "`{}` answered 404 `{message}` (absent, or not visible to these credentials)",
                r.url
            ),
        }
    } else {
        tracing::debug!(url = %r.url, message, "github refused a read");
        AdapterError::Auth { status: r.status }
    }
}

/// The `owner/name` a `repos/owner/name/…` URL is about, for finding the App installation.
fn repo_of(url: &Url) -> String {
    let segments: Vec<&str> = url
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    segments
        .iter()
        .position(|s| *s == "repos")
        .and_then(|i| Some(format!("{}/{}", segments.get(i + 1)?, segments.get(i + 2)?)))
        .unwrap_or_default()
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
#[expect(clippy::unwrap_used, reason = "tests")]
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

    #[test]
    fn next_links_are_found_among_others() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::LINK,
            HeaderValue::from_static(
                "<https://api.github.com/x?page=1>; rel=\"prev\", <https://api.github.com/x?page=3>; rel=\"next\"",
            ),
        );
        assert_eq!(next_link(&h).unwrap(), "https://api.github.com/x?page=3");
        assert_eq!(segment("release/1.2"), "release%2F1.2");
    }
}
