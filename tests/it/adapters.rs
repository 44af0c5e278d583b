//! The adapter conformance suite: one list of checks every adapter passes, over real HTTP against
//! its simulator (or, for `kind: http`, a JSON fake tool), all faults injected through the one
//! fault model, `portcullis::sim::faults`. The checks: the happy path with its trail, a transient
//! and a persistent 5xx, 429 with a `Retry-After` that fits the deadline and one that does not,
//! a malformed, empty, HTML, cut-off and oversized body, a redirect to a sign-in page, expired
//! credentials (401), a refusal (403), a hung tool against the deadline, a refused connection,
//! an unknown object (404) and the cache with coalescing; and in every one, no credential in a
//! fact, an error, a URL, an excerpt or a log line. Each case says which faults apply to it
//! (`supports`); a check that does not apply returns at once.
//!
//! The report-ingestion adapters (trivy, sbom, sarif) read what pipelines submit rather than
//! calling a tool, so they have their own list (`ingestion!`): a good report gives facts; none
//! is not found; a stale one, a malformed one, an oversized one and one about another digest or
//! commit are refused, store nothing, and never echo what they carried.
//!
//! Adding an adapter is one `conformance!` (or `ingestion!`) line plus its case. Adapters read a
//! manual clock, so a `Retry-After`, a backoff or a report's age moves that clock instead of
//! taking real time; the deadline check runs on tokio's paused time.

use std::sync::Arc;
use std::time::Duration;

use portcullis::adapters::{self, Adapter, AdapterConfig, AdapterError, IngestError, Submission};
use portcullis::clock::{Clock, ManualClock};
use portcullis::domain::CheckRequest;
use portcullis::sim::faults::{FailNext, REDIRECT_LOCATION, RateLimitNext};
use portcullis::sim::{self, FaultSettings, SimHandle, Sims};
use serde_json::Value;
use tokio::time::Instant;

use crate::support::fake_tool::{self, FakeTool};
use crate::support::fixtures::{image, request};

/// What a tool adapter is checked against.
pub enum Tool {
    /// One of the simulators.
    Sim(fn(&Sims) -> &SimHandle),
    /// The generic JSON fake tool (`support::fake_tool`).
    Fake,
}

/// The faults of the list; a case names those that apply to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Transient5xx,
    Persistent5xx,
    RetryAfter,
    RetryAfterPastDeadline,
    Malformed,
    Empty,
    WrongContentType,
    TruncatedBody,
    HugeBody,
    Redirect,
    ExpiredCredentials,
    Forbidden,
    Hang,
    Refused,
    NotFound,
    Cache,
    /// Not a fault: the happy path's answer is on the audit trail (the URL called and the start
    /// of the answer).
    Trail,
}

/// Every fault: what a tool adapter with a cache supports.
pub const EVERY_FAULT: &[Fault] = &[
    Fault::Transient5xx,
    Fault::Persistent5xx,
    Fault::RetryAfter,
    Fault::RetryAfterPastDeadline,
    Fault::Malformed,
    Fault::Empty,
    Fault::WrongContentType,
    Fault::TruncatedBody,
    Fault::HugeBody,
    Fault::Redirect,
    Fault::ExpiredCredentials,
    Fault::Forbidden,
    Fault::Hang,
    Fault::Refused,
    Fault::NotFound,
    Fault::Cache,
    Fault::Trail,
];

/// Every entry but `except`, for the cases that lack one.
const fn every_but<const N: usize>(except: Fault) -> [Fault; N] {
    let mut out = [Fault::Trail; N];
    let (mut i, mut j) = (0, 0);
    while i < EVERY_FAULT.len() {
        if EVERY_FAULT[i] as u8 != except as u8 {
            out[j] = EVERY_FAULT[i];
            j += 1;
        }
        i += 1;
    }
    assert!(j == N, "N must be one less than EVERY_FAULT's length");
    out
}

/// What the suite needs to know about one tool adapter.
pub struct Case {
    /// The tool the adapter talks to.
    pub tool: Tool,
    /// The adapter's YAML configuration for a tool at `base` with cache TTL `ttl`.
    pub config: fn(base: &str, ttl: &str) -> String,
    /// A check the tool has good evidence for.
    pub request: fn() -> CheckRequest,
    /// A check naming something the tool does not know.
    pub unknown: fn() -> CheckRequest,
    /// Asserts the facts of `request`.
    pub facts: fn(&Value),
    /// Credentials the adapter is configured with; none may come back out.
    pub secrets: &'static [&'static str],
    /// The faults that apply to this adapter.
    pub supports: &'static [Fault],
}

/// Log lines captured while a check runs (the test runtime is single-threaded, so a thread-local
/// subscriber sees the adapter, the client and the simulator alike).
#[derive(Clone, Default)]
pub struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).to_string()
    }

    /// Captures every log line on this thread until the guard drops.
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }
}

/// The harness clock's start.
pub fn t0() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

pub struct Harness {
    tool: SimHandle,
    pub case: &'static Case,
    pub logs: Logs,
    /// What the adapters read the time from and wait on: how far it moved is how long they
    /// waited.
    pub clock: Arc<ManualClock>,
    _sims: Option<Sims>,
    _fake: Option<FakeTool>,
    _logging: tracing::subscriber::DefaultGuard,
}

