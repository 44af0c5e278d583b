//! `GET /v1/audit/export`: the audit export streamed as JSON Lines (`format=jsonl`, the
//! verifiable record), CSV (`format=csv`, one row per decision) or a self-contained HTML report
//! (`format=html`). Filters are the decision list's. The body is written as the gate produces
//! records, so memory stays bounded whatever the period; a failure mid-way aborts the
//! response, which the client sees as a cut-off body and `audit verify` as a truncated export.

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use tokio_stream::wrappers::ReceiverStream;

use super::problem::Problem;
use super::{Authed, HttpState, query_problem};
use crate::domain::{Application, CallerKind, Environment, ValidationError, Verdict};
use crate::gate::export::ExportSelection;
use crate::store::DecisionFilter;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ExportParams {
    format: Option<String>,
    application: Option<String>,
    environment: Option<String>,
    verdict: Option<String>,
    caller_kind: Option<String>,
}

pub(super) async fn audit_export(
    State(s): State<HttpState>,
    Authed(principal): Authed,
    params: Result<Query<ExportParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = params.map_err(|e| query_problem(&e))?;
    let invalid = |e: ValidationError| Problem::invalid(&e);
    let format = match p.format.as_deref().unwrap_or("jsonl") {
        "jsonl" => Format::Jsonl,
        other => {
            return Err(Problem::invalid(&ValidationError::new(
                "format",
                format!("`{other}` is not an export format"),
                "use `jsonl` (verifiable), `csv` or `html`",
            )));
        }
    };
    let mut described = Vec::new();
    let mut describe = |name: &str, value: &Option<String>| {
        if let Some(v) = value {
            described.push(format!("{name}={v}"));
        }
    };
    describe("application", &p.application);
    describe("environment", &p.environment);
    describe("verdict", &p.verdict);
    describe("caller_kind", &p.caller_kind);
    let filter = DecisionFilter {
        application: p
            .application
            .as_deref()
            .map(Application::parse)
            .transpose()
            .map_err(invalid)?,
        environment: p
            .environment
            .as_deref()
            .map(Environment::parse)
            .transpose()
            .map_err(invalid)?,
        verdict: p
            .verdict
            .as_deref()
            .map(Verdict::parse)
            .transpose()
            .map_err(invalid)?,
        caller_kind: p
            .caller_kind
            .as_deref()
            .map(CallerKind::parse)
            .transpose()
            .map_err(invalid)?,
        ..DecisionFilter::default()
    };
    let records = s
        .gate
        .audit_export(&principal, ExportSelection { filter, described })
        .await?;
    let body = ReceiverStream::new(records).map(move |record| {
        let record = record.map_err(std::io::Error::other)?;
        match format {
            Format::Jsonl => {
                let mut line = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
                line.push(b'\n');
                Ok::<Bytes, std::io::Error>(Bytes::from(line))
            }
        }
    });
    let mut response = (StatusCode::OK, Body::from_stream(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Jsonl,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Jsonl => "application/jsonl",
        }
    }
}
