//! A gate over a fresh SQLite store with the built-in policy, a manual clock and a fresh
//! signing key, for the gate's own unit tests.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::sync::Arc;
use std::time::Duration;

use crate::audit::checkpoint::CheckpointSigner;
use crate::auth::{Principal, Role};
use crate::clock::ManualClock;
use crate::gate::{Gate, GateOptions};
use crate::metrics::Metrics;
use crate::policy::{PolicyHandle, PolicySet};

pub(crate) async fn gate(clock: Arc<ManualClock>) -> (Arc<Gate>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::open(
        &format!("sqlite://{}", dir.path().join("g.db").display()),
        &crate::store::StoreOptions::default(),
    )
    .await
    .unwrap();
    let gate = Gate::new(
        PolicyHandle::new(PolicySet::builtin().unwrap()),
        Vec::new(),
        store,
        Arc::new(Metrics::new()),
        GateOptions {
            evidence_deadline: Duration::from_secs(5),
            review_timeout: Duration::from_secs(3600),
            review_timeouts: Default::default(),
            approvals: Default::default(),
            environments: Default::default(),
            no_rules_verdict: crate::domain::Verdict::ManualReview,
            replay_window: Duration::from_secs(3600),
        },
    )
    .with_clock(clock)
    .with_signer(Arc::new(CheckpointSigner::generate()));
    (Arc::new(gate), dir)
}

/// A check for `payments` in `prod` by pipeline `ci`; its decision's id.
pub(crate) async fn check(gate: &Arc<Gate>) -> crate::domain::DecisionId {
    let request = crate::domain::CheckRequest {
        application: crate::domain::Application::parse("payments").unwrap(),
        environment: crate::domain::Environment::parse("prod").unwrap(),
        images: vec![],
        sources: vec![],
        caller: crate::domain::Caller {
            kind: crate::domain::CallerKind::Api,
            ids: Default::default(),
        },
        triggered_by: None,
        change_refs: Default::default(),
        labels: Default::default(),
        idempotency_key: None,
    };
    let principal = Principal::new("ci", vec![Role::Pipeline]);
    gate.check(&principal, request).await.unwrap().decision.id
}
