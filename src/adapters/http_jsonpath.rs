//! The declarative HTTP adapter (`kind: http`): how users plug in a tool Portcullis does not ship.
//! One templated request per check, JSONPath expressions turn the JSON answer into facts.
//!
//! ```yaml
//! adapters:
//!   - kind: http
//!     name: scanner                       # evidence namespace: rules read `scanner.critical`
//!     url: https://scanner.example/api/images/{image.digest}?env={environment}
//!     method: GET                         # or POST, with an optional JSON `body` template
//!     headers:
//!       Authorization: { secret: { env: SCANNER_TOKEN }, prefix: "Bearer " }
//!       X-Team: { value: payments }
//!     timeout: 5s                         # default 5s; the gate's deadline still wins
//!     retries: 2                          # default 2
//!     max_concurrency: 16                 # default 16
//!     expect_status: [200]                # default: any 2xx
//!     extract:
//!       critical: $.summary.critical
//!       scanned_digest: $.image.digest
//! ```
//!
//! Extraction: the evidence document of the adapter is an object `{fact: value}`. A JSONPath that
//! matches one value gives that value; several give an array of them; none leaves the fact
//! absent, which rules treat as missing evidence (fail closed), never as `false` or `0`. A path
//! that matches a JSON `null` gives `null`. Because one match gives a scalar, a path like
//! `$.items[*].id` gives a scalar when exactly one item exists; to always get a list, extract the
//! array itself (`$.items`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use jsonpath_rust::parser::model::JpQuery;
use reqwest::Url;
use serde::Deserialize;
use tokio::time::Instant;

use super::http_client::{ClientSettings, HttpClient, HttpRequest, is_valid_status};
use super::redact::is_secret_name;
use super::template::{Encoding, JsonTemplate, MissingValue, Template};
use super::{Adapter, AdapterBuildError, AdapterError, Facts};
use crate::clock::Clock;
use crate::domain::CheckRequest;
use crate::secret::SecretSource;

/// Configuration of one `kind: http` adapter (see the module documentation for an example).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpAdapterConfig {
    /// Instance name and evidence namespace: `[a-z][a-z0-9_]*`, not `request`.
    pub name: String,
    /// URL template; placeholder values are percent-encoded.
    pub url: String,
    #[serde(default)]
    pub method: HttpMethod,
    /// JSON body template for POST; string values may hold placeholders.
    #[serde(default)]
    pub body: Option<serde_json::Value>,
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderConfig>,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Fact name → JSONPath.
    #[serde(default)]
    pub extract: BTreeMap<String, String>,
    /// Statuses that count as an answer; default any 2xx.
    #[serde(default)]
    pub expect_status: Option<Vec<u16>>,
    /// Whether a POST may be retried on 502/503/504 (a read-only search, say). GET always may.
    #[serde(default)]
    pub idempotent: Option<bool>,
    /// Trusted CAs beyond the system roots, and a client certificate for mTLS.
    #[serde(default)]
    pub tls: Option<crate::tls::ClientTlsConfig>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_retries() -> u32 {
    2
}