impl Harness {
    /// The harness for `case`, or `None` when `fault` does not apply to it.
    pub async fn start(case: &'static Case, fault: Option<Fault>) -> Option<Self> {
        if fault.is_some_and(|f| !case.supports.contains(&f)) {
            return None;
        }
        let logs = Logs::default();
        let logging = logs.capture();
        let (tool, sims, fake) = match case.tool {
            Tool::Sim(pick) => {
                let sims = sim::start(0).await.unwrap();
                (pick(&sims).clone(), Some(sims), None)
            }
            Tool::Fake => {
                let fake = fake_tool::spawn().await;
                (fake.handle.clone(), None, Some(fake))
            }
        };
        Some(Self {
            tool,
            case,
            logs,
            clock: Arc::new(ManualClock::new(t0())),
            _sims: sims,
            _fake: fake,
            _logging: logging,
        })
    }

    /// Requests the tool received so far, faulted ones included.
    pub fn requests(&self) -> u64 {
        self.tool.control.requests()
    }

    pub fn adapter(&self, ttl: &str) -> Arc<dyn Adapter> {
        self.adapter_at(&self.tool.base_url, ttl)
    }

    fn adapter_at(&self, base: &str, ttl: &str) -> Arc<dyn Adapter> {
        let yaml = format!("[{}]", (self.case.config)(base, ttl));
        let configs: Vec<AdapterConfig> = serde_norway::from_str(&yaml).unwrap();
        let clock: Arc<dyn Clock> = self.clock.clone();
        adapters::build(&configs, &clock).unwrap().remove(0)
    }

    pub fn faults(&self, f: FaultSettings) {
        self.tool.control.apply(&f);
    }

    pub async fn collect(
        &self,
        adapter: &dyn Adapter,
        seconds: f64,
    ) -> Result<Value, AdapterError> {
        self.collect_facts(adapter, seconds)
            .await
            .map(|f| f.document)
    }

    pub async fn collect_facts(
        &self,
        adapter: &dyn Adapter,
        seconds: f64,
    ) -> Result<adapters::Facts, AdapterError> {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let out = adapter.collect(&(self.case.request)(), deadline).await;
        match &out {
            Ok(facts) => self.assert_clean(&format!(
                "{} {:?} {:?} {adapter:?}",
                facts.document, facts.url, facts.excerpt
            )),
            Err(e) => self.assert_clean(&format!("{e} {e:?}")),
        }
        out
    }

    fn assert_clean(&self, text: &str) {
        let logs = self.logs.text();
        assert!(logs.contains("http attempt"), "no logs were captured");
        for s in self.case.secrets {
            assert!(!text.contains(s), "a credential leaked: {text}");
            assert!(
                !logs.contains(s),
                "a credential leaked into the logs: {logs}"
            );
        }
    }

    /// Every call fails with `status`.
    fn fail_every_call(&self, status: u16) {
        self.faults(FaultSettings {
            fail_next: Some(FailNext { count: 100, status }),
            ..Default::default()
        });
    }
}

pub async fn happy_path(case: &'static Case) {
    let Some(h) = Harness::start(case, None).await else {
        return;
    };
    let facts = h.collect_facts(&*h.adapter("0s"), 5.0).await.unwrap();
    (case.facts)(&facts.document);
    if !case.supports.contains(&Fault::Trail) {
        return;
    }
    // The trail: what was called and the start of the answer (checked clean in `collect`).
    assert!(facts.url.is_some_and(|u| !u.is_empty()), "no url recorded");
    assert!(
        facts.excerpt.is_some_and(|e| !e.is_empty()),
        "no excerpt recorded"
    );
}

pub async fn transient_5xx_is_retried(case: &'static Case) {
    let Some(h) = Harness::start(case, Some(Fault::Transient5xx)).await else {
        return;
    };
    h.faults(FaultSettings {
        fail_next: Some(FailNext {
            count: 1,
            status: 503,
        }),
        ..Default::default()
    });
    let facts = h.collect(&*h.adapter("0s"), 5.0).await.unwrap();
    (case.facts)(&facts);
}

pub async fn persistent_5xx_is_unavailable(case: &'static Case) {
    let Some(h) = Harness::start(case, Some(Fault::Persistent5xx)).await else {
        return;
    };
    h.fail_every_call(500);
    let e = h.collect(&*h.adapter("0s"), 5.0).await.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e:?}");
    assert!(e.to_string().contains("HTTP 500"), "{e}");
    assert_eq!(h.requests(), 1, "a plain 500 is not retried");
}

pub async fn retry_after_is_honoured_within_the_deadline(case: &'static Case) {
    let Some(h) = Harness::start(case, Some(Fault::RetryAfter)).await else {
        return;
    };
    h.faults(FaultSettings {
        rate_limit_next: Some(RateLimitNext {
            count: 1,
            retry_after_s: 1,
        }),
        ..Default::default()
    });
    let facts = h.collect(&*h.adapter("0s"), 5.0).await.unwrap();
    (case.facts)(&facts);
    assert_eq!(
        h.clock.now() - t0(),
        chrono::Duration::seconds(1),
        "the retry waits what Retry-After asks"
    );
}

pub async fn retry_after_past_the_deadline_is_rate_limited(case: &'static Case) {
    let Some(h) = Harness::start(case, Some(Fault::RetryAfterPastDeadline)).await else {
        return;
    };
    h.faults(FaultSettings {
        rate_limit_next: Some(RateLimitNext {
            count: 100,
            retry_after_s: 30,
        }),
        ..Default::default()
    });
    let e = h.collect(&*h.adapter("0s"), 3.0).await.unwrap_err();
    assert!(
        matches!(
            e,
            AdapterError::RateLimited {
                retry_after_s: Some(30)
            }
        ),
        "{e:?}"
    );
    assert_eq!(h.clock.now(), t0(), "a wait past the deadline is not begun");
    assert_eq!(h.requests(), 1);
}

