//! The core service. Every transport (gRPC, HTTP, the caller contracts) is a thin translation onto
//! [`Gate`]; nothing about deciding lives anywhere else.
//!
//! A check: authorise → choose the rules that apply → ask only the adapters those rules read,
//! concurrently, each inside one overall deadline → evaluate → store (idempotently) → answer.
//!
//! Architecture invariant: the gate never turns a fault into `Continue`. Unavailable evidence is
//! handed to policy as *missing*, and policy's default for missing is fail-closed.

mod checkpoint;
mod evidence;
pub mod export;
mod ingest;
pub mod jobs;
mod ledger;
mod policy_versions;
mod proof;
mod retention;
mod review;
mod routing;
#[cfg(test)]
mod test_gate;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span};

use crate::adapters::Adapter;
use crate::auth::{Principal, Role};
use crate::clock::{Clock, SystemClock};
use crate::domain::{
    CheckRequest, Decision, DecisionId, DecisionStatus, Environments, Evidence, RuleOutcome, Tier,
    ValidationError, Verdict,
};
use crate::metrics::Metrics;
use crate::policy::{EvalInput, PolicyHandle};
use crate::store::{DecisionFilter, DecisionPage, Inserted, Store, StoreError};

pub use ingest::{CommitIngestReceipt, IngestReceipt};
pub use review::{ReviewAnswer, ReviewObserver};
pub use watch::DecisionStream;

/// Settings the gate needs at run time.
#[derive(Debug, Clone)]
pub struct GateOptions {
    /// Overall deadline for gathering evidence in one check.
    pub evidence_deadline: Duration,
    /// How long a manual review may stay pending, by default and per environment.
    pub review_timeout: Duration,
    pub review_timeouts: std::collections::BTreeMap<String, Duration>,
    /// Who may approve reviews, per environment; absent means one approver, any group.
    pub approvals: std::collections::BTreeMap<String, ApprovalPolicy>,
    /// The environments a check may name, with their tiers; any other is refused.
    pub environments: Environments,
    /// The answer when no policy rule applies to a check.
    pub no_rules_verdict: Verdict,
    /// How long a final decision stays the answer to a repeat of its idempotency key; after
    /// that (or once another policy version is in force) the repeat is evaluated anew.
    pub replay_window: Duration,
}

/// How many distinct approvers a review needs, and from which groups (empty: any approver).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalPolicy {
    pub required: u32,
    pub groups: Vec<String>,
}

impl Default for ApprovalPolicy {
    fn default() -> Self {
        Self {
            required: 1,
            groups: Vec::new(),
        }
    }
}

impl GateOptions {
    fn approval_policy_for(&self, environment: &str) -> ApprovalPolicy {
        self.approvals.get(environment).cloned().unwrap_or_default()
    }

    fn review_timeout_for(&self, environment: &str) -> Duration {
        self.review_timeouts
            .get(environment)
            .copied()
            .unwrap_or(self.review_timeout)
    }
}

