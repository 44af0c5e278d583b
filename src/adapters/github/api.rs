//! How the GitHub adapter talks to the REST API: one GET with the installation or personal
//! token (a refused installation token is replaced once), the error statuses a caller decides
//! about kept with their bodies, and listings followed through `Link: rel="next"` on the
//! configured host to their end, with the short-read checks (an empty page after a `next`
//! link, fewer items than a stated `total_count`, more pages than `max_pages`).

use reqwest::Url;
use tokio::time::Instant;

use super::super::AdapterError;
use super::super::http_client::{HttpRequest, HttpResponse};
use super::{Inner, endpoint, github_headers};
use serde_json::Value;

/// What GitHub answered, keeping 403/404 bodies the caller decides about.
pub(super) enum Answer {
    Ok(HttpResponse),
    Missing(HttpResponse),
}

impl Inner {
    /// A GET that must succeed.
    pub(super) async fn get(
        &self,
        path: &str,
        deadline: Instant,
    ) -> Result<HttpResponse, AdapterError> {
        match self.read(path, &[404, 403], deadline).await? {
            Answer::Ok(r) => Ok(r),
            Answer::Missing(r) => Err(refusal(&r)),
        }
    }

    /// A GET whose `allowed` error statuses come back with their body.
    pub(super) async fn read(
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
                .header(&self.client, &self.base, &repo, &*self.clock, deadline)
                .await?;
            let mut request = HttpRequest::get(url.clone());
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
    pub(super) async fn list(
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
pub(super) fn refusal(r: &HttpResponse) -> AdapterError {
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
    } else if message.contains("secondary rate limit") {
        // A secondary limit without `Retry-After` (those are retried by the client): GitHub asks
        // for at least a minute, longer than any check waits.
        AdapterError::RateLimited {
            retry_after_s: Some(60),
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

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn links_and_refusals_are_read() {
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::LINK,
            HeaderValue::from_static(
                "<https://api.github.com/x?page=1>; rel=\"prev\", <https://api.github.com/x?page=3>; rel=\"next\"",
            ),
        );
        assert_eq!(next_link(&h).unwrap(), "https://api.github.com/x?page=3");
        let answer = |status: u16, message: &str| HttpResponse {
            status,
            json: serde_json::json!({ "message": message }),
            excerpt: String::new(),
            url: "u".into(),
            headers: http::HeaderMap::new(),
            bytes: Vec::new(),
        };
        assert!(matches!(
            refusal(&answer(
                403,
                "You have exceeded a secondary rate limit. Please wait"
            )),
            AdapterError::RateLimited { .. }
        ));
        assert!(matches!(
            refusal(&answer(403, "Resource not accessible by integration")),
            AdapterError::Auth { status: 403 }
        ));
        assert!(matches!(
            refusal(&answer(404, "Not Found")),
            AdapterError::NotFound { .. }
        ));
        assert_eq!(super::super::segment("release/1.2"), "release%2F1.2");
    }
}
