//! The audit reports: `GET /v1/audit/export?format=html` opened in a real browser (headless
//! Chromium), `format=csv` read back with the `csv` crate, and `portcullis audit report` on a
//! saved export, verified and then tampered with.
//!
//! The browser comes from the distribution's package (`.ci/run` installs `chromium`). Where it
//! is missing the browser test says so loudly and returns, unless `PORTCULLIS_REQUIRE_BROWSER`
//! is set (CI sets it), which turns the skip into a failure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use portcullis::auth::Role;
use portcullis::report::csv::COLUMNS;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support::fixtures::good_check;
use crate::support::fixtures::portcullis;

/// Fails the rule (so: manual review) when the check carries a `review` label.
const REVIEW: &str = "rules:\n  - id: needs-review\n    title: Needs a human\n    category: test\n    severity: high\n    condition: { path: $.request.labels.review, op: absent }\n";

/// What a caller can put in `triggered_by` to try to run script in an auditor's browser.
const SCRIPT: &str = "<script>document.title='pwned'</script>";

/// Longest the one browser launch may take.
const BROWSER_DEADLINE: Duration = Duration::from_secs(90);

async fn app() -> TestApp {
    TestApp::builder()
        .policies(&[("p.yaml", REVIEW)])
        .token("ci", "pc_ci", vec![Role::Pipeline])
        .token("bob", "pc_bob", vec![Role::Approver])
        .token("audra", "pc_audra", vec![Role::Auditor])
        .spawn()
        .await
}

/// A check as the pipeline token; returns the decision.
async fn check(app: &TestApp, body: &Value) -> Value {
    app.post_as(Some("pc_ci"), "/v1/checks", body)
        .await
        .json_with(StatusCode::CREATED)
}

/// Three decisions: a continue whose caller claims contain script, one approved review, and
/// one pending review with a refused approval (bob triggered it).
async fn decisions(app: &TestApp) -> Vec<String> {
    let mut plain = good_check("report-continue");
    plain["triggered_by"] = json!(SCRIPT);
    plain["labels"]["note"] = json!(SCRIPT);
    let continued = check(app, &plain).await;
    assert_eq!(continued["verdict"], "continue", "{continued}");

    let mut review = good_check("report-approved");
    review["labels"]["review"] = json!("yes");
    let approved = check(app, &review).await;
    assert_eq!(approved["verdict"], "manual_review", "{approved}");
    let id = approved["id"].as_str().unwrap();
    let body = json!({"resolution": "approve", "comment": "scan looked at"});
    let d = app
        .post_as(Some("pc_bob"), &format!("/v1/decisions/{id}/review"), &body)
        .await
        .json_with(StatusCode::OK);
    assert_eq!(d["verdict"], "continue", "{d}");

    let mut own = good_check("report-refused");
    own["labels"]["review"] = json!("yes");
    own["triggered_by"] = json!("bob");
    let pending = check(app, &own).await;
    let id = pending["id"].as_str().unwrap();
    app.post_as(Some("pc_bob"), &format!("/v1/decisions/{id}/review"), &body)
        .await
        .expect(StatusCode::FORBIDDEN);

    [continued, approved, pending]
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect()
}

/// `GET /v1/audit/export?format=…` as the auditor: the status and content type asserted,
/// then the body.
async fn export(app: &TestApp, format: &str, content_type: &str) -> String {
    let resp = app
        .http
        .get(app.url(&format!("/v1/audit/export?format={format}")))
        .bearer_auth("pc_audra")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "format={format}");
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        content_type
    );
    resp.text().await.unwrap()
}

/// The problems a report page lists under its verification line.
fn problems_in_page(page: &str) -> Vec<String> {
    let Some(at) = page.find("id=\"verification\"") else {
        return Vec::new();
    };
    let block = &page[at..];
    let block = &block[..block.find("</ul>").unwrap_or(block.len())];
    block
        .split("<li>")
        .skip(1)
        .map(|p| p.split("</li>").next().unwrap_or("").to_string())
        .collect()
}

/// The problems `portcullis audit report` prints on standard error.
fn problems_printed(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .map(str::to_string)
        .collect()
}

/// The report says it verified, with `verified` in its line, and lists no problem.
#[track_caller]
fn verified(problems: &[String], text: &str, verified: &str) {
    assert!(problems.is_empty(), "{problems:?}");
    assert!(text.contains(verified), "no `{verified}` in: {text}");
}

/// The browser to open the report with, or `None` (after saying so) where there is none and
/// `PORTCULLIS_REQUIRE_BROWSER` is not set.
fn browser() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|p| p.is_file())
    });
    let required =
        std::env::var("PORTCULLIS_REQUIRE_BROWSER").is_ok_and(|v| !v.is_empty() && v != "0");
    match found {
        Some(p) => Some(p),
        None if required => panic!(
            "PORTCULLIS_REQUIRE_BROWSER is set but no `chromium` is on PATH: install the \
             distribution's `chromium` package (.ci/run does)"
        ),
        None => {
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 !! SKIPPED: no `chromium` on PATH, so the HTML audit report was NOT opened in a\n\
                 !! browser. Install the `chromium` package (or set PORTCULLIS_REQUIRE_BROWSER=1\n\
                 !! to make this a failure, as CI does).\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            None
        }
    }
}

