//! Identifier and name newtypes. Each has one constructor that checks its shape.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ValidationError;

macro_rules! string_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        // Written as the string it holds, as `into = "String"` did, without copying it first.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }

        impl std::str::FromStr for $name {
            type Err = ValidationError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

fn check_chars(
    field: &str,
    s: &str,
    max: usize,
    first: impl Fn(char) -> bool,
    rest: impl Fn(char) -> bool,
    help: &str,
) -> Result<(), ValidationError> {
    if s.is_empty() {
        return Err(ValidationError::new(field, "must not be empty", help));
    }
    if s.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("is longer than {max} characters"),
            help,
        ));
    }
    let mut chars = s.chars();
    let ok_first = chars.next().is_some_and(&first);
    if !ok_first || !chars.all(&rest) {
        return Err(ValidationError::new(
            field,
            format!("`{}` has characters that are not allowed", truncate(s, 80)),
            help,
        ));
    }
    Ok(())
}

/// Cuts user input for error messages, so a megabyte of junk does not become a megabyte of error.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

string_newtype!(
    /// Name of the application being deployed (Spinnaker application, Argo CD app …).
    Application
);

impl Application {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        check_chars(
            "application",
            s,
            128,
            |c| c.is_ascii_alphanumeric(),
            |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'),
            "use letters, digits, `.`, `_`, `-` or `/`, starting with a letter or digit",
        )?;
        Ok(Self(s.to_string()))
    }
}

string_newtype!(
    /// Target environment, lower case (`prod`, `staging`, `eu-prod-1` …).
    Environment
);

impl Environment {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        check_chars(
            "environment",
            s,
            63,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'),
            "use lower-case letters, digits, `.`, `_` or `-`, e.g. `prod` or `staging`",
        )?;
        Ok(Self(s.to_string()))
    }
}

string_newtype!(
    /// Key that makes a check idempotent: the same key returns the same decision.
    IdempotencyKey
);

impl IdempotencyKey {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        check_chars(
            "idempotency_key",
            s,
            256,
            |c| c.is_ascii_graphic(),
            |c| c.is_ascii_graphic(),
            "use up to 256 printable ASCII characters without spaces, e.g. the pipeline execution id",
        )?;
        Ok(Self(s.to_string()))
    }
}

string_newtype!(
    /// Identifier of a stored decision (a UUIDv7, so ids sort by creation time).
    DecisionId
);

impl DecisionId {
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        uuid::Uuid::parse_str(s)
            .map(|u| Self(u.to_string()))
            .map_err(|_| {
                ValidationError::new(
                    "id",
                    format!("`{}` is not a decision id", truncate(s, 80)),
                    "use the `id` returned by a check, a UUID such as `0190f5c2-…`",
                )
            })
    }
}

string_newtype!(
    /// Content digest of an image, `sha256:<64 hex>` (or `sha512:<128 hex>`).
    Digest
);

impl Digest {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let help = "give the full content digest, `sha256:` followed by 64 lower-case hex digits";
        let (algo, hex) = s.split_once(':').ok_or_else(|| {
            ValidationError::new(
                "digest",
                format!("`{}` is not a digest", truncate(s, 80)),
                help,
            )
        })?;
        let want = match algo {
            "sha256" => 64,
            "sha512" => 128,
            _ => {
                return Err(ValidationError::new(
                    "digest",
                    format!("unsupported digest algorithm `{}`", truncate(algo, 20)),
                    help,
                ));
            }
        };
        if hex.len() != want
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ValidationError::new(
                "digest",
                format!("`{}` is not a valid {algo} digest", truncate(s, 80)),
                help,
            ));
        }
        Ok(Self(s.to_string()))
    }
}

string_newtype!(
    /// A Jira issue key such as `OPS-123`.
    JiraKey
);

