//! How the GitHub adapter authenticates (contract `source-and-findings.md` §1.2): a personal
//! access token sent as Bearer, or a GitHub App — a JWT signed with the App's RSA key (RS256,
//! `iat` 60 s in the past, `exp` 9 minutes ahead, `iss` the App id) exchanged for an installation
//! access token, kept until five minutes before the expiry GitHub states, by the adapters'
//! injected clock. Keys and tokens are `Secret`s and sensitive header values.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use reqwest::Url;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::super::AdapterError;
use super::super::http_client::{HttpClient, HttpRequest};
use crate::clock::Clock;
use crate::secret::{Secret, SecretSource};

/// Renew an installation token this long before GitHub says it expires.
const RENEW_BEFORE: chrono::Duration = chrono::Duration::minutes(5);

/// `auth:` of a `kind: github` instance.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum GitHubAuth {
    /// A personal access token (classic `ghp_` or fine-grained `github_pat_`).
    Bearer { token: SecretSource },
    /// A GitHub App: its id, its private key (PEM, PKCS#1 as GitHub issues it, or PKCS#8), and
    /// optionally the installation (else found per repository).
    App {
        app_id: u64,
        private_key: SecretSource,
        #[serde(default)]
        installation_id: Option<u64>,
    },
}

/// An installation, its token and when GitHub said the token expires.
type Installation = (u64, Secret, chrono::DateTime<chrono::Utc>);

/// Resolved credentials.
pub enum Auth {
    Token(HeaderValue),
    App(Box<App>),
}

pub struct App {
    app_id: u64,
    key: rsa::pkcs1v15::SigningKey<sha2::Sha256>,
    installation_id: Option<u64>,
    /// Per account (the repository's owner; one entry when `installation_id` is configured):
    /// its installation, the installation token and when it expires. An App installed in
    /// several organisations has one installation, and so one token, per organisation.
    tokens: Mutex<HashMap<String, Installation>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Auth::Token(<redacted>)"),
            Auth::App(a) => write!(f, "Auth::App({})", a.app_id),
        }
    }
}

impl Auth {
    pub fn resolve(config: &GitHubAuth) -> Result<Self, String> {
        match config {
            GitHubAuth::Bearer { token } => {
                let secret = token.resolve().map_err(|e| e.to_string())?;
                Ok(Auth::Token(bearer(secret.expose())?))
            }
            GitHubAuth::App {
                app_id,
                private_key,
                installation_id,
            } => {
                let pem = private_key.resolve().map_err(|e| e.to_string())?;
                let key = rsa::RsaPrivateKey::from_pkcs1_pem(pem.expose())
                    .or_else(|_| rsa::RsaPrivateKey::from_pkcs8_pem(pem.expose()))
                    .map_err(|_| {
                        "`private_key` is not an RSA private key in PEM (PKCS#1 or PKCS#8)"
                            .to_string()
                    })?;
                Ok(Auth::App(Box::new(App {
                    app_id: *app_id,
                    key: rsa::pkcs1v15::SigningKey::new(key),
                    installation_id: *installation_id,
                    tokens: Mutex::new(HashMap::new()),
                })))
            }
        }
    }

    /// The `Authorization` header for calls about repository `owner/name`.
    pub async fn header(
        &self,
        client: &HttpClient,
        base: &Url,
        repo: &str,
        clock: &dyn Clock,
        deadline: Instant,
    ) -> Result<HeaderValue, AdapterError> {
        match self {
            Auth::Token(h) => Ok(h.clone()),
            Auth::App(app) => {
                app.installation_header(client, base, repo, clock, deadline)
                    .await
            }
        }
    }

    /// Forgets a cached installation token (GitHub answered 401 with it).
    pub async fn forget(&self) {
        if let Auth::App(app) = self {
            app.tokens.lock().await.clear();
        }
    }

    pub fn is_app(&self) -> bool {
        matches!(self, Auth::App(_))
    }
}