/// The DOM headless Chromium builds from `page`: one launch, with its own profile, bounded by
/// `BROWSER_DEADLINE`.
async fn rendered_dom(chromium: &Path, page: &Path, profile: &Path) -> String {
    let child = tokio::process::Command::new(chromium)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(BROWSER_DEADLINE, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("chromium did not render the report in {BROWSER_DEADLINE:?}"))
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn the_html_report_renders_in_a_real_browser_verified_with_every_decision_and_no_script() {
    let app = app().await;
    let ids = decisions(&app).await;
    let page = export(&app, "html", "text/html; charset=utf-8").await;
    assert!(
        !page.contains("<script"),
        "the page carries a script element"
    );

    let Some(chromium) = browser() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.html");
    std::fs::write(&file, &page).unwrap();
    let dom = rendered_dom(&chromium, &file, &dir.path().join("profile")).await;

    assert!(dom.contains("<main class=\"report\">"), "{dom}");
    assert!(
        dom.contains("against checkpoint") && dom.contains("signed by key ed25519:"),
        "no verification line in the rendered page: {dom}"
    );
    verified(&problems_in_page(&dom), &dom, "verified: 3 decision(s)");
    for id in &ids {
        assert!(
            dom.contains(&format!("id=\"d-{id}\"")),
            "decision {id} missing"
        );
    }
    // The caller's script is text on the page, not an element: no script ran (the title is
    // the report's) and the DOM has no script element at all.
    assert!(
        dom.contains("&lt;script&gt;document.title='pwned'&lt;/script&gt;"),
        "{dom}"
    );
    assert!(
        !dom.contains("<script"),
        "a script element in the DOM: {dom}"
    );
    assert!(!dom.contains("<title>pwned"), "{dom}");
    // The summary and the approvals and refusals it was built from are there.
    for text in [
        "By verdict",
        "needs-review",
        "approved by bob",
        "review.separation_of_duties",
    ] {
        assert!(
            dom.contains(text),
            "`{text}` missing from the rendered page"
        );
    }
}

#[tokio::test]
async fn the_csv_export_has_one_row_per_decision_and_no_formula_runs() {
    let app = app().await;
    let mut formulas = Vec::new();
    for (i, claim) in ["=HYPERLINK(\"http://x\")", "+1+1", "-2", "@SUM(1)"]
        .iter()
        .enumerate()
    {
        let mut body = good_check(&format!("report-csv-{i}"));
        body["triggered_by"] = json!(claim);
        let d = check(&app, &body).await;
        formulas.push((d["id"].as_str().unwrap().to_string(), claim.to_string()));
    }
    let text = export(&app, "csv", "text/csv; charset=utf-8").await;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header, COLUMNS);
    let column = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), formulas.len(), "{text}");
    for (id, claim) in &formulas {
        let row = rows
            .iter()
            .find(|r| &r[column("id")] == id)
            .unwrap_or_else(|| panic!("no row for {id}: {text}"));
        assert_eq!(&row[column("triggered_by")], format!("'{claim}"));
        assert_eq!(&row[column("application")], "payments");
        assert_eq!(&row[column("verdict")], "continue");
        assert!(
            row[column("image_digests")].starts_with("sha256:"),
            "{row:?}"
        );
    }
}

#[tokio::test]
async fn audit_report_renders_a_saved_export_and_says_when_it_was_altered() {
    let app = app().await;
    let ids = decisions(&app).await;
    let jsonl = export(&app, "jsonl", "application/jsonl").await;
    let key = app.public_key(None).await.json_with(StatusCode::OK);
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key.pem");
    std::fs::write(&key_file, key["public_key_pem"].as_str().unwrap()).unwrap();
    let export_file = dir.path().join("export.jsonl");
    std::fs::write(&export_file, &jsonl).unwrap();
    let key_arg = key_file.to_str().unwrap();

    let out = portcullis(&[
        "audit",
        "report",
        "--public-key",
        key_arg,
        export_file.to_str().unwrap(),
    ])
    .await;
    let html = String::from_utf8(out.stdout).unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    let problems = problems_printed(&err);
    verified(&problems, &err, "verified: 3 decision(s)");
    assert_eq!(
        out.status.code(),
        Some(if problems.is_empty() { 0 } else { 7 }),
        "{err}"
    );
    assert_eq!(problems_in_page(&html), problems);
    assert!(html.contains("against checkpoint"), "{html}");
    for id in &ids {
        assert!(html.contains(id.as_str()), "decision {id} missing");
    }

    let out = portcullis(&[
        "audit",
        "report",
        "--public-key",
        key_arg,
        "--format",
        "csv",
        export_file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(
        out.status.code(),
        Some(if problems.is_empty() { 0 } else { 7 })
    );
    let rows = csv::Reader::from_reader(out.stdout.as_slice())
        .records()
        .count();
    assert_eq!(rows, ids.len());

    // An edited approval comment: the report is still written, and says what is wrong.
    let altered = jsonl.replace("scan looked at", "nobody looked");
    assert_ne!(altered, jsonl);
    std::fs::write(&export_file, altered).unwrap();
    let out = portcullis(&[
        "audit",
        "report",
        "--public-key",
        key_arg,
        export_file.to_str().unwrap(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(7));
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(html.contains("NOT VERIFIED: "), "{html}");
    assert!(
        problems_in_page(&html)
            .iter()
            .any(|p| p.contains("was edited")),
        "{html}"
    );
}

#[tokio::test]
async fn reports_are_for_auditors_and_unknown_formats_are_refused() {
    let app = app().await;
    for format in ["csv", "html"] {
        let path = format!("/v1/audit/export?format={format}");
        app.get_as(Some("pc_ci"), &path)
            .await
            .expect(StatusCode::FORBIDDEN);
    }
    let p = app
        .get_as(Some("pc_audra"), "/v1/audit/export?format=pdf")
        .await
        .json_with(StatusCode::BAD_REQUEST);
    assert_eq!(p["field"], "format", "{p}");
}
