//! SPDX JSON 2.3 (contract §6): the packages the document describes must name the digest;
//! every package becomes a component with its purl (`PACKAGE-MANAGER` or `PACKAGE_MANAGER`
//! `purl` refs) and its concluded license, else its declared one. `NOASSERTION` and an absent
//! license are unknown, never allowed. SPDX 2.3 has no vulnerability model: no findings.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Component, Parsed};
use crate::adapters::vex;

fn license(v: &Value) -> Option<String> {
    v.as_str()
        .filter(|l| !l.is_empty() && *l != "NOASSERTION" && *l != "NONE")
        .map(str::to_string)
}

fn purl(p: &Value) -> Option<String> {
    p["externalRefs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| {
            matches!(
                r["referenceCategory"].as_str(),
                Some("PACKAGE-MANAGER" | "PACKAGE_MANAGER")
            ) && r["referenceType"] == "purl"
        })
        .and_then(|r| r["referenceLocator"].as_str())
        .map(str::to_string)
}

pub(crate) fn parse(doc: &Value, file: &str, digest: &str) -> Result<Parsed, String> {
    let version = doc["spdxVersion"].as_str().unwrap_or_default();
    if version != "SPDX-2.3" {
        return Err(format!(
            "spdxVersion `{version}` is not accepted; send SPDX JSON 2.3"
        ));
    }
    let created: DateTime<Utc> = doc["creationInfo"]["created"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .ok_or("the SPDX document has no valid `creationInfo.created`")?;
    let packages = doc["packages"].as_array().cloned().unwrap_or_default();
    let mut described: Vec<&str> = doc["documentDescribes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    described.extend(
        doc["relationships"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| {
                r["spdxElementId"] == "SPDXRef-DOCUMENT" && r["relationshipType"] == "DESCRIBES"
            })
            .filter_map(|r| r["relatedSpdxElement"].as_str()),
    );
    let subject_ids = packages
        .iter()
        .filter(|p| {
            p["SPDXID"]
                .as_str()
                .is_some_and(|id| described.contains(&id))
        })
        .map(|p| {
            let mut ids: Vec<String> = ["name", "versionInfo"]
                .iter()
                .filter_map(|k| p[*k].as_str())
                .map(str::to_string)
                .collect();
            ids.extend(
                p["externalRefs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["referenceLocator"].as_str())
                    .map(str::to_string),
            );
            ids.extend(
                p["checksums"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["algorithm"] == "SHA256")
                    .filter_map(|c| c["checksumValue"].as_str())
                    .map(|v| format!("sha256:{v}")),
            );
            ids
        })
        .find(|ids| ids.iter().any(|i| vex::names_digest(i, digest)));
    let Some(subject_ids) = subject_ids else {
        return Err(format!(
            "no package the SPDX document describes names `{digest}`; generate the SBOM from the image by digest"
        ));
    };
    let components = packages
        .iter()
        .map(|p| {
            let (licenses, source) = match (
                license(&p["licenseConcluded"]),
                license(&p["licenseDeclared"]),
            ) {
                (Some(l), _) => (vec![l], Some("concluded")),
                (None, Some(l)) => (vec![l], Some("declared")),
                (None, None) => (Vec::new(), None),
            };
            Component {
                name: p["name"].as_str().unwrap_or_default().to_string(),
                group: None,
                version: p["versionInfo"].as_str().map(str::to_string),
                purl: purl(p),
                licenses,
                license_source: source,
                kind: p["primaryPackagePurpose"].as_str().map(str::to_string),
                bom_ref: p["SPDXID"].as_str().map(str::to_string),
                subject: digest.to_string(),
            }
        })
        .collect();
    let tools = doc["creationInfo"]["creators"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|c| c.strip_prefix("Tool: "))
        .map(str::to_string)
        .collect();
    Ok(Parsed {
        file: file.to_string(),
        format: "spdx",
        spec_version: version.to_string(),
        created,
        tools,
        components: Some(components),
        findings: None,
        statements: Vec::new(),
        subject_ids,
    })
}