/// `settings` on every call ends as a bad response.
async fn bad_body(case: &'static Case, fault: Fault, settings: FaultSettings) {
    let Some(h) = Harness::start(case, Some(fault)).await else {
        return;
    };
    h.faults(settings);
    let e = h.collect(&*h.adapter("0s"), 5.0).await.unwrap_err();
    assert!(
        matches!(e, AdapterError::BadResponse { .. }),
        "{fault:?}: {e:?}"
    );
}

pub async fn malformed_body_is_a_bad_response(case: &'static Case) {
    let settings = FaultSettings {
        malformed_next: Some(100),
        ..Default::default()
    };
    bad_body(case, Fault::Malformed, settings).await;
}

pub async fn empty_body_is_a_bad_response(case: &'static Case) {
    let settings = FaultSettings {
        empty_next: Some(100),
        ..Default::default()
    };
    bad_body(case, Fault::Empty, settings).await;
}

pub async fn a_sign_in_page_is_a_bad_response(case: &'static Case) {
    let settings = FaultSettings {
        wrong_type_next: Some(100),
        ..Default::default()
    };
    bad_body(case, Fault::WrongContentType, settings).await;
}

pub async fn a_cut_off_answer_is_unreachable_or_bad(case: &'static Case) {
    let Some(h) = Harness::start(case, Some(Fault::TruncatedBody)).await else {
        return;
    };
    h.faults(FaultSettings {
        truncated_next: Some(100),
        ..Default::default()
    });
    let e = h.collect(&*h.adapter("0s"), 5.0).await.unwrap_err();
    // Cut before the status line got out, the client sees a lost connection; cut later, an
    // incomplete body. Either way a failure of its own kind, never facts.
    assert!(
        matches!(
            e,
            AdapterError::Unreachable { .. } | AdapterError::BadResponse { .. }
        ),
        "{e:?}"
    );
}

pub async fn a_huge_body_is_a_bad_response(case: &'static Case) {
    let settings = FaultSettings {
        huge_next: Some(100),
        ..Default::default()
    };
    bad_body(case, Fault::HugeBody, settings).await;
}

pub async fn redirects_are_not_followed_or_shown(case: &'static Case) {
    let Some(h) = Harness::start(case, Some(Fault::Redirect)).await else {
        return;
    };
    h.faults(FaultSettings {
        redirect_next: Some(100),
        ..Default::default()
    });
    let e = h.collect(&*h.adapter("0s"), 5.0).await.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e:?}");
    let (_, marker) = REDIRECT_LOCATION.split_once("token=").unwrap();
    assert!(!format!("{e} {e:?}").contains(marker), "{e}");
    assert!(
        !h.logs.text().contains(marker),
        "the redirect's token was logged"
    );
    assert_eq!(h.requests(), 1, "redirects are not followed");
}

pub async fn expired_credentials_are_an_auth_failure(case: &'static Case) {
    let Some(h) = Harness::start(case, Some(Fault::ExpiredCredentials)).await else {
        return;
    };
    h.faults(FaultSettings {
        credentials_expired: Some(true),
        ..Default::default()
    });
    let e = h.collect(&*h.adapter("0s"), 5.0).await.unwrap_err();
    assert!(matches!(e, AdapterError::Auth { status: 401 }), "{e:?}");
}

pub async fn a_refusal_is_an_auth_failure_not_retried(case: &'static Case) {
    let Some(h) = Harness::start(case, Some(Fault::Forbidden)).await else {
        return;
    };
    h.fail_every_call(403);
    let e = h.collect(&*h.adapter("0s"), 5.0).await.unwrap_err();
    assert!(matches!(e, AdapterError::Auth { status: 403 }), "{e:?}");
    assert_eq!(h.requests(), 1, "auth failures are not retried");
}

pub async fn the_deadline_is_respected(case: &'static Case) {
    // Paused, tokio's clock jumps to the next timer whenever nothing else can run: the first
    // due is the deadline, since the tool never answers, so the answer is a timeout returned at
    // the deadline, in no real time.
    tokio::time::pause();
    let Some(h) = Harness::start(case, Some(Fault::Hang)).await else {
        return;
    };
    h.faults(FaultSettings {
        hang_next: Some(100),
        ..Default::default()
    });
    let e = h.collect(&*h.adapter("0s"), 0.3).await.unwrap_err();
    assert!(matches!(e, AdapterError::Timeout { .. }), "{e:?}");
    assert!(h.requests() >= 1, "the tool was called and hung");
}

pub async fn a_refused_connection_is_unreachable(case: &'static Case) {
    let Some(h) = Harness::start(case, Some(Fault::Refused)).await else {
        return;
    };
    let refused = fake_tool::refused_addr().await;
    let adapter = h.adapter_at(&format!("http://{refused}"), "0s");
    let e = h.collect(&*adapter, 5.0).await.unwrap_err();
    assert!(matches!(e, AdapterError::Unreachable { .. }), "{e:?}");
}

pub async fn unknown_objects_are_not_found(case: &'static Case) {
    let Some(h) = Harness::start(case, Some(Fault::NotFound)).await else {
        return;
    };
    let adapter = h.adapter("0s");
    let e = adapter
        .collect(&(case.unknown)(), Instant::now() + Duration::from_secs(5))
        .await
        .unwrap_err();
    h.assert_clean(&format!("{e} {e:?}"));
    assert!(matches!(e, AdapterError::NotFound { .. }), "{e:?}");
}

pub async fn answers_are_cached_and_identical_calls_coalesced(case: &'static Case) {
    let Some(h) = Harness::start(case, Some(Fault::Cache)).await else {
        return;
    };
    let before = h.requests();
    h.collect(&*h.adapter("0s"), 5.0).await.unwrap();
    let one_call = h.requests() - before;

    let adapter = h.adapter("60s");
    let before = h.requests();
    let (a, b, c) = tokio::join!(
        h.collect(&*adapter, 5.0),
        h.collect(&*adapter, 5.0),
        h.collect(&*adapter, 5.0)
    );
    assert_eq!(a.unwrap(), b.unwrap());
    c.unwrap();
    h.collect(&*adapter, 5.0).await.unwrap();
    assert_eq!(h.requests() - before, one_call);
}

