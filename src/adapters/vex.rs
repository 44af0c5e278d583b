//! VEX statements (OpenVEX v0.0.1 and v0.2.0, CycloneDX `vulnerabilities[].analysis`) and how
//! they mark findings (contract `source-and-findings.md` §5, §7, §11.3.4).
//!
//! A statement applies to a finding only when its product is the deployed artifact (the digest
//! appears in the product's `@id`, purl or `sha-256` hash: a statement for another product never
//! applies), its vulnerability's name or aliases intersect the finding's alias set, and, when it
//! names subcomponents, the finding's package purl matches one of them (a version-less purl
//! matches every version, qualifiers must agree). Of the statements that apply, the newest wins;
//! at equal timestamps the least favourable. `not_affected` needs a `justification` label unless
//! the source is configured otherwise; an unjustified one is reported and ignored. Suppressed
//! findings keep their place in the list with the statement that suppressed them.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::domain::{Finding, FindingStatus, Suppression};

/// One VEX statement, normalised from either format.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    /// The vulnerability's name and aliases.
    pub ids: Vec<String>,
    /// Product identities (`@id`, purls, hashes); empty for CycloneDX analysis bound by `affects`.
    pub products: Vec<String>,
    /// Subcomponent purls the statement is limited to; empty = the whole product.
    pub subcomponents: Vec<String>,
    pub status: VexStatus,
    pub justification: Option<String>,
    pub impact_statement: Option<String>,
    pub timestamp: Option<DateTime<Utc>>,
    pub author: Option<String>,
    pub document: String,
    /// `openvex` or `cyclonedx_vex`.
    pub format: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum VexStatus {
    // Ordered from least to most favourable, so ties resolve to the first.
    Affected,
    UnderInvestigation,
    Fixed,
    NotAffected,
}

impl VexStatus {
    fn as_str(self) -> &'static str {
        match self {
            VexStatus::Affected => "affected",
            VexStatus::UnderInvestigation => "under_investigation",
            VexStatus::Fixed => "fixed",
            VexStatus::NotAffected => "not_affected",
        }
    }
}

/// A statement that was read but did not suppress anything, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    pub vulnerability: String,
    pub document: String,
    pub reason: String,
}

/// What applying VEX did, as facts (`<source>.vex`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VexReport {
    pub documents: Vec<String>,
    pub statements: usize,
    /// Findings whose status a statement changed.
    pub applied: usize,
    /// `not_affected` statements without a justification label (ignored when required).
    pub unjustified: usize,
    pub ignored: Vec<Ignored>,
}

/// Whether `doc` is an OpenVEX document (any version).
pub fn is_openvex(doc: &Value) -> bool {
    doc["@context"]
        .as_str()
        .is_some_and(|c| c.starts_with("https://openvex.dev/ns"))
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn strings(v: &Value) -> impl Iterator<Item = String> + '_ {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
}

/// The identities of an OpenVEX product or subcomponent: a string (v0.0.1) or an object with
/// `@id`, `identifiers` and `hashes` (v0.2.0).
fn identities(p: &Value) -> Vec<String> {
    if let Some(s) = p.as_str() {
        return vec![s.to_string()];
    }
    let mut out: Vec<String> = p["@id"].as_str().map(str::to_string).into_iter().collect();
    if let Some(ids) = p["identifiers"].as_object() {
        out.extend(ids.values().filter_map(Value::as_str).map(str::to_string));
    }
    if let Some(hs) = p["hashes"].as_object() {
        out.extend(
            hs.iter()
                .filter(|(k, _)| k.as_str() == "sha-256")
                .filter_map(|(_, v)| v.as_str())
                .map(|h| format!("sha256:{h}")),
        );
    }
    out
}

