//! Token scopes: which applications, environments and image repositories a token may ask about,
//! which caller kinds it may present, and whether it may read decisions it did not create.
//!
//! A token without `scopes` keeps today's reach (any application, environment and image, and it
//! reads every decision) so existing configurations keep working — with one exception that is
//! never implied: presenting caller kind `servicenow`. That kind changes which rules apply (the
//! built-in change rules skip their approval, state and window checks when ServiceNow itself
//! asks), so only a token whose `scopes.callers` lists `servicenow` may present it.

use std::fmt;

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::domain::{CallerKind, CheckRequest, ImageRef};

/// `auth.tokens[].scopes` as configured. Omitted lists mean "any" (`["*"]`); omitted `callers`
/// means every kind except `servicenow`; `read_others` defaults to false once `scopes` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeConfig {
    /// Application name globs (`payments`, `payments-*`).
    #[serde(default = "everything")]
    pub applications: Vec<String>,
    /// Environment name globs (`staging`, `prod-*`).
    #[serde(default = "everything")]
    pub environments: Vec<String>,
    /// Image repository globs as `registry/repository` (`ghcr.io/acme/payments`,
    /// `ghcr.io/acme/*`); `*` stops at `/`, `**` crosses it. Docker Hub names are normalised
    /// (`nginx` is `docker.io/library/nginx`).
    #[serde(default = "everything")]
    pub images: Vec<String>,
    /// Caller kinds the token may present (`spinnaker`, `argocd`, `servicenow` …).
    #[serde(default)]
    pub callers: Option<Vec<CallerKind>>,
    /// Whether the token may read (get, list, watch) decisions that other principals created.
    #[serde(default)]
    pub read_others: bool,
}

fn everything() -> Vec<String> {
    vec!["*".to_string()]
}

/// Why a scope configuration cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}` pattern `{pattern}` is not a valid glob: {message}")]
pub struct ScopeConfigError {
    pub field: &'static str,
    pub pattern: String,
    pub message: String,
}

/// A list of globs, compiled once, that keeps its patterns for messages.
#[derive(Clone)]
struct Globs {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Globs {
    fn compile(
        field: &'static str,
        patterns: &[String],
        literal_separator: bool,
    ) -> Result<Self, ScopeConfigError> {
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            // A lone `*` means "any", even where `*` otherwise stops at `/`.
            let glob = GlobBuilder::new(if p == "*" { "**" } else { p })
                .literal_separator(literal_separator)
                .build()
                .map_err(|e| ScopeConfigError {
                    field,
                    pattern: p.clone(),
                    message: e.kind().to_string(),
                })?;
            b.add(glob);
        }
        let set = b.build().map_err(|e| ScopeConfigError {
            field,
            pattern: patterns.join(", "),
            message: e.to_string(),
        })?;
        Ok(Self {
            patterns: patterns.to_vec(),
            set,
        })
    }

    fn any() -> Self {
        let mut b = GlobSetBuilder::new();
        if let Ok(g) = Glob::new("**") {
            b.add(g);
        }
        Self {
            patterns: everything(),
            set: b.build().unwrap_or_else(|_| GlobSet::empty()),
        }
    }

    fn matches(&self, s: &str) -> bool {
        self.set.is_match(s)
    }

    fn is_any(&self) -> bool {
        self.patterns.iter().any(|p| p == "*" || p == "**")
    }
}

impl fmt::Debug for Globs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.patterns).finish()
    }
}

impl PartialEq for Globs {
    fn eq(&self, other: &Self) -> bool {
        self.patterns == other.patterns
    }
}

impl Eq for Globs {}

/// What one principal may do beyond its roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    applications: Globs,
    environments: Globs,
    images: Globs,
    callers: Vec<CallerKind>,
    read_others: bool,
    /// False for a token configured without `scopes` (it keeps the old, wide reach).
    declared: bool,
}

/// The caller kinds a token may present when its configuration does not say: all but
/// `servicenow`, which changes which rules apply and must be granted explicitly.
pub fn default_callers() -> Vec<CallerKind> {
    CallerKind::ALL
        .into_iter()
        .filter(|k| *k != CallerKind::Servicenow)
        .collect()
}

/// Why a check is outside the principal's scope: what was asked, and what the scope allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeDenial {
    /// `application`, `environment`, `images[0]`, `caller.kind`.
    pub field: String,
    pub value: String,
    /// The patterns or kinds the scope allows, comma-separated.
    pub allowed: String,
}

impl Scope {
    /// A token configured without `scopes`: today's reach, minus presenting `servicenow`.
    pub fn unscoped() -> Self {
        Self {
            applications: Globs::any(),
            environments: Globs::any(),
            images: Globs::any(),
            callers: default_callers(),
            read_others: true,
            declared: false,
        }
    }