/// One line per tool adapter: every check of the list, against that adapter's tool.
macro_rules! conformance {
    ($name:ident, $case:expr) => {
        mod $name {
            use super::*;
            conformance!(@tests $case; happy_path, transient_5xx_is_retried,
                persistent_5xx_is_unavailable, retry_after_is_honoured_within_the_deadline,
                retry_after_past_the_deadline_is_rate_limited, malformed_body_is_a_bad_response,
                empty_body_is_a_bad_response, a_sign_in_page_is_a_bad_response,
                a_cut_off_answer_is_unreachable_or_bad, a_huge_body_is_a_bad_response,
                redirects_are_not_followed_or_shown, expired_credentials_are_an_auth_failure,
                a_refusal_is_an_auth_failure_not_retried, the_deadline_is_respected,
                a_refused_connection_is_unreachable, unknown_objects_are_not_found,
                answers_are_cached_and_identical_calls_coalesced);
        }
    };
    (@tests $case:expr; $($check:ident),*) => {
        $(
            #[tokio::test]
            async fn $check() {
                super::$check(&$case).await;
            }
        )*
    };
}

conformance!(http, cases::HTTP);
conformance!(sonarqube, cases::SONARQUBE);
conformance!(jira, cases::JIRA);
conformance!(servicenow, cases::SERVICENOW);
conformance!(aqua, cases::AQUA);
conformance!(registry, cases::REGISTRY);
conformance!(github, cases::GITHUB);
conformance!(github_app, cases::GITHUB_APP);
conformance!(gitlab, cases::GITLAB);

/// The kind of each adapter configuration, by an exhaustive match: a new `AdapterConfig` variant
/// does not compile here until it has an arm, and `every_adapter_kind_is_in_a_list` fails until
/// a `conformance!` or `ingestion!` line runs a case of that kind.
fn kind(config: &AdapterConfig) -> &'static str {
    match config {
        AdapterConfig::Http(_) => "http",
        AdapterConfig::Sonarqube(_) => "sonarqube",
        AdapterConfig::Jira(_) => "jira",
        AdapterConfig::Servicenow(_) => "servicenow",
        AdapterConfig::Aqua(_) => "aqua",
        AdapterConfig::Trivy(_) => "trivy",
        AdapterConfig::Registry(_) => "registry",
        AdapterConfig::Sbom(_) => "sbom",
        AdapterConfig::Sarif(_) => "sarif",
        AdapterConfig::Github(_) => "github",
        AdapterConfig::Gitlab(_) => "gitlab",
    }
}

/// How many arms `kind` has.
const KINDS: usize = 11;

#[test]
fn every_adapter_kind_is_in_a_list() {
    let parse = |yaml: String| -> AdapterConfig { serde_norway::from_str(&yaml).unwrap() };
    let tools = [
        &cases::HTTP,
        &cases::SONARQUBE,
        &cases::JIRA,
        &cases::SERVICENOW,
        &cases::AQUA,
        &cases::REGISTRY,
        &cases::GITHUB,
        &cases::GITHUB_APP,
        &cases::GITLAB,
    ];
    let reports = [
        &ingest_cases::TRIVY,
        &ingest_cases::SBOM,
        &ingest_cases::SARIF,
    ];
    let listed: std::collections::BTreeSet<&str> = tools
        .iter()
        .map(|c| kind(&parse((c.config)("http://127.0.0.1:9", "0s"))))
        .chain(
            reports
                .iter()
                .map(|c| kind(&parse((c.config)("/nonexistent")))),
        )
        .collect();
    assert_eq!(listed.len(), KINDS, "a kind has no case: only {listed:?}");
}

/// The cases: each adapter aimed at its simulator with the simulator's public test credentials.
mod cases {
    use super::*;

    /// `kind: http` has no `cache_ttl`: each check calls the tool.
    const HTTP_FAULTS: [Fault; 16] = every_but(Fault::Cache);
    /// GitHub answers 403 for its secondary rate limit, and so does its simulator for every
    /// injected 403: the adapter rightly reads it as rate limited, so there is no plain refusal
    /// to inject (adapters_traps.rs covers GitHub's 403 shapes).
    const GITHUB_FAULTS: [Fault; 16] = every_but(Fault::Forbidden);
    /// The registry adapter records no URL or excerpt: one image takes several calls
    /// (manifest, referrers, signatures, attestations).
    const REGISTRY_FAULTS: [Fault; 16] = every_but(Fault::Trail);

    /// The declarative adapter against the JSON fake, with a secret bearer header; the fake
    /// echoes the request's headers into its answer, so the excerpt must be redacted.
    pub static HTTP: Case = Case {
        tool: Tool::Fake,
        config: |base, _ttl| {
            format!(
                "{{kind: http, name: tool, url: '{base}/api/{{application}}', headers: {{Authorization: {{secret: {{value: {}}}, prefix: 'Bearer '}}}}, extract: {{status: $.status, critical: $.summary.critical, ids: '$.findings[*].id', absent: $.nothing}}}}",
                fake_tool::TOKEN
            )
        },
        request: || request(|_| {}),
        unknown: || request(|d| d.application = "no-such-app".into()),
        facts: |f| {
            assert_eq!(
                *f,
                serde_json::json!({"status": "OK", "critical": 0, "ids": ["CVE-1", "CVE-2"]})
            );
        },
        secrets: &[fake_tool::TOKEN],
        supports: &HTTP_FAULTS,
    };