/// The statements of an OpenVEX document; timestamps cascade statement > document. A document
/// without `timestamp` is invalid (never "now").
pub fn openvex(doc: &Value, document: &str) -> Result<Vec<Statement>, String> {
    let doc_time = time(&doc["timestamp"])
        .ok_or("the OpenVEX document has no valid `timestamp` (RFC 3339)")?;
    let author = doc["author"].as_str().map(str::to_string);
    let statements = doc["statements"]
        .as_array()
        .ok_or("the OpenVEX document has no `statements` list")?;
    let mut out = Vec::new();
    for (i, s) in statements.iter().enumerate() {
        let v = &s["vulnerability"];
        // v0.2.0: an object with `name` (and `@id`, `aliases`); v0.0.1: a plain string.
        let mut ids: Vec<String> = match v.as_str() {
            Some(name) => vec![name.to_string()],
            None => v["name"]
                .as_str()
                .map(str::to_string)
                .into_iter()
                .chain(v["@id"].as_str().map(str::to_string))
                .chain(strings(&v["aliases"]))
                .collect(),
        };
        ids.retain(|i| !i.is_empty());
        if ids.is_empty() {
            return Err(format!("statement {i} names no vulnerability"));
        }
        let status = match s["status"].as_str() {
            Some("not_affected") => VexStatus::NotAffected,
            Some("fixed") => VexStatus::Fixed,
            Some("affected") => VexStatus::Affected,
            Some("under_investigation") => VexStatus::UnderInvestigation,
            other => {
                return Err(format!(
                    "statement {i} has status `{}`; OpenVEX knows not_affected, affected, fixed, under_investigation",
                    other.unwrap_or("")
                ));
            }
        };
        let products = s["products"].as_array().cloned().unwrap_or_default();
        let mut subcomponents: Vec<String> = strings(&s["subcomponents"]).collect();
        for p in &products {
            for c in p["subcomponents"].as_array().into_iter().flatten() {
                subcomponents.extend(identities(c));
            }
        }
        out.push(Statement {
            ids,
            products: products.iter().flat_map(identities).collect(),
            subcomponents,
            status,
            justification: s["justification"].as_str().map(str::to_string),
            impact_statement: s["impact_statement"].as_str().map(str::to_string),
            timestamp: time(&s["timestamp"]).or(Some(doc_time)),
            author: author.clone(),
            document: doc["@id"].as_str().unwrap_or(document).to_string(),
            format: "openvex",
        });
    }
    Ok(out)
}

/// The CycloneDX `analysis` of one vulnerability as a statement about the components its
/// `affects[].ref` resolve to (`purls`); a dangling ref suppresses nothing.
pub fn cyclonedx(
    vuln: &Value,
    purls: Vec<String>,
    product: Option<String>,
    document: &str,
    fallback_time: Option<DateTime<Utc>>,
) -> Option<Statement> {
    let a = vuln.get("analysis")?;
    // in_triage and exploitable stay open (contract §5 trap 4).
    let status = match a["state"].as_str()? {
        "not_affected" | "false_positive" => VexStatus::NotAffected,
        "resolved" | "resolved_with_pedigree" => VexStatus::Fixed,
        "exploitable" => VexStatus::Affected,
        _ => VexStatus::UnderInvestigation,
    };
    let mut ids: Vec<String> = vuln["id"]
        .as_str()
        .map(str::to_string)
        .into_iter()
        .collect();
    ids.extend(
        vuln["references"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["id"].as_str())
            .map(str::to_string),
    );
    Some(Statement {
        ids,
        products: product.into_iter().collect(),
        // A CycloneDX analysis covers only its `affects`; none resolved means nothing covered.
        subcomponents: if purls.is_empty() {
            vec!["urn:portcullis:unresolved-affects".into()]
        } else {
            purls
        },
        status,
        justification: a["justification"].as_str().map(str::to_string),
        impact_statement: a["detail"].as_str().map(str::to_string),
        timestamp: time(&a["lastUpdated"])
            .or_else(|| time(&a["firstIssued"]))
            .or_else(|| time(&vuln["updated"]))
            .or(fallback_time),
        author: None,
        document: document.to_string(),
        format: "cyclonedx_vex",
    })
}

/// Whether a product identity names the artifact `digest` (`sha256:<hex>`): its hex appears in
/// the identity once percent-decoded (`pkg:oci/app@sha256%3A<hex>`, `sha256:<hex>`, `…@sha256:<hex>`).
pub fn names_digest(identity: &str, digest: &str) -> bool {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let decoded = identity.replace("%3A", ":").replace("%3a", ":");
    decoded.contains(&format!("sha256:{hex}"))
}

