//! Prometheus metrics: what operators graph and alert on. One registry per process, owned by the
//! gate and encoded by the HTTP `/metrics` route.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdapterLabels {
    adapter: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdapterFailureLabels {
    adapter: String,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    event: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms … ~32 s: adapters answer in milliseconds when healthy and hit deadlines in seconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The gate's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<VerdictLabels, Counter>,
    check_duration: Histogram,
    adapter_duration: HistogramFamily<AdapterLabels>,
    adapter_failures: Family<AdapterFailureLabels, Counter>,
    notifications: Family<NotificationLabels, Counter>,
    admission: Family<OutcomeLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("portcullis");
        let decisions = Family::<VerdictLabels, Counter>::default();
        registry.register(
            "decisions",
            "Decisions made, by verdict (idempotent replays are not counted)",
            decisions.clone(),
        );
        let check_duration = latency_histogram();
        registry.register(
            "check_duration_seconds",
            "Time to answer a check, evidence gathering included",
            check_duration.clone(),
        );
        let adapter_duration: HistogramFamily<AdapterLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "adapter_call_duration_seconds",
            "Latency of evidence calls, by adapter",
            adapter_duration.clone(),
        );
        let adapter_failures = Family::<AdapterFailureLabels, Counter>::default();
        registry.register(
            "adapter_failures",
            "Evidence calls that failed, by adapter and reason",
            adapter_failures.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Review notifications, by event and outcome (delivered, failed after retries)",
            notifications.clone(),
        );
        let admission = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "admission_reviews",
            "Kubernetes admission reviews answered, by outcome (allowed, denied, exempt, break_glass, error)",
            admission.clone(),
        );
        Self {
            registry,
            admission,
            decisions,
            check_duration,
            adapter_duration,
            adapter_failures,
            notifications,
        }
    }

    /// One admission review answered (`allowed`, `denied`, `exempt`, `break_glass`, `error`).
    pub fn admission(&self, outcome: &'static str) {
        self.admission
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// One notification delivery ended (`delivered` or `failed`).
    pub fn notification(&self, event: &'static str, outcome: &'static str) {
        self.notifications
            .get_or_create(&NotificationLabels { event, outcome })
            .inc();
    }

    pub fn decision(&self, verdict: crate::domain::Verdict) {
        self.decisions
            .get_or_create(&VerdictLabels {
                verdict: verdict.as_str(),
            })
            .inc();
    }

    pub fn check_duration(&self, seconds: f64) {
        self.check_duration.observe(seconds);
    }

    pub fn adapter_call(&self, adapter: &str, seconds: f64, failure: Option<&'static str>) {
        self.adapter_duration
            .get_or_create(&AdapterLabels {
                adapter: adapter.to_string(),
            })
            .observe(seconds);
        if let Some(reason) = failure {
            self.adapter_failures
                .get_or_create(&AdapterFailureLabels {
                    adapter: adapter.to_string(),
                    reason,
                })
                .inc();
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail: fmt::Write for String is infallible.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
