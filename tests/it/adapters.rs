//! The adapter conformance suite: one generic list of checks (happy path, each fault, the
//! deadline, secrets never leaking into errors, facts or logs, the cache and coalescing) that every tool adapter passes
//! against its simulator over real HTTP. Adding an adapter is one `conformance!` line. Adapters
//! read a manual clock, so a `Retry-After` or a backoff moves that clock instead of taking real
//! time; the deadline check runs on tokio's paused time.

use std::sync::Arc;
use std::time::Duration;

use portcullis::adapters::{self, Adapter, AdapterConfig, AdapterError};
use portcullis::clock::{Clock, ManualClock};
use portcullis::domain::{CallerKind, CheckRequest, CheckRequestDraft, ImageDraft, SourceDraft};
use portcullis::sim::{self, FaultSettings, SimHandle, Sims};
use serde_json::Value;
use tokio::time::Instant;

/// What the suite needs to know about one adapter.
pub struct Case {
    /// The simulator the adapter talks to.
    pub sim: fn(&Sims) -> &SimHandle,
    /// The adapter's YAML configuration for a simulator at `base` with cache TTL `ttl`.
    pub config: fn(base: &str, ttl: &str) -> String,
    /// A check the simulator has good evidence for.
    pub request: fn() -> CheckRequest,
    /// A check naming something the tool does not know.
    pub unknown: fn() -> CheckRequest,
    /// Asserts the facts of `request`.
    pub facts: fn(&Value),
    /// Credentials the adapter is configured with; none may come back out.
    pub secrets: &'static [&'static str],
}