/// `type/namespace/name`, version, sorted qualifiers.
pub(crate) type PurlParts = (String, Option<String>, Vec<(String, String)>);

/// A purl split into the parts that matter for matching: `type/namespace/name`, version,
/// qualifiers. Percent-encoded `@` in npm scopes is decoded; the type is case-insensitive.
pub(crate) fn purl_parts(purl: &str) -> Option<PurlParts> {
    let rest = purl.strip_prefix("pkg:")?.trim_start_matches('/');
    let rest = rest.split('#').next().unwrap_or(rest);
    let (path, qualifiers) = rest.split_once('?').unwrap_or((rest, ""));
    let (path, version) = match path.rfind('@') {
        Some(i) if path[..i].contains('/') => (&path[..i], Some(path[i + 1..].to_string())),
        _ => (path, None),
    };
    let (ty, name) = path.split_once('/')?;
    let mut q: Vec<(String, String)> = qualifiers
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_ascii_lowercase(), v.replace("%3A", ":")))
        .collect();
    q.sort();
    Some((
        format!("{}/{}", ty.to_ascii_lowercase(), name.replace("%40", "@")),
        version.map(|v| v.replace("%3A", ":")),
        q,
    ))
}

/// go-vex `PurlMatches`: type, namespace and name equal; a VEX purl without a version matches
/// every version; every VEX qualifier must be in the artifact's purl with the same value.
pub fn purl_matches(vex: &str, artifact: &str) -> bool {
    let (Some((vp, vv, vq)), Some((ap, av, aq))) = (purl_parts(vex), purl_parts(artifact)) else {
        return false;
    };
    vp == ap
        && vv.is_none_or(|v| av.as_deref() == Some(v.as_str()))
        && vq.iter().all(|q| aq.contains(q))
}

/// Reads every OpenVEX document stored in `dir` for `digest` (files `sha256-<hex>-*.json`, as
/// `kind: sbom` stores them); unreadable or other documents are skipped.
pub fn stored_statements(dir: &Path, digest: &str) -> (Vec<Statement>, Vec<String>) {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    let prefix = format!("sha256-{hex}-");
    let mut statements = Vec::new();
    let mut documents = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (statements, documents);
    };
    let mut names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(&prefix) && n.ends_with(".json"))
        .collect();
    names.sort();
    for name in names {
        let Ok(bytes) = std::fs::read(dir.join(&name)) else {
            continue;
        };
        let Ok(doc) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        if is_openvex(&doc) {
            if let Ok(s) = openvex(&doc, &name) {
                statements.extend(s);
                documents.push(name);
            }
        }
    }
    (statements, documents)
}

