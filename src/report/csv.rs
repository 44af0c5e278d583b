//! The CSV report: a header row, then one row per `decision` record of an audit export, for
//! spreadsheets. Every cell a spreadsheet could take for a formula is neutralised (OWASP's CSV
//! injection advice: a leading `'` before `=`, `+`, `-`, `@`, tab or carriage return), because
//! requests carry caller-chosen text (`triggered_by`, labels, comments) that an auditor opens.

use std::io::Write;

use crate::audit::proof::ExportRecord;
use crate::domain::{Decision, RuleOutcome};

use super::{ReportError, read_decision, time};

/// The columns, in order (`docs/audit.md`, "Reports").
pub const COLUMNS: [&str; 17] = [
    "id",
    "created_at",
    "decided_at",
    "application",
    "environment",
    "verdict",
    "status",
    "caller_kind",
    "principal",
    "triggered_by",
    "image_digests",
    "policy_version",
    "failed_rules",
    "approvals",
    "refused_attempts",
    "resolution",
    "summary",
];

/// Writes the CSV report of the records it is given, a row as each decision arrives.
pub struct CsvWriter<W: Write> {
    out: W,
    header_written: bool,
    rows: u64,
}

impl<W: Write> CsvWriter<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            header_written: false,
            rows: 0,
        }
    }

    /// Takes the next record; only `decision` records make rows.
    pub fn write(&mut self, record: &ExportRecord) -> Result<(), ReportError> {
        self.header()?;
        if let ExportRecord::Decision { decision } = record {
            let row = match read_decision(decision) {
                Ok(d) => row(&d),
                // Still one row per decision, so counts in the sheet match the export; what
                // was wrong with it is in the summary cell.
                Err((id, why)) => {
                    let mut cells = vec![String::new(); COLUMNS.len()];
                    cells[0] = id;
                    cells[COLUMNS.len() - 1] = format!("(unreadable decision: {why})");
                    cells
                }
            };
            self.row(row)?;
            self.rows += 1;
        }
        Ok(())
    }

    /// Rows written so far, not counting the header.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// What was written and not yet taken, for a caller that streams it on (HTTP takes the
    /// bytes of a `Vec<u8>` after each record).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Ends the report (a header alone when there were no records) and gives the output back.
    pub fn finish(mut self) -> Result<W, ReportError> {
        self.header()?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn header(&mut self) -> Result<(), ReportError> {
        if !self.header_written {
            self.header_written = true;
            self.row(COLUMNS.iter().map(|c| c.to_string()).collect())?;
        }
        Ok(())
    }

    fn row(&mut self, cells: Vec<String>) -> Result<(), ReportError> {
        // A writer per row over the shared output: the csv crate buffers inside its writer, and
        // this way every row is in `out` when `write` returns, so nothing waits to be streamed.
        let mut w = ::csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(&mut self.out);
        w.write_record(cells.iter().map(|c| neutralise(c).into_owned()))?;
        w.flush()?;
        Ok(())
    }
}

/// One decision's cells, in `COLUMNS` order.
fn row(d: &Decision) -> Vec<String> {
    let r = &d.request;
    let images: Vec<String> = r
        .images
        .iter()
        .map(|i| match &i.digest {
            Some(digest) => digest.to_string(),
            // Unpinned: the reference is all there is to name it by.
            None => i.to_string(),
        })
        .collect();
    let failed: Vec<&str> = d
        .rule_results
        .iter()
        .filter(|x| x.outcome == RuleOutcome::Fail)
        .map(|x| x.rule_id.as_str())
        .collect();
    let approvals: Vec<String> = d
        .approvals
        .iter()
        .map(|a| format!("{} {}", a.by, time(&a.at)))
        .collect();
    let resolution = d
        .resolution
        .as_ref()
        .map(|x| format!("{} {} {}", x.outcome.as_str(), x.by, time(&x.at)))
        .unwrap_or_default();
    vec![
        d.id.to_string(),
        time(&d.created_at),
        d.decided_at.as_ref().map(time).unwrap_or_default(),
        r.application.to_string(),
        r.environment.to_string(),
        d.verdict.as_str().to_string(),
        d.status.as_str().to_string(),
        r.caller.kind.as_str().to_string(),
        d.principal.clone().unwrap_or_default(),
        r.triggered_by.clone().unwrap_or_default(),
        images.join(" "),
        d.policy_version.clone(),
        failed.join(" "),
        approvals.join("; "),
        d.refused_attempts.len().to_string(),
        resolution,
        d.summary.clone(),
    ]
}

/// A cell a spreadsheet will not evaluate: text starting with a formula trigger gets a leading
/// apostrophe, which spreadsheets show as text and do not display.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn formula_triggers_are_neutralised_and_nothing_else() {
        for bad in ["=1+1", "+SUM(A1)", "-2", "@cmd", "\tx", "\rx"] {
            assert_eq!(neutralise(bad), format!("'{bad}"));
        }
        for fine in ["", "alice", "1", "a=b", "sha256:ab"] {
            assert_eq!(neutralise(fine), fine);
        }
    }

    #[test]
    fn a_report_without_decisions_is_its_header() {
        let out = CsvWriter::new(Vec::new()).finish().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), COLUMNS.join(",") + "\n");
    }

    #[test]
    fn an_unreadable_decision_is_still_a_row() {
        let mut w = CsvWriter::new(Vec::new());
        w.write(&ExportRecord::Decision {
            decision: serde_json::json!({"id": "=x", "verdict": 3}),
        })
        .unwrap();
        assert_eq!(w.rows(), 1);
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        let mut rows = ::csv::Reader::from_reader(out.as_bytes());
        let row = rows.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "'=x");
        assert!(row[16].starts_with("(unreadable decision"), "{row:?}");
    }
}
