//! `portcullis audit keygen|public-key|verify|report`: make the key pair that signs the decision
//! log's checkpoints, print the public key a verifier needs, verify a decision proof or an audit
//! export offline with only that key, and render an export as an HTML or CSV report.

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};

use super::ExitCode;
use crate::audit::checkpoint::{CheckpointSigner, SignedCheckpoint, public_key_from_pem};
use crate::audit::proof::{DecisionProof, EXPORT_FORMAT, ExportRecord};
use crate::audit::verify::{ExportVerifier, Report, verify_proof_trusting};
use crate::config;
use crate::report::{CsvWriter, HtmlWriter};

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Generate an Ed25519 key pair and print it once: the private key (PKCS#8 PEM) for
    /// `audit.signing_key`, the public key (SPKI PEM) and its id for verifiers.
    Keygen,
    /// Print the public key (SPKI PEM) of the configured `audit.signing_key`.
    PublicKey {
        /// Configuration file (YAML, TOML or JSON); `PORTCULLIS__…` variables override it.
        #[arg(long, short = 'c', env = "PORTCULLIS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Stream the audit export from a running gate (`GET /v1/audit/export`, role auditor) to a
    /// file or standard output, with the same filters. `--format jsonl` (the default) is the
    /// verifiable record `audit verify` checks.
    Export(Box<ExportArgs>),
    /// Verify a decision proof (`GET /v1/decisions/{id}/proof`) or an audit export (JSON
    /// Lines) offline: hashes, chain, audit paths, checkpoint signatures and chain, and that
    /// every decision's stored state is what its events imply. Exit 0 when it verifies, 7 with
    /// every problem named when it does not, 2 when the files cannot be read.
    Verify {
        /// The gate's public key (SPKI PEM), as `audit public-key` or `GET /v1/audit/public-key`
        /// gives it; obtain it from the gate's operator, not from the file being verified.
        #[arg(long)]
        public_key: PathBuf,
        /// Checkpoints kept from before: an earlier export, proof or checkpoint (JSON) you
        /// verified. Each must appear unchanged, so a history rewritten and signed again, or
        /// rolled back, is caught. Repeatable.
        #[arg(long = "trusted")]
        trusted: Vec<PathBuf>,
        /// The proof (JSON) or export (JSON Lines); `-` for standard input.
        file: PathBuf,
    },
    /// Render an audit export (JSON Lines, as `GET /v1/audit/export` gives it) as a report on
    /// standard output: a self-contained HTML page (summary, verification line, every
    /// decision) or CSV (one row per decision). The export is verified with the key as it is
    /// read; the HTML report shows the result, and it is printed on standard error too. Exit 0
    /// when it verifies, 7 when it does not (the report is still written), 2 when the files
    /// cannot be read.
    Report {
        /// The gate's public key (SPKI PEM); obtain it from the gate's operator.
        #[arg(long)]
        public_key: PathBuf,
        #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
        format: ReportFormat,
        /// The export (JSON Lines); `-` for standard input.
        file: PathBuf,
    },
}

/// What `audit report` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum ReportFormat {
    /// A self-contained HTML page to open in a browser.
    Html,
    /// One row per decision, for spreadsheets.
    Csv,
}

#[derive(Debug, clap::Args)]
pub(super) struct ExportArgs {
    /// The gate's HTTP base URL.
    #[arg(
        long,
        env = "PORTCULLIS_HTTP_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// An auditor's API token (prefer --token-file or the environment over a flag).
    #[arg(long, env = "PORTCULLIS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the API token.
    #[arg(long, env = "PORTCULLIS_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// CA certificate (PEM) to trust for an HTTPS gate, besides the system's roots.
    #[arg(long, env = "PORTCULLIS_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// `jsonl` (verifiable), `csv` or `html`.
    #[arg(long, default_value = "jsonl")]
    format: String,
    /// Where to write it; standard output when absent.
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// A filter of the decision list, as `name=value` (application, environment, verdict,
    /// caller_kind, image_digest, rule_id, rule_outcome, created_from, created_until);
    /// repeatable.
    #[arg(long = "filter", value_name = "NAME=VALUE")]
    filters: Vec<String>,
}

pub(super) fn run(cmd: AuditCommand) -> ExitCode {
    let result = match cmd {
        AuditCommand::Verify {
            public_key,
            trusted,
            file,
        } => return verify(&public_key, &trusted, &file),
        AuditCommand::Export(args) => return export(&args),
        AuditCommand::Report {
            public_key,
            format,
            file,
        } => return report(&public_key, format, &file),
        other => keys(other),
    };
    match result {
        Ok(()) => ExitCode::Ok,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::Error
        }
    }
}

