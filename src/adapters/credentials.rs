//! How the tool adapters authenticate, as configured (`auth: {type: bearer, token: {env: …}}`),
//! and the header each scheme sends. Credentials come from `SecretSource` (env or mounted file)
//! and are resolved once at build time; header values are marked sensitive so the HTTP client
//! scrubs them from everything it reports.

use http::HeaderValue;
use serde::Deserialize;

use crate::secret::{Secret, SecretSource};

/// One adapter instance's credentials. Which types a tool accepts is checked by its adapter.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// `Authorization: Bearer <token>` (SonarQube 10+, Jira DC PAT, Jira Cloud OAuth, ServiceNow
    /// OAuth access token, an Aqua token).
    Bearer { token: SecretSource },
    /// `Authorization: Basic base64(username:password)` (Jira Cloud email + API token,
    /// ServiceNow integration user).
    Basic {
        username: String,
        password: SecretSource,
    },
    /// SonarQube before 10.0: the token as the Basic user name with an empty password.
    TokenAsLogin { token: SecretSource },
    /// Aqua self-hosted: `POST /api/v1/login` with user and password, then the returned token as
    /// Bearer (renewed once on 401).
    Login {
        username: String,
        password: SecretSource,
    },
    /// ServiceNow OAuth: `POST <token_url>` (default `<base_url>/oauth_token.do`) with the
    /// client credentials (`client_credentials` grant, or `password` grant when `username` and
    /// `password` are given); the access token is sent as Bearer and renewed once on 401.
    Oauth {
        client_id: String,
        client_secret: SecretSource,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<SecretSource>,
        #[serde(default)]
        token_url: Option<String>,
    },
}

/// Credentials resolved at build time.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A fixed `Authorization` header (sensitive).
    Header(HeaderValue),
    /// A login exchanged for a session token.
    Login { username: String, password: Secret },
    /// An OAuth client exchanging its credentials for an access token.
    Oauth(OauthClient),
}

/// A resolved OAuth client (see `AuthConfig::Oauth`).
#[derive(Debug, Clone)]
pub struct OauthClient {
    pub client_id: String,
    pub client_secret: Secret,
    pub user: Option<(String, Secret)>,
    pub token_url: Option<String>,
}

impl OauthClient {
    /// The token request's form fields and the secrets in them.
    pub fn form(&self) -> (Vec<(String, String)>, Vec<Secret>) {
        let mut form = vec![
            ("client_id".to_string(), self.client_id.clone()),
            (
                "client_secret".to_string(),
                self.client_secret.expose().to_string(),
            ),
        ];
        let mut secrets = vec![self.client_secret.clone()];
        match &self.user {
            Some((user, password)) => {
                form.push(("grant_type".into(), "password".into()));
                form.push(("username".into(), user.clone()));
                form.push(("password".into(), password.expose().to_string()));
                secrets.push(password.clone());
            }
            None => form.push(("grant_type".into(), "client_credentials".into())),
        }
        (form, secrets)
    }
}

impl AuthConfig {
    pub fn type_name(&self) -> &'static str {
        match self {
            AuthConfig::Bearer { .. } => "bearer",
            AuthConfig::Basic { .. } => "basic",
            AuthConfig::TokenAsLogin { .. } => "token_as_login",
            AuthConfig::Login { .. } => "login",
            AuthConfig::Oauth { .. } => "oauth",
        }
    }

    /// Reads the secret and builds the credentials. The error names the source, never the value.
    pub fn resolve(&self) -> Result<Credentials, String> {
        let read = |s: &SecretSource| s.resolve().map_err(|e| e.to_string());
        Ok(match self {
            AuthConfig::Bearer { token } => {
                Credentials::Header(sensitive(&format!("Bearer {}", read(token)?.expose()))?)
            }
            AuthConfig::Basic { username, password } => {
                Credentials::Header(basic_header(username, read(password)?.expose())?)
            }
            AuthConfig::TokenAsLogin { token } => {
                Credentials::Header(basic_header(read(token)?.expose(), "")?)
            }
            AuthConfig::Login { username, password } => Credentials::Login {
                username: username.clone(),
                password: read(password)?,
            },
            AuthConfig::Oauth {
                client_id,
                client_secret,
                username,
                password,
                token_url,
            } => {
                let user = match (username, password) {
                    (Some(u), Some(p)) => Some((u.clone(), read(p)?)),
                    (None, None) => None,
                    _ => return Err("`username` and `password` go together".into()),
                };
                Credentials::Oauth(OauthClient {
                    client_id: client_id.clone(),
                    client_secret: read(client_secret)?,
                    user,
                    token_url: token_url.clone(),
                })
            }
        })
    }
}

/// `Basic base64(user:password)`, marked sensitive.
pub fn basic_header(user: &str, password: &str) -> Result<HeaderValue, String> {
    sensitive(&format!(
        "Basic {}",
        base64_encode(format!("{user}:{password}").as_bytes())
    ))
}

/// A header value marked sensitive; the error does not quote the value.
pub fn sensitive(text: &str) -> Result<HeaderValue, String> {
    let mut v = HeaderValue::from_str(text)
        .map_err(|_| "the credential has characters not allowed in a header".to_string())?;
    v.set_sensitive(true);
    Ok(v)
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn auth_is_a_typed_map_and_unknown_keys_are_refused() {
        let a: AuthConfig =
            serde_norway::from_str("{type: basic, username: u, password: {value: p}}").unwrap();
        assert_eq!(a.type_name(), "basic");
        let Credentials::Header(h) = a.resolve().unwrap() else {
            unreachable!("basic is a header")
        };
        assert_eq!(h.to_str().unwrap(), "Basic dTpw");
        assert!(h.is_sensitive());
        let e = serde_norway::from_str::<AuthConfig>("{type: bearer, token: {value: t}, x: 1}");
        assert!(e.is_err());
        let e = serde_norway::from_str::<AuthConfig>("{type: magic}");
        assert!(e.is_err());
    }
}
