//! ServiceNow adapter (`kind: servicenow`; contract §3): finds the change request(s) of the deploy
//! (by the numbers the check names, or by configuration item) through the Table API or the
//! Change Management API, and reads approval, state and planned window as **raw values, UTC**.
//!
//! ```yaml
//! adapters:
//!   - kind: servicenow
//!     name: servicenow
//!     base_url: https://acme.service-now.com
//!     api: table                  # or `change` (/api/sn_chg_rest/change)
//!     auth: {type: basic, username: portcullis.integration, password: {env: SNOW_PASSWORD}}
//!     # auth: {type: bearer, token: {file: /var/run/secrets/snow-oauth-token}}
//!     # auth: {type: oauth, client_id: 3f1b…, client_secret: {env: SNOW_CLIENT_SECRET}}
//!     #       (`username` + `password` for the password grant; `token_url` defaults to
//!     #       `<base_url>/oauth_token.do`)
//!     ci_name: "{application}"    # optional: when the check names no change, find active
//!                                 # changes whose configuration item has this name
//!     page_size: 100
//!     max_pages: 10
//!     timeout: 5s
//!     retries: 2
//!     max_concurrency: 16
//!     cache_ttl: 30s
//! ```
//!
//! Traps honoured: only raw values are compared (`sysparm_display_value=all` gives both; logic
//! reads `value`); raw dates are UTC `YYYY-MM-DD HH:MM:SS` and become RFC 3339; an unset field
//! (`""`) becomes `null`, never a date; every returned record is re-checked client-side (number,
//! configuration item), because an instance silently drops query conditions it does not
//! understand; `{"result": []}` fails the source as not found (no such change, or an ACL hides
//! it); approval and state are both recorded (a rejected change goes back to state New, `-5`).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use http::{HeaderMap, HeaderValue, Method, header};
use reqwest::Url;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::cache::FactCache;
use super::credentials::{AuthConfig, Credentials, OauthClient, sensitive};
use super::http_client::{HttpClient, HttpRequest, HttpResponse};
use super::instance::{self, invalid};
use super::template::{Encoding, Template};
use super::{Adapter, AdapterBuildError, AdapterError, Facts};
use crate::clock::Clock;
use crate::domain::CheckRequest;

mod changes;

pub use changes::{ChangeDraft, ChangeStatus};

const FIELDS: &str = "sys_id,number,type,state,approval,start_date,end_date,cmdb_ci,risk,impact,on_hold,active,short_description";

/// Which REST API reads the changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceNowApi {
    #[default]
    Table,
    Change,
}

/// Configuration of one `kind: servicenow` instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowConfig {
    pub name: String,
    pub base_url: String,
    #[serde(default)]
    pub api: ServiceNowApi,
    pub auth: AuthConfig,
    #[serde(default)]
    pub ci_name: Option<String>,
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
    100
}

fn default_max_pages() -> u32 {
    10
}

enum Auth {
    Static(HeaderValue),
    Oauth {
        client: Box<OauthClient>,
        token_url: Url,
        token: Mutex<Option<HeaderValue>>,
    },
}

struct Inner {
    name: String,
    base: Url,
    api: ServiceNowApi,
    auth: Auth,
    client: HttpClient,
    timeout: Duration,
    page_size: u32,
    max_pages: u32,
}

/// A built `kind: servicenow` adapter.
pub struct ServiceNowAdapter {
    inner: Arc<Inner>,
    ci_name: Option<Template>,
    cache: FactCache<Facts>,
}

impl std::fmt::Debug for ServiceNowAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceNowAdapter")
            .field("name", &self.inner.name)
            .field("base_url", &self.inner.base.as_str())
            .field("api", &self.inner.api)
            .finish_non_exhaustive()
    }
}

/// What the check asks about.
#[derive(Debug, Clone)]
enum Lookup {
    Numbers(Vec<String>),
    Ci(String),
    Nothing,
}

