//! API tokens and roles. Tokens are configured as SHA-256 hashes (never in clear), presented as
//! `Authorization: Bearer <token>`, and compared in constant time. Both transports authenticate
//! through [`Authenticator`]; which role an operation needs is decided once, in `gate`.
//!
//! Plain SHA-256 (not a slow password hash) is deliberate: tokens are generated with 256 bits of
//! randomness (`portcullis token generate`), so there is nothing to brute-force, and every request
//! verifies one.

mod scope;

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub use scope::{Scope, ScopeConfig, ScopeConfigError, ScopeDenial, default_callers};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Request checks and read their decisions (Spinnaker, Argo CD, CI jobs).
    Pipeline,
    /// Resolve manual reviews.
    Approver,
    /// Read decisions and audit records.
    Auditor,
    /// Answer Kubernetes admission reviews (`POST /v1/admission`) and nothing else: the API
    /// server's token.
    Admission,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Pipeline => "pipeline",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
            Role::Admission => "admission",
            Role::Admin => "admin",
        }
    }
}

/// One configured token.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Who holds the token (`spinnaker-prod`, `alice`); recorded as the principal.
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    pub roles: Vec<Role>,
    /// Approver groups the holder belongs to (`release-managers` …), for reviews that only
    /// some groups may resolve.
    #[serde(default)]
    pub groups: Vec<String>,
    /// What the token may ask about and read (see [`ScopeConfig`]). Absent: any application,
    /// environment and image, reads every decision, presents every caller kind but
    /// `servicenow` — and the service warns at startup if the token can create checks.
    #[serde(default)]
    pub scopes: Option<ScopeConfig>,
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenConfig")
            .field("name", &self.name)
            .field("sha256", &"[redacted]")
            .field("roles", &self.roles)
            .field("groups", &self.groups)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    roles: Vec<Role>,
    groups: Vec<String>,
    scope: Arc<Scope>,
}

impl Principal {
    /// The caller when no tokens are configured (loopback-only development mode): recorded as
    /// `anonymous`, unrestricted.
    /// (Built per request in development mode: shares one compiled scope rather than building
    /// its glob sets each time.)
    pub fn anonymous_admin() -> Self {
        Self {
            name: "anonymous".into(),
            roles: vec![Role::Admin],
            groups: Vec::new(),
            scope: unrestricted(),
        }
    }

    /// A principal with `roles` and no narrowing scope (the gate's own followers, tests).
    pub fn new(name: impl Into<String>, roles: Vec<Role>) -> Self {
        Self {
            name: name.into(),
            roles,
            groups: Vec::new(),
            scope: unrestricted(),
        }
    }

    /// The same principal limited to `scope`.
    pub fn with_scope(mut self, scope: Scope) -> Self {
        self.scope = Arc::new(scope);
        self
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Whether the principal may read decisions it did not create: approvers, auditors and
    /// admins always (they review and audit), others only with `scopes.read_others`.
    pub fn may_read_others(&self) -> bool {
        self.has_any(&[Role::Approver, Role::Auditor]) || self.scope.may_read_others()
    }

    /// The same principal as a member of `groups`.
    pub fn with_groups(mut self, groups: Vec<String>) -> Self {
        self.groups = groups;
        self
    }

    /// Whether the principal belongs to any of `groups`.
    /// The approver groups the principal belongs to.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }

    pub fn in_any_group(&self, groups: &[String]) -> bool {
        self.groups.iter().any(|g| groups.contains(g))
    }

    /// Whether the principal holds any of `roles` (admin holds all).
    pub fn has_any(&self, roles: &[Role]) -> bool {
        self.roles
            .iter()
            .any(|r| *r == Role::Admin || roles.contains(r))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send `Authorization: Bearer <token>`")]
    Missing,
    #[error("the bearer token is not valid")]
    Invalid,
}

impl AuthError {
    /// What every transport calls this failure (HTTP `reason_code`).
    pub fn reason_code(&self) -> &'static str {
        "auth.unauthenticated"
    }

    /// How the caller can fix it, in one sentence; HTTP shows it as `help`, gRPC in the status
    /// message, as for gate errors.
    pub fn help(&self) -> &'static str {
        match self {
            AuthError::Missing => {
                "send `Authorization: Bearer <token>` with a token configured in `auth.tokens`"
            }
            AuthError::Invalid => {
                "send a token whose SHA-256 is configured in `auth.tokens` (`portcullis token generate` makes a pair)"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    #[error("token `{name}`: `sha256` must be 64 hex digits (use `portcullis token generate`)")]
    BadHash { name: String },
    #[error("token `{name}` has no roles")]
    NoRoles { name: String },
    #[error("token name `{name}` is used twice")]
    DuplicateName { name: String },
    #[error("token `{name}`: scopes: {source}")]
    BadScope {
        name: String,
        source: ScopeConfigError,
    },
}

struct Entry {
    name: String,
    hash: [u8; 32],
    roles: Vec<Role>,
    groups: Vec<String>,
    scope: Arc<Scope>,
}

/// Verifies bearer tokens against the configured hashes.
pub struct Authenticator {
    entries: Vec<Entry>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.entries.len())
            .finish()
    }
}

impl Authenticator {
    pub fn new(tokens: &[TokenConfig]) -> Result<Self, AuthConfigError> {
        let mut entries: Vec<Entry> = Vec::with_capacity(tokens.len());
        for t in tokens {
            let bytes = hex::decode(t.sha256.trim()).map_err(|_| AuthConfigError::BadHash {
                name: t.name.clone(),
            })?;
            let hash: [u8; 32] = bytes.try_into().map_err(|_| AuthConfigError::BadHash {
                name: t.name.clone(),
            })?;
            if t.roles.is_empty() {
                return Err(AuthConfigError::NoRoles {
                    name: t.name.clone(),
                });
            }
            if entries.iter().any(|e| e.name == t.name) {
                return Err(AuthConfigError::DuplicateName {
                    name: t.name.clone(),
                });
            }
            let scope = match &t.scopes {
                Some(c) => Scope::compile(c).map_err(|source| AuthConfigError::BadScope {
                    name: t.name.clone(),
                    source,
                })?,
                None => Scope::unscoped(),
            };
            entries.push(Entry {
                name: t.name.clone(),
                hash,
                roles: t.roles.clone(),
                groups: t.groups.clone(),
                scope: Arc::new(scope),
            });
        }
        Ok(Self { entries })
    }

