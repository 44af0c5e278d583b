//! Settings: one typed tree, layered once — built-in defaults < the `--config` file <
//! `PORTCULLIS__SECTION__KEY` environment variables. Unknown keys are errors naming the key path,
//! so a typo fails loudly instead of silently keeping a default.
//!
//! `load` is the only function in the crate that reads the environment (apart from the log filter).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::adapters::AdapterConfig;
use crate::auth::TokenConfig;
use crate::domain::{EnvironmentDecl, Environments, Verdict};

/// Built-in defaults, also the reference for every key (README documents them).
pub const DEFAULTS: &str = include_str!("config/defaults.yaml");

/// Prefix of environment variables that override settings: `PORTCULLIS__SERVER__HTTP_ADDR`.
pub const ENV_PREFIX: &str = "PORTCULLIS";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub store: StoreSettings,
    pub policy: PolicySettings,
    pub gate: GateSettings,
    pub review: ReviewSettings,
    #[serde(default)]
    pub adapters: Vec<AdapterConfig>,
    pub auth: AuthSettings,
    pub telemetry: TelemetrySettings,
    /// Outbound review webhooks: `[{url, secret, events, expiring_within}]`.
    #[serde(default)]
    pub notifications: Vec<crate::notify::NotificationTarget>,
    /// The Kubernetes admission webhook (`POST /v1/admission`).
    pub admission: crate::admission::AdmissionSettings,
    /// The signed decision log.
    pub audit: AuditSettings,
}

