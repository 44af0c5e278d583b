//! One OCI Distribution v2 registry, as the adapter talks to it (contract §2–§4): the token
//! flow (`WWW-Authenticate: Bearer realm=…,service=…,scope=…`, anonymous or with Basic
//! credentials, tokens cached per scope) and plain Basic; manifests by digest or tag, hashed
//! on receipt; tag listing and referrers following `Link`; the referrers tag fallback; blobs,
//! hashed, following a redirect to storage without the credential.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, header};
use reqwest::Url;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

use super::super::AdapterError;
use super::super::credentials::{basic_header, sensitive};
use super::super::http_client::{HttpClient, HttpRequest, HttpResponse};

/// Every manifest type the adapter reads; without the index types a registry may answer with
/// one platform's manifest, whose digest is not the one deployed.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
/// Pages followed on a `Link`-paged listing before the answer counts as unusable.
const MAX_PAGES: usize = 50;
/// Tokens are refreshed this long before the registry says they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

/// A manifest or index, with the digest of the bytes received.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub json: Value,
}

/// One configured registry host.
pub struct Registry {
    pub host: String,
    base: Url,
    /// `Basic base64(user:password)`, sent to the token realm (or to a Basic registry).
    basic: Option<HeaderValue>,
    /// Realm hosts besides the registry itself that may receive the credentials.
    realms: Vec<String>,
    client: HttpClient,
    tokens: Mutex<HashMap<String, (HeaderValue, Instant)>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// The parameters of one `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="…"` (RFC 7235 auth-params, quoted or token
/// values, `\` escapes in quotes).
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.push(chars.next()?),
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => val.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        params.insert(name.to_ascii_lowercase(), val);
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The target of `Link: <url>; rel="next"`, resolved against `base`.
fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    for value in headers.get_all(header::LINK) {
        let text = value.to_str().ok()?;
        for part in text.split(',') {
            let (target, params) = part.split_once(';')?;
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            let rel_next = params.split(';').any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            });
            if rel_next {
                return base.join(target).ok();
            }
        }
    }
    None
}