impl ServiceNowAdapter {
    pub fn build(
        config: &ServiceNowConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AdapterBuildError> {
        let name = &config.name;
        let base = instance::base_url(name, &config.base_url)?;
        let auth = match (
            &config.auth,
            config
                .auth
                .resolve()
                .map_err(|e| invalid(name, "auth", e))?,
        ) {
            (AuthConfig::Basic { .. } | AuthConfig::Bearer { .. }, Credentials::Header(h)) => {
                Auth::Static(h)
            }
            (_, Credentials::Oauth(client)) => {
                let token_url = match &client.token_url {
                    Some(u) => Url::parse(u).map_err(|e| invalid(name, "auth.token_url", e))?,
                    None => base
                        .join("oauth_token.do")
                        .map_err(|e| invalid(name, "base_url", e))?,
                };
                Auth::Oauth {
                    client: Box::new(client),
                    token_url,
                    token: Mutex::new(None),
                }
            }
            _ => {
                return Err(invalid(
                    name,
                    "auth.type",
                    "ServiceNow takes `basic` (integration user), `bearer` (an access token) or `oauth` (client credentials)",
                ));
            }
        };
        let ci_name = config
            .ci_name
            .as_deref()
            .map(Template::parse)
            .transpose()
            .map_err(|e| invalid(name, "ci_name", e))?;
        if config.page_size == 0 || config.max_pages == 0 {
            return Err(invalid(
                name,
                "page_size",
                "`page_size` and `max_pages` must be at least 1",
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
                api: config.api,
                auth,
                client,
                timeout: config.timeout,
                page_size: config.page_size,
                max_pages: config.max_pages,
            }),
            ci_name,
            cache: FactCache::new(config.cache_ttl),
        })
    }
}

#[async_trait]
impl Adapter for ServiceNowAdapter {
    fn name(&self) -> &str {
        &self.inner.name
    }

    fn kind(&self) -> &'static str {
        "servicenow"
    }

    async fn collect(
        &self,
        request: &CheckRequest,
        deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let numbers: Vec<String> = request
            .change_refs
            .servicenow_changes
            .iter()
            .map(|c| c.as_str().to_string())
            .collect();
        let lookup = match (&self.ci_name, numbers.is_empty()) {
            (_, false) => Lookup::Numbers(numbers),
            (Some(t), true) => Lookup::Ci(t.render(request, Encoding::Raw).map_err(|e| {
                AdapterError::NotFound {
                    detail: format!("no configuration item name: {e}"),
                }
            })?),
            (None, true) => Lookup::Nothing,
        };
        let key = format!("{lookup:?}");
        let inner = Arc::clone(&self.inner);
        let deadline = instance::call_deadline(deadline, self.inner.timeout);
        self.cache
            .get_or_fetch(&key, async move { inner.fetch(lookup, deadline).await })
            .await
    }
}

impl Inner {
    async fn fetch(&self, lookup: Lookup, deadline: Instant) -> Result<Facts, AdapterError> {
        let query = match &lookup {
            Lookup::Nothing => {
                return Ok(Facts {
                    document: json!({"changes": [], "lookup": "none"}),
                    url: None,
                    excerpt: None,
                });
            }
            Lookup::Numbers(n) => format!("numberIN{}^ORDERBYnumber", n.join(",")),
            Lookup::Ci(ci) => format!("cmdb_ci.name={ci}^active=true^ORDERBYDESCstart_date"),
        };
        let (records, url, excerpt) = self.list(&query, deadline).await?;
        let mut changes = Vec::new();
        for r in &records {
            changes.push(normalise(r)?);
        }
        // Re-check every record: a dropped condition widens the result silently.
        let changes: Vec<Value> = match &lookup {
            Lookup::Numbers(numbers) => {
                let kept: Vec<Value> = changes
                    .into_iter()
                    .filter(|c| numbers.iter().any(|n| c["number"] == n.as_str()))
                    .collect();
                if let Some(missing) = numbers
                    .iter()
                    .find(|n| !kept.iter().any(|c| c["number"] == n.as_str()))
                {
                    return Err(AdapterError::NotFound {
                        detail: format!(
                            "ServiceNow returned no change `{missing}`: it does not exist or the integration user cannot read it (ACL)"
                        ),
                    });
                }
                kept
            }
            Lookup::Ci(ci) => {
                let kept: Vec<Value> = changes
                    .into_iter()
                    .filter(|c| c["cmdb_ci_name"] == ci.as_str() && c["active"] == "true")
                    .collect();
                if kept.is_empty() {
                    return Err(AdapterError::NotFound {
                        detail: format!(
                            "ServiceNow returned no active change for configuration item `{ci}` (none exists, or an ACL hides it)"
                        ),
                    });
                }
                kept
            }
            Lookup::Nothing => Vec::new(),
        };
        let all_approved = changes.iter().all(|c| c["approved"] == true);
        let mut document = json!({
            "changes": changes,
            "all_approved": all_approved,
            "lookup": if matches!(lookup, Lookup::Ci(_)) { "configuration_item" } else { "number" },
        });
        if let [only] = document["changes"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            document["change"] = only.clone();
        }
        Ok(Facts {
            document,
            url,
            excerpt,
        })
    }

