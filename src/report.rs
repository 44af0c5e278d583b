//! Reports an auditor reads, rendered from an audit export's records as they stream: CSV, one
//! row per decision for spreadsheets (`report/csv.rs`), and a self-contained HTML page with the
//! summary, every decision and the verification line (`report/html.rs`). Both take
//! `audit::proof::ExportRecord`s one at a time and write bytes as they go; what they keep grows
//! with the number of distinct verdicts, rules, applications and environments, never with the
//! number of decisions (the HTML writer's verifier keeps 32 bytes per event of the log, as
//! `audit verify` does).

pub mod csv;
pub mod html;

pub use self::csv::CsvWriter;
pub use self::html::HtmlWriter;

use crate::domain::Decision;

/// Why a report could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the report could not be written: {0}")]
    Io(#[from] std::io::Error),
    #[error("a CSV row could not be written: {0}")]
    Csv(#[from] ::csv::Error),
    #[error("an export record could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

impl ReportError {
    pub fn reason_code(&self) -> &'static str {
        match self {
            ReportError::Io(_) => "report.io",
            ReportError::Csv(_) => "report.csv",
            ReportError::Encode(_) => "report.encode",
        }
    }
}

/// A `decision` record's body as the domain type, or why it is not one (its `id`, when it has
/// one, so the report can still name it).
fn read_decision(value: &serde_json::Value) -> Result<Decision, (String, String)> {
    <Decision as serde::Deserialize>::deserialize(value).map_err(|e| {
        let id = value
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        (id, e.to_string())
    })
}

/// Times as reports write them: RFC 3339, whole seconds, UTC.
fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The first `max` characters of `text`, with `…` when something was cut.
fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_cut_on_characters_and_say_so() {
        assert_eq!(excerpt("abc", 5), "abc");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("ééé", 2), "éé…");
    }
}
