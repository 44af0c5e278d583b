//! Reading a SARIF 2.1.0 log in bounded memory: the log is deserialised straight into the few
//! typed fields a gate needs (serde skips everything else — messages, code flows, graphs,
//! artifacts — without building it), then each result's kind, level and rule are resolved as
//! the specification says (contract §8.2).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{Finding, FindingKind, FindingSeverity, FindingStatus, Location, Suppression};

#[derive(Debug, Deserialize)]
pub(super) struct Log {
    pub version: Option<String>,
    pub runs: Option<Vec<Run>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Run {
    pub tool: Tool,
    /// Absent only in a rules-metadata-only run: not a clean scan.
    pub results: Option<Vec<SarifResult>>,
    #[serde(default)]
    pub invocations: Vec<Invocation>,
    #[serde(default)]
    pub version_control_provenance: Vec<Provenance>,
    pub automation_details: Option<AutomationDetails>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Tool {
    pub driver: Component,
    #[serde(default)]
    pub extensions: Vec<Component>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Component {
    pub name: String,
    pub semantic_version: Option<String>,
    pub version: Option<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Rule {
    pub id: Option<String>,
    pub default_configuration: Option<RuleConfiguration>,
    #[serde(default)]
    pub properties: RuleProperties,
}

#[derive(Debug, Deserialize)]
pub(super) struct RuleConfiguration {
    pub level: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RuleProperties {
    /// GitHub's score, a string (`"7.5"`) or a number.
    #[serde(rename = "security-severity")]
    pub security_severity: Option<Value>,
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Invocation {
    pub execution_successful: Option<bool>,
    #[serde(default)]
    pub tool_execution_notifications: Vec<Notification>,
}

#[derive(Debug, Deserialize)]
pub(super) struct Notification {
    pub level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Provenance {
    pub revision_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(super) struct AutomationDetails {
    pub id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SarifResult {
    pub rule_id: Option<String>,
    pub rule_index: Option<i64>,
    pub rule: Option<RuleRef>,
    pub kind: Option<String>,
    pub level: Option<String>,
    pub baseline_state: Option<String>,
    pub suppressions: Option<Vec<SarifSuppression>>,
    #[serde(default)]
    pub locations: Vec<ResultLocation>,
    #[serde(default)]
    pub properties: ResultProperties,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RuleRef {
    pub id: Option<String>,
    pub index: Option<i64>,
    pub tool_component: Option<ToolComponentRef>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ToolComponentRef {
    pub name: Option<String>,
    pub index: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct SarifSuppression {
    pub kind: Option<String>,
    pub status: Option<String>,
    pub justification: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ResultLocation {
    pub physical_location: Option<PhysicalLocation>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PhysicalLocation {
    pub artifact_location: Option<ArtifactLocation>,
    pub region: Option<Region>,
}

#[derive(Debug, Deserialize)]
pub(super) struct ArtifactLocation {
    pub uri: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Region {
    pub start_line: Option<u64>,
    pub end_line: Option<u64>,
}

/// Bandit's own severity, which its `level` loses (MEDIUM is written without a level).
#[derive(Debug, Default, Deserialize)]
pub(super) struct ResultProperties {
    pub issue_severity: Option<String>,
}

/// One run, resolved: who ran, whether the scan completed, and its findings.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) struct RunSummary {
    pub tool: String,
    pub tool_version: Option<String>,
    /// `automationDetails.id`, the run's category; a newer log replaces an older one of the same.
    pub category: Option<String>,
    /// `results` present, no invocation failed, no error notification.
    pub complete: bool,
    /// Results with `kind` open or review: a person must look (not passes).
    pub needs_review: usize,
    pub findings: Vec<Finding>,
}

impl Run {
    fn component(&self, r: &SarifResult) -> &Component {
        let tc = r.rule.as_ref().and_then(|x| x.tool_component.as_ref());
        tc.and_then(|tc| {
            tc.index
                .and_then(|i| usize::try_from(i).ok())
                .and_then(|i| self.tool.extensions.get(i))
                .or_else(|| {
                    tc.name
                        .as_deref()
                        .and_then(|n| self.tool.extensions.iter().find(|e| e.name == n))
                })
        })
        .unwrap_or(&self.tool.driver)
    }

    /// sarif-sdk `Result.GetRule`: `ruleIndex`, `rule.index`, then the id against `rules[].id`.
    fn rule<'a>(&'a self, r: &'a SarifResult) -> (Option<&'a Rule>, Option<String>) {
        let c = self.component(r);
        let index = r
            .rule_index
            .filter(|i| *i >= 0)
            .or(r.rule.as_ref().and_then(|x| x.index))
            .and_then(|i| usize::try_from(i).ok());
        let id = r
            .rule_id
            .clone()
            .or_else(|| r.rule.as_ref().and_then(|x| x.id.clone()));
        let rule = index.and_then(|i| c.rules.get(i)).or_else(|| {
            id.as_deref()
                .and_then(|id| c.rules.iter().find(|x| x.id.as_deref() == Some(id)))
        });
        let id = id.or_else(|| rule.and_then(|x| x.id.clone()));
        (rule, id)
    }

    pub(super) fn summarise(self, subject: &str, allow_author_suppressions: bool) -> RunSummary {
        let tool = self.tool.driver.name.clone();
        let complete = self.results.is_some()
            && self.invocations.iter().all(|i| {
                i.execution_successful != Some(false)
                    && i.tool_execution_notifications
                        .iter()
                        .all(|n| n.level.as_deref() != Some("error"))
            });
        let mut findings = Vec::new();
        let mut needs_review = 0;
        for r in self.results.iter().flatten() {
            let kind = r.kind.as_deref().unwrap_or("fail");
            match kind {
                "pass" | "notApplicable" | "informational" => continue,
                "open" | "review" => needs_review += 1,
                _ => {}
            }
            let (rule, id) = self.rule(r);
            // §3.27.10: kind ≠ fail ⇒ none; else the result's level, else the rule's default,
            // else warning.
            let level = if kind != "fail" {
                "none".to_string()
            } else {
                r.level
                    .clone()
                    .or_else(|| {
                        rule.and_then(|x| x.default_configuration.as_ref())
                            .and_then(|c| c.level.clone())
                    })
                    .unwrap_or_else(|| "warning".into())
            };
            if level == "none" && kind == "fail" {
                continue;
            }
            let mut f = Finding::new(
                FindingKind::Weakness,
                id.unwrap_or_else(|| "(no rule id)".into()),
                tool.clone(),
                severity(r, rule, &level),
            );
            f.tool_severity = r.properties.issue_severity.clone();
            f.subject = Some(subject.to_string());
            f.level = Some(level);
            f.baseline_state = r.baseline_state.clone();
            f.location = r
                .locations
                .first()
                .and_then(|l| l.physical_location.as_ref())
                .map(|p| Location {
                    uri: p.artifact_location.as_ref().and_then(|a| a.uri.clone()),
                    start_line: p.region.as_ref().and_then(|x| x.start_line),
                    end_line: p.region.as_ref().and_then(|x| x.end_line),
                });
            if f.baseline_state.as_deref() == Some("absent") {
                f.status = FindingStatus::Absent;
                f.suppressed = true;
            }
            suppress(&mut f, r.suppressions.as_deref(), allow_author_suppressions);
            findings.push(f);
        }
        RunSummary {
            tool_version: self.tool.driver.semantic_version.clone().or(self
                .tool
                .driver
                .version
                .clone()),
            tool,
            category: self.automation_details.and_then(|a| a.id),
            complete,
            needs_review,
            findings,
        }
    }
}

/// The tool's own severity first (Bandit `issue_severity`; gosec and Trivy put it in the rule's
/// tags), then the rule's `security-severity` score, then the level.
fn severity(r: &SarifResult, rule: Option<&Rule>, level: &str) -> FindingSeverity {
    if let Some(s) = r.properties.issue_severity.as_deref() {
        let s = FindingSeverity::from_label(s);
        if s != FindingSeverity::Unknown {
            return s;
        }
    }
    if let Some(rule) = rule {
        let tagged = rule
            .properties
            .tags
            .iter()
            .map(|t| FindingSeverity::from_label(t))
            .filter(|s| *s != FindingSeverity::Unknown && *s != FindingSeverity::Info)
            .min();
        if let Some(s) = tagged {
            return s;
        }
        let score = match &rule.properties.security_severity {
            Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
            Some(Value::Number(n)) => n.as_f64(),
            _ => None,
        };
        if let Some(s) = score {
            return FindingSeverity::from_score(s);
        }
    }
    match level {
        "error" => FindingSeverity::High,
        "warning" => FindingSeverity::Medium,
        "note" => FindingSeverity::Low,
        _ => FindingSeverity::Unknown,
    }
}

/// §3.35: absent or empty = not suppressed; suppressed only when every suppression is
/// `accepted`, or status-less (an author's `nosemgrep`) where the source allows it;
/// `underReview` and `rejected` stay open.
fn suppress(f: &mut Finding, suppressions: Option<&[SarifSuppression]>, allow_author: bool) {
    let Some(list) = suppressions.filter(|l| !l.is_empty()) else {
        return;
    };
    let accepted = list.iter().all(|s| match s.status.as_deref() {
        Some("accepted") => true,
        None => allow_author,
        _ => false,
    });
    let first = &list[0];
    if accepted && f.status == FindingStatus::Open {
        f.suppress(
            FindingStatus::Suppressed,
            Suppression {
                source: "sarif".into(),
                status: first.status.clone().unwrap_or_else(|| {
                    format!(
                        "{} (no status)",
                        first.kind.as_deref().unwrap_or("inSource")
                    )
                }),
                justification: first.justification.clone(),
                impact_statement: None,
                document: None,
                author: None,
                timestamp: None,
            },
        );
    }
}

/// Counts of open findings per level.
pub(super) fn level_counts<'a>(
    findings: impl Iterator<Item = &'a Finding>,
) -> BTreeMap<String, u64> {
    let mut m: BTreeMap<String, u64> = ["error", "warning", "note", "none"]
        .iter()
        .map(|l| (l.to_string(), 0))
        .collect();
    for f in findings.filter(|f| f.status == FindingStatus::Open) {
        *m.entry(f.level.clone().unwrap_or_default()).or_default() += 1;
    }
    m
}
