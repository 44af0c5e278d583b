//! The one finding shape every vulnerability and code-scanning source produces (Trivy, Aqua,
//! SBOM vulnerabilities, SARIF results), so a rule ranges over findings without knowing the tool,
//! and waivers and blocklists can later match them by id, alias set and package the same way.
//!
//! Serialised into evidence as `<source>.findings[*]`; the field names below are the documented
//! fact names (docs/evidence.md, "Findings"). New optional fields may be added; existing ones keep
//! their meaning.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// One finding from one tool about one subject (an image digest or a commit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The id as the tool produced it: `CVE-…`, `GHSA-…`, `SNYK-…`, a SARIF rule id.
    pub id: String,
    /// Every equivalent id seen (the id itself included), sorted; matching is by intersection.
    pub aliases: BTreeSet<String>,
    pub kind: FindingKind,
    /// Normalised severity; the tool's own label is kept in `tool_severity`.
    pub severity: FindingSeverity,
    pub tool_severity: Option<String>,
    /// The tool that reported it (`trivy`, `aqua`, the SARIF driver name, the SBOM generator).
    pub tool: String,
    /// The image digest or commit the finding is about.
    pub subject: Option<String>,
    pub package: Option<Package>,
    pub location: Option<Location>,
    /// Versions that fix it, as the tool wrote them (Trivy's comma list stays one string).
    pub fixed_version: Option<String>,
    /// A fix exists (a fixed version, or the tool says so); absent is "no fix", never "fixed".
    pub fix_available: bool,
    pub status: FindingStatus,
    /// `true` when `status` is anything but `open`: a suppressed finding is shown, never dropped.
    pub suppressed: bool,
    /// What suppressed it (a VEX statement, a SARIF suppression), with its justification.
    pub suppressed_by: Option<Suppression>,
    /// SARIF `level` after resolution (`error`, `warning`, `note`); `None` for other tools.
    pub level: Option<String>,
    /// SARIF `baselineState` (`new`, `unchanged`, `updated`, `absent`) where the log has it.
    pub baseline_state: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A known vulnerability in a package (SCA, image scanners, SBOMs).
    Vulnerability,
    /// A code-scanning result (SAST, DAST, linters): a rule matched at a location.
    Weakness,
}

/// Severities from most to least severe; `Unknown` is never read as low.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingSeverity {
    Critical,
    High,
    Medium,
    Low,
    Info,
    Unknown,
}

impl FindingSeverity {
    pub const ALL: [FindingSeverity; 6] = [
        Self::Critical,
        Self::High,
        Self::Medium,
        Self::Low,
        Self::Info,
        Self::Unknown,
    ];

    /// A tool's label in any case: Trivy's `CRITICAL`/`UNKNOWN`, Aqua's `negligible`,
    /// CycloneDX's `info`/`none`, GitHub's `moderate`.
    pub fn from_label(label: &str) -> Self {
        match label.trim().to_ascii_lowercase().as_str() {
            "critical" => Self::Critical,
            "high" | "important" => Self::High,
            "medium" | "moderate" => Self::Medium,
            "low" | "negligible" | "minor" => Self::Low,
            "info" | "informational" | "none" => Self::Info,
            _ => Self::Unknown,
        }
    }

    /// CVSS v3.1 §5 qualitative rating of a base score (also GitHub's `security-severity`).
    pub fn from_score(score: f64) -> Self {
        match score {
            s if !(0.0..=10.0).contains(&s) => Self::Unknown,
            s if s >= 9.0 => Self::Critical,
            s if s >= 7.0 => Self::High,
            s if s >= 4.0 => Self::Medium,
            s if s > 0.0 => Self::Low,
            _ => Self::Info,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Critical => "critical",
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Info => "info",
            Self::Unknown => "unknown",
        }
    }
}

/// Where a finding stands after VEX statements and suppressions were applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingStatus {
    /// Counts against the deploy.
    Open,
    /// A VEX statement says the product is not affected (with its justification).
    NotAffected,
    /// A VEX statement says the product contains the fix.
    Fixed,
    /// A SARIF suppression accepted by a reviewer (`status: accepted`).
    Suppressed,
    /// SARIF `baselineState: absent`: in the baseline, gone from this run.
    Absent,
}

impl FindingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::NotAffected => "not_affected",
            Self::Fixed => "fixed",
            Self::Suppressed => "suppressed",
            Self::Absent => "absent",
        }
    }
}

/// The package a vulnerability is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    /// The installed version; `None` when the tool did not say (never "any version").
    pub version: Option<String>,
    pub purl: Option<String>,
}

/// Where a finding is: a file region for code scanning, a scan target for image scanners.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Location {
    /// A file (SARIF `artifactLocation.uri`) or a scan target (Trivy `Target`, a lock file).
    pub uri: Option<String>,
    pub start_line: Option<u64>,
    pub end_line: Option<u64>,
}

/// Why a finding is not open: which statement said so and its reasoning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppression {
    /// `openvex`, `cyclonedx_vex`, `sarif`.
    pub source: String,
    /// The statement's own status word (`not_affected`, `fixed`, `accepted` …).
    pub status: String,
    /// OpenVEX `justification`, CycloneDX `analysis.justification`, SARIF `justification`.
    pub justification: Option<String>,
    /// OpenVEX `impact_statement`, CycloneDX `analysis.detail`.
    pub impact_statement: Option<String>,
    /// The document the statement came from (`@id`, serial number or stored file name).
    pub document: Option<String>,
    pub author: Option<String>,
    pub timestamp: Option<String>,
}

