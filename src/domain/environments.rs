//! Declared environments: the only environments a check may name, each with the tier rules
//! select on. A check for an environment nobody declared is refused instead of slipping past
//! every rule written for the environments that were.

use std::fmt;

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use super::{Environment, ValidationError};

/// What a deploy to an environment puts at stake. The names are GitLab's deployment tiers, which
/// most platform teams already use; rules select on them (`applies_to.tiers`), so a new
/// production environment is covered by every production rule the moment it is declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Production,
    Staging,
    Testing,
    Development,
    Other,
}

impl Tier {
    pub const ALL: [Tier; 5] = [
        Tier::Production,
        Tier::Staging,
        Tier::Testing,
        Tier::Development,
        Tier::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Production => "production",
            Tier::Staging => "staging",
            Tier::Testing => "testing",
            Tier::Development => "development",
            Tier::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One declared environment as configured: an exact name or a glob (`prod-*`), and its tier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentDecl {
    pub name: String,
    pub tier: Tier,
}

/// The built-in declarations, used when `gate.environments` is not set. They cover every
/// environment the built-in policy pack was written for, with the tier its rules assume.
pub const DEFAULT_ENVIRONMENTS: [(&str, Tier); 13] = [
    ("prod", Tier::Production),
    ("production", Tier::Production),
    ("prod-*", Tier::Production),
    ("*-prod", Tier::Production),
    ("*-prod-*", Tier::Production),
    ("staging", Tier::Staging),
    ("staging-*", Tier::Staging),
    ("qa", Tier::Testing),
    ("test", Tier::Testing),
    ("dev", Tier::Development),
    ("development", Tier::Development),
    ("sandbox", Tier::Development),
    ("local", Tier::Development),
];

/// The declared environments, compiled once.
#[derive(Debug, Clone)]
pub struct Environments {
    entries: Vec<Entry>,
}

#[derive(Debug, Clone)]
struct Entry {
    decl: EnvironmentDecl,
    /// `None` for an exact name.
    glob: Option<GlobMatcher>,
}

/// Why a list of declarations cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EnvironmentsError {
    pub message: String,
    pub help: String,
}

impl Default for Environments {
    fn default() -> Self {
        let decls = DEFAULT_ENVIRONMENTS
            .iter()
            .map(|(name, tier)| EnvironmentDecl {
                name: (*name).to_string(),
                tier: *tier,
            })
            .collect();
        // The built-in list is valid by construction (a unit test holds it to that).
        Self::new(decls).unwrap_or(Self {
            entries: Vec::new(),
        })
    }
}

impl Environments {
    /// Compiles declarations. Every name must be a valid environment name or a glob over such
    /// names, declared once; the list may not be empty (no check could ever be answered).
    pub fn new(decls: Vec<EnvironmentDecl>) -> Result<Self, EnvironmentsError> {
        if decls.is_empty() {
            return Err(EnvironmentsError {
                message: "no environments are declared, so every check would be refused".into(),
                help: "declare each environment with its tier, e.g. `- {name: prod, tier: production}`, or remove the key for the built-in list".into(),
            });
        }
        let mut entries: Vec<Entry> = Vec::with_capacity(decls.len());
        for decl in decls {
            if entries.iter().any(|e| e.decl.name == decl.name) {
                return Err(EnvironmentsError {
                    message: format!("environment `{}` is declared twice", decl.name),
                    help: "declare every environment once".into(),
                });
            }
            let is_glob = decl.name.contains(['*', '?', '[', '{']);
            let glob = if is_glob {
                let g = Glob::new(&decl.name).map_err(|e| EnvironmentsError {
                    message: format!("invalid environment pattern `{}`: {}", decl.name, e.kind()),
                    help: "use `*` for any run of characters, `?` for one, `[abc]` for a set"
                        .into(),
                })?;
                Some(g.compile_matcher())
            } else {
                Environment::parse(&decl.name).map_err(|e| EnvironmentsError {
                    message: format!(
                        "`{}` is not a valid environment name: {}",
                        decl.name, e.message
                    ),
                    help: e.help,
                })?;
                None
            };
            entries.push(Entry { decl, glob });
        }
        Ok(Self { entries })
    }