/// Why an operation failed. Each transport maps this to its status in exactly one function.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationError),
    #[error("{principal} lacks the `{needed}` role for this operation")]
    Forbidden {
        principal: String,
        needed: &'static str,
    },
    #[error(
        "`{principal}` may not ask about {field} `{value}`: its token's scope allows {allowed}"
    )]
    OutOfScope {
        principal: String,
        field: String,
        value: String,
        allowed: String,
    },
    #[error(
        "`{principal}` may not submit evidence for `{digest}`: the report binds it only to {repositories}, outside the token's `scopes.images`"
    )]
    EvidenceOutOfScope {
        principal: String,
        digest: String,
        repositories: String,
    },
    #[error("`{principal}` may not {action} decision `{id}`: another principal requested it")]
    NotOwner {
        principal: String,
        id: DecisionId,
        /// `read`, `cancel`.
        action: &'static str,
    },
    #[error("idempotency key `{key}` belongs to a check another principal requested")]
    KeyOfAnotherPrincipal { key: String },
    #[error("no decision with id `{0}`")]
    NotFound(DecisionId),
    #[error("no policy version `{0}` is stored")]
    PolicyVersionUnknown(String),
    #[error(
        "idempotency key `{key}` was already used for a different request (decision `{existing}`)"
    )]
    IdempotencyConflict { key: String, existing: DecisionId },
    #[error("decisions cannot be stored or read right now: {0}")]
    Unavailable(#[from] StoreError),
    #[error("decision `{id}` cannot be resolved: {message}")]
    Conflict { id: DecisionId, message: String },
    #[error("`{principal}` {why} and cannot approve it (separation of duties)")]
    SeparationOfDuties {
        principal: String,
        /// `triggered this deploy`, `authored a commit in this deploy`.
        why: &'static str,
    },
    #[error(
        "`{principal}` has already approved this review ({have} of {need} approvals): another approver is needed"
    )]
    AlreadyApproved {
        principal: String,
        have: usize,
        need: usize,
    },
    #[error("`{principal}` is not in an approver group for this environment (one of: {groups})")]
    NotInApproverGroup { principal: String, groups: String },
    #[error("the service is shutting down")]
    ShuttingDown,
    #[error("the audit record could not be made: {0}")]
    Audit(#[from] crate::audit::AuditError),
    /// A task of the gate's own failed (a panic in blocking work): a bug, not an outage.
    #[error("{0}; this is a bug in Portcullis")]
    Internal(String),
}

impl GateError {
    /// How the caller can fix it, in one sentence; every transport shows it (HTTP as `help`,
    /// gRPC in the status message). `None` where the message says all there is.
    pub fn help(&self) -> Option<String> {
        let help = match self {
            GateError::Invalid(v) => return Some(v.help.clone()),
            GateError::Forbidden { .. } => {
                "use a token that holds the role, or ask an admin to grant it"
            }
            GateError::OutOfScope { .. } | GateError::EvidenceOutOfScope { .. } => {
                "use a token whose `scopes` cover this application, environment, image and caller kind, or ask an admin to widen them"
            }
            GateError::NotOwner { .. } => {
                "use the token that requested the check, or one with `scopes.read_others` (reading) or the approver role (canceling)"
            }
            GateError::KeyOfAnotherPrincipal { .. } => {
                "use an idempotency key of your own for this deploy"
            }
            GateError::IdempotencyConflict { .. } => {
                "use a new idempotency key for a different deploy"
            }
            GateError::Unavailable(StoreError::InvalidPageToken) => {
                "pass `page_token` exactly as a previous page returned it"
            }
            GateError::Unavailable(_) | GateError::ShuttingDown => {
                "retry shortly; no decision was made, and a deploy must not proceed without one"
            }
            GateError::Conflict { .. } => "read the decision: it has already been resolved",
            GateError::AlreadyApproved { .. } => "a different approver has to approve as well",
            GateError::NotInApproverGroup { .. } => {
                "ask a member of the listed groups, or add the group to the approver's token"
            }
            GateError::SeparationOfDuties { .. } => {
                "ask another approver: whoever triggered a deploy cannot approve it"
            }
            GateError::Internal(_) => {
                "retry; if it happens again, report it with the service's log from that time"
            }
            GateError::PolicyVersionUnknown(_) => {
                "give the `policy_version` of a stored decision: a version is stored when it first decides a check"
            }
            GateError::NotFound(_) | GateError::Audit(_) => {
                return None;
            }
        };
        Some(help.to_string())
    }