/// Applies `statements` to `findings` of the artifact `digest`.
pub fn apply(
    findings: &mut [Finding],
    statements: &[Statement],
    digest: &str,
    require_justification: bool,
    report: &mut VexReport,
) {
    report.statements += statements.len();
    let mut usable: Vec<&Statement> = Vec::new();
    for s in statements {
        let name = s.ids.first().cloned().unwrap_or_default();
        let ignore = |reason: &str| Ignored {
            vulnerability: name.clone(),
            document: s.document.clone(),
            reason: reason.to_string(),
        };
        if !s.products.is_empty() && !s.products.iter().any(|p| names_digest(p, digest)) {
            report
                .ignored
                .push(ignore("the statement is about another product"));
            continue;
        }
        if s.status == VexStatus::NotAffected && s.justification.is_none() {
            report.unjustified += 1;
            if require_justification {
                report
                    .ignored
                    .push(ignore("`not_affected` without a justification"));
                continue;
            }
        }
        usable.push(s);
    }
    for f in findings.iter_mut() {
        let purl = f.package.as_ref().and_then(|p| p.purl.clone());
        let winner = usable
            .iter()
            .filter(|s| f.is_known_as(s.ids.iter().map(String::as_str)))
            .filter(|s| {
                s.subcomponents.is_empty()
                    || purl
                        .as_deref()
                        .is_some_and(|p| s.subcomponents.iter().any(|c| purl_matches(c, p)))
            })
            // Newest first; at equal times the least favourable status.
            .max_by(|a, b| {
                a.timestamp
                    .cmp(&b.timestamp)
                    .then_with(|| b.status.cmp(&a.status))
            });
        let Some(s) = winner else { continue };
        let status = match s.status {
            VexStatus::NotAffected => FindingStatus::NotAffected,
            VexStatus::Fixed => FindingStatus::Fixed,
            VexStatus::Affected | VexStatus::UnderInvestigation => continue,
        };
        f.aliases.extend(s.ids.iter().cloned());
        f.suppress(
            status,
            Suppression {
                source: s.format.to_string(),
                status: s.status.as_str().to_string(),
                justification: s.justification.clone(),
                impact_statement: s.impact_statement.clone(),
                document: Some(s.document.clone()),
                author: s.author.clone(),
                timestamp: s
                    .timestamp
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
            },
        );
        report.applied += 1;
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::domain::{FindingKind, FindingSeverity, Package};
    use serde_json::json;

    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn finding(id: &str, purl: &str) -> Finding {
        let mut f = Finding::new(
            FindingKind::Vulnerability,
            id,
            "trivy",
            FindingSeverity::Critical,
        );
        f.package = Some(Package {
            name: "x".into(),
            version: Some("1".into()),
            purl: Some(purl.into()),
        });
        f
    }

    fn doc(statements: Value) -> Value {
        json!({
            "@context": "https://openvex.dev/ns/v0.2.0",
            "@id": "https://openvex.dev/docs/public/vex-2e67563e128250cbcb3e98930df948dd053e43271d70dc50cfa22d57e03fe96f",
            "author": "Wolfi J Inkinson", "timestamp": "2023-01-08T18:02:03.647787998-06:00",
            "version": 1, "statements": statements,
        })
    }

    #[test]
    fn purls_match_like_go_vex() {
        let a = "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1?type=jar";
        assert!(purl_matches(
            "pkg:maven/org.apache.logging.log4j/log4j-core",
            a
        ));
        assert!(purl_matches(
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
            a
        ));
        assert!(purl_matches(
            "pkg:maven/org.apache.logging.log4j/log4j-core?type=jar",
            a
        ));
        assert!(!purl_matches(
            "pkg:maven/org.apache.logging.log4j/log4j-core@2.15.0",
            a
        ));
        assert!(!purl_matches(
            "pkg:maven/org.apache.logging.log4j/log4j-api",
            a
        ));
        assert!(!purl_matches(
            "pkg:maven/org.apache.logging.log4j/log4j-core?type=war",
            a
        ));
        assert!(purl_matches(
            "pkg:npm/%40angular/core",
            "pkg:npm/@angular/core@17.0.0"
        ));
        assert!(names_digest(
            &format!("pkg:oci/app@sha256%3A{}", &DIGEST[7..]),
            DIGEST
        ));
        assert!(!names_digest("pkg:oci/app@sha256%3Abbbb", DIGEST));
    }

    #[test]
    fn statements_for_this_product_suppress_and_others_do_not() {
        let product = format!("pkg:oci/app@sha256%3A{}", &DIGEST[7..]);
        let d = doc(json!([
            {"vulnerability": {"name": "CVE-2021-44228", "aliases": ["GHSA-jfh8-c2jp-5v3q"]},
             "products": [{"@id": product, "subcomponents": [{"@id": "pkg:maven/org.apache.logging.log4j/log4j-core"}]}],
             "status": "not_affected", "justification": "vulnerable_code_not_in_execute_path"},
            {"vulnerability": {"name": "CVE-2022-1"}, "products": [{"@id": "pkg:oci/other@sha256%3Abbbb"}],
             "status": "not_affected", "justification": "component_not_present"},
            {"vulnerability": {"name": "CVE-2022-2"}, "products": [{"@id": product}],
             "status": "not_affected", "impact_statement": "trust me"},
            {"vulnerability": {"name": "CVE-2022-3"}, "products": [{"@id": product}], "status": "fixed"},
        ]));
        let statements = openvex(&d, "vex.json").unwrap();
        let mut findings = vec![
            finding(
                "GHSA-jfh8-c2jp-5v3q",
                "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1",
            ),
            finding(
                "CVE-2021-44228",
                "pkg:maven/org.apache.logging.log4j/log4j-api@2.14.1",
            ),
            finding("CVE-2022-1", "pkg:deb/debian/x@1"),
            finding("CVE-2022-2", "pkg:deb/debian/x@1"),
            finding("CVE-2022-3", "pkg:deb/debian/x@1"),
        ];
        let mut report = VexReport::default();
        apply(&mut findings, &statements, DIGEST, true, &mut report);
        let st: Vec<_> = findings.iter().map(|f| f.status).collect();
        assert_eq!(
            st,
            [
                FindingStatus::NotAffected, // alias match, subcomponent matches
                FindingStatus::Open,        // another subcomponent
                FindingStatus::Open,        // another product
                FindingStatus::Open,        // no justification
                FindingStatus::Fixed,
            ]
        );
        let by = findings[0].suppressed_by.as_ref().unwrap();
        assert_eq!(
            by.justification.as_deref(),
            Some("vulnerable_code_not_in_execute_path")
        );
        assert_eq!(by.author.as_deref(), Some("Wolfi J Inkinson"));
        assert_eq!(by.timestamp.as_deref(), Some("2023-01-09T00:02:03Z"));
        assert_eq!(report.applied, 2);
        assert_eq!(report.unjustified, 1);
        assert_eq!(report.ignored.len(), 2);
        assert!(report.ignored[0].reason.contains("another product"));
    }

    #[test]
    fn the_newest_statement_wins_and_ties_are_least_favourable() {
        let product = DIGEST.to_string();
        let s = |status: &str, ts: &str| {
            json!({"vulnerability": {"name": "CVE-1"}, "products": [{"@id": product}], "status": status,
                   "justification": if status == "not_affected" { json!("component_not_present") } else { Value::Null },
                   "timestamp": ts})
        };
        let later_affected = doc(json!([
            s("not_affected", "2024-01-01T00:00:00Z"),
            s("affected", "2024-02-01T00:00:00Z")
        ]));
        let mut f = vec![finding("CVE-1", "pkg:deb/debian/x@1")];
        apply(
            &mut f,
            &openvex(&later_affected, "d").unwrap(),
            DIGEST,
            true,
            &mut VexReport::default(),
        );
        assert_eq!(f[0].status, FindingStatus::Open);
        let tie = doc(json!([
            s("not_affected", "2024-01-01T00:00:00Z"),
            s("under_investigation", "2024-01-01T00:00:00Z")
        ]));
        apply(
            &mut f,
            &openvex(&tie, "d").unwrap(),
            DIGEST,
            true,
            &mut VexReport::default(),
        );
        assert_eq!(f[0].status, FindingStatus::Open);
        let mut no_time = doc(json!([]));
        no_time.as_object_mut().unwrap().remove("timestamp");
        assert!(openvex(&no_time, "d").is_err());
    }

    #[test]
    fn openvex_v001_shapes_are_read() {
        let d = json!({
            "@context": "https://openvex.dev/ns", "@id": "x", "author": "a",
            "timestamp": "2023-01-01T00:00:00Z", "version": "1",
            "statements": [{"vulnerability": "CVE-1", "products": [DIGEST],
                            "subcomponents": ["pkg:deb/debian/x"], "status": "not_affected",
                            "justification": "component_not_present"}],
        });
        let st = openvex(&d, "d").unwrap();
        assert_eq!(st[0].ids, ["CVE-1"]);
        assert_eq!(st[0].subcomponents, ["pkg:deb/debian/x"]);
        let mut f = vec![finding("CVE-1", "pkg:deb/debian/x@1")];
        apply(&mut f, &st, DIGEST, true, &mut VexReport::default());
        assert_eq!(f[0].status, FindingStatus::NotAffected);
    }
}
