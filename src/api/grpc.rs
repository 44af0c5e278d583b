//! The gRPC API (`portcullis.v1.Gate`): decode → [`Gate`] → encode. Authentication is an
//! interceptor; `status()` is the one place gate errors become gRPC codes.

pub mod codec;
mod convert;

use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::auth::{Authenticator, Principal};
use crate::domain::{
    Application, CallerKind, Channel, CommitSha, DecisionId, Digest, Environment, ValidationError,
};
use crate::gate::{Gate, GateError, ReviewAnswer};
use crate::pb;
use crate::pb::gate_server::GateServer;
use crate::store::{DecisionFilter, RuleFilter, StoreError};

/// The gRPC service over a shared gate.
#[derive(Debug, Clone)]
pub struct GrpcApi {
    gate: Arc<Gate>,
    limits: Limits,
}

/// Message limits, the same values the HTTP API applies (`server.max_body_bytes`,
/// `server.max_evidence_bytes`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_body_bytes: usize,
    /// The largest evidence report, counted like the HTTP body: the report's own bytes.
    pub max_evidence_bytes: usize,
}

/// Room for `SubmitEvidence`'s other fields (source, digest) around a report of the largest
/// accepted size.
const ENVELOPE_BYTES: usize = 4096;

/// The service wrapped with its authentication interceptor, ready to add to a tonic router.
pub fn service(
    gate: Arc<Gate>,
    auth: Arc<Authenticator>,
    limits: Limits,
) -> tonic::service::interceptor::InterceptedService<
    GateServer<GrpcApi>,
    impl tonic::service::Interceptor + Clone,
> {
    // tonic has one decoding limit per service: the largest message any method takes. Each
    // method then holds its own message to its own limit, as the HTTP routes do.
    let decode_limit = limits
        .max_body_bytes
        .max(limits.max_evidence_bytes.saturating_add(ENVELOPE_BYTES));
    let server = GateServer::new(GrpcApi { gate, limits }).max_decoding_message_size(decode_limit);
    tonic::service::interceptor::InterceptedService::new(server, move |mut req: Request<()>| {
        let header = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let principal = auth
            .authenticate(header)
            .map_err(|e| Status::unauthenticated(format!("{e} (how to fix: {})", e.help())))?;
        req.extensions_mut().insert(principal);
        Ok(req)
    })
}

fn principal<T>(req: &Request<T>) -> Result<Principal, Status> {
    req.extensions().get::<Principal>().cloned().ok_or_else(|| {
        Status::unauthenticated("no principal: the authentication interceptor did not run")
    })
}

/// Maps every gate error to one gRPC status; the message says what and how to fix it.
pub fn status(e: GateError) -> Status {
    // The help travels in the message, as it does for invalid requests: gRPC callers see the
    // same "how to fix" as HTTP ones.
    let message = match e.help() {
        Some(help) => format!("{e} (how to fix: {help})"),
        None => e.to_string(),
    };
    match &e {
        GateError::Invalid(v) => invalid(v),
        GateError::Forbidden { .. }
        | GateError::OutOfScope { .. }
        | GateError::EvidenceOutOfScope { .. }
        | GateError::NotOwner { .. } => Status::permission_denied(message),
        GateError::KeyOfAnotherPrincipal { .. } => Status::already_exists(message),
        GateError::NotFound(_) | GateError::PolicyVersionUnknown(_) => Status::not_found(message),
        GateError::IdempotencyConflict { .. } => Status::already_exists(message),
        GateError::Unavailable(StoreError::InvalidPageToken) => Status::invalid_argument(message),
        GateError::Unavailable(_) | GateError::ShuttingDown => Status::unavailable(message),
        GateError::Conflict { .. } | GateError::AlreadyApproved { .. } => {
            Status::failed_precondition(message)
        }
        GateError::SeparationOfDuties { .. } | GateError::NotInApproverGroup { .. } => {
            Status::permission_denied(message)
        }
        GateError::Audit(_) | GateError::Internal(_) => Status::internal(message),
    }
}

fn invalid(v: &ValidationError) -> Status {
    Status::invalid_argument(format!(
        "invalid `{}`: {} (how to fix: {})",
        v.field, v.message, v.help
    ))
}

/// `RESOURCE_EXHAUSTED` when a message is over its limit (HTTP answers 413).
fn too_large(len: usize, max: usize, what: &str, key: &str) -> Result<(), Status> {
    if len > max {
        return Err(Status::resource_exhausted(format!(
            "{what} is {len} bytes, more than the limit of {max} (how to fix: send less, or raise `{key}`)"
        )));
    }
    Ok(())
}