    pub fn reason_code(&self) -> &'static str {
        match self {
            GateError::Invalid(_) => "request.invalid",
            GateError::Forbidden { .. } => "auth.forbidden",
            GateError::OutOfScope { .. } | GateError::EvidenceOutOfScope { .. } => {
                "auth.out_of_scope"
            }
            GateError::NotOwner { .. } => "auth.not_owner",
            GateError::KeyOfAnotherPrincipal { .. } => {
                "request.idempotency_key_of_another_principal"
            }
            GateError::NotFound(_) => "decision.not_found",
            GateError::PolicyVersionUnknown(_) => "policy.version_unknown",
            GateError::IdempotencyConflict { .. } => "request.idempotency_conflict",
            GateError::Unavailable(StoreError::InvalidPageToken) => "request.invalid_page_token",
            GateError::Unavailable(_) => "store.unavailable",
            GateError::Conflict { .. } => "review.conflict",
            GateError::SeparationOfDuties { .. } => "review.separation_of_duties",
            GateError::NotInApproverGroup { .. } => "review.not_in_approver_group",
            GateError::AlreadyApproved { .. } => "review.already_approved",
            GateError::ShuttingDown => "shutting_down",
            GateError::Audit(e) => e.reason_code(),
            GateError::Internal(_) => "internal",
        }
    }
}

/// What a check produced.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    pub decision: Decision,
    /// False when an earlier check with the same idempotency key answered.
    pub created: bool,
}