impl App {
    /// A JWT for the App: `iat` 60 s back for clock drift, `exp` 9 minutes ahead (GitHub takes
    /// at most 10).
    fn jwt(&self, now: chrono::DateTime<chrono::Utc>) -> Result<Secret, AdapterError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let iat = now.timestamp() - 60;
        let claims = serde_json::json!({"iat": iat, "exp": now.timestamp() + 540, "iss": self.app_id.to_string()});
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        let signature =
            self.key
                .try_sign(input.as_bytes())
                .map_err(|_| AdapterError::BadResponse {
                    detail: "cannot sign the GitHub App JWT with the configured key".into(),
                })?;
        Ok(Secret::new(format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )))
    }

    async fn installation_header(
        &self,
        client: &HttpClient,
        base: &Url,
        repo: &str,
        clock: &dyn Clock,
        deadline: Instant,
    ) -> Result<HeaderValue, AdapterError> {
        let account = match self.installation_id {
            Some(_) => String::new(),
            None => repo
                .split('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase(),
        };
        let mut cached = self.tokens.lock().await;
        let now = clock.now();
        if let Some((_, token, expires)) = cached.get(&account)
            && now + RENEW_BEFORE < *expires
        {
            return bearer(token.expose()).map_err(bad);
        }
        let jwt = self.jwt(now)?;
        let jwt_header = bearer(jwt.expose()).map_err(bad)?;
        let installation = match self.installation_id {
            Some(id) => id,
            None => {
                let url = super::endpoint(base, &format!("repos/{repo}/installation"))?;
                let mut request = HttpRequest::get(url);
                request
                    .headers
                    .insert(http::header::AUTHORIZATION, jwt_header.clone());
                super::github_headers(&mut request);
                let r = client.send(&request, deadline).await?;
                r.json["id"]
                    .as_u64()
                    .ok_or_else(|| AdapterError::BadResponse {
                        detail: format!("`{}` has no installation `id`", r.url),
                    })?
            }
        };
        let url = super::endpoint(
            base,
            &format!("app/installations/{installation}/access_tokens"),
        )?;
        let mut request = HttpRequest::new(http::Method::POST, url);
        request
            .headers
            .insert(http::header::AUTHORIZATION, jwt_header);
        super::github_headers(&mut request);
        // Minting a token has no effect beyond the token: safe to repeat.
        request.idempotent = true;
        request.expect_status = Some(vec![201]);
        let r = client.send(&request, deadline).await?;
        let token = r.json["token"]
            .as_str()
            .ok_or_else(|| AdapterError::BadResponse {
                detail: format!("`{}` answered without a `token`", r.url),
            })?;
        let expires = r.json["expires_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
            .ok_or_else(|| AdapterError::BadResponse {
                detail: format!("`{}` answered without a valid `expires_at`", r.url),
            })?;
        let secret = Secret::new(token);
        let header = bearer(secret.expose()).map_err(bad)?;
        cached.insert(account, (installation, secret, expires));
        Ok(header)
    }
}

fn bad(detail: String) -> AdapterError {
    AdapterError::BadResponse { detail }
}

fn bearer(token: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(&format!("Bearer {}", token.trim()))
        .map_err(|_| "the token is not a valid header value".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use rsa::pkcs1v15::VerifyingKey;
    use rsa::signature::Verifier as _;

    #[test]
    fn the_app_jwt_is_rs256_with_drift_allowance() {
        let key = rsa::RsaPrivateKey::from_pkcs1_pem(crate::sim::github::APP_PRIVATE_KEY).unwrap();
        let verifying = VerifyingKey::<sha2::Sha256>::new(key.to_public_key());
        let app = App {
            app_id: 42,
            key: rsa::pkcs1v15::SigningKey::new(key),
            installation_id: None,
            tokens: Mutex::new(HashMap::new()),
        };
        let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let jwt = app.jwt(now).unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iat"], 1_700_000_000 - 60);
        assert_eq!(claims["exp"], 1_700_000_000 + 540);
        assert_eq!(claims["iss"], "42");
        let sig = rsa::pkcs1v15::Signature::try_from(
            URL_SAFE_NO_PAD.decode(parts[2]).unwrap().as_slice(),
        )
        .unwrap();
        verifying
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .unwrap();
    }
}
