//! The text of one policy version: the files a policy set was built from and the content digest
//! that names it, kept so any decision can be re-explained and re-evaluated against exactly the
//! rules that made it (`docs/audit.md`, "Policy versions").
//!
//! The digest rule lives here, not in `policy`, so that a verifier holding only the stored files
//! recomputes the version with the same function the gate used.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::ValidationError;

/// One policy file: its path relative to the policy directory (`builtin:<file>.yaml` for the
/// built-in pack) and its text, byte for byte as it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFile {
    pub path: String,
    pub content: String,
}

/// A policy set's version and the files it is the digest of, sorted by path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// `sha256:` + 64 lower-case hex digits: [`policy_digest`] of `files`.
    pub version: String,
    pub files: Vec<PolicyFile>,
}

/// A stored policy version: its text and when it was first stored (when it first decided).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyVersionRecord {
    pub policy: PolicyVersion,
    pub stored_at: DateTime<Utc>,
}

impl PolicyVersion {
    /// The version of `files`, with the files sorted by path.
    pub fn from_files(mut files: Vec<PolicyFile>) -> Self {
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let version = policy_digest(files.iter().map(|f| (f.path.as_str(), f.content.as_str())));
        Self { version, files }
    }

    /// The digest of the files as they are now; equal to `version` for an intact text.
    pub fn digest(&self) -> String {
        policy_digest(
            self.files
                .iter()
                .map(|f| (f.path.as_str(), f.content.as_str())),
        )
    }

    /// Whether the files still hash to the version they are stored under.
    pub fn is_intact(&self) -> bool {
        self.digest() == self.version
    }
}

/// The content digest of a policy set: `sha256:` + hex of SHA-256 over its files sorted by path
/// (byte order), each written as
///
/// ```text
/// u64 little-endian byte length of path || path (UTF-8) || u64 little-endian byte length of content || content (UTF-8)
/// ```
///
/// The length prefixes keep (`ab`, `c`) and (`a`, `bc`) apart. Nothing else goes in: not the
/// directory, not file times, not `*.cases.yaml` files.
pub fn policy_digest<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut sorted: Vec<(&str, &str)> = files.into_iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (path, content) in sorted {
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update((content.len() as u64).to_le_bytes());
        h.update(content.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// Checks that `s` has the shape of a policy version (`sha256:` + 64 lower-case hex digits), as a
/// caller asking for one must give it.
pub fn parse_policy_version(s: &str) -> Result<&str, ValidationError> {
    let well_formed = s.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    if well_formed {
        return Ok(s);
    }
    let shown: String = s.chars().take(80).collect();
    Err(ValidationError::new(
        "version",
        format!("`{shown}` is not a policy version"),
        "give a decision's `policy_version` as it is: `sha256:` followed by 64 lower-case hex digits",
    ))
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn file(path: &str, content: &str) -> PolicyFile {
        PolicyFile {
            path: path.into(),
            content: content.into(),
        }
    }

    #[test]
    fn the_version_is_the_digest_of_the_sorted_files() {
        let v = PolicyVersion::from_files(vec![file("b.yaml", "B"), file("a.yaml", "A")]);
        assert_eq!(v.files[0].path, "a.yaml", "sorted by path");
        assert!(v.is_intact());
        assert_eq!(
            v.version,
            policy_digest([("a.yaml", "A"), ("b.yaml", "B")]),
            "order of the input does not matter"
        );
        assert!(parse_policy_version(&v.version).is_ok());
    }

    #[test]
    fn the_digest_is_pinned() {
        // Every stored version is named by this rule: it must never move. The literal was
        // computed outside Rust (Python's hashlib over the bytes `docs/audit.md` describes).
        assert_eq!(
            policy_digest([("p.yaml", "abc")]),
            "sha256:dffcfb8b3ce4353be974bb6723c825ddcc972b57161d29630f4769e7a5fab971"
        );
    }

    #[test]
    fn length_prefixes_keep_boundaries_apart() {
        assert_ne!(
            policy_digest([("ab", "c")]),
            policy_digest([("a", "bc")]),
            "path and content boundaries"
        );
        assert_ne!(
            policy_digest([("a", "x"), ("b", "")]),
            policy_digest([("a", "x")]),
            "an empty file still counts"
        );
    }

    #[test]
    fn an_edited_text_is_not_intact() {
        let mut v = PolicyVersion::from_files(vec![file("p.yaml", "rules: []\n")]);
        v.files[0].content.push(' ');
        assert!(!v.is_intact());
    }

    #[test]
    fn only_digest_shaped_versions_parse() {
        let ok = format!("sha256:{}", "0a".repeat(32));
        assert_eq!(parse_policy_version(&ok).unwrap(), ok);
        for bad in [
            "",
            "sha256:",
            "latest",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha512:{}", "a".repeat(64)),
            &format!("sha256:{}", "a".repeat(63)),
            &format!("sha256:{}", "a".repeat(65)),
        ] {
            let e = parse_policy_version(bad).unwrap_err();
            assert_eq!(e.field, "version", "{bad}");
        }
    }
}
