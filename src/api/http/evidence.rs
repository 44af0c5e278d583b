//! `POST /v1/evidence/{source}/{digest}`: a pipeline submits evidence (a Trivy JSON report, an
//! SBOM or VEX document) for an image digest, or a SARIF log for a full commit id, long before
//! the deploy. Reports are large, so this route has its own body
//! limit; the source validates the report and keeps it for later checks of that digest.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde::Serialize;

use crate::domain::{CommitSha, Digest};
use crate::edge::{Authed, HttpState, Problem};

#[derive(Debug, Serialize)]
struct Receipt {
    source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    commit: Option<String>,
    stored_as: String,
    received_at: chrono::DateTime<chrono::Utc>,
}

/// The route, with `server.max_evidence_bytes` as its body limit (gRPC `SubmitEvidence` takes
/// the same).
pub(super) fn routes(max_evidence_bytes: usize) -> Router<HttpState> {
    Router::new()
        .route("/v1/evidence/{source}/{digest}", post(submit))
        .layer(DefaultBodyLimit::max(max_evidence_bytes))
}

async fn submit(
    State(s): State<HttpState>,
    Authed(principal): Authed,
    Path((source, digest)): Path<(String, String)>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<(StatusCode, Json<Receipt>), Problem> {
    let body = body.map_err(|e| {
        Problem::new(
            e.status(),
            "request.too_large",
            format!("the report could not be read: {}", e.body_text()),
        )
        .with_help("send a smaller report, or raise `server.max_evidence_bytes`")
    })?;
    // A full commit id (40 or 64 hex digits) names a commit (SARIF logs); anything else must be
    // an image digest.
    if !digest.starts_with("sha256:")
        && matches!(digest.len(), 40 | 64)
        && digest.bytes().all(|b| b.is_ascii_hexdigit())
    {
        let commit = CommitSha::parse(&digest).map_err(|e| Problem::invalid(&e))?;
        let r = s
            .gate
            .ingest_commit_evidence(&principal, &source, commit, body)
            .await?;
        return Ok((
            StatusCode::CREATED,
            Json(Receipt {
                source: r.source,
                digest: None,
                commit: Some(r.commit.to_string()),
                stored_as: r.stored_as,
                received_at: r.received_at,
            }),
        ));
    }
    let digest = Digest::parse(&digest).map_err(|e| Problem::invalid(&e))?;
    let r = s
        .gate
        .ingest_evidence(&principal, &source, digest, body)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Receipt {
            source: r.source,
            digest: Some(r.digest.to_string()),
            commit: None,
            stored_as: r.stored_as,
            received_at: r.received_at,
        }),
    ))
}