    /// Everything, every caller kind: the anonymous principal of loopback development mode and
    /// the gate's own followers.
    pub fn unrestricted() -> Self {
        Self {
            callers: CallerKind::ALL.to_vec(),
            declared: true,
            ..Self::unscoped()
        }
    }

    pub fn compile(config: &ScopeConfig) -> Result<Self, ScopeConfigError> {
        Ok(Self {
            applications: Globs::compile("applications", &config.applications, false)?,
            environments: Globs::compile("environments", &config.environments, false)?,
            images: Globs::compile("images", &config.images, true)?,
            callers: config.callers.clone().unwrap_or_else(default_callers),
            read_others: config.read_others,
            declared: true,
        })
    }

    /// Whether the token was configured with `scopes`.
    pub fn is_declared(&self) -> bool {
        self.declared
    }

    pub fn may_read_others(&self) -> bool {
        self.read_others
    }

    pub fn may_present(&self, kind: CallerKind) -> bool {
        self.callers.contains(&kind)
    }

    /// Whether `environment` is inside the scope.
    pub fn covers_environment(&self, environment: &str) -> bool {
        self.environments.matches(environment)
    }

    /// Whether the scope reaches every application, environment and image (no glob narrows it).
    pub fn is_wide(&self) -> bool {
        self.applications.is_any() && self.environments.is_any() && self.images.is_any()
    }

    /// Whether no glob narrows the images the scope may deploy.
    pub fn covers_every_image(&self) -> bool {
        self.images.is_any()
    }

    /// Whether an image repository (`registry/repository`) is inside the scope.
    pub fn covers_image(&self, image: &ImageRef) -> bool {
        self.images
            .matches(&format!("{}/{}", image.registry, image.repository))
    }

    /// Checks that `request` is inside the scope; the first thing outside it is the denial.
    pub fn permits(&self, request: &CheckRequest) -> Result<(), ScopeDenial> {
        let patterns = |g: &Globs| g.patterns.join(", ");
        if !self.applications.matches(request.application.as_str()) {
            return Err(ScopeDenial {
                field: "application".into(),
                value: request.application.to_string(),
                allowed: patterns(&self.applications),
            });
        }
        if !self.environments.matches(request.environment.as_str()) {
            return Err(ScopeDenial {
                field: "environment".into(),
                value: request.environment.to_string(),
                allowed: patterns(&self.environments),
            });
        }
        if !self.may_present(request.caller.kind) {
            return Err(ScopeDenial {
                field: "caller.kind".into(),
                value: request.caller.kind.to_string(),
                allowed: self
                    .callers
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if let Some((i, image)) = request
            .images
            .iter()
            .enumerate()
            .find(|(_, i)| !self.covers_image(i))
        {
            return Err(ScopeDenial {
                field: format!("images[{i}]"),
                value: format!("{}/{}", image.registry, image.repository),
                allowed: patterns(&self.images),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn scope(yaml: &str) -> Scope {
        Scope::compile(&serde_norway::from_str(yaml).unwrap()).unwrap()
    }

    #[test]
    fn omitted_lists_mean_any_and_servicenow_is_never_implied() {
        let s = scope("{}");
        assert!(s.covers_environment("prod"));
        assert!(!s.may_present(CallerKind::Servicenow));
        assert!(s.may_present(CallerKind::Spinnaker));
        assert!(!s.may_read_others());
        assert!(!Scope::unscoped().may_present(CallerKind::Servicenow));
        assert!(Scope::unscoped().may_read_others());
        assert!(Scope::unrestricted().may_present(CallerKind::Servicenow));
    }

    #[test]
    fn image_globs_stop_at_slashes() {
        let s = scope("images: ['ghcr.io/acme/*', 'nginx']");
        let img = |r: &str| ImageRef::parse(r).unwrap();
        assert!(s.covers_image(&img("ghcr.io/acme/payments:1")));
        assert!(!s.covers_image(&img("ghcr.io/acme/team/payments:1")));
        assert!(!s.covers_image(&img("ghcr.io/acme-evil/payments:1")));
        // `nginx` as configured is not normalised; the scope names the full repository.
        assert!(!s.covers_image(&img("nginx:1")));
        assert!(scope("images: ['docker.io/library/*']").covers_image(&img("nginx:1")));
        assert!(scope("{}").covers_image(&img("ghcr.io/acme/team/payments:1")));
    }

    #[test]
    fn a_bad_glob_names_its_field() {
        let e = Scope::compile(&serde_norway::from_str("environments: ['prod-[']").unwrap())
            .unwrap_err();
        assert_eq!(e.field, "environments");
    }
}