fn keys(cmd: AuditCommand) -> anyhow::Result<()> {
    match cmd {
        AuditCommand::Keygen => {
            let signer = CheckpointSigner::generate();
            println!("# key id: {}", signer.key_id());
            println!(
                "# The private key below is printed once and stored nowhere: put it in a secret \
                 (a file or an environment variable) and point `audit.signing_key` at it."
            );
            print!("{}", signer.private_pem()?.expose());
            println!("# Public key, for `portcullis audit verify --public-key` and auditors:");
            print!("{}", signer.public_pem()?);
        }
        AuditCommand::PublicKey { config } => {
            let settings = config::load(config.as_deref())?;
            let signer = crate::serve::signing_key(&settings.audit)?;
            eprintln!("key id: {}", signer.key_id());
            print!("{}", signer.public_pem()?);
        }
        AuditCommand::Verify { .. } | AuditCommand::Export(_) | AuditCommand::Report { .. } => {}
    }
    Ok(())
}

/// The verifier's key, or why it cannot be read (said on standard error).
fn read_key(public_key: &Path) -> Result<ed25519_dalek::VerifyingKey, ExitCode> {
    std::fs::read_to_string(public_key)
        .map_err(|e| e.to_string())
        .and_then(|pem| public_key_from_pem(&pem).map_err(|e| e.to_string()))
        .map_err(|e| {
            eprintln!(
                "error: cannot read the public key `{}`: {e}",
                public_key.display()
            );
            ExitCode::BadInput
        })
}

/// The export file, or standard input for `-`.
fn open_input(file: &Path) -> std::io::Result<Box<dyn Read>> {
    Ok(if file.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(file)?)
    })
}

fn verify(public_key: &Path, trusted: &[PathBuf], file: &Path) -> ExitCode {
    let key = match read_key(public_key) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let mut kept = Vec::new();
    for path in trusted {
        match kept_checkpoints(path) {
            Ok(found) if !found.is_empty() => kept.extend(found),
            Ok(_) => {
                eprintln!(
                    "error: `{}` holds no checkpoint; pass an earlier export, proof or checkpoint",
                    path.display()
                );
                return ExitCode::BadInput;
            }
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", path.display());
                return ExitCode::BadInput;
            }
        }
    }
    let report = match read_and_verify(file, &key, kept) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", file.display());
            return ExitCode::BadInput;
        }
    };
    if report.ok() {
        println!("verified: {}", report.verified);
        ExitCode::Ok
    } else {
        println!(
            "NOT VERIFIED: {} problem(s) in {}",
            report.problems.len(),
            file.display()
        );
        for p in &report.problems {
            println!("- {p}");
        }
        ExitCode::AuditProblems
    }
}

/// Reads a proof (one JSON document) or an export (JSON Lines whose first line is the
/// `export` record), the export a line at a time.
/// The signed checkpoints in an earlier export (its `checkpoint` records), a proof (its
/// checkpoint) or a file holding one signed checkpoint.
fn kept_checkpoints(path: &Path) -> std::io::Result<Vec<SignedCheckpoint>> {
    let text = std::fs::read_to_string(path)?;
    if let Ok(proof) = serde_json::from_str::<DecisionProof>(&text) {
        return Ok(vec![proof.checkpoint]);
    }
    if let Ok(one) = serde_json::from_str::<SignedCheckpoint>(&text) {
        return Ok(vec![one]);
    }
    Ok(text
        .lines()
        .filter_map(|l| match serde_json::from_str::<ExportRecord>(l) {
            Ok(ExportRecord::Checkpoint(c)) => Some(c),
            _ => None,
        })
        .collect())
}

fn read_and_verify(
    file: &Path,
    key: &ed25519_dalek::VerifyingKey,
    kept: Vec<SignedCheckpoint>,
) -> std::io::Result<Report> {
    let mut reader = BufReader::new(open_input(file)?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let is_export = serde_json::from_str::<serde_json::Value>(&first).is_ok_and(|v| {
        v.get("record").and_then(|r| r.as_str()) == Some("export")
            || v.get("format").and_then(|r| r.as_str()) == Some(EXPORT_FORMAT)
    });
    if is_export {
        let mut verifier = ExportVerifier::new(key).trusting(kept);
        verifier.feed(&first);
        for line in reader.lines() {
            verifier.feed(&line?);
        }
        return Ok(verifier.finish());
    }
    let mut text = first;
    reader.read_to_string(&mut text)?;
    // An altered byte can leave no readable proof at all: that is a verification failure
    // (exit 7, named), not a usage error.
    Ok(match serde_json::from_str::<DecisionProof>(&text) {
        Ok(proof) => verify_proof_trusting(&proof, key, &kept),
        Err(e) => Report::unreadable(format!(
            "it is neither an audit export nor a decision proof: {e}"
        )),
    })
}

fn export(args: &ExportArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::Error;
        }
    };
    match runtime.block_on(fetch_export(args)) {
        Ok(()) => ExitCode::Ok,
        Err((code, message)) => {
            eprintln!("error: {message}");
            code
        }
    }
}