    pub static SONARQUBE: Case = Case {
        tool: Tool::Sim(|s| &s.sonarqube),
        config: |base, ttl| {
            format!(
                "{{kind: sonarqube, name: sonarqube, base_url: '{base}', cache_ttl: {ttl}, auth: {{type: bearer, token: {{value: {}}}}}}}",
                sim::sonarqube::TOKEN
            )
        },
        request: || request(|_| {}),
        unknown: || request(|d| d.application = "no-such-project".into()),
        facts: |f| {
            assert_eq!(f["quality_gate"]["status"], "OK", "{f}");
            assert_eq!(f["quality_gate"]["passed"], true);
            assert_eq!(f["branch"], "release/1.8");
            assert_eq!(f["selector"], "branch");
        },
        secrets: &[sim::sonarqube::TOKEN],
        supports: EVERY_FAULT,
    };

    pub static JIRA: Case = Case {
        tool: Tool::Sim(|s| &s.jira),
        config: |base, ttl| {
            format!(
                "{{kind: jira, name: jira, base_url: '{base}', cache_ttl: {ttl}, auth: {{type: basic, username: {}, password: {{value: {}}}}}}}",
                sim::jira::EMAIL,
                sim::jira::API_TOKEN
            )
        },
        request: || request(|d| d.jira_keys = vec!["OPS-42".into()]),
        unknown: || request(|d| d.jira_keys = vec!["OPS-999".into()]),
        facts: |f| {
            assert_eq!(f["issues"][0]["status"]["category_key"], "done", "{f}");
            assert_eq!(f["issues"][0]["resolution"], "Done");
            assert_eq!(f["all_done"], true);
        },
        secrets: &[sim::jira::API_TOKEN],
        supports: EVERY_FAULT,
    };

    pub static SERVICENOW: Case = Case {
        tool: Tool::Sim(|s| &s.servicenow),
        config: |base, ttl| {
            format!(
                "{{kind: servicenow, name: servicenow, base_url: '{base}', cache_ttl: {ttl}, auth: {{type: basic, username: {}, password: {{value: {}}}}}}}",
                sim::servicenow::USER,
                sim::servicenow::PASSWORD
            )
        },
        request: || request(|d| d.servicenow_changes = vec!["CHG0030001".into()]),
        unknown: || request(|d| d.servicenow_changes = vec!["CHG0039999".into()]),
        facts: |f| {
            let c = &f["change"];
            assert_eq!(c["approval"], "approved", "{f}");
            assert_eq!(c["state"], "-2");
            assert_eq!(c["approved"], true);
            assert!(c["start_date"].as_str().unwrap().ends_with('Z'), "{c}");
        },
        secrets: &[sim::servicenow::PASSWORD],
        supports: EVERY_FAULT,
    };

    pub static AQUA: Case = Case {
        tool: Tool::Sim(|s| &s.aqua),
        config: |base, ttl| {
            format!(
                "{{kind: aqua, name: aqua, base_url: '{base}', cache_ttl: {ttl}, registries: [{{host: ghcr.io, name: GHCR}}], auth: {{type: login, username: {}, password: {{value: {}}}}}}}",
                sim::aqua::USER,
                sim::aqua::PASSWORD
            )
        },
        request: || {
            request(|d| {
                d.images = vec![image(&format!(
                    "ghcr.io/acme/payments-api:1.8.3@{}",
                    sim::aqua::DIGESTS[0].1
                ))];
            })
        },
        unknown: || {
            request(|d| {
                d.images = vec![image(&format!(
                    "ghcr.io/acme/nothing:1@{}",
                    sim::aqua::DIGESTS[0].1
                ))];
            })
        },
        facts: |f| {
            assert_eq!(f["images"][0]["passed"], true, "{f}");
            assert_eq!(f["images"][0]["digest_matches"], true);
            assert_eq!(f["vulnerabilities"]["critical"], 0);
            assert_eq!(f["vulnerabilities"]["medium"], 1);
            // The listing behind the counts, in the common finding shape.
            assert_eq!(f["findings_summary"]["open"]["medium"], 1, "{f}");
            assert_eq!(f["findings"][0]["id"], "CVE-2024-0001");
            assert_eq!(f["findings"][0]["tool"], "aqua");
            assert_eq!(f["findings"][0]["package"]["name"], "libexpat");
            assert_eq!(f["findings"][0]["fixed_version"], "2.5.0-2");
        },
        secrets: &[sim::aqua::PASSWORD],
        supports: EVERY_FAULT,
    };

    pub static REGISTRY: Case = Case {
        tool: Tool::Sim(|s| &s.registry),
        config: |base, ttl| {
            format!(
                "{{kind: registry, name: registry, cache_ttl: {ttl}, registries: [{{host: registry.sim, base_url: '{base}', auth: {{type: basic, username: {}, password: {{value: {}}}}}}}], keys: [{{id: sim, public_key: {{value: {}}}}}]}}",
                sim::registry::USER,
                sim::registry::PASSWORD,
                serde_json::to_string(&sim::registry::public_key_pem()).unwrap()
            )
        },
        request: || {
            request(|d| {
                d.images = vec![image(&format!(
                    "registry.sim/{}:1.8.3@{}",
                    sim::registry::REPOSITORY,
                    sim::registry::seeded_digest()
                ))];
            })
        },
        unknown: || {
            request(|d| {
                d.images = vec![image(&format!(
                    "registry.sim/acme/nothing@{}",
                    sim::registry::seeded_digest()
                ))];
            })
        },
        facts: |f| {
            let i = &f["images"][0];
            assert_eq!(i["exists"], true, "{f}");
            assert_eq!(i["tag_moved"], false);
            assert_eq!(i["signed"], true, "{f}");
            assert_eq!(i["signed_by"][0], "sim");
            assert_eq!(i["provenance"]["builder_id"], sim::registry::SEEDED_BUILDER);
            assert_eq!(i["provenance"]["commit_matches_request"], true, "{f}");
        },
        secrets: &[sim::registry::PASSWORD],
        supports: &REGISTRY_FAULTS,
    };