/// The decision log's checkpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// The Ed25519 private key (PKCS#8 PEM) checkpoints are signed with, from `env` or `file`
    /// (`portcullis audit keygen` makes one). The service does not start without it.
    #[serde(default)]
    pub signing_key: Option<crate::secret::SecretSource>,
    /// The longest time events wait for a signed checkpoint while they arrive.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: std::time::Duration,
    /// How long final decisions and their events are kept (`null`: for ever). Older ones are
    /// removed, keeping each event's place and hash, so what remains still verifies.
    #[serde(with = "humantime_serde")]
    pub retention: Option<std::time::Duration>,
    /// How often the replica holding the `audit-retention` lease prunes.
    #[serde(with = "humantime_serde")]
    pub retention_interval: std::time::Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// HTTP/JSON API, health, metrics.
    pub http_addr: SocketAddr,
    /// gRPC API.
    pub grpc_addr: SocketAddr,
    /// Largest request body accepted, in bytes (checks, reviews, contract calls; gRPC messages).
    pub max_body_bytes: usize,
    /// Largest evidence report accepted by `POST /v1/evidence/…` and gRPC `SubmitEvidence`
    /// alike, in bytes of the report.
    pub max_evidence_bytes: usize,
    /// How long shutdown waits for in-flight checks.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// The base URL callers reach this service at (`https://portcullis.example.com`), used for
    /// absolute links such as Spinnaker's status URL. Unset: taken from each request's `Host`
    /// and `X-Forwarded-Proto` headers.
    pub public_url: Option<String>,
    /// Serve HTTPS and gRPC over TLS: `{cert_file, key_file, client_ca_file, client_auth,
    /// reload_interval}`. Unset: plain HTTP and gRPC (behind a TLS-terminating proxy or mesh).
    #[serde(default)]
    pub tls: Option<crate::tls::ServerTlsConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSettings {
    /// `sqlite://path/to/file.db` (default) or `postgres://…`.
    pub url: String,
    pub max_connections: u32,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Directory of policy YAML files; unset means the built-in pack.
    pub dir: Option<PathBuf>,
    /// How often the directory is checked for edits.
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSettings {
    /// Overall deadline for gathering evidence in one check; each adapter also has its own.
    #[serde(with = "humantime_serde")]
    pub evidence_deadline: Duration,
    /// The environments checks may name, each with its tier: `[{name: prod, tier: production}]`
    /// (a name may be a glob such as `prod-*`). Unset: the built-in list
    /// ([`crate::domain::DEFAULT_ENVIRONMENTS`]). A check for any other environment is refused.
    #[serde(default)]
    pub environments: Option<Vec<EnvironmentDecl>>,
    /// The answer to a check no policy rule applies to at all.
    pub no_rules_verdict: Verdict,
    /// How long a final decision answers a repeat of its idempotency key; after that, or once
    /// another policy version is in force, the repeat is evaluated anew and linked to it.
    #[serde(with = "humantime_serde")]
    pub replay_window: Duration,
}

impl GateSettings {
    /// The declared environments, compiled (the built-in list when none are configured).
    pub fn declared_environments(&self) -> Result<Environments, ConfigError> {
        match &self.environments {
            None => Ok(Environments::default()),
            Some(decls) => Environments::new(decls.clone()).map_err(|e| ConfigError::Invalid {
                path: "gate.environments".into(),
                message: format!("{}; {}", e.message, e.help),
            }),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewSettings {
    /// How long a manual review may stay pending before it expires (terminate).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Per-environment overrides of `timeout`, e.g. `{prod: 8h}`.
    #[serde(default)]
    pub environments: std::collections::BTreeMap<String, humantime_serde::Serde<Duration>>,
    /// How often one replica (holding a lease) looks for reviews past their deadline.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// Who may approve, per environment: `{prod: {required: 2, groups: [release-managers]}}`.
    /// Environments not listed need one approver with the `approver` role.
    #[serde(default)]
    pub approvals: std::collections::BTreeMap<String, ApprovalRule>,
    /// Where reviews are decided, per environment:
    /// `{prod: {servicenow: {adapter: servicenow, assignment_group: CAB}}}`. Unlisted
    /// environments are reviewed through the API only.
    #[serde(default)]
    pub routes: std::collections::BTreeMap<String, crate::review_routing::ReviewRoute>,
}

/// How many distinct approvers a review needs, and from which groups.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    #[serde(default = "one")]
    pub required: u32,
    /// Approver groups (from `auth.tokens[].groups`) allowed to resolve; empty means any approver.
    #[serde(default)]
    pub groups: Vec<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// API tokens (hashed). With none, the server accepts everyone and binds loopback only.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetrySettings {
    pub log_format: LogFormat,
    /// `tracing` filter directive, e.g. `info,portcullis=debug`; `RUST_LOG` wins when set.
    pub log_level: String,
    /// OTLP gRPC endpoint (`http://collector:4317`); unset means no trace export.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file `{path}`: {message}")]
    File { path: String, message: String },
    #[error("invalid configuration at `{path}`: {message}")]
    Invalid { path: String, message: String },
}

impl ReviewSettings {
    /// The review timeout for `environment`.
    pub fn timeout_for(&self, environment: &str) -> Duration {
        self.environments
            .get(environment)
            .map_or(self.timeout, |d| **d)
    }
}

impl ConfigError {
    pub fn reason_code(&self) -> &'static str {
        match self {
            ConfigError::File { .. } => "config.file",
            ConfigError::Invalid { .. } => "config.invalid",
        }
    }
}

/// Loads settings: defaults, then `file` if given, then the process environment.
pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    load_from(file, env)
}

/// Same as [`load`] with an explicit environment, so tests never mutate the process environment.
pub fn load_from(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    use config::{Config, Environment, File, FileFormat};

    let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Yaml));
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => FileFormat::Toml,
            Some("json") => FileFormat::Json,
            _ => FileFormat::Yaml,
        };
        builder = builder.add_source(File::from_str(&text, format));
    }
    let env_map: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    builder = builder.add_source(
        Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env_map)),
    );
    let merged = builder.build().map_err(|e| ConfigError::Invalid {
        path: file.map(|p| p.display().to_string()).unwrap_or_default(),
        message: e.to_string(),
    })?;
    // Going through JSON lets serde_path_to_error name the exact key path of any problem.
    let value: serde_json::Value =
        merged
            .try_deserialize()
            .map_err(|e: config::ConfigError| ConfigError::Invalid {
                path: String::new(),
                message: e.to_string(),
            })?;
    let settings: Settings =
        serde_path_to_error::deserialize(value).map_err(|e| ConfigError::Invalid {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
    settings.validate()?;
    Ok(settings)
}

impl Settings {
    /// Cross-key checks: settings keyed by environment must name declared environments, or a
    /// typo (`prd:` under `review.approvals`) would silently leave the real one unprotected.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let envs = self.gate.declared_environments()?;
        let keyed = [
            (
                "review.environments",
                self.review.environments.keys().collect::<Vec<_>>(),
            ),
            ("review.approvals", self.review.approvals.keys().collect()),
            ("review.routes", self.review.routes.keys().collect()),
        ];
        for (key, names) in keyed {
            if let Some(name) = names.into_iter().find(|n| !envs.declares(n)) {
                return Err(ConfigError::Invalid {
                    path: format!("{key}.{name}"),
                    message: format!(
                        "`{name}` is not a declared environment (declared: {}); declare it in `gate.environments` or fix the name",
                        envs.names().join(", ")
                    ),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn defaults_load() {
        let s = load_from(None, no_env()).unwrap();
        assert!(s.server.http_addr.ip().is_loopback());
        assert!(s.store.url.starts_with("sqlite://"));
        assert!(s.auth.tokens.is_empty());
    }

    #[test]
    fn environment_overrides_defaults() {
        let env = vec![
            (
                "PORTCULLIS__SERVER__HTTP_ADDR".to_string(),
                "127.0.0.1:9999".to_string(),
            ),
            (
                "PORTCULLIS__GATE__EVIDENCE_DEADLINE".to_string(),
                "3s".to_string(),
            ),
            ("PORTCULLIS_UNRELATED".to_string(), "x".to_string()),
        ];
        let s = load_from(None, env).unwrap();
        assert_eq!(s.server.http_addr.port(), 9999);
        assert_eq!(s.gate.evidence_deadline, Duration::from_secs(3));
    }

    #[test]
    fn file_overrides_defaults_and_env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "store:\n  url: sqlite://x.db\nserver:\n  max_body_bytes: 10\n",
        )
        .unwrap();
        let env = vec![(
            "PORTCULLIS__SERVER__MAX_BODY_BYTES".to_string(),
            "20".to_string(),
        )];
        let s = load_from(Some(&path), env).unwrap();
        assert_eq!(s.store.url, "sqlite://x.db");
        assert_eq!(s.server.max_body_bytes, 20);
    }

    #[test]
    fn unknown_keys_name_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "server:\n  http_adr: 127.0.0.1:1\n").unwrap();
        let e = load_from(Some(&path), no_env()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("server"), "{msg}");
        assert!(msg.contains("http_adr"), "{msg}");
    }

    #[test]
    fn environments_default_to_the_builtin_list_and_keyed_settings_must_name_them() {
        let s = load_from(None, no_env()).unwrap();
        assert_eq!(s.gate.no_rules_verdict, Verdict::ManualReview);
        let envs = s.gate.declared_environments().unwrap();
        assert_eq!(
            envs.names().len(),
            crate::domain::DEFAULT_ENVIRONMENTS.len()
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(&path, "review:\n  approvals:\n    prd: {required: 2}\n").unwrap();
        let msg = load_from(Some(&path), no_env()).unwrap_err().to_string();
        assert!(msg.contains("review.approvals.prd"), "{msg}");
        assert!(msg.contains("`prd` is not a declared environment"), "{msg}");

        std::fs::write(
            &path,
            "gate:\n  environments: [{name: prd, tier: production}]\n  no_rules_verdict: terminate\nreview:\n  approvals:\n    prd: {required: 2}\n  routes: {}\n",
        )
        .unwrap();
        let s = load_from(Some(&path), no_env()).unwrap();
        assert_eq!(s.gate.declared_environments().unwrap().names(), ["prd"]);
        assert_eq!(s.gate.no_rules_verdict, Verdict::Terminate);

        std::fs::write(&path, "review:\n  environments: {live: 8h}\n").unwrap();
        let msg = load_from(Some(&path), no_env()).unwrap_err().to_string();
        assert!(msg.contains("review.environments.live"), "{msg}");

        std::fs::write(&path, "gate:\n  environments: []\n").unwrap();
        let msg = load_from(Some(&path), no_env()).unwrap_err().to_string();
        assert!(msg.contains("gate.environments"), "{msg}");
        assert!(msg.contains("no environments are declared"), "{msg}");

        std::fs::write(
            &path,
            "gate:\n  environments: [{name: prod, tier: prodution}]\n",
        )
        .unwrap();
        let msg = load_from(Some(&path), no_env()).unwrap_err().to_string();
        assert!(msg.contains("gate.environments"), "{msg}");
    }

    #[test]
    fn bad_values_name_their_path() {
        let env = vec![(
            "PORTCULLIS__SERVER__GRPC_ADDR".to_string(),
            "not an address".to_string(),
        )];
        let e = load_from(None, env).unwrap_err();
        assert!(e.to_string().contains("server.grpc_addr"), "{e}");
    }
}
