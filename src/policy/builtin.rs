//! The built-in example pack: classic deployment-firewall rules embedded in the binary, so a gate
//! with no policy directory still has a sensible, fail-closed default.

use super::PolicySource;

/// Each built-in policy file's name and text.
const FILES: [(&str, &str); 7] = [
    (
        "change-management.yaml",
        include_str!("builtin/change-management.yaml"),
    ),
    ("findings.yaml", include_str!("builtin/findings.yaml")),
    ("freeze.yaml", include_str!("builtin/freeze.yaml")),
    ("quality.yaml", include_str!("builtin/quality.yaml")),
    (
        "source-control.yaml",
        include_str!("builtin/source-control.yaml"),
    ),
    (
        "supply-chain.yaml",
        include_str!("builtin/supply-chain.yaml"),
    ),
    (
        "vulnerabilities.yaml",
        include_str!("builtin/vulnerabilities.yaml"),
    ),
];

pub(crate) fn sources() -> Vec<PolicySource> {
    FILES
        .iter()
        .map(|(name, text)| PolicySource {
            name: format!("builtin:{name}"),
            text: (*text).to_string(),
        })
        .collect()
}