    fn github_request() -> CheckRequest {
        request(|d| {
            d.sources[0].repository = format!("https://github.com/{}.git", sim::github::REPOSITORY);
            d.sources[0].commit = sim::github::SEEDED_COMMIT[..12].into();
            d.sources[0].branch = "main".into();
        })
    }

    fn github_facts(f: &Value) {
        assert_eq!(f["repository"], sim::github::REPOSITORY, "{f}");
        assert_eq!(f["protection"]["protected"], true, "{f}");
        assert_eq!(f["protection"]["required_approving_review_count"], 1);
        assert_eq!(f["commit"]["sha"], sim::github::SEEDED_COMMIT);
        assert_eq!(f["commit"]["via_pull_request"], true, "{f}");
        assert_eq!(f["commit"]["approvers"], serde_json::json!(["bob"]), "{f}");
        assert_eq!(f["commit"]["required_checks_passed"], true, "{f}");
        assert_eq!(f["commit"]["signature_verified"], true);
        assert_eq!(f["workflows"]["write_all"], false, "{f}");
        assert_eq!(f["workflows"]["default_workflow_permissions"], "read");
    }

    fn github_unknown() -> CheckRequest {
        request(|d| {
            d.sources[0].repository = "github.com/acme/no-such-repo".into();
            d.sources[0].commit = sim::github::SEEDED_COMMIT[..12].into();
        })
    }

    pub static GITHUB: Case = Case {
        tool: Tool::Sim(|s| &s.github),
        config: |base, ttl| {
            format!(
                "{{kind: github, name: github, base_url: '{base}', cache_ttl: {ttl}, auth: {{type: bearer, token: {{value: {}}}}}}}",
                sim::github::TOKEN
            )
        },
        request: github_request,
        unknown: github_unknown,
        facts: github_facts,
        secrets: &[sim::github::TOKEN],
        supports: &GITHUB_FAULTS,
    };

    /// The same, authenticating as a GitHub App (JWT → installation token); the installation
    /// tokens the simulator issues start with `ghs_sim` and must not come back out either.
    pub static GITHUB_APP: Case = Case {
        tool: Tool::Sim(|s| &s.github),
        config: |base, ttl| {
            format!(
                "{{kind: github, name: github, base_url: '{base}', cache_ttl: {ttl}, auth: {{type: app, app_id: {}, private_key: {{value: {}}}}}}}",
                sim::github::APP_ID,
                serde_json::to_string(sim::github::APP_PRIVATE_KEY).unwrap()
            )
        },
        request: github_request,
        unknown: github_unknown,
        facts: github_facts,
        secrets: &["ghs_sim", "MIIE"],
        supports: &GITHUB_FAULTS,
    };

    pub static GITLAB: Case = Case {
        tool: Tool::Sim(|s| &s.gitlab),
        config: |base, ttl| {
            format!(
                "{{kind: gitlab, name: gitlab, base_url: '{base}', cache_ttl: {ttl}, auth: {{type: private_token, token: {{value: {}}}}}}}",
                sim::gitlab::TOKEN
            )
        },
        request: || {
            request(|d| {
                d.sources[0].repository =
                    format!("https://gitlab.example.com/{}.git", sim::gitlab::PROJECT);
                d.sources[0].commit = sim::gitlab::SEEDED_COMMIT[..12].into();
                d.sources[0].branch = "main".into();
            })
        },
        unknown: || {
            request(|d| {
                d.sources[0].repository = "gitlab.example.com/acme/no-such-project".into();
            })
        },
        facts: |f| {
            assert_eq!(f["project"], sim::gitlab::PROJECT, "{f}");
            assert_eq!(f["protection"]["protected"], true, "{f}");
            assert_eq!(f["protection"]["push_access_level"], 40);
            assert_eq!(f["protection"]["allow_force_push"], false);
            assert_eq!(f["protection"]["required_approvals"], 1);
            assert_eq!(f["protection"]["author_can_approve"], false);
            assert_eq!(f["commit"]["sha"], sim::gitlab::SEEDED_COMMIT);
            assert_eq!(f["commit"]["via_merge_request"], true, "{f}");
            assert_eq!(f["commit"]["approvers"], serde_json::json!(["bob"]));
            assert_eq!(f["commit"]["required_checks_passed"], true, "{f}");
            assert_eq!(f["commit"]["signature_verified"], true);
        },
        secrets: &[sim::gitlab::TOKEN],
        supports: EVERY_FAULT,
    };
}

/// How a pipeline's report reaches an adapter: `Adapter::ingest` or `Adapter::ingest_commit`.
pub type Submit = fn(&dyn Adapter, &[u8], &Submission) -> Option<Result<String, IngestError>>;

/// What the ingestion list needs to know about one report-ingestion adapter.
pub struct IngestCase {
    /// The adapter's YAML configuration, reading and storing in `dir`.
    pub config: fn(dir: &str) -> String,
    /// Submits `body` as a pipeline does for this kind: for [`DIGEST`] or for [`COMMIT`].
    pub submit: Submit,
    /// A good report for the subject, made before [`ingest_t0`], carrying [`MARKER`].
    pub good: fn() -> Vec<u8>,
    /// The same report about another digest or commit.
    pub other_subject: fn() -> Vec<u8>,
    /// How far the clock must move for the good report to be stale; `None`: reports do not
    /// age (a SARIF log is about a commit, which does not change).
    pub stale_after: Option<chrono::Duration>,
    /// Asserts the facts of [`ingest_request`] once the good report is in.
    pub facts: fn(&Value),
}