/// The deployment gate.
pub struct Gate {
    policies: PolicyHandle,
    adapters: Vec<Arc<dyn Adapter>>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    options: GateOptions,
    updates: watch::Updates,
    /// Told when reviews open, wait and end (notifications, review routes).
    observers: Vec<Arc<dyn ReviewObserver>>,
    clock: Arc<dyn Clock>,
    /// Signs audit checkpoints (`audit.signing_key`); the service refuses to start without it.
    signer: Option<Arc<crate::audit::checkpoint::CheckpointSigner>>,
    /// The Merkle tree's right edge as of the last checkpoint this replica signed.
    /// With the hash of the event it ends at.
    frontier: std::sync::Mutex<Option<(crate::audit::merkle::Frontier, String)>>,
    /// Policy versions whose text this process has stored (`gate/policy_versions.rs`).
    stored_versions: policy_versions::StoredVersions,
    // Checks run as tracked tasks so a client hanging up does not abort a half-made decision,
    // and shutdown can wait for them.
    tasks: TaskTracker,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gate")
            .field("adapters", &self.adapters.len())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Gate {
    pub fn new(
        policies: PolicyHandle,
        adapters: Vec<Arc<dyn Adapter>>,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        options: GateOptions,
    ) -> Self {
        Self {
            policies,
            adapters,
            store,
            metrics,
            options,
            updates: watch::Updates::default(),
            observers: Vec::new(),
            clock: Arc::new(SystemClock),
            signer: None,
            frontier: std::sync::Mutex::new(None),
            stored_versions: policy_versions::StoredVersions::default(),
            tasks: TaskTracker::new(),
        }
    }

    /// Reads the time from `clock` instead of the system (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The time by the gate's clock, for what records times beside its decisions (review
    /// tickets, the follow-up texts they carry).
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Adds an observer of review openings and endings.
    pub fn with_observer(mut self, observer: Arc<dyn ReviewObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn policies(&self) -> &PolicyHandle {
        &self.policies
    }

    /// The environments checks may name.
    pub fn environments(&self) -> &Environments {
        &self.options.environments
    }

    /// Evaluates one deploy and stores the decision; the same idempotency key returns the
    /// stored decision without evaluating again.
    pub async fn check(
        self: &Arc<Self>,
        principal: &Principal,
        request: CheckRequest,
    ) -> Result<CheckOutcome, GateError> {
        require(principal, &[Role::Pipeline])?;
        request.validate_limits()?;
        // Before anything is read or stored: an undeclared environment would slip past every
        // rule written for the declared ones.
        let tier = self.options.environments.tier_of(&request.environment)?;
        // Scope before anything is read or stored: a check outside it leaves no trace but the log.
        principal
            .scope()
            .permits(&request)
            .map_err(|d| GateError::OutOfScope {
                principal: principal.name.clone(),
                field: d.field,
                value: d.value,
                allowed: d.allowed,
            })?;
        if self.tasks.is_closed() {
            return Err(GateError::ShuttingDown);
        }
        let gate = Arc::clone(self);
        let principal = principal.clone();
        let span = info_span!(
            "check",
            subject.app = %request.application,
            subject.env = %request.environment,
            caller = %request.caller.kind,
            principal = %principal.name,
            check.id = tracing::field::Empty,
            verdict = tracing::field::Empty,
        );
        let handle = self.tasks.spawn(
            async move { gate.check_inner(&principal, request, tier).await }.instrument(span),
        );
        match handle.await {
            Ok(result) => result,
            // A task canceled under it means the runtime is going down.
            Err(e) if e.is_cancelled() => Err(GateError::ShuttingDown),
            // A panic inside a check is a bug, not a store outage; it must still not become an
            // answer.
            Err(e) => Err(GateError::Internal(format!("the check task failed: {e}"))),
        }
    }

    async fn check_inner(
        &self,
        principal: &Principal,
        request: CheckRequest,
        tier: Tier,
    ) -> Result<CheckOutcome, GateError> {
        let started = tokio::time::Instant::now();
        let fingerprint = request.fingerprint();
        let policies = self.policies.current();
        // A repeat of an idempotency key gets the stored answer while it is still sound;
        // otherwise it is evaluated anew as the key's next generation, linked to the earlier one.
        let mut generation = 0;
        let mut replaces = None;
        if let Some(key) = &request.idempotency_key {
            if let Some((existing, existing_fp)) = self.store.find_by_idempotency_key(key).await? {
                let existing = replay_checks(
                    principal,
                    key.as_str(),
                    existing,
                    &existing_fp,
                    &fingerprint,
                )?;
                if self.still_sound(&existing, policies.version()) {
                    return Ok(CheckOutcome {
                        decision: existing,
                        created: false,
                    });
                }
                info!(
                    check.id = existing.id.as_str(),
                    key = key.as_str(),
                    "the stored answer for this idempotency key is no longer sound; evaluating anew"
                );
                generation = existing.key_generation.saturating_add(1);
                replaces = Some(existing.id);
            }
        }

        // Shared with the adapters' tasks while they run, and taken back for the decision after.
        let request = Arc::new(request);
        let needed = policies.required_sources(request.subject(tier));
        let deadline = started + self.options.evidence_deadline;
        let gathered = evidence::gather(
            &self.adapters,
            &self.metrics,
            Arc::clone(&request),
            &needed,
            deadline,
        )
        .await;
        let now = self.clock.now();
        let evaluation = policies.evaluate(&EvalInput {
            subject: request.subject(tier),
            document: &gathered.document,
            unavailable: &gathered.unavailable,
            now,
            no_rules_verdict: self.options.no_rules_verdict,
        });
        let status = if evaluation.verdict == Verdict::ManualReview {
            DecisionStatus::Pending
        } else {
            DecisionStatus::Final
        };
        let review_deadline = (status == DecisionStatus::Pending).then(|| {
            let t = self
                .options
                .review_timeout_for(request.environment.as_str());
            now + chrono::Duration::from_std(t).unwrap_or(chrono::Duration::hours(4))
        });
        // Every adapter task has ended by now, unless one overran the deadline and was aborted
        // and has not been dropped yet: only then is the request copied.
        let request = Arc::try_unwrap(request).unwrap_or_else(|shared| (*shared).clone());
        let decision = Decision {
            id: DecisionId::generate(),
            verdict: evaluation.verdict,
            status,
            summary: summarize(evaluation.verdict, &evaluation.results),
            request,
            rule_results: evaluation.results,
            evidence: Evidence {
                document: gathered.document,
                sources: gathered.reports,
            },
            policy_version: policies.version().to_string(),
            created_at: now,
            decided_at: (status == DecisionStatus::Final).then_some(now),
            resolution: None,
            approvals: Vec::new(),
            review_ticket: None,
            refused_attempts: Vec::new(),
            principal: Some(principal.name.clone()),
            replaces,
            key_generation: generation,
            review_deadline,
        };
        let span = tracing::Span::current();
        span.record("check.id", decision.id.as_str());
        span.record("verdict", decision.verdict.as_str());

        // The rules that made the decision are kept before it is: a stored decision always
        // names a stored policy text.
        self.keep_policy_text(&policies).await?;
        match self.store.insert_decision(&decision, &fingerprint).await? {
            Inserted::Created => {
                self.metrics.decision(decision.verdict);
                self.metrics.check_duration(started.elapsed().as_secs_f64());
                info!(
                    verdict = decision.verdict.as_str(),
                    rules = decision.rule_results.len(),
                    duration_ms = started.elapsed().as_millis() as u64,
                    "{}",
                    decision.summary
                );
                self.updates.publish(&decision);
                self.observers
                    .iter()
                    .for_each(|o| o.check_decided(&decision));
                if decision.status == DecisionStatus::Pending {
                    self.observers
                        .iter()
                        .for_each(|o| o.review_opened(&decision));
                }
                Ok(CheckOutcome {
                    decision,
                    created: true,
                })
            }
            // Another replica or a concurrent retry stored this generation first: its decision is
            // the answer (one decision per generation, whoever wins).
            Inserted::Existing {
                decision: existing,
                fingerprint: existing_fp,
            } => {
                let key = decision
                    .request
                    .idempotency_key
                    .as_ref()
                    .map(|k| k.as_str().to_string())
                    .unwrap_or_default();
                let decision =
                    replay_checks(principal, &key, *existing, &existing_fp, &fingerprint)?;
                Ok(CheckOutcome {
                    decision,
                    created: false,
                })
            }
        }
    }

    /// Reads one decision.
    pub async fn get(&self, principal: &Principal, id: &DecisionId) -> Result<Decision, GateError> {
        require(principal, READERS)?;
        let d = self
            .store
            .get_decision(id)
            .await?
            .ok_or_else(|| GateError::NotFound(id.clone()))?;
        may_read(principal, &d)?;
        // A review past its deadline is answered as expired even before the sweeper gets to it.
        self.expire_if_due(d).await
    }

    /// Lists decisions, newest first.
    pub async fn list(
        &self,
        principal: &Principal,
        filter: &DecisionFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<DecisionPage, GateError> {
        require(principal, READERS)?;
        // Clamping would hand back fewer decisions than asked for without saying so.
        if page_size > crate::store::MAX_PAGE_SIZE {
            return Err(ValidationError::new(
                "page_size",
                format!(
                    "`{page_size}` is more than the largest page, {}",
                    crate::store::MAX_PAGE_SIZE
                ),
                "ask for at most 500 decisions a page and follow `next_page_token`",
            )
            .into());
        }
        // Both transports build the filter; the rules it must satisfy are checked once, here.
        filter.validate()?;
        // A principal that may read only its own decisions lists only those (a filter in the
        // store, so pages stay full and tokens stay valid).
        let mut filter = filter.clone();
        if !principal.may_read_others() {
            filter.principal = Some(principal.name.clone());
        }
        Ok(self
            .store
            .list_decisions(&filter, page_size, page_token)
            .await?)
    }

    /// The decision now and after every change, ending once it is final.
    pub async fn watch(
        self: &Arc<Self>,
        principal: &Principal,
        id: &DecisionId,
    ) -> Result<DecisionStream, GateError> {
        require(principal, READERS)?;
        if !principal.may_read_others() {
            // Refused before the stream starts, so a watch reveals no more than a get.
            let d = self
                .store
                .get_decision(id)
                .await?
                .ok_or_else(|| GateError::NotFound(id.clone()))?;
            may_read(principal, &d)?;
        }
        watch::stream(Arc::clone(&self.store), &self.updates, id.clone()).await
    }

    /// Waits until the decision is final or `wait` has passed, then returns it as it is.
    pub async fn get_waiting(
        self: &Arc<Self>,
        principal: &Principal,
        id: &DecisionId,
        wait: Duration,
    ) -> Result<Decision, GateError> {
        use futures::StreamExt;
        let mut stream = self.watch(principal, id).await?;
        let mut last = None;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(d))) => {
                    let fin = d.status == DecisionStatus::Final;
                    last = Some(d);
                    if fin {
                        break;
                    }
                }
                Ok(Some(Err(e))) => return Err(e),
                Ok(None) | Err(_) => break,
            }
        }
        match last {
            Some(d) => Ok(d),
            None => self.get(principal, id).await,
        }
    }

    /// Whether the gate can answer: the store answers a ping.
    pub async fn ready(&self) -> Result<(), GateError> {
        self.store.ping().await?;
        Ok(())
    }

    /// Refuses new checks and waits (up to `grace`) for in-flight ones to be stored.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.tasks.close();
        tokio::time::timeout(grace, self.tasks.wait()).await.is_ok()
    }
}