impl JiraKey {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let help = "use a Jira issue key: project key, `-`, number, e.g. `OPS-123`";
        let bad = || {
            ValidationError::new(
                "jira_keys",
                format!("`{}` is not a Jira issue key", truncate(s, 80)),
                help,
            )
        };
        let (project, number) = s.split_once('-').ok_or_else(bad)?;
        let project_ok = project.len() <= 64
            && project
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_uppercase())
            && project
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        let number_ok =
            !number.is_empty() && number.len() <= 12 && number.bytes().all(|b| b.is_ascii_digit());
        if project_ok && number_ok {
            Ok(Self(s.to_string()))
        } else {
            Err(bad())
        }
    }
}

string_newtype!(
    /// A ServiceNow change request number such as `CHG0030001`.
    ChangeNumber
);

impl ChangeNumber {
    /// An upper-case prefix and digits, as ServiceNow numbers records (`CHG0030001`; prefixes
    /// are configurable per instance, so any prefix is accepted). The one rule for every path
    /// that takes a change number: check requests, the change-check contract, its callback.
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        check_chars(
            "servicenow_changes",
            s,
            40,
            |c| c.is_ascii_uppercase(),
            |c| c.is_ascii_uppercase() || c.is_ascii_digit(),
            "use a change number such as `CHG0030001` (upper-case prefix and digits)",
        )?;
        let prefix = s.bytes().take_while(u8::is_ascii_uppercase).count();
        let number = &s[prefix..];
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValidationError::new(
                "servicenow_changes",
                format!(
                    "`{}` is not a change number: its prefix must be followed by digits only",
                    truncate(s, 80)
                ),
                "use a change number such as `CHG0030001`",
            ));
        }
        Ok(Self(s.to_string()))
    }
}

/// Splits change references a caller sent in one list into Jira issue keys and ServiceNow
/// change numbers: a key has a `-` between project and number (`OPS-123`), a change number
/// never has (`CHG0030001`). Each is validated later, where the draft is parsed.
pub fn split_change_refs(refs: impl IntoIterator<Item = String>) -> (Vec<String>, Vec<String>) {
    refs.into_iter().partition(|r| r.contains('-'))
}

string_newtype!(
    /// A git commit id, 7 to 64 lower-case hex digits.
    CommitSha
);

impl CommitSha {
    pub fn parse(s: &str) -> Result<Self, ValidationError> {
        let lower = s.to_ascii_lowercase();
        if (7..=64).contains(&lower.len()) && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(lower))
        } else {
            Err(ValidationError::new(
                "commit",
                format!("`{}` is not a git commit id", truncate(s, 80)),
                "use the commit SHA, 7 to 64 hex digits",
            ))
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn digest_shapes() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert!(Digest::parse(&ok).is_ok());
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse(&format!("md5:{}", "a".repeat(32))).is_err());
        assert!(Digest::parse("latest").is_err());
    }

    #[test]
    fn environment_is_lower_case() {
        assert!(Environment::parse("prod").is_ok());
        assert!(Environment::parse("eu-prod-1").is_ok());
        let e = Environment::parse("Prod").unwrap_err();
        assert_eq!(e.field, "environment");
        assert!(Environment::parse("").is_err());
    }

    #[test]
    fn jira_and_change_numbers() {
        assert!(JiraKey::parse("OPS-12").is_ok());
        assert!(JiraKey::parse("ops-12").is_err());
        assert!(JiraKey::parse("OPS-").is_err());
        assert!(ChangeNumber::parse("CHG0030001").is_ok());
        assert!(ChangeNumber::parse("CHG").is_err());
        assert!(ChangeNumber::parse("CHG12A3").is_err());
        assert!(ChangeNumber::parse("chg1").is_err());
        assert!(ChangeNumber::parse("RFC12").is_ok());
        let (jira, changes) = split_change_refs(["OPS-1".into(), "CHG0030001".into()]);
        assert_eq!(
            (jira, changes),
            (vec!["OPS-1".to_string()], vec!["CHG0030001".to_string()])
        );
        assert!(CommitSha::parse("ABCDEF1").unwrap().as_str() == "abcdef1");
    }
}