/// The image digest the reports are about (the SBOM fixture's subject).
pub const DIGEST: &str = "sha256:3f1a2b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f10";
/// The commit the SARIF log is about (the CodeQL fixture's `revisionId`).
pub const COMMIT: &str = "8f2c1d4e5b6a79801c2d3e4f5a6b7c8d9e0f1a2b";
/// A token-like string in every submitted report: what a report carries must never come back
/// in an error, a fact, a URL or an excerpt.
pub const MARKER: &str = "ghp_s3cr3tReportMarker0000000000000000";

/// The ingestion clock's start: after the fixtures were made.
pub fn ingest_t0() -> chrono::DateTime<chrono::Utc> {
    "2026-11-30T12:00:00Z".parse().unwrap()
}

pub fn ingest_request() -> CheckRequest {
    request(|d| {
        d.images = vec![image(&format!("ghcr.io/acme/payments:1.0.0@{DIGEST}"))];
        d.sources[0].repository = "github.com/acme/payments".into();
        d.sources[0].commit = COMMIT.into();
    })
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/findings")
            .join(name),
    )
    .unwrap()
}

/// `json` with [`MARKER`] added at its top level, where no adapter reads.
fn with_marker(mut json: Value) -> Vec<u8> {
    json["x-pipeline-token"] = MARKER.into();
    json.to_string().into_bytes()
}

pub struct IngestHarness {
    pub case: &'static IngestCase,
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub adapter: Arc<dyn Adapter>,
    logs: Logs,
    _logging: tracing::subscriber::DefaultGuard,
}

impl IngestHarness {
    fn start(case: &'static IngestCase) -> Self {
        let logs = Logs::default();
        let logging = logs.capture();
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(ingest_t0()));
        let yaml = format!("[{}]", (case.config)(dir.path().to_str().unwrap()));
        let configs: Vec<AdapterConfig> = serde_norway::from_str(&yaml).unwrap();
        let shared: Arc<dyn Clock> = clock.clone();
        let adapter = adapters::build(&configs, &shared).unwrap().remove(0);
        Self {
            case,
            dir,
            clock,
            adapter,
            logs,
            _logging: logging,
        }
    }

    fn submit(&self, body: &[u8]) -> Result<String, IngestError> {
        let submission = Submission {
            submitted_by: "ci".into(),
            submitted_at: self.clock.now(),
            may_deploy: Arc::new(|_| true),
            any_image: true,
        };
        let out = (self.case.submit)(&*self.adapter, body, &submission)
            .expect("the adapter accepts submissions");
        if let Err(e) = &out {
            self.assert_clean(&format!("{e} {e:?}"));
        }
        out
    }

    async fn collect(&self) -> Result<Value, AdapterError> {
        let out = self
            .adapter
            .collect(&ingest_request(), Instant::now() + Duration::from_secs(5))
            .await;
        match &out {
            Ok(f) => self.assert_clean(&format!("{} {:?} {:?}", f.document, f.url, f.excerpt)),
            Err(e) => self.assert_clean(&format!("{e} {e:?}")),
        }
        out.map(|f| f.document)
    }

    fn assert_clean(&self, text: &str) {
        assert!(
            !text.contains(MARKER),
            "a report's content was echoed: {text}"
        );
        assert!(
            !self.logs.text().contains(MARKER),
            "a report's content was logged"
        );
    }

    /// Files in the adapter's directory.
    fn stored(&self) -> usize {
        std::fs::read_dir(self.dir.path()).unwrap().count()
    }

    /// `body` is refused, nothing is stored, and a check still finds nothing.
    async fn refused(&self, body: &[u8]) -> IngestError {
        let e = self.submit(body).unwrap_err();
        assert_eq!(self.stored(), 0, "a refused report stored something: {e}");
        let not_found = self.collect().await.unwrap_err();
        assert!(
            matches!(not_found, AdapterError::NotFound { .. }),
            "{not_found:?}"
        );
        e
    }
}

pub async fn a_submitted_report_gives_facts(case: &'static IngestCase) {
    let h = IngestHarness::start(case);
    h.submit(&(case.good)()).unwrap();
    let facts = h.collect().await.unwrap();
    (case.facts)(&facts);
}

pub async fn nothing_submitted_is_not_found(case: &'static IngestCase) {
    let h = IngestHarness::start(case);
    let e = h.collect().await.unwrap_err();
    assert!(matches!(e, AdapterError::NotFound { .. }), "{e:?}");
}

pub async fn a_stale_report_is_a_bad_response(case: &'static IngestCase) {
    let Some(age) = case.stale_after else {
        return;
    };
    let h = IngestHarness::start(case);
    h.submit(&(case.good)()).unwrap();
    h.collect().await.unwrap();
    h.clock.advance(age);
    let e = h.collect().await.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e:?}");
    assert!(e.to_string().contains("stale"), "{e}");
}

pub async fn a_malformed_report_is_refused(case: &'static IngestCase) {
    let h = IngestHarness::start(case);
    let good = (case.good)();
    // Cut off after the marker: what a pipeline sends when its upload is interrupted.
    let text = String::from_utf8(good).unwrap();
    let cut = text.find(MARKER).unwrap() + MARKER.len();
    let e = h.refused(&text.as_bytes()[..cut]).await;
    assert!(matches!(e, IngestError::NotJson(_)), "{e:?}");
}