/// Roles that may read decisions: pipelines poll their own, approvers and auditors look.
const READERS: &[Role] = &[Role::Pipeline, Role::Approver, Role::Auditor];

fn require(principal: &Principal, roles: &[Role]) -> Result<(), GateError> {
    if principal.has_any(roles) {
        Ok(())
    } else {
        Err(GateError::Forbidden {
            principal: principal.name.clone(),
            needed: roles.first().map_or("admin", |r| r.as_str()),
        })
    }
}

/// Whether `principal` may read `d`: it requested it, or it may read others' decisions.
fn may_read(principal: &Principal, d: &Decision) -> Result<(), GateError> {
    if principal.may_read_others() || d.principal.as_deref() == Some(principal.name.as_str()) {
        Ok(())
    } else {
        Err(GateError::NotOwner {
            principal: principal.name.clone(),
            id: d.id.clone(),
            action: "read",
        })
    }
}

/// What must hold before a stored decision can answer a repeat of its key: the same principal
/// asked (or one that may read others' decisions), and for the same deploy.
fn replay_checks(
    principal: &Principal,
    key: &str,
    existing: Decision,
    existing_fp: &str,
    fingerprint: &str,
) -> Result<Decision, GateError> {
    if !principal.may_read_others() && existing.principal.as_deref() != Some(&principal.name) {
        return Err(GateError::KeyOfAnotherPrincipal {
            key: key.to_string(),
        });
    }
    if existing_fp != fingerprint {
        return Err(GateError::IdempotencyConflict {
            key: key.to_string(),
            existing: existing.id,
        });
    }
    Ok(existing)
}