/// The first `errors[].code` of a registry error body.
fn error_code(bytes: &[u8]) -> String {
    serde_json::from_slice::<Value>(bytes)
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Registry {
    pub fn new(
        host: String,
        base: Url,
        credentials: Option<(String, String)>,
        realms: Vec<String>,
        client: HttpClient,
    ) -> Result<Self, String> {
        let basic = credentials
            .map(|(user, password)| basic_header(&user, &password))
            .transpose()?;
        Ok(Self {
            host,
            base,
            basic,
            realms,
            client,
            tokens: Mutex::new(HashMap::new()),
        })
    }

    fn scope(repository: &str) -> String {
        format!("repository:{repository}:pull")
    }

    fn cached_token(&self, scope: &str) -> Option<HeaderValue> {
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens
            .get(scope)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(h, _)| h.clone())
    }

    /// `GET` of a registry path for `repository` (raw bytes), answering the auth challenge once.
    /// 200 and 404 are answers; 401 after authenticating is an auth failure.
    async fn get(
        &self,
        repository: &str,
        url: Url,
        accept: &str,
        deadline: Instant,
    ) -> Result<HttpResponse, AdapterError> {
        let scope = Self::scope(repository);
        let mut auth = self.cached_token(&scope);
        for attempt in 0..2 {
            let mut req = HttpRequest::get(url.clone());
            req.raw = true;
            req.accept = HeaderValue::from_str(accept).ok();
            req.expect_status = Some(vec![200, 401, 404, 301, 302, 303, 307, 308]);
            if let Some(h) = &auth {
                req.headers.insert(header::AUTHORIZATION, h.clone());
            }
            let response = self.client.send(&req, deadline).await?;
            if response.status != 401 {
                return Ok(response);
            }
            if attempt == 1 {
                break;
            }
            let challenge = response
                .headers
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge)
                .ok_or(AdapterError::Auth { status: 401 })?;
            auth = Some(match challenge.scheme.as_str() {
                "bearer" => self.token(&challenge, &scope, deadline).await?,
                "basic" => self
                    .basic
                    .clone()
                    .ok_or(AdapterError::Auth { status: 401 })?,
                _ => {
                    return Err(AdapterError::BadResponse {
                        detail: format!(
                            "registry `{}` asks for `{}` authentication, which is not supported",
                            self.host, challenge.scheme
                        ),
                    });
                }
            });
        }
        Err(AdapterError::Auth { status: 401 })
    }

    /// Fetches a token from the challenge's realm, which must be the registry itself or an
    /// https host allowed in `token_realms`: the realm is chosen by the registry, and sending
    /// credentials wherever it points would leak them (or reach internal addresses).
    async fn token(
        &self,
        challenge: &Challenge,
        scope: &str,
        deadline: Instant,
    ) -> Result<HeaderValue, AdapterError> {
        let realm = challenge
            .params
            .get("realm")
            .ok_or_else(|| AdapterError::BadResponse {
                detail: format!(
                    "registry `{}` sent a Bearer challenge without a realm",
                    self.host
                ),
            })?;
        let mut url = Url::parse(realm).map_err(|_| AdapterError::BadResponse {
            detail: format!("registry `{}` sent a realm that is not a url", self.host),
        })?;
        let same_origin = url.scheme() == self.base.scheme()
            && url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default();
        let allowed = url.scheme() == "https"
            && url
                .host_str()
                .is_some_and(|h| self.realms.iter().any(|r| r.eq_ignore_ascii_case(h)));
        if !same_origin && !allowed {
            return Err(AdapterError::BadResponse {
                detail: format!(
                    "registry `{}` sends its token requests to `{}`, which is neither the registry nor an https host in `token_realms`; add the host there if it is the registry's own token service",
                    self.host,
                    url.host_str().unwrap_or("")
                ),
            });
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = challenge.params.get("service") {
                q.append_pair("service", service);
            }
            q.append_pair("scope", scope);
        }
        let mut req = HttpRequest::get(url);
        if let Some(b) = &self.basic {
            req.headers.insert(header::AUTHORIZATION, b.clone());
        }
        let response = self.client.send(&req, deadline).await?;
        let token = response.json["token"]
            .as_str()
            .or_else(|| response.json["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| AdapterError::BadResponse {
                detail: format!(
                    "the token service of registry `{}` returned no token",
                    self.host
                ),
            })?;
        let header = sensitive(&format!("Bearer {token}"))
            .map_err(|detail| AdapterError::BadResponse { detail })?;
        // 60 s when the service does not say (distribution token spec).
        let ttl = Duration::from_secs(response.json["expires_in"].as_u64().unwrap_or(60));
        let until = Instant::now() + ttl.saturating_sub(TOKEN_MARGIN);
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(scope.to_string(), (header.clone(), until));
        Ok(header)
    }

    fn url(&self, repository: &str, rest: &str) -> Result<Url, AdapterError> {
        super::super::instance::endpoint(&self.base, &format!("v2/{repository}/{rest}"))
    }

    fn unexpected(&self, response: &HttpResponse) -> AdapterError {
        AdapterError::BadResponse {
            detail: format!(
                "HTTP {} from `{}` redirects, and a registry api call is not redirected",
                response.status, response.url
            ),
        }
    }

    /// A manifest by tag or digest; `None` when the registry does not know it
    /// (`MANIFEST_UNKNOWN`). An unknown repository is `NotFound`. By digest, the bytes must
    /// hash to it.
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
        deadline: Instant,
    ) -> Result<Option<Manifest>, AdapterError> {
        let url = self.url(repository, &format!("manifests/{reference}"))?;
        let response = self.get(repository, url, MANIFEST_ACCEPT, deadline).await?;
        match response.status {
            200 => {}
            404 => {
                return match error_code(&response.bytes).as_str() {
                    "NAME_UNKNOWN" => Err(AdapterError::NotFound {
                        detail: format!(
                            "registry `{}` has no repository `{repository}`",
                            self.host
                        ),
                    }),
                    _ => Ok(None),
                };
            }
            _ => return Err(self.unexpected(&response)),
        }
        let digest = sha256_digest(&response.bytes);
        if reference.contains(':') && reference != digest {
            return Err(AdapterError::BadResponse {
                detail: format!(
                    "registry `{}` answered `{reference}` with bytes that hash to `{digest}`",
                    self.host
                ),
            });
        }
        let json: Value =
            serde_json::from_slice(&response.bytes).map_err(|e| AdapterError::BadResponse {
                detail: format!("a manifest from `{}` is not json: {e}", response.url),
            })?;
        let content_type = response
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").trim().to_string())
            .unwrap_or_default();
        let media_type = json["mediaType"]
            .as_str()
            .map(str::to_string)
            .unwrap_or(content_type);
        Ok(Some(Manifest {
            digest,
            media_type,
            json,
        }))
    }

    /// A blob, checked against its digest; a redirect to storage is followed once, without the
    /// registry's credential. `None` when the registry does not have it.
    pub async fn blob(
        &self,
        repository: &str,
        digest: &str,
        deadline: Instant,
    ) -> Result<Option<Vec<u8>>, AdapterError> {
        let url = self.url(repository, &format!("blobs/{digest}"))?;
        let mut response = self.get(repository, url.clone(), "*/*", deadline).await?;
        if matches!(response.status, 301 | 302 | 303 | 307 | 308) {
            let target = response
                .headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok())
                .ok_or_else(|| self.unexpected(&response))?;
            let mut req = HttpRequest::get(target);
            req.raw = true;
            req.accept = Some(HeaderValue::from_static("*/*"));
            response = self.client.send(&req, deadline).await?;
        }
        match response.status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.unexpected(&response)),
        }
        let got = sha256_digest(&response.bytes);
        if got != digest {
            return Err(AdapterError::BadResponse {
                detail: format!(
                    "blob `{digest}` from registry `{}` hashes to `{got}`",
                    self.host
                ),
            });
        }
        Ok(Some(response.bytes))
    }

    /// Every tag of `repository`, following `Link: rel="next"` to the end.
    pub async fn tags(
        &self,
        repository: &str,
        deadline: Instant,
    ) -> Result<Vec<String>, AdapterError> {
        let mut url = self.url(repository, "tags/list?n=100")?;
        let mut tags = Vec::new();
        for _ in 0..MAX_PAGES {
            let response = self
                .get(repository, url.clone(), "application/json", deadline)
                .await?;
            if response.status == 404 {
                return Err(AdapterError::NotFound {
                    detail: format!("registry `{}` has no repository `{repository}`", self.host),
                });
            }
            if response.status != 200 {
                return Err(self.unexpected(&response));
            }
            let json: Value =
                serde_json::from_slice(&response.bytes).map_err(|e| AdapterError::BadResponse {
                    detail: format!("a tag list from `{}` is not json: {e}", response.url),
                })?;
            let page = json["tags"]
                .as_array()
                .map(|a| a.iter().filter_map(|t| t.as_str().map(str::to_string)))
                .into_iter()
                .flatten();
            tags.extend(page);
            match next_link(&response.headers, &url) {
                Some(next) => url = next,
                None => return Ok(tags),
            }
        }
        Err(AdapterError::BadResponse {
            detail: format!(
                "the tag list of `{repository}` on `{}` has more than {MAX_PAGES} pages",
                self.host
            ),
        })
    }

    /// The descriptors referring to `digest`: the referrers API, or on 404 (a registry without
    /// it) the `sha256-<hex>` fallback index tag. Whether the API answered is returned too.
    pub async fn referrers(
        &self,
        repository: &str,
        digest: &str,
        deadline: Instant,
    ) -> Result<(Vec<Value>, bool), AdapterError> {
        let mut url = self.url(repository, &format!("referrers/{digest}"))?;
        let mut found = Vec::new();
        for _ in 0..MAX_PAGES {
            let response = self
                .get(
                    repository,
                    url.clone(),
                    "application/vnd.oci.image.index.v1+json",
                    deadline,
                )
                .await?;
            if response.status == 404 {
                let tag = digest.replacen(':', "-", 1);
                let index = self.manifest(repository, &tag, deadline).await?;
                let list = index
                    .and_then(|m| m.json["manifests"].as_array().cloned())
                    .unwrap_or_default();
                return Ok((list, false));
            }
            if response.status != 200 {
                return Err(self.unexpected(&response));
            }
            let json: Value =
                serde_json::from_slice(&response.bytes).map_err(|e| AdapterError::BadResponse {
                    detail: format!("a referrers list from `{}` is not json: {e}", response.url),
                })?;
            found.extend(json["manifests"].as_array().cloned().unwrap_or_default());
            match next_link(&response.headers, &url) {
                Some(next) => url = next,
                None => return Ok((found, true)),
            }
        }
        Err(AdapterError::BadResponse {
            detail: format!("the referrers of `{digest}` have more than {MAX_PAGES} pages"),
        })
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_quoted_and_bare_values() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["scope"], "repository:library/nginx:pull,push");
        let c = parse_challenge(r#"Basic realm=Registry, charset="UTF-8""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry");
        assert!(parse_challenge(r#"Bearer realm="open"#).is_none());
    }

    #[test]
    fn link_next_is_resolved_against_the_request() {
        let mut h = HeaderMap::new();
        h.insert(
            header::LINK,
            HeaderValue::from_static(r#"</v2/acme/api/tags/list?n=2&last=b>; rel="next""#),
        );
        let base = Url::parse("http://r:5000/v2/acme/api/tags/list?n=2").unwrap();
        assert_eq!(
            next_link(&h, &base).unwrap().as_str(),
            "http://r:5000/v2/acme/api/tags/list?n=2&last=b"
        );
        assert!(next_link(&HeaderMap::new(), &base).is_none());
    }
}