    /// The `Authorization` header: fixed, or an OAuth access token (fetched, or renewed).
    async fn authorization(
        &self,
        renew: bool,
        deadline: Instant,
    ) -> Result<HeaderValue, AdapterError> {
        let (client, token_url, slot) = match &self.auth {
            Auth::Static(h) => return Ok(h.clone()),
            Auth::Oauth {
                client,
                token_url,
                token,
            } => (client, token_url, token),
        };
        let mut slot = slot.lock().await;
        if let (Some(t), false) = (slot.as_ref(), renew) {
            return Ok(t.clone());
        }
        let (form, secrets) = client.form();
        let mut req = HttpRequest::new(Method::POST, token_url.clone());
        req.form = Some(form);
        req.body_secrets = secrets;
        req.expect_status = Some(vec![200]);
        req.idempotent = true;
        let response = self.client.send(&req, deadline).await?;
        let token =
            response.json["access_token"]
                .as_str()
                .ok_or_else(|| AdapterError::BadResponse {
                    detail: "the OAuth token answer has no `access_token`".into(),
                })?;
        let value = sensitive(&format!("Bearer {token}"))
            .map_err(|detail| AdapterError::BadResponse { detail })?;
        *slot = Some(value.clone());
        Ok(value)
    }

    /// A GET with the credentials; an OAuth token refused with 401 is renewed once.
    async fn get(&self, url: Url, deadline: Instant) -> Result<HttpResponse, AdapterError> {
        self.send(HttpRequest::get(url), deadline).await
    }

    /// `req` with the credentials; an OAuth token refused with 401 is renewed once.
    async fn send(
        &self,
        req: HttpRequest,
        deadline: Instant,
    ) -> Result<HttpResponse, AdapterError> {
        let mut req = req;
        let mut renewed = false;
        loop {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::AUTHORIZATION,
                self.authorization(renewed, deadline).await?,
            );
            req.headers = headers;
            match self.client.send(&req, deadline).await {
                Err(AdapterError::Auth { status: 401 })
                    if !renewed && matches!(self.auth, Auth::Oauth { .. }) =>
                {
                    renewed = true;
                }
                other => return other,
            }
        }
    }

    /// Every page of the query, following `Link: rel="next"` (or stopping at a short page), and
    /// checked against the count the first page announced: a later page that is empty or has
    /// lost its headers is a short read, never the whole answer.
    async fn list(
        &self,
        query: &str,
        deadline: Instant,
    ) -> Result<(Vec<Value>, Option<String>, Option<String>), AdapterError> {
        let path = match self.api {
            ServiceNowApi::Table => "api/now/table/change_request",
            ServiceNowApi::Change => "api/sn_chg_rest/change",
        };
        let limit = self.page_size.to_string();
        let mut out = Vec::new();
        let mut first: Option<(String, String)> = None;
        let mut announced = Announced::default();
        for page in 0..self.max_pages {
            let offset = (u64::from(page) * u64::from(self.page_size)).to_string();
            let mut url = instance::endpoint(&self.base, path)?;
            url.query_pairs_mut().extend_pairs([
                ("sysparm_query", query),
                ("sysparm_display_value", "all"),
                ("sysparm_exclude_reference_link", "true"),
                ("sysparm_fields", FIELDS),
                ("sysparm_limit", &limit),
                ("sysparm_offset", &offset),
            ]);
            let response = self.get(url, deadline).await?;
            let rows = response.json["result"].as_array().cloned().ok_or_else(|| {
                AdapterError::BadResponse {
                    detail: "`result` is not a list".into(),
                }
            })?;
            let has_next = response
                .headers
                .get(header::LINK)
                .and_then(|l| l.to_str().ok())
                .is_some_and(|l| l.contains("rel=\"next\""));
            let short = rows.len() < self.page_size as usize;
            let total: Option<usize> = response
                .headers
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok());
            announced.page(total, has_next, rows.len());
            if first.is_none() {
                first = Some((response.url.clone(), response.excerpt.clone()));
            }
            out.extend(rows);
            if !has_next || short {
                announced.check(out.len())?;
                let (url, excerpt) = first.map_or((None, None), |(u, e)| (Some(u), Some(e)));
                return Ok((out, url, excerpt));
            }
        }
        Err(AdapterError::BadResponse {
            detail: format!(
                "more than {} pages of {} changes; narrow the query or raise `max_pages`",
                self.max_pages, self.page_size
            ),
        })
    }
}

/// What the pages announced so far: the largest `X-Total-Count` seen, whether the last page
/// pointed to a next one, and whether a later page broke that promise.
#[derive(Debug, Default)]
struct Announced {
    total: Option<usize>,
    next_promised: bool,
    pages: usize,
    cut: Option<&'static str>,
}

impl Announced {
    fn page(&mut self, total: Option<usize>, has_next: bool, rows: usize) {
        if self.pages > 0 && self.next_promised && rows == 0 {
            self.cut = Some("a later page came back empty");
        }
        if self.pages > 0 && self.total.is_some() && total.is_none() {
            self.cut = Some("a later page came back without its `X-Total-Count`");
        }
        self.total = self.total.max(total);
        self.next_promised = has_next;
        self.pages += 1;
    }

