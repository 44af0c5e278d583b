//! CycloneDX JSON 1.4–1.6 (contract §5): the subject in `metadata.component`, components walked
//! with their nesting, licenses in both the 1.4 and the 1.5+ shapes, vulnerabilities as common
//! findings per affected component, and embedded `analysis` as VEX statements about `affects[]`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Component, Parsed};
use crate::adapters::vex;
use crate::domain::{Finding, FindingKind, FindingSeverity, Package};

const VERSIONS: [&str; 3] = ["1.4", "1.5", "1.6"];

/// bom-ref → purl of every stored BOM, by serial number, for BOM-Links
/// (`urn:cdx:<serial>/<version>#<bom-ref>`).
#[derive(Debug, Default)]
pub(crate) struct RefIndex {
    by_serial: HashMap<String, HashMap<String, String>>,
}

impl RefIndex {
    pub(crate) fn new<'a>(docs: impl Iterator<Item = &'a Value>) -> Self {
        let mut by_serial = HashMap::new();
        for d in docs.filter(|d| d["bomFormat"] == "CycloneDX") {
            if let Some(serial) = d["serialNumber"].as_str() {
                let uuid = serial.trim_start_matches("urn:uuid:").to_string();
                by_serial.insert(uuid, refs(d));
            }
        }
        Self { by_serial }
    }

    /// The purl a ref resolves to: a BOM-Link into a stored BOM, a bom-ref of this document, or
    /// a ref that is itself a purl. `None` for a dangling ref (it suppresses nothing).
    fn resolve(&self, r: &str, own: &HashMap<String, String>) -> Option<String> {
        if let Some(link) = r.strip_prefix("urn:cdx:") {
            let (serial, frag) = link.split_once('#')?;
            let serial = serial.split('/').next()?;
            return self.by_serial.get(serial)?.get(frag).cloned();
        }
        own.get(r)
            .cloned()
            .or_else(|| r.starts_with("pkg:").then(|| r.to_string()))
    }
}

/// Every component of a BOM, `metadata.component` first, nested ones included.
fn walk(doc: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = doc["components"]
        .as_array()
        .into_iter()
        .flatten()
        .rev()
        .collect();
    if doc["metadata"]["component"].is_object() {
        stack.push(&doc["metadata"]["component"]);
    }
    while let Some(c) = stack.pop() {
        out.push(c);
        stack.extend(c["components"].as_array().into_iter().flatten().rev());
    }
    out
}