fn report(public_key: &Path, format: ReportFormat, file: &Path) -> ExitCode {
    let key = match read_key(public_key) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let input = match open_input(file) {
        Ok(i) => BufReader::new(i),
        Err(e) => {
            eprintln!("error: cannot read `{}`: {e}", file.display());
            return ExitCode::BadInput;
        }
    };
    let out = BufWriter::new(std::io::stdout().lock());
    let report = match format {
        ReportFormat::Html => html_report(input, out, &key),
        ReportFormat::Csv => csv_report(input, out, &key),
    };
    match report {
        Ok(report) if report.ok() => {
            eprintln!("verified: {}", report.verified);
            ExitCode::Ok
        }
        Ok(report) => {
            eprintln!(
                "NOT VERIFIED: {} problem(s) in {}",
                report.problems.len(),
                file.display()
            );
            for p in &report.problems {
                eprintln!("- {p}");
            }
            ExitCode::AuditProblems
        }
        Err(e) => {
            eprintln!(
                "error: cannot write the report of `{}`: {e:#}",
                file.display()
            );
            ExitCode::Error
        }
    }
}

async fn fetch_export(args: &ExportArgs) -> Result<(), (ExitCode, String)> {
    use std::io::Write as _;

    let bad = |m: String| (ExitCode::BadInput, m);
    let token = match (&args.token, &args.token_file) {
        (Some(t), _) => Some(t.trim().to_string()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    bad(format!(
                        "cannot read the token file `{}`: {e}",
                        path.display()
                    ))
                })?
                .trim()
                .to_string(),
        ),
        (None, None) => None,
    };
    let mut query = vec![("format".to_string(), args.format.clone())];
    for f in &args.filters {
        let (name, value) = f
            .split_once('=')
            .ok_or_else(|| bad(format!("filter `{f}` is not `name=value`")))?;
        query.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut client = reqwest::Client::builder();
    if let Some(ca) = &args.ca_cert {
        let pem =
            std::fs::read(ca).map_err(|e| bad(format!("cannot read `{}`: {e}", ca.display())))?;
        let cert = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| bad(format!("`{}` is not a PEM certificate: {e}", ca.display())))?;
        client = client.add_root_certificate(cert);
    }
    let client = client.build().map_err(|e| {
        (
            ExitCode::Error,
            format!("cannot build the HTTP client: {e}"),
        )
    })?;
    let url = format!("{}/v1/audit/export", args.url.trim_end_matches('/'));
    let mut request = client.get(&url).query(&query);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let unreachable = |e: reqwest::Error| (ExitCode::Unreachable, format!("`{url}`: {e}"));
    let mut response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        let code = if status.is_client_error() {
            ExitCode::BadInput
        } else {
            ExitCode::Unreachable
        };
        return Err((code, format!("the gate answered {status}: {body}")));
    }
    let mut out: Box<dyn std::io::Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| {
                (
                    ExitCode::Error,
                    format!("cannot write `{}`: {e}", path.display()),
                )
            })?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let write_err = |e: std::io::Error| (ExitCode::Error, format!("cannot write the export: {e}"));
    // Chunk by chunk: an export of a year never sits in memory. A body cut off by the gate is
    // an error here (and a truncated export to `audit verify`).
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        out.write_all(&chunk).map_err(write_err)?;
    }
    out.flush().map_err(write_err)?;
    Ok(())
}

/// The HTML report of an export read a line at a time; the writer verifies as it renders.
fn html_report(
    input: impl BufRead,
    out: impl Write,
    key: &ed25519_dalek::VerifyingKey,
) -> anyhow::Result<Report> {
    let mut html = HtmlWriter::new(out, key);
    for line in input.lines() {
        html.write_line(&line?)?;
    }
    let (_, report) = html.finish()?;
    Ok(report)
}

/// The CSV report of an export read a line at a time, verified alongside (CSV has no place
/// for the verdict, so it goes to standard error and the exit code).
fn csv_report(
    input: impl BufRead,
    out: impl Write,
    key: &ed25519_dalek::VerifyingKey,
) -> anyhow::Result<Report> {
    let mut verifier = ExportVerifier::new(key);
    let mut csv = CsvWriter::new(out);
    for line in input.lines() {
        let line = line?;
        verifier.feed(&line);
        // A line that is no record is the verifier's to name, not a reason to stop.
        if let Ok(record) = serde_json::from_str::<ExportRecord>(&line) {
            csv.write(&record)?;
        }
    }
    csv.finish()?;
    Ok(verifier.finish())
}
