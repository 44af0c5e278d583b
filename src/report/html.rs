//! The HTML report: one self-contained HTML5 page (inline CSS, no script, nothing fetched) an
//! auditor opens from a file — the export's title and filters, the verification line, summary
//! counts by verdict, rule, application and environment, then every decision with its request,
//! evidence excerpts and sources, rule results, approvals, refusals and resolution.
//!
//! It is written as the records stream: each decision is written when its record arrives and
//! never kept. The summary and the verification are only known at the end, so they are written
//! last, and the page's CSS places them first (`main` is a flex column and the summary has
//! `order: -1`): the alternative, holding every decision until the counts are known, is the
//! unbounded memory a year's export must not need. Every value from the export is HTML-escaped,
//! and the page's Content-Security-Policy forbids scripts and fetches besides.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;

use crate::audit::proof::{ExportEnd, ExportHeader, ExportRecord};
use crate::audit::verify::{ExportVerifier, Report};
use crate::domain::{Decision, RuleOutcome};

use super::{ReportError, excerpt, read_decision, time};

/// How much of each source's evidence (and of its response excerpt) a decision shows.
pub const EVIDENCE_EXCERPT_CHARS: usize = 500;

/// The page's style: readable on screen and on paper, and the flex order that puts the
/// summary (written last) above the decisions (written first).
const STYLE: &str = "
:root { color-scheme: light; }
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 0; color: #1b1f24; background: #f6f7f9; }
main.report { display: flex; flex-direction: column; gap: 1rem; max-width: 72rem; margin: 0 auto; padding: 1.5rem; }
header.title { order: -2; }
section.summary { order: -1; }
section.decisions { order: 0; }
h1 { font-size: 1.6rem; margin: 0 0 .5rem; }
h2 { font-size: 1.25rem; margin: 0 0 .75rem; }
h3 { font-size: 1.05rem; margin: 0 0 .5rem; word-break: break-all; }
h4 { font-size: .95rem; margin: 1rem 0 .35rem; }
section, header.title, article.decision { background: #fff; border: 1px solid #d8dde3; border-radius: 6px; padding: 1rem 1.25rem; }
section.decisions { background: transparent; border: 0; padding: 0; }
article.decision { margin-bottom: 1rem; break-inside: avoid-page; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dt { font-weight: 600; color: #57606a; }
dd { margin: 0; word-break: break-word; }
table { border-collapse: collapse; width: 100%; margin: .25rem 0; }
th, td { border: 1px solid #d8dde3; padding: .3rem .5rem; text-align: left; vertical-align: top; word-break: break-word; }
th { background: #f0f2f5; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { white-space: pre-wrap; word-break: break-all; background: #f6f8fa; border: 1px solid #e1e4e8; padding: .4rem; margin: .25rem 0; font-size: 12px; }
code, .id { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 4px; font-size: .85rem; font-weight: 600; background: #e1e4e8; }
.verdict-continue { background: #dafbe1; color: #116329; }
.verdict-manual_review { background: #fff8c5; color: #7d4e00; }
.verdict-terminate { background: #ffebe9; color: #a40e26; }
.outcome-fail { color: #a40e26; font-weight: 600; }
.outcome-missing { color: #7d4e00; font-weight: 600; }
.verification { padding: .6rem .8rem; border-radius: 6px; font-weight: 600; margin: 0 0 1rem; }
.verification.ok { background: #dafbe1; color: #116329; }
.verification.failed { background: #ffebe9; color: #a40e26; }
.verification ul { font-weight: 400; margin: .4rem 0 0; }
.counts { display: grid; grid-template-columns: repeat(auto-fit, minmax(16rem, 1fr)); gap: 1rem; }
.none { color: #57606a; font-style: italic; }
@media print { body { background: #fff; } main.report { padding: 0; } }
";

/// Writes the HTML report of the records it is given, verifying them with the gate's public
/// key as they pass.
pub struct HtmlWriter<'k, W: Write> {
    out: W,
    verifier: ExportVerifier<'k>,
    started: bool,
    header: Option<ExportHeader>,
    end: Option<ExportEnd>,
    counts: Counts,
}

/// What the summary needs: a count per distinct value, never the decisions.
#[derive(Default)]
struct Counts {
    decisions: u64,
    unreadable: u64,
    policy_versions: u64,
    verdicts: BTreeMap<String, u64>,
    statuses: BTreeMap<String, u64>,
    applications: BTreeMap<String, u64>,
    environments: BTreeMap<String, u64>,
    /// Per rule id: failed, passed, missing.
    rules: BTreeMap<String, [u64; 3]>,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl Counts {
    fn add(&mut self, d: &Decision) {
        self.decisions += 1;
        *self
            .verdicts
            .entry(d.verdict.as_str().to_string())
            .or_default() += 1;
        *self
            .statuses
            .entry(d.status.as_str().to_string())
            .or_default() += 1;
        *self
            .applications
            .entry(d.request.application.to_string())
            .or_default() += 1;
        *self
            .environments
            .entry(d.request.environment.to_string())
            .or_default() += 1;
        for r in &d.rule_results {
            let slot = match r.outcome {
                RuleOutcome::Fail => 0,
                RuleOutcome::Pass => 1,
                RuleOutcome::Missing => 2,
            };
            self.rules.entry(r.rule_id.clone()).or_default()[slot] += 1;
        }
        self.first = Some(self.first.map_or(d.created_at, |f| f.min(d.created_at)));
        self.last = Some(self.last.map_or(d.created_at, |l| l.max(d.created_at)));
    }
}

/// HTML-escaped text, safe in element content and in quoted attributes.
fn e(text: &str) -> std::borrow::Cow<'_, str> {
    html_escape::encode_quoted_attribute(text)
}

/// `text` escaped, or an italic "none" when it is empty.
fn or_none(text: &str) -> String {
    if text.is_empty() {
        "<span class=\"none\">none</span>".to_string()
    } else {
        e(text).into_owned()
    }
}

impl<'k, W: Write> HtmlWriter<'k, W> {
    /// A report whose verification line checks the records against `key` (the gate's public
    /// key, obtained from its operator, not from the export).
    pub fn new(out: W, key: &'k VerifyingKey) -> Self {
        Self {
            out,
            verifier: ExportVerifier::new(key),
            started: false,
            header: None,
            end: None,
            counts: Counts::default(),
        }
    }

    /// Takes the next record, as the gate produces it.
    pub fn write(&mut self, record: &ExportRecord) -> Result<(), ReportError> {
        let line = serde_json::to_string(record)?;
        self.verifier.feed(&line);
        self.render(record)
    }

    /// Takes the next line of a JSON Lines export file, as it is: the verifier hashes what the
    /// file says; a line that is not a record is left to the verifier to name.
    pub fn write_line(&mut self, line: &str) -> Result<(), ReportError> {
        self.verifier.feed(line);
        match serde_json::from_str::<ExportRecord>(line) {
            Ok(record) => self.render(&record),
            Err(_) => Ok(()),
        }
    }

    /// What was written and not yet taken, for a caller that streams it on.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Ends the page — the summary and verification — and gives back the output and the
    /// verifier's report.
    pub fn finish(mut self) -> Result<(W, Report), ReportError> {
        self.start()?;
        let report = self.verifier.finish();
        let mut s = String::from(
            "</section>\n<section class=\"summary\" id=\"summary\">\n<h2>Summary</h2>\n",
        );
        verification(&mut s, &report);
        summary(&mut s, &self.counts, self.end.as_ref());
        s.push_str("</section>\n</main>\n</body>\n</html>\n");
        self.out.write_all(s.as_bytes())?;
        self.out.flush()?;
        Ok((self.out, report))
    }

    fn render(&mut self, record: &ExportRecord) -> Result<(), ReportError> {
        if let ExportRecord::Export(h) = record
            && !self.started
        {
            self.header = Some(h.clone());
        }
        self.start()?;
        match record {
            ExportRecord::Decision { decision } => {
                let mut s = String::new();
                match read_decision(decision) {
                    Ok(d) => {
                        self.counts.add(&d);
                        decision_html(&mut s, &d);
                    }
                    Err((id, why)) => {
                        self.counts.unreadable += 1;
                        let _ = writeln!(
                            s,
                            "<article class=\"decision\"><h3><span class=\"id\">{}</span></h3>\
                             <p class=\"verification failed\">This decision record could not be read: {}</p></article>",
                            or_none(&id),
                            e(&why)
                        );
                    }
                }
                self.out.write_all(s.as_bytes())?;
            }
            ExportRecord::PolicyVersion(_) => self.counts.policy_versions += 1,
            ExportRecord::End(end) => self.end = Some(*end),
            ExportRecord::Export(_)
            | ExportRecord::Event { .. }
            | ExportRecord::Checkpoint(_)
            | ExportRecord::EventText { .. } => {}
        }
        Ok(())
    }

    /// The page's head and title section, once, before anything else.
    fn start(&mut self) -> Result<(), ReportError> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        let mut s = String::new();
        let exported = self
            .header
            .as_ref()
            .map(|h| time(&h.exported_at))
            .unwrap_or_default();
        let _ = write!(
            s,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n\
             <title>Portcullis audit report {}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
             <main class=\"report\">\n<header class=\"title\" id=\"title\">\n<h1>Portcullis audit report</h1>\n<dl>\n",
            e(&exported)
        );
        match &self.header {
            Some(h) => {
                let filters = if h.filters.is_empty() {
                    "none: every decision the exporter may read".to_string()
                } else {
                    h.filters.join(", ")
                };
                let _ = write!(
                    s,
                    "<dt>Exported at</dt><dd>{}</dd>\n<dt>Filters</dt><dd>{}</dd>\n\
                     <dt>Log</dt><dd>events 1 to {} (the tree of the export's last checkpoint)</dd>\n\
                     <dt>Format</dt><dd><code>{}</code></dd>\n",
                    e(&exported),
                    e(&filters),
                    h.tree_size,
                    e(&h.format)
                );
            }
            None => s.push_str(
                "<dt>Export</dt><dd>the file does not start with an <code>export</code> record</dd>\n",
            ),
        }
        s.push_str("</dl>\n</header>\n<section class=\"decisions\" id=\"decisions\">\n<h2>Decisions</h2>\n");
        self.out.write_all(s.as_bytes())?;
        Ok(())
    }
}

/// The verification line: what was verified against which checkpoint and key, or every problem.
fn verification(s: &mut String, report: &Report) {
    if report.ok() {
        let _ = writeln!(
            s,
            "<p class=\"verification ok\" id=\"verification\">verified: {}</p>",
            e(&report.verified.to_string())
        );
    } else {
        let v = &report.verified;
        let _ = write!(
            s,
            "<div class=\"verification failed\" id=\"verification\">NOT VERIFIED: {} problem(s) in {} decision(s), {} event(s)",
            report.problems.len(),
            v.decisions,
            v.events
        );
        // Which signed checkpoint and key the check was made against, so the reader can tell
        // a wrong key from an altered record.
        match &v.checkpoint {
            Some((index, size, key, at)) => {
                let _ = write!(
                    s,
                    "; checked against checkpoint {index} (tree size {size}, {}) signed by key {}",
                    e(&time(at)),
                    e(key)
                );
            }
            None => s.push_str("; no signed checkpoint"),
        }
        s.push_str("\n<ul>\n");
        for p in &report.problems {
            let _ = writeln!(s, "<li>{}</li>", e(&p.to_string()));
        }
        s.push_str("</ul>\n</div>\n");
    }
}

/// The counts, with the period the decisions span.
fn summary(s: &mut String, c: &Counts, end: Option<&ExportEnd>) {
    s.push_str("<dl>\n");
    let period = match (c.first, c.last) {
        (Some(f), Some(l)) => format!("{} to {} (decisions' creation times)", time(&f), time(&l)),
        _ => String::new(),
    };
    let _ = write!(
        s,
        "<dt>Period</dt><dd>{}</dd>\n<dt>Decisions</dt><dd>{}</dd>\n",
        or_none(&period),
        c.decisions
    );
    if c.unreadable > 0 {
        let _ = writeln!(s, "<dt>Unreadable decisions</dt><dd>{}</dd>", c.unreadable);
    }
    let _ = writeln!(
        s,
        "<dt>Policy versions carried</dt><dd>{}</dd>",
        c.policy_versions
    );
    if let Some(end) = end {
        let _ = writeln!(
            s,
            "<dt>Export counts</dt><dd>{} event(s), {} checkpoint(s), {} event text(s), {} decision(s), {} policy version(s)</dd>",
            end.events, end.checkpoints, end.event_texts, end.decisions, end.policy_versions
        );
    }
    s.push_str("</dl>\n<div class=\"counts\">\n");
    count_table(s, "By verdict", "Verdict", &c.verdicts);
    count_table(s, "By status", "Status", &c.statuses);
    count_table(s, "By application", "Application", &c.applications);
    count_table(s, "By environment", "Environment", &c.environments);
    s.push_str("</div>\n<h3>By rule</h3>\n");
    if c.rules.is_empty() {
        s.push_str("<p class=\"none\">no rule results</p>\n");
    } else {
        s.push_str(
            "<table class=\"by-rule\"><thead><tr><th>Rule</th><th>Failed</th><th>Passed</th><th>Missing evidence</th></tr></thead><tbody>\n",
        );
        for (rule, [failed, passed, missing]) in &c.rules {
            let _ = writeln!(
                s,
                "<tr><td><code>{}</code></td><td class=\"n\">{failed}</td><td class=\"n\">{passed}</td><td class=\"n\">{missing}</td></tr>",
                e(rule)
            );
        }
        s.push_str("</tbody></table>\n");
    }
}

fn count_table(s: &mut String, title: &str, what: &str, counts: &BTreeMap<String, u64>) {
    let _ = write!(
        s,
        "<div><h3>{title}</h3>\n<table><thead><tr><th>{what}</th><th>Decisions</th></tr></thead><tbody>\n"
    );
    if counts.is_empty() {
        s.push_str("<tr><td colspan=\"2\" class=\"none\">none</td></tr>\n");
    }
    for (k, n) in counts {
        let _ = writeln!(s, "<tr><td>{}</td><td class=\"n\">{n}</td></tr>", e(k));
    }
    s.push_str("</tbody></table></div>\n");
}

/// One `<dt>`/`<dd>` pair; `value` is already HTML.
fn pair(s: &mut String, name: &str, value: &str) {
    let _ = writeln!(s, "<dt>{name}</dt><dd>{value}</dd>");
}

/// A list of escaped items, or "none".
fn list(items: &[String]) -> String {
    if items.is_empty() {
        return or_none("");
    }
    let mut s = String::from("<ul>");
    for i in items {
        let _ = write!(s, "<li>{}</li>", e(i));
    }
    s.push_str("</ul>");
    s
}

fn decision_html(s: &mut String, d: &Decision) {
    let id = d.id.to_string();
    let verdict = d.verdict.as_str();
    let _ = write!(
        s,
        "<article class=\"decision\" id=\"d-{id}\">\n<h3><span class=\"id\">{id}</span> \
         <span class=\"badge verdict-{verdict}\">{verdict}</span> <span class=\"badge\">{status}</span></h3>\n\
         <p>{summary}</p>\n<dl>\n",
        id = e(&id),
        verdict = e(verdict),
        status = e(d.status.as_str()),
        summary = e(&d.summary),
    );
    pair(s, "Created", &e(&time(&d.created_at)));
    pair(
        s,
        "Decided",
        &or_none(&d.decided_at.as_ref().map(time).unwrap_or_default()),
    );
    pair(
        s,
        "Requested by",
        &or_none(d.principal.as_deref().unwrap_or("")),
    );
    pair(
        s,
        "Policy version",
        &format!("<code>{}</code>", e(&d.policy_version)),
    );
    if let Some(r) = &d.replaces {
        pair(
            s,
            "Re-evaluates",
            &format!("<code>{}</code>", e(&r.to_string())),
        );
    }
    if let Some(t) = &d.review_deadline {
        pair(s, "Review deadline", &e(&time(t)));
    }
    if let Some(t) = &d.review_ticket {
        pair(
            s,
            "Review ticket",
            &e(&format!(
                "{} {} ({}, {}) at {}",
                t.system,
                t.number,
                t.adapter,
                if t.opened_by_gate {
                    "opened by the gate"
                } else {
                    "named by the check"
                },
                time(&t.at)
            )),
        );
    }
    s.push_str("</dl>\n<h4>Request</h4>\n<dl>\n");
    let r = &d.request;
    pair(s, "Application", &e(r.application.as_str()));
    pair(s, "Environment", &e(r.environment.as_str()));
    let images: Vec<String> = r.images.iter().map(ToString::to_string).collect();
    pair(s, "Images", &list(&images));
    let sources: Vec<String> = r
        .sources
        .iter()
        .map(|x| {
            let mut t = x.repository.clone();
            if let Some(c) = &x.commit {
                let _ = write!(t, " @ {c}");
            }
            if let Some(b) = &x.branch {
                let _ = write!(t, " (branch {b})");
            }
            if let Some(a) = &x.author {
                let _ = write!(t, ", author {a}");
            }
            t
        })
        .collect();
    pair(s, "Sources", &list(&sources));
    let ids: Vec<String> = r
        .caller
        .ids
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let caller = if ids.is_empty() {
        e(r.caller.kind.as_str()).into_owned()
    } else {
        format!("{} ({})", e(r.caller.kind.as_str()), e(&ids.join(", ")))
    };
    pair(s, "Caller", &caller);
    pair(
        s,
        "Triggered by",
        &or_none(r.triggered_by.as_deref().unwrap_or("")),
    );
    let changes: Vec<String> = r
        .change_refs
        .jira_keys
        .iter()
        .map(|k| format!("Jira {k}"))
        .chain(
            r.change_refs
                .servicenow_changes
                .iter()
                .map(|c| format!("ServiceNow {c}")),
        )
        .collect();
    pair(s, "Change refs", &list(&changes));
    let labels: Vec<String> = r.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pair(s, "Labels", &list(&labels));
    if let Some(k) = &r.idempotency_key {
        pair(s, "Idempotency key", &e(&k.to_string()));
    }
    s.push_str("</dl>\n");

    s.push_str("<h4>Rule results</h4>\n");
    if d.rule_results.is_empty() {
        s.push_str("<p class=\"none\">no rule applied</p>\n");
    } else {
        s.push_str(
            "<table class=\"rules\"><thead><tr><th>Rule</th><th>Severity</th><th>Outcome</th><th>Effect</th><th>Reason</th></tr></thead><tbody>\n",
        );
        for x in &d.rule_results {
            let outcome = x.outcome.as_str();
            let _ = writeln!(
                s,
                "<tr><td><code>{}</code><br>{}</td><td>{}</td><td class=\"outcome-{outcome}\">{outcome}</td><td>{}</td><td>{}</td></tr>",
                e(&x.rule_id),
                e(&x.title),
                e(x.severity.as_str()),
                e(x.effect.as_str()),
                e(&x.reason),
            );
        }
        s.push_str("</tbody></table>\n");
    }

    s.push_str("<h4>Evidence sources</h4>\n");
    if d.evidence.sources.is_empty() {
        s.push_str("<p class=\"none\">no source was asked</p>\n");
    }
    for src in &d.evidence.sources {
        let status = match src.reason {
            Some(reason) => format!("{} ({})", src.status.as_str(), reason.as_str()),
            None => src.status.as_str().to_string(),
        };
        let _ = write!(
            s,
            "<dl class=\"source\">\n<dt>Source</dt><dd><code>{}</code> ({}), {} in {} ms</dd>\n<dt>Message</dt><dd>{}</dd>\n",
            e(&src.name),
            e(&src.kind),
            e(&status),
            src.duration_ms,
            or_none(&src.message),
        );
        if let Some(url) = &src.url {
            pair(s, "Called", &format!("<code>{}</code>", e(url)));
        }
        if let Some(x) = &src.excerpt {
            pair(
                s,
                "Response excerpt",
                &format!("<pre>{}</pre>", e(&excerpt(x, EVIDENCE_EXCERPT_CHARS))),
            );
        }
        if let Some(facts) = d.evidence.document.get(&src.name) {
            let text = serde_json::to_string(facts).unwrap_or_default();
            pair(
                s,
                "Evidence",
                &format!("<pre>{}</pre>", e(&excerpt(&text, EVIDENCE_EXCERPT_CHARS))),
            );
        }
        s.push_str("</dl>\n");
    }

    s.push_str("<h4>Approvals</h4>\n");
    let approvals: Vec<String> = d
        .approvals
        .iter()
        .map(|a| {
            let mut t = format!("{} at {} via {}", a.by, time(&a.at), a.channel);
            if let Some(p) = &a.principal {
                let _ = write!(t, " (token {p})");
            }
            if !a.comment.is_empty() {
                let _ = write!(t, ": {}", a.comment);
            }
            t
        })
        .collect();
    s.push_str(&list(&approvals));
    s.push_str("\n<h4>Refused attempts</h4>\n");
    let refusals: Vec<String> = d
        .refused_attempts
        .iter()
        .map(|a| {
            let mut t = format!("{} at {} via {}", a.by, time(&a.at), a.channel);
            if let Some(p) = &a.principal {
                let _ = write!(t, " (token {p})");
            }
            let _ = write!(t, ": {} ({})", a.reason, a.reason_code);
            t
        })
        .collect();
    s.push_str(&list(&refusals));
    s.push_str("\n<h4>Resolution</h4>\n");
    match &d.resolution {
        Some(x) => {
            let mut t = format!(
                "{} by {} at {} via {}",
                x.outcome.as_str(),
                x.by,
                time(&x.at),
                x.channel
            );
            if let Some(p) = &x.principal {
                let _ = write!(t, " (token {p})");
            }
            if !x.comment.is_empty() {
                let _ = write!(t, ": {}", x.comment);
            }
            let _ = writeln!(s, "<p>{}</p>", e(&t));
        }
        None => s.push_str("<p class=\"none\">none</p>\n"),
    }
    s.push_str("</article>\n");
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::audit::checkpoint::{CheckpointSigner, public_key_from_pem};
    use crate::audit::proof::EXPORT_FORMAT;

    fn header() -> ExportRecord {
        ExportRecord::Export(ExportHeader {
            format: EXPORT_FORMAT.to_string(),
            exported_at: chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            filters: vec!["application=<b>x</b>".into()],
            tree_size: 0,
        })
    }

    fn end() -> ExportRecord {
        ExportRecord::End(ExportEnd {
            events: 0,
            checkpoints: 0,
            event_texts: 0,
            decisions: 0,
            policy_versions: 0,
        })
    }

    #[test]
    fn an_empty_export_is_a_whole_page_that_verifies_and_escapes_its_filters() {
        let signer = CheckpointSigner::generate();
        let key = public_key_from_pem(&signer.public_pem().unwrap()).unwrap();
        let mut w = HtmlWriter::new(Vec::new(), &key);
        w.write(&header()).unwrap();
        w.write(&end()).unwrap();
        let (out, report) = w.finish().unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(report.ok(), "{:?}", report.problems);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.ends_with("</html>\n"));
        assert!(
            page.contains("verified: 0 decision(s), 0 event(s)"),
            "{page}"
        );
        assert!(page.contains("application=&lt;b&gt;x&lt;/b&gt;"), "{page}");
        assert!(!page.contains("<b>x"));
    }

    #[test]
    fn a_truncated_export_says_not_verified_with_its_problems() {
        let signer = CheckpointSigner::generate();
        let key = public_key_from_pem(&signer.public_pem().unwrap()).unwrap();
        let mut w = HtmlWriter::new(Vec::new(), &key);
        w.write_line(&serde_json::to_string(&header()).unwrap())
            .unwrap();
        w.write_line("not json <script>").unwrap();
        let (out, report) = w.finish().unwrap();
        let page = String::from_utf8(out).unwrap();
        assert!(!report.ok());
        assert!(page.contains("NOT VERIFIED: "), "{page}");
        assert!(page.contains("has no `end` record"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
    }
}