impl Finding {
    /// A new open finding with `id` as its only alias.
    pub fn new(
        kind: FindingKind,
        id: impl Into<String>,
        tool: impl Into<String>,
        severity: FindingSeverity,
    ) -> Self {
        let id = id.into();
        Self {
            aliases: BTreeSet::from([id.clone()]),
            id,
            kind,
            severity,
            tool_severity: None,
            tool: tool.into(),
            subject: None,
            package: None,
            location: None,
            fixed_version: None,
            fix_available: false,
            status: FindingStatus::Open,
            suppressed: false,
            suppressed_by: None,
            level: None,
            baseline_state: None,
        }
    }

    /// Whether this finding and a statement naming `ids` speak of the same vulnerability: alias
    /// sets intersect (a GHSA in one tool and its CVE in another are one finding).
    pub fn is_known_as<'a>(&self, ids: impl IntoIterator<Item = &'a str>) -> bool {
        ids.into_iter().any(|i| self.aliases.contains(i))
    }

    /// Applies a suppression: the finding stays, its status and statement change.
    pub fn suppress(&mut self, status: FindingStatus, by: Suppression) {
        self.suppressed = status != FindingStatus::Open;
        self.status = status;
        self.suppressed_by = Some(by);
    }
}

/// Counts of findings per severity, `open` only and all, as facts next to the list.
pub fn summary(findings: &[Finding]) -> serde_json::Value {
    let mut open = serde_json::Map::new();
    let mut all = serde_json::Map::new();
    for s in FindingSeverity::ALL {
        let n = |only_open: bool| {
            findings
                .iter()
                .filter(|f| f.severity == s && (!only_open || f.status == FindingStatus::Open))
                .count()
        };
        open.insert(s.as_str().into(), n(true).into());
        all.insert(s.as_str().into(), n(false).into());
    }
    let suppressed = findings.iter().filter(|f| f.suppressed).count();
    serde_json::json!({
        "total": findings.len(),
        "open": open,
        "all": all,
        "suppressed": suppressed,
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn labels_and_scores_normalise() {
        assert_eq!(
            FindingSeverity::from_label("CRITICAL"),
            FindingSeverity::Critical
        );
        assert_eq!(
            FindingSeverity::from_label("negligible"),
            FindingSeverity::Low
        );
        assert_eq!(
            FindingSeverity::from_label("moderate"),
            FindingSeverity::Medium
        );
        assert_eq!(
            FindingSeverity::from_label("UNKNOWN"),
            FindingSeverity::Unknown
        );
        assert_eq!(
            FindingSeverity::from_label("bogus"),
            FindingSeverity::Unknown
        );
        assert_eq!(FindingSeverity::from_score(9.8), FindingSeverity::Critical);
        assert_eq!(FindingSeverity::from_score(7.0), FindingSeverity::High);
        assert_eq!(FindingSeverity::from_score(6.9), FindingSeverity::Medium);
        assert_eq!(FindingSeverity::from_score(0.1), FindingSeverity::Low);
        assert_eq!(FindingSeverity::from_score(0.0), FindingSeverity::Info);
        assert_eq!(FindingSeverity::from_score(11.0), FindingSeverity::Unknown);
    }

    #[test]
    fn the_shape_is_the_documented_one_and_suppressed_findings_stay() {
        let mut f = Finding::new(
            FindingKind::Vulnerability,
            "GHSA-jfh8-c2jp-5v3q",
            "trivy",
            FindingSeverity::Critical,
        );
        f.aliases.insert("CVE-2021-44228".into());
        assert!(f.is_known_as(["CVE-2021-44228"]));
        assert!(!f.is_known_as(["CVE-2021-45046"]));
        f.suppress(
            FindingStatus::NotAffected,
            Suppression {
                source: "openvex".into(),
                status: "not_affected".into(),
                justification: Some("vulnerable_code_not_in_execute_path".into()),
                impact_statement: None,
                document: Some("https://openvex.dev/docs/example/vex-9fb3463de1b5".into()),
                author: Some("Wolfi J Inkinson".into()),
                timestamp: Some("2023-01-08T18:02:03Z".into()),
            },
        );
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["status"], "not_affected");
        assert_eq!(v["suppressed"], true);
        assert_eq!(v["kind"], "vulnerability");
        assert_eq!(v["severity"], "critical");
        assert_eq!(
            v["aliases"],
            serde_json::json!(["CVE-2021-44228", "GHSA-jfh8-c2jp-5v3q"])
        );
        assert_eq!(
            v["suppressed_by"]["justification"],
            "vulnerable_code_not_in_execute_path"
        );
        let s = summary(&[
            f.clone(),
            Finding::new(
                FindingKind::Weakness,
                "x",
                "semgrep",
                FindingSeverity::Critical,
            ),
        ]);
        assert_eq!(s["open"]["critical"], 1);
        assert_eq!(s["all"]["critical"], 2);
        assert_eq!(s["suppressed"], 1);
        let back: Finding = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
    }
}