    /// One line per token configured without `scopes` that can create checks, so reaches every
    /// environment, production included. `serve` logs them and `config check` prints them.
    pub fn warnings(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| !e.scope.is_declared())
            .filter(|e| {
                e.roles
                    .iter()
                    .any(|r| matches!(r, Role::Pipeline | Role::Admin))
            })
            .map(|e| {
                format!(
                    "token `{}` has no `scopes`: it may request checks for any application in any \
                     environment, production included, and read every decision (it may not \
                     present caller kind `servicenow`); add `scopes` with the applications and \
                     environments it deploys",
                    e.name
                )
            })
            .collect()
    }

    /// No tokens configured: every caller is an anonymous admin (allowed on loopback only).
    pub fn is_open(&self) -> bool {
        self.entries.is_empty()
    }

    /// Authenticates the value of an `Authorization` header (or its gRPC metadata twin).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        if self.is_open() {
            return Ok(Principal::anonymous_admin());
        }
        let header = authorization.ok_or(AuthError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::Missing)?
            .trim();
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Compare against every entry so timing does not reveal which one matched.
        let mut found: Option<&Entry> = None;
        for e in &self.entries {
            if bool::from(e.hash.ct_eq(&presented)) {
                found = Some(e);
            }
        }
        found
            .map(|e| Principal {
                name: e.name.clone(),
                roles: e.roles.clone(),
                groups: e.groups.clone(),
                scope: Arc::clone(&e.scope),
            })
            .ok_or(AuthError::Invalid)
    }
}

/// Hex SHA-256 of a token, as configured in `auth.tokens[].sha256`.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token (`pc_` + 64 hex digits, 256 bits).
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("pc_{}", hex::encode(bytes))
}

/// The unrestricted scope, compiled once: building its glob sets is regex compilation, which
/// cost every request of a token-less (development) gate more than its evaluation.
fn unrestricted() -> Arc<Scope> {
    static UNRESTRICTED: std::sync::LazyLock<Arc<Scope>> =
        std::sync::LazyLock::new(|| Arc::new(Scope::unrestricted()));
    Arc::clone(&UNRESTRICTED)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn auth() -> (Authenticator, String) {
        let token = generate_token();
        let a = Authenticator::new(&[TokenConfig {
            name: "ci".into(),
            sha256: hash_token(&token),
            roles: vec![Role::Pipeline],
            groups: vec![],
            scopes: None,
        }])
        .unwrap();
        (a, token)
    }

    #[test]
    fn valid_token_yields_its_principal() {
        let (a, token) = auth();
        let p = a.authenticate(Some(&format!("Bearer {token}"))).unwrap();
        assert_eq!(p.name, "ci");
        assert!(p.has_any(&[Role::Pipeline]));
        assert!(!p.has_any(&[Role::Approver]));
    }

    #[test]
    fn wrong_or_missing_tokens_are_refused() {
        let (a, token) = auth();
        assert_eq!(a.authenticate(None), Err(AuthError::Missing));
        assert_eq!(a.authenticate(Some(&token)), Err(AuthError::Missing));
        assert_eq!(a.authenticate(Some("Bearer nope")), Err(AuthError::Invalid));
    }

    #[test]
    fn bad_hash_is_a_config_error_without_the_value() {
        let e = Authenticator::new(&[TokenConfig {
            name: "x".into(),
            sha256: "secret-looking".into(),
            roles: vec![Role::Admin],
            groups: vec![],
            scopes: None,
        }])
        .err()
        .unwrap();
        assert!(!e.to_string().contains("secret-looking"));
    }

    #[test]
    fn debug_never_shows_hashes() {
        let t = TokenConfig {
            name: "x".into(),
            sha256: "ab".repeat(32),
            roles: vec![Role::Admin],
            groups: vec![],
            scopes: None,
        };
        assert!(!format!("{t:?}").contains("abab"));
    }
}