fn default_max_concurrency() -> usize {
    16
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum HttpMethod {
    #[default]
    #[serde(rename = "GET", alias = "get")]
    Get,
    #[serde(rename = "POST", alias = "post")]
    Post,
}

/// One header: a literal `value`, or a `secret` (with an optional `prefix` such as `Bearer `).
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderConfig {
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub secret: Option<SecretSource>,
    #[serde(default)]
    pub prefix: Option<String>,
}

impl std::fmt::Debug for HeaderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Literal values are shown as such, not printed: people paste tokens into `value`.
        f.debug_struct("HeaderConfig")
            .field("value", &self.value.as_ref().map(|_| "[literal]"))
            .field("secret", &self.secret)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// A built `kind: http` adapter.
pub struct HttpJsonPathAdapter {
    name: String,
    method: Method,
    url_source: String,
    url: Template,
    body: Option<JsonTemplate>,
    headers: HeaderMap,
    timeout: Duration,
    idempotent: bool,
    expect_status: Option<Vec<u16>>,
    extract: Vec<(String, JpQuery)>,
    client: HttpClient,
}

impl std::fmt::Debug for HttpJsonPathAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Headers are left out: they hold the credentials.
        f.debug_struct("HttpJsonPathAdapter")
            .field("name", &self.name)
            .field("method", &self.method)
            .field("url", &self.url_source)
            .field(
                "facts",
                &self.extract.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl HttpJsonPathAdapter {
    /// Validates the configuration, resolves secrets and builds the client. Errors name the
    /// adapter and the field.
    pub fn build(
        config: &HttpAdapterConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, AdapterBuildError> {
        let invalid = |field: &str, message: String| AdapterBuildError::Invalid {
            name: config.name.clone(),
            message: format!("`{field}`: {message}"),
        };

        let url = Template::parse(&config.url).map_err(|e| invalid("url", e.to_string()))?;
        check_url(&url).map_err(|m| invalid("url", m))?;

        let method = match config.method {
            HttpMethod::Get => Method::GET,
            HttpMethod::Post => Method::POST,
        };
        let body = match (&config.body, config.method) {
            (None, _) => None,
            (Some(_), HttpMethod::Get) => {
                return Err(invalid(
                    "body",
                    "only a POST sends a body; set `method: POST`".into(),
                ));
            }
            (Some(b), HttpMethod::Post) => {
                Some(JsonTemplate::parse(b).map_err(|e| invalid("body", e.to_string()))?)
            }
        };

        let mut headers = HeaderMap::new();
        for (name, h) in &config.headers {
            let field = format!("headers.{name}");
            let header = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(&field, "is not a valid header name".into()))?;
            let (text, secret) = match (&h.value, &h.secret) {
                (Some(v), None) => {
                    if h.prefix.is_some() {
                        return Err(invalid(
                            &field,
                            "`prefix` goes with `secret`, not `value`".into(),
                        ));
                    }
                    (v.clone(), false)
                }
                (None, Some(source)) => {
                    let secret = source
                        .resolve()
                        .map_err(|e| invalid(&field, e.to_string()))?;
                    (
                        format!("{}{}", h.prefix.as_deref().unwrap_or(""), secret.expose()),
                        true,
                    )
                }
                _ => {
                    return Err(invalid(
                        &field,
                        "give exactly one of `value` and `secret`".into(),
                    ));
                }
            };
            let mut value = HeaderValue::from_str(&text).map_err(|_| {
                // The value is not quoted: it may be a credential.
                invalid(
                    &field,
                    "has characters that are not allowed in a header value".into(),
                )
            })?;
            // Sensitive values are left out of `http`'s Debug output, never indexed by HPACK,
            // and scrubbed by the client from anything it reports.
            value.set_sensitive(secret || is_secret_name(name));
            headers.append(header, value);
        }

        if config.timeout.is_zero() {
            return Err(invalid("timeout", "must be longer than zero".into()));
        }
        if config.max_concurrency == 0 {
            return Err(invalid("max_concurrency", "must be at least 1".into()));
        }
        if let Some(list) = &config.expect_status {
            if list.is_empty() {
                return Err(invalid(
                    "expect_status",
                    "must list at least one status".into(),
                ));
            }
            if let Some(bad) = list.iter().find(|s| !is_valid_status(**s)) {
                return Err(invalid(
                    "expect_status",
                    format!("`{bad}` is not an HTTP status"),
                ));
            }
        }

        let mut extract = Vec::new();
        for (fact, path) in &config.extract {
            let field = format!("extract.{fact}");
            let fact_ok = fact
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && fact.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !fact_ok {
                return Err(invalid(
                    &field,
                    "fact names are letters, digits and `_`, starting with a letter or `_`".into(),
                ));
            }
            let query = jsonpath_rust::parser::parse_json_path(path)
                .map_err(|e| invalid(&field, format!("`{path}` is not a JSONPath: {e}")))?;
            extract.push((fact.clone(), query));
        }

        let client = HttpClient::new(ClientSettings {
            retries: config.retries,
            max_concurrency: config.max_concurrency,
            tls: config.tls.clone().unwrap_or_default(),
            clock,
            ..ClientSettings::new(config.name.clone())
        })?;
        Ok(Self {
            name: config.name.clone(),
            idempotent: config.idempotent.unwrap_or_else(|| method.is_idempotent()),
            method,
            url_source: config.url.clone(),
            url,
            body,
            headers,
            timeout: config.timeout,
            expect_status: config.expect_status.clone(),
            extract,
            client,
        })
    }

    /// The facts document: one entry per JSONPath that matched.
    fn extract(&self, json: &serde_json::Value) -> Result<serde_json::Value, AdapterError> {
        let mut facts = serde_json::Map::new();
        for (fact, query) in &self.extract {
            let found = jsonpath_rust::query::js_path_process(query, json).map_err(|e| {
                AdapterError::BadResponse {
                    detail: format!("`extract.{fact}` cannot be evaluated on the response: {e}"),
                }
            })?;
            let mut values: Vec<serde_json::Value> =
                found.into_iter().map(|r| r.val.clone()).collect();
            match values.len() {
                0 => {}
                1 => {
                    facts.insert(fact.clone(), values.remove(0));
                }
                _ => {
                    facts.insert(fact.clone(), serde_json::Value::Array(values));
                }
            }
        }
        Ok(serde_json::Value::Object(facts))
    }
}

/// The URL must be an absolute http(s) URL for any request, and carry no credentials: those go
/// in `headers`, where they are resolved from a secret source and kept out of reports.
fn check_url(url: &Template) -> Result<(), String> {
    let sample = url
        .render_with(Encoding::Url, |_| Ok("sample".to_string()))
        .map_err(|e| e.to_string())?;
    let parsed = Url::parse(&sample).map_err(|e| format!("is not a valid url: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "scheme `{}` is not supported; use http or https",
            parsed.scheme()
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not contain credentials; use a `headers` entry with a `secret`".into());
    }
    Ok(())
}

impl From<MissingValue> for AdapterError {
    fn from(m: MissingValue) -> Self {
        AdapterError::NotFound {
            detail: m.to_string(),
        }
    }
}

#[async_trait]
impl Adapter for HttpJsonPathAdapter {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> &'static str {
        "http"
    }

    async fn collect(
        &self,
        request: &CheckRequest,
        deadline: Instant,
    ) -> Result<Facts, AdapterError> {
        let deadline = deadline.min(Instant::now() + self.timeout);
        let text = self.url.render(request, Encoding::Url)?;
        // Values are percent-encoded and the template was checked with sample values, so this
        // fails only for a value that makes the host invalid (a placeholder in the host name).
        let url = Url::parse(&text).map_err(|e| AdapterError::BadResponse {
            detail: format!("the url rendered for this request is invalid: {e}"),
        })?;
        let mut call = HttpRequest::new(self.method.clone(), url);
        call.headers = self.headers.clone();
        call.body = self.body.as_ref().map(|b| b.render(request)).transpose()?;
        call.idempotent = self.idempotent;
        call.expect_status = self.expect_status.clone();
        let response = self.client.send(&call, deadline).await?;
        Ok(Facts {
            document: self.extract(&response.json)?,
            url: Some(response.url),
            excerpt: Some(response.excerpt),
        })
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::adapters::AdapterConfig;
    use crate::adapters::template::tests::request;
    use crate::clock::{Clock, SystemClock};

    fn config(yaml: &str) -> Result<Vec<AdapterConfig>, serde_norway::Error> {
        serde_norway::from_str(yaml)
    }

    fn system() -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }

    fn build(configs: &[AdapterConfig]) -> Result<Vec<Arc<dyn Adapter>>, AdapterBuildError> {
        crate::adapters::build(configs, &system())
    }

    /// A credential that must never show in a Debug output. (The fault list `kind: http` must
    /// survive is the conformance suite's, in tests/it/adapters.rs.)
    const TEST_SECRET: &str = "s3cr3t-unit-t0ken";

    /// An adapter sending a secret bearer header, on `clock`.
    fn adapter(base: &str, clock: Arc<dyn Clock>) -> Arc<dyn Adapter> {
        let yaml = format!(
            r#"
- kind: http
  name: tool
  url: "{base}/api/{{application}}?digest={{image.digest}}"
  headers:
    Authorization: {{ secret: {{ value: "{TEST_SECRET}" }}, prefix: "Bearer " }}
  timeout: 10s
  extract:
    status: $.status
"#
        );
        crate::adapters::build(&config(&yaml).unwrap(), &clock)
            .unwrap()
            .remove(0)
    }

    fn http(c: &AdapterConfig) -> &HttpAdapterConfig {
        match c {
            AdapterConfig::Http(c) => c,
            other => unreachable!("not an http config: {}", other.name()),
        }
    }

    #[test]
    fn extraction_gives_one_value_an_array_or_nothing() {
        let configs = config(
            "- {kind: http, name: t, url: 'http://h/', extract: {one: $.status, many: '$.findings[*].id', none: $.zzz, 'null': $.n}}",
        )
        .unwrap();
        let adapter = HttpJsonPathAdapter::build(http(&configs[0]), system()).unwrap();
        let json = serde_json::json!({
            "status": "OK",
            "findings": [{"id": "CVE-1"}, {"id": "CVE-2"}],
            "n": null,
        });
        assert_eq!(
            adapter.extract(&json).unwrap(),
            serde_json::json!({"one": "OK", "many": ["CVE-1", "CVE-2"], "null": null})
        );
    }

    #[test]
    fn debug_output_hides_credentials() {
        let configs = config(
            "- {kind: http, name: t, url: 'http://h/', headers: {A: {value: lit3ral}, B: {secret: {value: s3cr3t}}}}",
        )
        .unwrap();
        let shown = format!("{configs:?} {:?}", build(&configs).unwrap());
        assert!(
            !shown.contains("lit3ral") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert!(!format!("{:?}", adapter("http://127.0.0.1:9", system())).contains(TEST_SECRET));
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let e = config("- {kind: http, name: t, url: 'http://h/', tmeout: 5s}").unwrap_err();
        assert!(e.to_string().contains("unknown field `tmeout`"), "{e}");
        let e =
            config("- {kind: http, name: t, url: 'http://h/', headers: {A: {value: x, prfix: y}}}")
                .unwrap_err();
        assert!(e.to_string().contains("unknown field `prfix`"), "{e}");
        let e = config("- {kind: htp, name: t, url: 'http://h/'}").unwrap_err();
        assert!(e.to_string().contains("unknown variant `htp`"), "{e}");
        let e = config("- {name: t, url: 'http://h/'}").unwrap_err();
        assert!(e.to_string().contains("kind"), "{e}");
    }

    #[test]
    fn defaults_apply() {
        let configs = config("- {kind: http, name: t, url: 'http://h/'}").unwrap();
        let c = http(&configs[0]);
        assert_eq!(c.method, HttpMethod::Get);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!((c.retries, c.max_concurrency), (2, 16));
    }

    #[test]
    fn missing_env_secret_is_a_build_error_naming_the_variable() {
        let var = "PORTCULLIS_TEST_TOKEN_NEVER_SET_4b1d";
        let configs = config(&format!(
            "- {{kind: http, name: scanner, url: 'http://h/', headers: {{Authorization: {{secret: {{env: {var}}}, prefix: 'Bearer '}}}}}}"
        ))
        .unwrap();
        let e = build(&configs).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "adapter `scanner`: `headers.Authorization`: environment variable `{var}` is not set"
            )
        );
    }

    #[test]
    fn build_errors_name_adapter_and_field() {
        let cases = [
            (
                "url: 'http://h/{image.sha}'",
                "`url`: unknown placeholder `{image.sha}`",
            ),
            ("url: 'ftp://h/'", "`url`: scheme `ftp` is not supported"),
            (
                "url: 'https://u:p@h/'",
                "`url`: must not contain credentials",
            ),
            (
                "url: 'http://h/', extract: {x: '$.[bad'}",
                "`extract.x`: `$.[bad` is not a JSONPath",
            ),
            (
                "url: 'http://h/', extract: {'a-b': '$.x'}",
                "`extract.a-b`: fact names",
            ),
            (
                "url: 'http://h/', body: {a: 1}",
                "`body`: only a POST sends a body",
            ),
            (
                "url: 'http://h/', method: POST, body: {a: '{nope}'}",
                "`body`: `body.a`: unknown placeholder",
            ),
            (
                "url: 'http://h/', headers: {A: {}}",
                "`headers.A`: give exactly one",
            ),
            (
                "url: 'http://h/', headers: {'A B': {value: x}}",
                "`headers.A B`: is not a valid header name",
            ),
            (
                "url: 'http://h/', timeout: 0s",
                "`timeout`: must be longer than zero",
            ),
            (
                "url: 'http://h/', max_concurrency: 0",
                "`max_concurrency`: must be at least 1",
            ),
            (
                "url: 'http://h/', expect_status: [700]",
                "`expect_status`: `700` is not an HTTP status",
            ),
        ];
        for (fields, expected) in cases {
            let configs = config(&format!("- {{kind: http, name: t, {fields}}}")).unwrap();
            let e = build(&configs).unwrap_err().to_string();
            assert!(e.starts_with("adapter `t`: "), "{e}");
            assert!(e.contains(expected), "{e} does not contain {expected}");
        }
    }

    #[tokio::test]
    async fn absent_request_values_are_not_found_without_calling() {
        let configs =
            config("- {kind: http, name: t, url: 'http://127.0.0.1:9/{image.digest}'}").unwrap();
        let adapter = build(&configs).unwrap().remove(0);
        let mut r = request();
        r.images[0].digest = None;
        let e = adapter
            .collect(&r, Instant::now() + Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(e, AdapterError::NotFound { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "not found: request has no image digest for `{image.digest}`"
        );
    }

    #[tokio::test]
    async fn posts_send_the_rendered_body() {
        use axum::extract::Json;
        use tokio::sync::mpsc;

        // A tool that hands over each request's method and JSON body.
        let (tx, mut rx) = mpsc::unbounded_channel();
        let app = axum::Router::new().fallback(
            move |method: http::Method, Json(body): Json<serde_json::Value>| {
                let _ = tx.send((method.to_string(), body));
                async { Json(serde_json::json!({"status": "OK"})) }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let configs = config(&format!(
            "- {{kind: http, name: t, url: '{base}/search', method: POST, body: {{app: '{{application}}', n: 1}}, headers: {{X-Key: {{secret: {{value: {TEST_SECRET}}}}}}}, extract: {{s: $.status}}}}",
        ))
        .unwrap();
        let adapter = build(&configs).unwrap().remove(0);
        let facts = adapter
            .collect(&request(), Instant::now() + Duration::from_secs(3))
            .await
            .unwrap();
        assert_eq!(facts.document, serde_json::json!({"s": "OK"}));
        let (method, body) = rx.recv().await.unwrap();
        assert_eq!(method, "POST");
        assert_eq!(body, serde_json::json!({"app": "payments-api", "n": 1}));
    }
}