fn refs(doc: &Value) -> HashMap<String, String> {
    walk(doc)
        .into_iter()
        .filter_map(|c| {
            Some((
                c["bom-ref"].as_str()?.to_string(),
                c["purl"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// License ids, names and expressions, from `[{license: {id|name}}]` or `[{expression}]`.
fn licenses(c: &Value) -> Vec<String> {
    c["licenses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| {
            l["expression"]
                .as_str()
                .or_else(|| l["license"]["id"].as_str())
                .or_else(|| l["license"]["name"].as_str())
        })
        .filter(|l| !l.is_empty() && *l != "NOASSERTION")
        .map(str::to_string)
        .collect()
}

/// The identities of the subject: bom-ref, purl, version, name, SHA-256 hashes, property values.
fn subject_ids(c: &Value) -> Vec<String> {
    let mut ids: Vec<String> = ["bom-ref", "purl", "version", "name"]
        .iter()
        .filter_map(|k| c[*k].as_str())
        .map(str::to_string)
        .collect();
    for h in c["hashes"].as_array().into_iter().flatten() {
        if h["alg"] == "SHA-256" {
            if let Some(v) = h["content"].as_str() {
                ids.push(format!("sha256:{v}"));
            }
        }
    }
    ids.extend(
        c["properties"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["value"].as_str())
            .map(str::to_string),
    );
    ids
}

fn tools(doc: &Value) -> Vec<String> {
    let t = &doc["metadata"]["tools"];
    // 1.4: an array of tools; 1.5+: `{components, services}`.
    let list = t.as_array().or_else(|| t["components"].as_array());
    list.into_iter()
        .flatten()
        .filter_map(|t| {
            let name = t["name"].as_str()?;
            Some(match t["version"].as_str() {
                Some(v) => format!("{name} {v}"),
                None => name.to_string(),
            })
        })
        .collect()
}

/// The most severe explicit rating; else a CVSS score; else unknown (never below low).
fn severity(v: &Value) -> (FindingSeverity, Option<String>) {
    let ratings: Vec<&Value> = v["ratings"].as_array().into_iter().flatten().collect();
    let labelled = ratings
        .iter()
        .filter_map(|r| r["severity"].as_str())
        .map(|l| (FindingSeverity::from_label(l), l))
        .filter(|(s, _)| *s != FindingSeverity::Unknown)
        .min_by_key(|(s, _)| *s);
    if let Some((s, l)) = labelled {
        return (s, Some(l.to_string()));
    }
    let scored = ratings
        .iter()
        .filter(|r| r["method"].as_str().is_some_and(|m| m.starts_with("CVSS")))
        .filter_map(|r| r["score"].as_f64())
        .map(FindingSeverity::from_score)
        .min();
    (scored.unwrap_or(FindingSeverity::Unknown), None)
}

pub(crate) fn parse(
    doc: &Value,
    file: &str,
    digest: &str,
    index: &RefIndex,
) -> Result<Parsed, String> {
    let spec = doc["specVersion"].as_str().unwrap_or_default();
    if !VERSIONS.contains(&spec) {
        return Err(format!(
            "CycloneDX specVersion `{spec}` is not accepted; send 1.4, 1.5 or 1.6"
        ));
    }
    let created: DateTime<Utc> = doc["metadata"]["timestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or("the CycloneDX document has no valid `metadata.timestamp`, so its age is unknown")?;
    let subject = subject_ids(&doc["metadata"]["component"]);
    let product = subject
        .iter()
        .find(|i| vex::names_digest(i, digest))
        .cloned()
        .ok_or_else(|| {
            format!("`metadata.component` does not name `{digest}`; generate the SBOM from the image by digest")
        })?;
    let own = refs(doc);
    let by_ref: HashMap<&str, &Value> = walk(doc)
        .into_iter()
        .filter_map(|c| Some((c["bom-ref"].as_str()?, c)))
        .collect();
    let components = doc.get("components").map(|_| {
        walk(doc)
            .into_iter()
            .map(|c| {
                let l = licenses(c);
                Component {
                    name: c["name"].as_str().unwrap_or_default().to_string(),
                    group: c["group"].as_str().map(str::to_string),
                    version: c["version"].as_str().map(str::to_string),
                    purl: c["purl"].as_str().map(str::to_string),
                    license_source: (!l.is_empty()).then_some("sbom"),
                    licenses: l,
                    kind: c["type"].as_str().map(str::to_string),
                    bom_ref: c["bom-ref"].as_str().map(str::to_string),
                    subject: digest.to_string(),
                }
            })
            .collect()
    });
    let tool = tools(doc)
        .first()
        .cloned()
        .unwrap_or_else(|| "cyclonedx".into());
    let mut statements = Vec::new();
    let findings = doc["vulnerabilities"].as_array().map(|vulns| {
        let mut out = Vec::new();
        for v in vulns {
            let Some(id) = v["id"].as_str() else { continue };
            let affects: Vec<&Value> = v["affects"]
                .as_array()
                .into_iter()
                .flatten()
                // Versions all `unaffected`: this component is not affected at all.
                .filter(|a| {
                    a["versions"].as_array().is_none_or(|vs| {
                        vs.is_empty() || vs.iter().any(|x| x["status"] != "unaffected")
                    })
                })
                .collect();
            let purls: Vec<String> = affects
                .iter()
                .filter_map(|a| a["ref"].as_str())
                .filter_map(|r| index.resolve(r, &own))
                .collect();
            if let Some(s) = vex::cyclonedx(v, purls, Some(product.clone()), file, Some(created)) {
                statements.push(s);
            }
            let (sev, label) = severity(v);
            let make = |package: Option<Package>| {
                let mut f = Finding::new(FindingKind::Vulnerability, id, tool.clone(), sev);
                f.tool_severity = label.clone();
                f.aliases.extend(
                    v["references"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r["id"].as_str())
                        .map(str::to_string),
                );
                f.subject = Some(digest.to_string());
                f.package = package;
                f.fix_available = v["analysis"]["response"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|x| x == "update"));
                f
            };
            let packages: Vec<Package> = affects
                .iter()
                .filter_map(|a| a["ref"].as_str())
                .filter_map(|r| {
                    let c = by_ref.get(r);
                    let purl = index.resolve(r, &own);
                    let name = c
                        .and_then(|c| c["name"].as_str())
                        .map(str::to_string)
                        .or_else(|| purl.clone())?;
                    Some(Package {
                        name,
                        version: c.and_then(|c| c["version"].as_str()).map(str::to_string),
                        purl,
                    })
                })
                .collect();
            if packages.is_empty() {
                out.push(make(None));
            } else {
                out.extend(packages.into_iter().map(|p| make(Some(p))));
            }
        }
        out
    });
    Ok(Parsed {
        file: file.to_string(),
        format: "cyclonedx",
        spec_version: spec.to_string(),
        created,
        tools: tools(doc),
        components,
        findings,
        statements,
        subject_ids: subject,
    })
}
