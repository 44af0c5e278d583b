//! `GET /v1/audit/export`: the audit export streamed as JSON Lines (`format=jsonl`, the
//! verifiable record), CSV (`format=csv`, one row per decision) or a self-contained HTML report
//! (`format=html`, verified with the gate's own public key as it is written), the last two
//! rendered by `report`. Filters are the decision list's. The body is written as the gate
//! produces records, so memory stays bounded whatever the period; a failure mid-way aborts the
//! response, which the client sees as a cut-off body and `audit verify` as a truncated export.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::VerifyingKey;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{FilterParams, decision_filter, query_problem};
use crate::audit::checkpoint::public_key_from_pem;
use crate::domain::ValidationError;
use crate::edge::{Authed, HttpState, Problem};
use crate::gate::GateError;
use crate::gate::export::{ExportSelection, ExportStream};
use crate::report::{CsvWriter, HtmlWriter};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportParams {
    format: Option<String>,
    application: Option<String>,
    environment: Option<String>,
    verdict: Option<String>,
    caller_kind: Option<String>,
    image_digest: Option<String>,
    rule_id: Option<String>,
    rule_outcome: Option<String>,
    created_from: Option<String>,
    created_until: Option<String>,
}

pub(super) async fn audit_export(
    State(s): State<HttpState>,
    Authed(principal): Authed,
    params: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = params.map_err(|e| query_problem(&e))?;
    let format = match p.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => Format::Jsonl,
        "csv" => Format::Csv,
        "html" => Format::Html,
        other => {
            return Err(Problem::invalid(&ValidationError::new(
                "format",
                format!("`{other}` is not an export format"),
                "use `jsonl` (verifiable), `csv` or `html`",
            )));
        }
    };
    let given = [
        ("application", &p.application),
        ("environment", &p.environment),
        ("verdict", &p.verdict),
        ("caller_kind", &p.caller_kind),
        ("image_digest", &p.image_digest),
        ("rule_id", &p.rule_id),
        ("rule_outcome", &p.rule_outcome),
        ("created_from", &p.created_from),
        ("created_until", &p.created_until),
    ];
    let described = given
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|v| format!("{name}={v}")))
        .collect();
    let filter = decision_filter(&FilterParams {
        application: p.application.as_deref(),
        environment: p.environment.as_deref(),
        verdict: p.verdict.as_deref(),
        status: None,
        caller_kind: p.caller_kind.as_deref(),
        image_digest: p.image_digest.as_deref(),
        rule_id: p.rule_id.as_deref(),
        rule_outcome: p.rule_outcome.as_deref(),
        created_from: p.created_from.as_deref(),
        created_until: p.created_until.as_deref(),
    })
    .map_err(|e| Problem::invalid(&e))?;
    let records = s
        .gate
        .audit_export(&principal, ExportSelection { filter, described })
        .await?;
    let body = match format {
        Format::Jsonl => Body::from_stream(ReceiverStream::new(records).map(|record| {
            let record = record.map_err(std::io::Error::other)?;
            let mut line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
            line.push(b'\n');
            Ok::<Bytes, std::io::Error>(Bytes::from(line))
        })),
        Format::Csv => {
            let mut csv = CsvWriter::new(Vec::new());
            Body::from_stream(
                ReceiverStream::new(records)
                    .map(move |record| {
                        let record = record.map_err(std::io::Error::other)?;
                        csv.write(&record).map_err(std::io::Error::other)?;
                        Ok::<Bytes, std::io::Error>(Bytes::from(std::mem::take(csv.get_mut())))
                    })
                    // Records that make no row (the log's skeleton) make no chunk either.
                    .try_filter(|chunk| std::future::ready(!chunk.is_empty())),
            )
        }
        Format::Html => {
            // The report verifies what it shows with the gate's own key; the export has already
            // checked the caller's role, so a keyless gate answers 503 only to auditors.
            let Some((_, pem)) = s.gate.audit_public_key()? else {
                return Err(no_key());
            };
            let key = public_key_from_pem(&pem).map_err(GateError::from)?;
            html_body(records, key)
        }
    };
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}

/// Rendered chunks in flight between the HTML renderer and the response body.
const HTML_CHUNKS: usize = 16;

/// The HTML report of `records`, rendered by a task of its own: the writer's verifier borrows
/// the key, which a task can own for the writer's whole life and a stream combinator cannot.
/// The channel is bounded, so a slow reader holds the renderer (and through it the export's
/// producer) back instead of letting pages pile up; a reader that hangs up stops both.
fn html_body(mut records: ExportStream, key: VerifyingKey) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(HTML_CHUNKS);
    tokio::spawn(async move {
        let mut html = HtmlWriter::new(Vec::new(), &key);
        while let Some(record) = records.recv().await {
            let written = record
                .map_err(std::io::Error::other)
                .and_then(|r| html.write(&r).map_err(std::io::Error::other));
            if let Err(e) = written {
                // Ends the body with an error: the client sees a cut-off page, never a
                // complete-looking one.
                let _ = tx.send(Err(e)).await;
                return;
            }
            let chunk = std::mem::take(html.get_mut());
            if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
        }
        let last = html
            .finish()
            .map(|(rest, _)| Bytes::from(rest))
            .map_err(std::io::Error::other);
        let _ = tx.send(last).await;
    });
    Body::from_stream(ReceiverStream::new(rx))
}

fn no_key() -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit.no_key",
        "this gate has no checkpoint signing key to verify the report with",
    )
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Jsonl,
    Csv,
    Html,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/jsonl",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Html => "text/html; charset=utf-8",
        }
    }
}