    /// The tier of `env`: an exact name wins over patterns, and patterns are tried in the
    /// order they were declared. An undeclared environment is a validation error naming the
    /// declared list, so every transport refuses it the same way.
    pub fn tier_of(&self, env: &Environment) -> Result<Tier, ValidationError> {
        let name = env.as_str();
        let exact = self
            .entries
            .iter()
            .find(|e| e.glob.is_none() && e.decl.name == name);
        let found = exact.or_else(|| {
            self.entries
                .iter()
                .find(|e| e.glob.as_ref().is_some_and(|g| g.is_match(name)))
        });
        match found {
            Some(e) => Ok(e.decl.tier),
            None => Err(ValidationError::new(
                "environment",
                format!(
                    "`{name}` is not a declared environment (declared: {})",
                    self.names().join(", ")
                ),
                "use one of the declared environments, or declare this one with its tier in `gate.environments` (e.g. `- {name: prd, tier: production}`)",
            )),
        }
    }

    /// Whether `env` (a name from the configuration, such as a key of `review.approvals`) is
    /// declared.
    pub fn declares(&self, env: &str) -> bool {
        Environment::parse(env)
            .ok()
            .is_some_and(|e| self.tier_of(&e).is_ok())
    }

    /// The declared names and patterns, in declaration order.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.decl.name.as_str()).collect()
    }

    pub fn decls(&self) -> impl Iterator<Item = &EnvironmentDecl> {
        self.entries.iter().map(|e| &e.decl)
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn tier(envs: &Environments, name: &str) -> Result<Tier, ValidationError> {
        envs.tier_of(&Environment::parse(name).unwrap())
    }

    #[test]
    fn the_default_list_covers_the_builtin_pack_and_refuses_lookalikes() {
        let envs = Environments::default();
        assert_eq!(
            envs.names().len(),
            DEFAULT_ENVIRONMENTS.len(),
            "all compile"
        );
        for (name, want) in [
            ("prod", Tier::Production),
            ("production", Tier::Production),
            ("prod-eu", Tier::Production),
            ("eu-prod", Tier::Production),
            ("eu-prod-1", Tier::Production),
            ("staging", Tier::Staging),
            ("staging-2", Tier::Staging),
            ("qa", Tier::Testing),
            ("dev", Tier::Development),
        ] {
            assert_eq!(tier(&envs, name).unwrap(), want, "{name}");
        }
        for name in ["prd", "live", "production-eu", "prod_eu", "stage", "prodeu"] {
            let e = tier(&envs, name).unwrap_err();
            assert_eq!(e.field, "environment");
            assert!(
                e.message
                    .contains(&format!("`{name}` is not a declared environment")),
                "{e:?}"
            );
            assert!(e.message.contains("prod, production, prod-*"), "{e:?}");
        }
    }

    #[test]
    fn exact_names_win_and_bad_lists_are_refused() {
        let decl = |name: &str, tier| EnvironmentDecl {
            name: name.into(),
            tier,
        };
        let envs = Environments::new(vec![
            decl("*", Tier::Production),
            decl("dev", Tier::Development),
        ])
        .unwrap();
        assert_eq!(tier(&envs, "dev").unwrap(), Tier::Development);
        assert_eq!(tier(&envs, "anything").unwrap(), Tier::Production);
        assert!(Environments::new(vec![]).is_err());
        assert!(Environments::new(vec![decl("Prod", Tier::Production)]).is_err());
        assert!(Environments::new(vec![decl("a", Tier::Other), decl("a", Tier::Other)]).is_err());
        assert!(Environments::new(vec![decl("[x", Tier::Other)]).is_err());
    }
}