    /// The read is whole when it reaches every announced record and no page broke off.
    fn check(&self, read: usize) -> Result<(), AdapterError> {
        if let Some(why) = self.cut {
            return Err(AdapterError::BadResponse {
                detail: format!(
                    "ServiceNow announced more changes but {why} after {read}: pagination ended early"
                ),
            });
        }
        match self.total {
            Some(total) if total > read => Err(AdapterError::BadResponse {
                detail: format!(
                    "ServiceNow counted {total} changes but the pages ended after {read}: pagination ended early"
                ),
            }),
            _ => Ok(()),
        }
    }
}

/// The raw value of a field: a plain string (Table API, raw) or `{value, display_value}`.
fn raw(record: &Value, field: &str) -> Option<String> {
    match &record[field] {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("value").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

fn display(record: &Value, field: &str) -> Value {
    record[field]["display_value"].clone()
}

/// Raw UTC `YYYY-MM-DD HH:MM:SS` → RFC 3339; `""` (unset) → `null`.
fn utc(field: &str, value: &str) -> Result<Value, AdapterError> {
    if value.is_empty() {
        return Ok(Value::Null);
    }
    NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S")
        .map(|t| Value::from(t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        .map_err(|_| AdapterError::BadResponse {
            detail: format!(
                "`{field}` is `{value}`, not a raw UTC date (is the integration user reading display values?)"
            ),
        })
}

fn normalise(record: &Value) -> Result<Value, AdapterError> {
    // Every field `sysparm_fields` asked for must be there (an unset one is `""`): a record
    // without one, filtered on it below, would read as "no such change" instead of a bad answer.
    if let Some(missing) = FIELDS.split(',').find(|f| raw(record, f).is_none()) {
        let which = raw(record, "number")
            .map(|n| format!("change `{n}`"))
            .unwrap_or_else(|| "a change record".to_string());
        return Err(AdapterError::BadResponse {
            detail: format!(
                "ServiceNow returned {which} without the `{missing}` field it was asked for; \
                 give the integration user read access to `change_request.{missing}` (a field \
                 ACL hides it), or check the instance's table API"
            ),
        });
    }
    let need = |f: &str| {
        raw(record, f).ok_or_else(|| AdapterError::BadResponse {
            detail: format!("a change request has no raw `{f}`"),
        })
    };
    let number = need("number")?;
    let state = need("state")?;
    let approval = need("approval")?;
    let start_raw = raw(record, "start_date").unwrap_or_default();
    let end_raw = raw(record, "end_date").unwrap_or_default();
    let approved = approval == "approved" && matches!(state.as_str(), "-2" | "-1");
    Ok(json!({
        "number": number,
        "sys_id": raw(record, "sys_id"),
        "type": raw(record, "type"),
        "state": state,
        "state_name": display(record, "state"),
        "approval": approval,
        "approved": approved,
        "start_date": utc("start_date", &start_raw)?,
        "end_date": utc("end_date", &end_raw)?,
        "start_date_raw": start_raw,
        "end_date_raw": end_raw,
        "cmdb_ci": raw(record, "cmdb_ci"),
        "cmdb_ci_name": display(record, "cmdb_ci"),
        "risk": raw(record, "risk"),
        "on_hold": raw(record, "on_hold"),
        "active": raw(record, "active"),
    }))
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    /// A record as the Table API returns it for `sysparm_fields=FIELDS`, raw values.
    fn record() -> Value {
        let mut r = serde_json::Map::new();
        for f in FIELDS.split(',') {
            r.insert(f.to_string(), Value::from(""));
        }
        r.insert("number".into(), "CHG0030001".into());
        r.insert("state".into(), "-1".into());
        r.insert("approval".into(), "approved".into());
        r.insert("active".into(), "true".into());
        Value::Object(r)
    }

    #[test]
    fn a_record_with_every_requested_field_normalises() {
        let change = normalise(&record()).unwrap();
        assert_eq!(change["number"], "CHG0030001");
        assert_eq!(change["approved"], true);
    }

    #[test]
    #[expect(clippy::panic, reason = "tests")]
    fn a_record_missing_a_requested_field_is_a_bad_response_naming_it() {
        let mut r = record();
        r.as_object_mut().unwrap().remove("active");
        match normalise(&r) {
            Err(AdapterError::BadResponse { detail }) => {
                assert!(detail.contains("`active`"), "{detail}");
                assert!(detail.contains("`CHG0030001`"), "{detail}");
                assert!(!detail.contains("no active change"), "{detail}");
            }
            other => panic!("expected a bad response, got {other:?}"),
        }
    }
}