pub async fn an_oversized_report_is_refused(case: &'static IngestCase) {
    let h = IngestHarness::start(case);
    // Past every ingestion adapter's 64 MiB cap; the size is checked before parsing.
    let body = vec![b' '; 64 * 1024 * 1024 + 1];
    let e = h.refused(&body).await;
    assert!(matches!(e, IngestError::TooLarge), "{e:?}");
}

pub async fn a_report_about_another_subject_is_refused(case: &'static IngestCase) {
    let h = IngestHarness::start(case);
    let e = h.refused(&(case.other_subject)()).await;
    assert!(
        matches!(e, IngestError::NotBound(_) | IngestError::Invalid(_)),
        "{e:?}"
    );
}

/// One line per report-ingestion adapter: every check of the ingestion list.
macro_rules! ingestion {
    ($name:ident, $case:expr) => {
        mod $name {
            use super::*;
            ingestion!(@tests $case; a_submitted_report_gives_facts, nothing_submitted_is_not_found,
                a_stale_report_is_a_bad_response, a_malformed_report_is_refused,
                an_oversized_report_is_refused, a_report_about_another_subject_is_refused);
        }
    };
    (@tests $case:expr; $($check:ident),*) => {
        $(
            #[tokio::test]
            async fn $check() {
                super::$check(&$case).await;
            }
        )*
    };
}

ingestion!(trivy, ingest_cases::TRIVY);
ingestion!(sbom, ingest_cases::SBOM);
ingestion!(sarif, ingest_cases::SARIF);

/// The report-ingestion cases, on the repository's report fixtures where there are some.
mod ingest_cases {
    use portcullis::domain::{CommitSha, Digest};

    use super::*;

    fn for_digest(
        a: &dyn Adapter,
        body: &[u8],
        s: &Submission,
    ) -> Option<Result<String, IngestError>> {
        a.ingest(&Digest::parse(DIGEST).unwrap(), body, s)
    }

    fn for_commit(
        a: &dyn Adapter,
        body: &[u8],
        s: &Submission,
    ) -> Option<Result<String, IngestError>> {
        a.ingest_commit(&CommitSha::parse(COMMIT).unwrap(), body, s)
    }

    /// A Trivy JSON report (SchemaVersion 2) made at [`ingest_t0`] for `digest`.
    fn trivy_report(digest: &str) -> Vec<u8> {
        with_marker(serde_json::json!({
            "SchemaVersion": 2,
            "CreatedAt": ingest_t0().to_rfc3339(),
            "ArtifactName": "ghcr.io/acme/payments:1.0.0",
            "Metadata": {"OS": {"Family": "debian", "Name": "12"}, "RepoDigests": [format!("ghcr.io/acme/payments@{digest}")]},
            "Results": [{"Target": "app.jar", "Class": "lang-pkgs", "Type": "jar", "Vulnerabilities": [
                {"VulnerabilityID": "CVE-2021-44228", "PkgName": "log4j-core", "InstalledVersion": "2.14.1",
                 "FixedVersion": "2.15.0", "Severity": "CRITICAL", "Status": "fixed"}]}],
        }))
    }

    /// Another digest of the same shape.
    const OTHER_DIGEST: &str =
        "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    pub static TRIVY: IngestCase = IngestCase {
        config: |dir| format!("{{kind: trivy, name: trivy, reports_dir: '{dir}', cache_ttl: 0s}}"),
        submit: for_digest,
        good: || trivy_report(DIGEST),
        other_subject: || trivy_report(OTHER_DIGEST),
        // `max_age` defaults to a day.
        stale_after: Some(chrono::Duration::hours(25)),
        facts: |f| {
            assert_eq!(f["vulnerabilities"]["critical"], 1, "{f}");
            assert_eq!(f["images"][0]["digest"], DIGEST, "{f}");
            assert_eq!(f["findings"][0]["id"], "CVE-2021-44228", "{f}");
        },
    };

    fn sbom(digest: &str) -> Vec<u8> {
        // The hex alone, so the subject changes however the document spells it (a purl
        // writes `sha256%3A…`).
        let hex = |d: &str| d.trim_start_matches("sha256:").to_string();
        let text = fixture("syft-payments.cdx.json").replace(&hex(DIGEST), &hex(digest));
        with_marker(serde_json::from_str(&text).unwrap())
    }

    pub static SBOM: IngestCase = IngestCase {
        config: |dir| format!("{{kind: sbom, name: sbom, documents_dir: '{dir}', cache_ttl: 0s}}"),
        submit: for_digest,
        good: || sbom(DIGEST),
        other_subject: || sbom(OTHER_DIGEST),
        // `max_age` defaults to 30 days; the fixture was made the day before `ingest_t0`.
        stale_after: Some(chrono::Duration::days(30)),
        facts: |f| {
            assert_eq!(f["component_count"], 7, "{f}");
            assert_eq!(f["images"][0]["format"], "cyclonedx", "{f}");
        },
    };

    fn sarif(commit: &str) -> Vec<u8> {
        let text = fixture("codeql.sarif").replace(COMMIT, commit);
        with_marker(serde_json::from_str(&text).unwrap())
    }

    pub static SARIF: IngestCase = IngestCase {
        config: |dir| format!("{{kind: sarif, name: sast, logs_dir: '{dir}', cache_ttl: 0s}}"),
        submit: for_commit,
        good: || sarif(COMMIT),
        other_subject: || sarif("1111111111111111111111111111111111111111"),
        stale_after: None,
        facts: |f| {
            assert_eq!(
                f["counts"],
                serde_json::json!({"error": 1, "warning": 1, "note": 0, "none": 0}),
                "{f}"
            );
            assert_eq!(f["tools"][0]["category"], "/language:java/", "{f}");
        },
    };
}
