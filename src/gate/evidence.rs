//! Evidence fan-out: call the adapters a check needs, concurrently, inside one deadline, and turn
//! every outcome into either facts or a classified "unavailable" report. Written once here so no
//! adapter can get it wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::join_all;
use tokio::time::Instant;
use tracing::{Instrument, info_span, warn};

use crate::adapters::called::CalledUrl;
use crate::adapters::{Adapter, AdapterError, Facts};
use crate::domain::{CheckRequest, FailureReason, SourceReport, SourceStatus};
use crate::metrics::Metrics;

/// What the fan-out produced for one check.
#[derive(Debug)]
pub(super) struct Gathered {
    /// `request` plus one namespace per source that answered.
    pub(super) document: serde_json::Value,
    /// Needed sources that did not answer, with why.
    pub(super) unavailable: BTreeMap<String, (FailureReason, String)>,
    pub(super) reports: Vec<SourceReport>,
}

pub(super) async fn gather(
    adapters: &[Arc<dyn Adapter>],
    metrics: &Metrics,
    request: Arc<CheckRequest>,
    needed: &BTreeSet<String>,
    deadline: Instant,
) -> Gathered {
    let calls = needed.iter().map(|name| {
        let adapter = adapters.iter().find(|a| a.name() == name).cloned();
        let request = Arc::clone(&request);
        let name = name.clone();
        async move {
            match adapter {
                Some(adapter) => call(adapter, request, deadline).await,
                None => (
                    name.clone(),
                    "none",
                    Err(Unavailable {
                        reason: FailureReason::NotConfigured,
                        message: format!(
                            "no evidence source named `{name}` is configured (add an adapter named `{name}`)"
                        ),
                        url: None,
                    }),
                    0,
                ),
            }
        }
    });
    let outcomes = join_all(calls).await;

    let mut document = serde_json::Map::new();
    document.insert("request".into(), request.evidence_view());
    let mut unavailable = BTreeMap::new();
    let mut reports = Vec::with_capacity(outcomes.len());
    for (name, kind, outcome, duration_ms) in outcomes {
        if kind != "none" {
            metrics.adapter_call(
                &name,
                duration_ms as f64 / 1000.0,
                outcome.as_ref().err().map(|u| u.reason.as_str()),
            );
        }
        match outcome {
            Ok(facts) => {
                reports.push(SourceReport {
                    name: name.clone(),
                    kind: kind.to_string(),
                    status: SourceStatus::Ok,
                    reason: None,
                    message: "answered".into(),
                    duration_ms,
                    url: facts.url,
                    excerpt: facts.excerpt,
                });
                document.insert(name, facts.document);
            }
            Err(u) => {
                warn!(
                    adapter = %name,
                    reason_code = u.reason.as_str(),
                    duration_ms,
                    "evidence unavailable: {}",
                    u.message
                );
                reports.push(SourceReport {
                    name: name.clone(),
                    kind: kind.to_string(),
                    status: SourceStatus::Unavailable,
                    reason: Some(u.reason),
                    message: u.message.clone(),
                    duration_ms,
                    url: u.url,
                    excerpt: None,
                });
                unavailable.insert(name, (u.reason, u.message));
            }
        }
    }
    Gathered {
        document: serde_json::Value::Object(document),
        unavailable,
        reports,
    }
}

struct Unavailable {
    reason: FailureReason,
    message: String,
    /// The URL that failed or was in flight, without credentials (`adapters::called`).
    url: Option<String>,
}

/// One adapter call, as its own task so a panic or a hang in one adapter cannot take the check
/// with it: the deadline is enforced here even if the adapter ignores it.
async fn call(
    adapter: Arc<dyn Adapter>,
    request: Arc<CheckRequest>,
    deadline: Instant,
) -> (String, &'static str, Result<Facts, Unavailable>, u64) {
    let name = adapter.name().to_string();
    let kind = adapter.kind();
    let started = Instant::now();
    let span = info_span!("adapter", adapter.name = %name, adapter.kind = kind);
    let called = CalledUrl::default();
    let task = tokio::spawn(
        {
            let adapter = Arc::clone(&adapter);
            let called = called.clone();
            async move { called.scope(adapter.collect(&request, deadline)).await }
        }
        .instrument(span),
    );
    let abort = task.abort_handle();
    let outcome = match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(Ok(facts))) => Ok(facts),
        Ok(Ok(Err(e))) => Err(unavailable(&e, &called)),
        Ok(Err(join)) => Err(Unavailable {
            reason: FailureReason::BadResponse,
            message: format!("the adapter failed internally: {join}"),
            url: called.url(),
        }),
        Err(_) => {
            abort.abort();
            let timeout_ms = deadline.saturating_duration_since(started).as_millis() as u64;
            Err(unavailable(&AdapterError::Timeout { timeout_ms }, &called))
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    (name, kind, outcome, duration_ms)
}

fn unavailable(e: &AdapterError, called: &CalledUrl) -> Unavailable {
    Unavailable {
        reason: e.reason(),
        message: e.to_string(),
        url: called.url(),
    }
}
