//! Credentials as a type: a `Secret` cannot be printed, logged or serialized by accident, and a
//! `SecretSource` says in configuration where a credential comes from without containing it.
//!
//! Configuration names a source (`{ env: NAME }`, `{ file: /path }`, or, discouraged,
//! `{ value: "literal" }`); `resolve` reads it once, at start-up, so a missing credential is a
//! start-up error rather than a failed deploy check at 3 a.m.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Text shown wherever a secret would otherwise be printed.
pub const REDACTED: &str = "[redacted]";

/// A credential. `Debug`, `Display` and `Serialize` all show `[redacted]`; only `expose` gives the
/// value, so every place that uses a credential is one grep away.
///
/// There is deliberately no `PartialEq`: comparing credentials belongs in constant-time code, not
/// in an accidental `==`.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The credential itself. Call only where it is sent to the tool that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Writing configuration back out (a `config show` command, a debug dump) must not leak it.
        serializer.serialize_str(REDACTED)
    }
}

/// Where a credential comes from, as written in configuration: a map with exactly one of `env`,
/// `file` or `value`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "RawSource")]
pub enum SecretSource {
    /// An environment variable, read at start-up.
    Env(String),
    /// A file (a mounted Kubernetes secret, a Vault agent sink); a trailing newline is trimmed.
    File(PathBuf),
    /// The credential written into the configuration file. Allowed for local trials only: the
    /// configuration file then becomes a secret itself.
    Value(Secret),
}

/// The configuration shape, read as a plain map rather than as a serde enum: YAML libraries map
/// enums to `!tags` at the top level, and a map is what users write everywhere.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    env: Option<String>,
    file: Option<PathBuf>,
    value: Option<Secret>,
}

impl TryFrom<RawSource> for SecretSource {
    type Error = String;

    fn try_from(raw: RawSource) -> Result<Self, Self::Error> {
        match (raw.env, raw.file, raw.value) {
            (Some(var), None, None) => Ok(SecretSource::Env(var)),
            (None, Some(path), None) => Ok(SecretSource::File(path)),
            (None, None, Some(secret)) => Ok(SecretSource::Value(secret)),
            _ => Err("a secret source has exactly one of `env`, `file` and `value`".into()),
        }
    }
}

/// Why a credential could not be read. Names the variable or the file, never the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("environment variable `{var}` is not set")]
    EnvMissing { var: String },
    #[error("environment variable `{var}` is not valid unicode")]
    EnvNotUnicode { var: String },
    #[error("cannot read secret file `{path}`: {detail}")]
    FileUnreadable { path: String, detail: String },
    #[error("secret file `{path}` is not valid utf-8")]
    FileNotUtf8 { path: String },
    #[error("{origin} is empty")]
    Empty { origin: String },
}

impl SecretSource {
    /// Reads the credential. An empty credential is an error: sending an empty token would make
    /// the tool answer anonymously, or 401, and both are worse diagnosed here.
    pub fn resolve(&self) -> Result<Secret, SecretError> {
        let (value, origin) = match self {
            SecretSource::Env(var) => {
                let value = std::env::var(var).map_err(|e| match e {
                    std::env::VarError::NotPresent => SecretError::EnvMissing { var: var.clone() },
                    std::env::VarError::NotUnicode(_) => {
                        SecretError::EnvNotUnicode { var: var.clone() }
                    }
                })?;
                (value, format!("environment variable `{var}`"))
            }
            SecretSource::File(path) => {
                let shown = path.display().to_string();
                let bytes = std::fs::read(path).map_err(|e| SecretError::FileUnreadable {
                    path: shown.clone(),
                    // `io::Error` describes the failure (not found, permission denied), never
                    // the content, so it is safe to show.
                    detail: e.kind().to_string(),
                })?;
                let mut value = String::from_utf8(bytes).map_err(|_| SecretError::FileNotUtf8 {
                    path: shown.clone(),
                })?;
                // Editors and `echo` add a final newline; it is never part of a token.
                let trimmed = value.trim_end_matches(['\n', '\r']).len();
                value.truncate(trimmed);
                (value, format!("secret file `{shown}`"))
            }
            SecretSource::Value(secret) => (
                secret.expose().to_string(),
                "the literal secret value".to_string(),
            ),
        };
        if value.is_empty() {
            return Err(SecretError::Empty { origin });
        }
        Ok(Secret(value))
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"[redacted]\"");
        assert_eq!(s.expose(), "hunter2");
        let src: SecretSource = serde_json::from_str(r#"{"value":"hunter2"}"#).unwrap();
        assert!(!format!("{src:?}").contains("hunter2"));
    }

    #[test]
    fn sources_parse_from_config() {
        let src: SecretSource = serde_norway::from_str("env: TOKEN").unwrap();
        assert!(matches!(src, SecretSource::Env(v) if v == "TOKEN"));
        let src: SecretSource = serde_norway::from_str("file: /run/secrets/t").unwrap();
        assert!(matches!(src, SecretSource::File(p) if p.to_str() == Some("/run/secrets/t")));
        let err = serde_norway::from_str::<SecretSource>("vault: x").unwrap_err();
        assert!(err.to_string().contains("unknown field `vault`"), "{err}");
        let err = serde_norway::from_str::<SecretSource>("{env: A, file: /b}").unwrap_err();
        assert!(err.to_string().contains("exactly one"), "{err}");
    }

    #[test]
    fn missing_env_names_the_variable() {
        let var = "PORTCULLIS_TEST_SECRET_THAT_IS_NEVER_SET_7f3a";
        let err = SecretSource::Env(var.into()).resolve().unwrap_err();
        assert_eq!(err, SecretError::EnvMissing { var: var.into() });
        assert_eq!(
            err.to_string(),
            format!("environment variable `{var}` is not set")
        );
    }

    #[test]
    fn present_env_resolves() {
        // `PATH` is set wherever tests run; tests never set variables themselves.
        let expected = std::env::var("PATH").unwrap();
        let s = SecretSource::Env("PATH".into()).resolve().unwrap();
        assert_eq!(s.expose(), expected);
    }

    #[test]
    fn files_lose_their_trailing_newline() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"t0ken\r\n").unwrap();
        let s = SecretSource::File(f.path().into()).resolve().unwrap();
        assert_eq!(s.expose(), "t0ken");
    }

    #[test]
    fn file_errors_name_the_path_not_the_value() {
        let err = SecretSource::File("/nonexistent/portcullis/token".into())
            .resolve()
            .unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/portcullis/token"),
            "{err}"
        );

        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(b"\n").unwrap();
        let err = SecretSource::File(f.path().into()).resolve().unwrap_err();
        assert!(matches!(err, SecretError::Empty { .. }), "{err}");
    }
}