pub fn request(f: impl FnOnce(&mut CheckRequestDraft)) -> CheckRequest {
    let mut d = CheckRequestDraft {
        application: "payments-api".into(),
        environment: "prod".into(),
        sources: vec![SourceDraft {
            repository: "github.com/acme/payments-api".into(),
            commit: "0123abcd".into(),
            branch: "release/1.8".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    f(&mut d);
    d.parse(CallerKind::Api).unwrap()
}

pub fn image(reference: &str) -> ImageDraft {
    ImageDraft {
        reference: reference.into(),
        ..Default::default()
    }
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
}

/// The harness clock's start.
pub fn t0() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

pub struct Harness {
    pub sims: Sims,
    pub case: &'static Case,
    pub logs: Logs,
    /// What the adapters read the time from and wait on: how far it moved is how long they
    /// waited.
    pub clock: Arc<ManualClock>,
    _logging: tracing::subscriber::DefaultGuard,
}

impl Harness {
    pub async fn start(case: &'static Case) -> Self {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        Self {
            sims: sim::start(0).await.unwrap(),
            case,
            logs,
            clock: Arc::new(ManualClock::new(t0())),
            _logging: tracing::subscriber::set_default(subscriber),
        }
    }

    pub fn sim(&self) -> &SimHandle {
        (self.case.sim)(&self.sims)
    }

    pub fn adapter(&self, ttl: &str) -> Arc<dyn Adapter> {
        let yaml = format!("[{}]", (self.case.config)(&self.sim().base_url, ttl));
        let configs: Vec<AdapterConfig> = serde_norway::from_str(&yaml).unwrap();
        let clock: Arc<dyn Clock> = self.clock.clone();
        adapters::build(&configs, &clock).unwrap().remove(0)
    }

    pub fn faults(&self, f: FaultSettings) {
        self.sim().control.apply(&f);
    }

    pub async fn collect(
        &self,
        adapter: &dyn Adapter,
        seconds: f64,
    ) -> Result<Value, AdapterError> {
        let deadline = Instant::now() + Duration::from_secs_f64(seconds);
        let out = adapter.collect(&(self.case.request)(), deadline).await;
        match out {
            Ok(facts) => {
                let text = format!(
                    "{} {:?} {:?} {adapter:?}",
                    facts.document, facts.url, facts.excerpt
                );
                self.assert_clean(&text);
                Ok(facts.document)
            }
            Err(e) => {
                self.assert_clean(&format!("{e} {e:?}"));
                Err(e)
            }
        }
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
}

pub async fn happy_path(case: &'static Case) {
    let h = Harness::start(case).await;
    let facts = h.collect(&*h.adapter("0s"), 5.0).await.unwrap();
    (case.facts)(&facts);
}

pub async fn transient_5xx_is_retried(case: &'static Case) {
    let h = Harness::start(case).await;
    h.faults(FaultSettings {
        fail_next: Some(sim::faults::FailNext {
            count: 1,
            status: 503,
        }),
        ..Default::default()
    });
    let facts = h.collect(&*h.adapter("0s"), 5.0).await.unwrap();
    (case.facts)(&facts);
}

pub async fn persistent_5xx_is_unavailable(case: &'static Case) {
    let h = Harness::start(case).await;
    h.faults(FaultSettings {
        fail_next: Some(sim::faults::FailNext {
            count: 100,
            status: 500,
        }),
        ..Default::default()
    });
    let e = h.collect(&*h.adapter("0s"), 5.0).await.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e:?}");
    assert!(e.to_string().contains("HTTP 500"), "{e}");
}

pub async fn retry_after_is_honoured_within_the_deadline(case: &'static Case) {
    let h = Harness::start(case).await;
    h.faults(FaultSettings {
        rate_limit_next: Some(sim::faults::RateLimitNext {
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
    let h = Harness::start(case).await;
    h.faults(FaultSettings {
        rate_limit_next: Some(sim::faults::RateLimitNext {
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
}

pub async fn malformed_body_is_a_bad_response(case: &'static Case) {
    let h = Harness::start(case).await;
    h.faults(FaultSettings {
        malformed_next: Some(100),
        ..Default::default()
    });
    let e = h.collect(&*h.adapter("0s"), 5.0).await.unwrap_err();
    assert!(matches!(e, AdapterError::BadResponse { .. }), "{e:?}");
}

pub async fn expired_credentials_are_an_auth_failure(case: &'static Case) {
    let h = Harness::start(case).await;
    h.faults(FaultSettings {
        credentials_expired: Some(true),
        ..Default::default()
    });
    let e = h.collect(&*h.adapter("0s"), 5.0).await.unwrap_err();
    assert!(matches!(e, AdapterError::Auth { status: 401 }), "{e:?}");
}

pub async fn the_deadline_is_respected(case: &'static Case) {
    // Paused, tokio's clock jumps to the next timer whenever nothing else can run: the first
    // due is the deadline, long before the tool's delay, so the answer is a timeout returned at
    // the deadline, in no real time.
    tokio::time::pause();
    let h = Harness::start(case).await;
    h.faults(FaultSettings {
        delay_ms: Some(3_000),
        ..Default::default()
    });
    let started = Instant::now();
    let e = h.collect(&*h.adapter("0s"), 0.3).await.unwrap_err();
    assert!(matches!(e, AdapterError::Timeout { .. }), "{e:?}");
    // By the paused clock: exactly where the timers put it, whatever the machine's speed.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the deadline was overrun"
    );
}

pub async fn unknown_objects_are_not_found(case: &'static Case) {
    let h = Harness::start(case).await;
    let adapter = h.adapter("0s");
    let e = adapter
        .collect(&(case.unknown)(), Instant::now() + Duration::from_secs(5))
        .await
        .unwrap_err();
    h.assert_clean(&format!("{e} {e:?}"));
    assert!(matches!(e, AdapterError::NotFound { .. }), "{e:?}");
}

pub async fn answers_are_cached_and_identical_calls_coalesced(case: &'static Case) {
    let h = Harness::start(case).await;
    let before = h.sim().control.requests();
    h.collect(&*h.adapter("0s"), 5.0).await.unwrap();
    let one_call = h.sim().control.requests() - before;

    let adapter = h.adapter("60s");
    let before = h.sim().control.requests();
    let (a, b, c) = tokio::join!(
        h.collect(&*adapter, 5.0),
        h.collect(&*adapter, 5.0),
        h.collect(&*adapter, 5.0)
    );
    assert_eq!(a.unwrap(), b.unwrap());
    c.unwrap();
    h.collect(&*adapter, 5.0).await.unwrap();
    assert_eq!(h.sim().control.requests() - before, one_call);
}

/// One line per adapter: every check of the list, against that adapter's simulator.
macro_rules! conformance {
    ($name:ident, $case:expr) => {
        mod $name {
            use super::*;
            conformance!(@tests $case; happy_path, transient_5xx_is_retried,
                persistent_5xx_is_unavailable, retry_after_is_honoured_within_the_deadline,
                retry_after_past_the_deadline_is_rate_limited, malformed_body_is_a_bad_response,
                expired_credentials_are_an_auth_failure, the_deadline_is_respected,
                unknown_objects_are_not_found, answers_are_cached_and_identical_calls_coalesced);
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

conformance!(sonarqube, cases::SONARQUBE);
conformance!(jira, cases::JIRA);
conformance!(servicenow, cases::SERVICENOW);
conformance!(aqua, cases::AQUA);
conformance!(registry, cases::REGISTRY);
conformance!(github, cases::GITHUB);
conformance!(github_app, cases::GITHUB_APP);
conformance!(gitlab, cases::GITLAB);

/// The cases: each adapter aimed at its simulator with the simulator's public test credentials.
mod cases {
    use super::*;

    pub static SONARQUBE: Case = Case {
        sim: |s| &s.sonarqube,
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
    };

    pub static JIRA: Case = Case {
        sim: |s| &s.jira,
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
    };

    pub static SERVICENOW: Case = Case {
        sim: |s| &s.servicenow,
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
    };

    pub static AQUA: Case = Case {
        sim: |s| &s.aqua,
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
    };

    pub static REGISTRY: Case = Case {
        sim: |s| &s.registry,
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
        sim: |s| &s.github,
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
    };

    /// The same, authenticating as a GitHub App (JWT → installation token); the installation
    /// tokens the simulator issues start with `ghs_sim` and must not come back out either.
    pub static GITHUB_APP: Case = Case {
        sim: |s| &s.github,
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
    };

    pub static GITLAB: Case = Case {
        sim: |s| &s.gitlab,
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
    };
}