fn parse_id(s: &str) -> Result<DecisionId, Status> {
    DecisionId::parse(s).map_err(|e| invalid(&e))
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::Decision, Status>> + Send>>;

#[tonic::async_trait]
impl pb::gate_server::Gate for GrpcApi {
    async fn check(
        &self,
        req: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        let who = principal(&req)?;
        too_large(
            prost::Message::encoded_len(req.get_ref()),
            self.limits.max_body_bytes,
            "the check",
            "server.max_body_bytes",
        )?;
        let request = convert::draft(req.into_inner())
            .parse(CallerKind::Api)
            .map_err(|e| invalid(&e))?;
        let outcome = self.gate.check(&who, request).await.map_err(status)?;
        Ok(Response::new(convert::decision(&outcome.decision)))
    }

    async fn get_decision(
        &self,
        req: Request<pb::GetDecisionRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        let who = principal(&req)?;
        let id = parse_id(&req.get_ref().id)?;
        let d = self.gate.get(&who, &id).await.map_err(status)?;
        Ok(Response::new(convert::decision(&d)))
    }

    async fn get_decision_proof(
        &self,
        req: Request<pb::GetDecisionProofRequest>,
    ) -> Result<Response<pb::DecisionProof>, Status> {
        let who = principal(&req)?;
        let id = parse_id(&req.get_ref().id)?;
        let proof = self.gate.decision_proof(&who, &id).await.map_err(status)?;
        let proof_json = serde_json::to_string(&proof)
            .map_err(|e| Status::internal(format!("the proof could not be encoded: {e}")))?;
        let c = &proof.checkpoint.checkpoint;
        Ok(Response::new(pb::DecisionProof {
            decision_id: proof.decision_id.clone(),
            checkpoint_index: c.index,
            tree_size: c.tree_size,
            key_id: c.key_id.clone(),
            proof_json,
        }))
    }

    type WatchDecisionStream = WatchStream;

    async fn watch_decision(
        &self,
        req: Request<pb::WatchDecisionRequest>,
    ) -> Result<Response<Self::WatchDecisionStream>, Status> {
        let who = principal(&req)?;
        let id = parse_id(&req.get_ref().id)?;
        let stream = self.gate.watch(&who, &id).await.map_err(status)?;
        let mapped = stream.map(|item| item.map(|d| convert::decision(&d)).map_err(status));
        Ok(Response::new(Box::pin(mapped)))
    }

    async fn list_decisions(
        &self,
        req: Request<pb::ListDecisionsRequest>,
    ) -> Result<Response<pb::ListDecisionsResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let filter = DecisionFilter {
            application: nonempty(&r.application)
                .map(|s| Application::parse(&s))
                .transpose()
                .map_err(|e| invalid(&e))?,
            environment: nonempty(&r.environment)
                .map(|s| Environment::parse(&s))
                .transpose()
                .map_err(|e| invalid(&e))?,
            verdict: convert::verdict_from_pb(r.verdict()),
            status: convert::status_from_pb(r.status()),
            caller_kind: convert::caller_kind_from_pb(r.caller_kind()),
            // The gate narrows lists for principals that may read only their own decisions.
            principal: None,
            image_digest: nonempty(&r.image_digest)
                .map(|s| {
                    Digest::parse(&s).map_err(|e| ValidationError {
                        field: "image_digest".into(),
                        ..e
                    })
                })
                .transpose()
                .map_err(|e| invalid(&e))?,
            rule: RuleFilter::parse(
                nonempty(&r.rule_id).as_deref(),
                convert::rule_outcome_from_pb(r.rule_outcome).map_err(|e| invalid(&e))?,
            )
            .map_err(|e| invalid(&e))?,
            created_from: convert::time_from_pb("created_from", r.created_from.as_ref())
                .map_err(|e| invalid(&e))?,
            created_until: convert::time_from_pb("created_until", r.created_until.as_ref())
                .map_err(|e| invalid(&e))?,
        };
        let page = self
            .gate
            .list(
                &who,
                &filter,
                r.page_size,
                nonempty(&r.page_token).as_deref(),
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListDecisionsResponse {
            decisions: page.decisions.iter().map(convert::decision).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn submit_evidence(
        &self,
        req: Request<pb::SubmitEvidenceRequest>,
    ) -> Result<Response<pb::SubmitEvidenceResponse>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        too_large(
            r.report.len(),
            self.limits.max_evidence_bytes,
            "the report",
            "server.max_evidence_bytes",
        )?;
        let ts = |t: chrono::DateTime<chrono::Utc>| prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
        };
        if !r.commit.is_empty() {
            let commit = CommitSha::parse(&r.commit).map_err(|e| invalid(&e))?;
            let receipt = self
                .gate
                .ingest_commit_evidence(&who, &r.source, commit, r.report.into())
                .await
                .map_err(status)?;
            return Ok(Response::new(pb::SubmitEvidenceResponse {
                source: receipt.source,
                digest: String::new(),
                commit: receipt.commit.to_string(),
                stored_as: receipt.stored_as,
                received_at: Some(ts(receipt.received_at)),
            }));
        }
        let digest = Digest::parse(&r.digest).map_err(|e| invalid(&e))?;
        let receipt = self
            .gate
            .ingest_evidence(&who, &r.source, digest, r.report.into())
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SubmitEvidenceResponse {
            source: receipt.source,
            digest: receipt.digest.to_string(),
            stored_as: receipt.stored_as,
            received_at: Some(ts(receipt.received_at)),
            commit: String::new(),
        }))
    }

    async fn get_policy_version(
        &self,
        req: Request<pb::GetPolicyVersionRequest>,
    ) -> Result<Response<pb::PolicyVersion>, Status> {
        let who = principal(&req)?;
        let record = self
            .gate
            .policy_version(&who, &req.get_ref().version)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::policy_version(record)))
    }

    async fn resolve_review(
        &self,
        req: Request<pb::ResolveReviewRequest>,
    ) -> Result<Response<pb::Decision>, Status> {
        let who = principal(&req)?;
        let r = req.into_inner();
        let id = parse_id(&r.decision_id)?;
        let answer = ReviewAnswer::parse(&r.resolution).map_err(|e| invalid(&e))?;
        let d = self
            .gate
            .resolve_review(&who, &id, answer, &r.comment, Channel::Grpc)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::decision(&d)))
    }
}