impl Gate {
    /// Whether a stored decision is still a sound answer to a repeat of its check. A pending
    /// review is: it is not an allow, and a repeat must find the review it waits on rather than
    /// open a second one. A final decision is while the policy version that decided it is in
    /// force and it is younger than `gate.replay_window` (its evidence was gathered then).
    fn still_sound(&self, d: &Decision, policy_version: &str) -> bool {
        if d.status == DecisionStatus::Pending {
            return true;
        }
        let window =
            chrono::Duration::from_std(self.options.replay_window).unwrap_or(chrono::Duration::MAX);
        d.policy_version == policy_version && self.clock.now() - d.created_at < window
    }
}

/// One line for people: the verdict and what drove it.
fn summarize(verdict: Verdict, results: &[crate::domain::RuleResult]) -> String {
    let blocking: Vec<String> = results
        .iter()
        .filter(|r| r.effect == verdict && verdict != Verdict::Continue)
        .map(|r| match r.outcome {
            RuleOutcome::Missing => format!("{} (evidence missing)", r.rule_id),
            _ => r.rule_id.clone(),
        })
        .collect();
    let warnings = results
        .iter()
        .filter(|r| r.outcome != RuleOutcome::Pass && r.effect == Verdict::Continue)
        .count();
    let passed = results
        .iter()
        .filter(|r| r.outcome == RuleOutcome::Pass)
        .count();
    let mut s = match verdict {
        Verdict::Continue => format!("continue: {passed} of {} rules passed", results.len()),
        Verdict::ManualReview => format!("manual review required by {}", blocking.join(", ")),
        Verdict::Terminate => format!("terminate: blocked by {}", blocking.join(", ")),
    };
    if warnings > 0 {
        s.push_str(&format!(
            " ({warnings} warning{})",
            if warnings == 1 { "" } else { "s" }
        ));
    }
    s
}
