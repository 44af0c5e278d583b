//! Source-control posture through the running service: the `github` adapter (authenticating as
//! a GitHub App) and the `gitlab` adapter against their simulators, judged by test rules that
//! read their facts. An unprotected branch, a self-approved pull/merge request, a commit pushed
//! without one, a failed required check or pipeline, a `write-all` workflow, an approval hidden
//! on a later page, a listing cut short and a rate limit that never lifts: each shows in the
//! facts (or as missing evidence) and none continues; a well-protected repository does, also
//! after a rate limit that lifts.

use portcullis::sim::{self, FaultSettings, Sims};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::TestApp;

const POLICY: &str = r#"
rules:
  - id: branch-protected
    title: The deployed branch is protected
    category: source
    severity: critical
    description: An unprotected branch takes any push.
    remediation: Protect the branch (classic protection or a ruleset).
    condition: {path: $.github.protection.protected, op: "==", value: true}
  - id: reviewed-by-another
    title: The commit came through a pull request approved by someone else
    category: source
    severity: critical
    description: A direct push or a self-approval is an unreviewed change.
    remediation: Merge through a pull request another maintainer approves.
    condition:
      all:
        - {path: $.github.commit.via_pull_request, op: "==", value: true}
        - {path: $.github.commit.approved_by_other, op: "==", value: true}
  - id: required-checks-green
    title: Required checks succeeded on the deployed commit
    category: source
    severity: critical
    description: A failed required check means the commit was not verified.
    remediation: Fix the build and deploy a green commit.
    condition: {path: $.github.commit.required_checks_passed, op: "==", value: true}
  - id: workflow-token-minimal
    title: Workflows ask for no broad write permissions
    category: source
    severity: critical
    description: A write-all token lets any step push or publish.
    remediation: Give each workflow and job only the permissions it needs.
    condition: {path: $.github.workflows.broad_write, op: "==", value: false}
"#;

const GITLAB_POLICY: &str = r#"
rules:
  - id: branch-protected
    title: The deployed branch is protected
    severity: critical
    description: An unprotected branch takes any push.
    remediation: Protect the branch.
    condition:
      all:
        - {path: $.gitlab.protection.protected, op: "==", value: true}
        - {path: $.gitlab.protection.allow_force_push, op: "==", value: false}
  - id: reviewed-by-another
    title: The commit came through a merge request approved by someone else
    severity: critical
    description: A direct push or a self-approval is an unreviewed change.
    remediation: Merge through a merge request another maintainer approves.
    condition:
      all:
        - {path: $.gitlab.commit.via_merge_request, op: "==", value: true}
        - {path: $.gitlab.commit.approved_by_other, op: "==", value: true}
  - id: pipeline-green
    title: The deployed commit's pipeline succeeded
    severity: critical
    description: A failed pipeline means the commit was not verified.
    remediation: Fix the pipeline and deploy a green commit.
    condition: {path: $.gitlab.commit.required_checks_passed, op: "==", value: true}
"#;

const SEEDED: &str = sim::github::REPOSITORY;
const COMMIT: &str = sim::github::SEEDED_COMMIT;
const HEAD: &str = sim::github::SEEDED_HEAD;

/// Which source-control system a world's service reads.
#[derive(Clone, Copy)]
enum Scm {
    GitHub,
    GitLab,
}

/// The simulators and the service with one source-control adapter (two items a page, so every
/// listing of more than two is paged) and its rules.
struct World {
    sims: Sims,
    app: TestApp,
    http: reqwest::Client,
    scm: Scm,
}

async fn world(scm: Scm) -> World {
    let policy = match scm {
        Scm::GitHub => POLICY,
        Scm::GitLab => GITLAB_POLICY,
    };
    world_with(scm, policy).await
}

/// The built-in pack's source-control rules, as shipped.
const BUILTIN: &str = include_str!("../../src/policy/builtin/source-control.yaml");

async fn world_with(scm: Scm, policy: &str) -> World {
    let sims = sim::start(0).await.unwrap();
    let (adapter, _) = match scm {
        Scm::GitHub => (
            json!({"kind": "github", "name": "github", "base_url": sims.github.base_url,
                "auth": {"type": "app", "app_id": sim::github::APP_ID,
                    "private_key": {"value": sim::github::APP_PRIVATE_KEY}}}),
            POLICY,
        ),
        Scm::GitLab => (
            json!({"kind": "gitlab", "name": "gitlab", "base_url": sims.gitlab.base_url,
                "auth": {"type": "private_token", "token": {"value": sim::gitlab::TOKEN}}}),
            GITLAB_POLICY,
        ),
    };
    let mut adapter = adapter;
    for (k, v) in [("cache_ttl", "0s"), ("timeout", "8s")] {
        adapter[k] = json!(v);
    }
    adapter["page_size"] = json!(2);
    // A manual clock: the rate limit that lifts is waited for by moving it, not in real time.
    let app = TestApp::builder()
        .clock(crate::support::clock_at_t0())
        .adapter(adapter)
        .policies(&[("source.yaml", policy)])
        .spawn()
        .await;
    World {
        sims,
        app,
        http: reqwest::Client::new(),
        scm,
    }
}

/// The seeded repository's (project's) state as the control API takes it, for a case to change.
fn seeded_state(scm: Scm) -> Value {
    match scm {
        Scm::GitHub => serde_json::to_value(&sim::github::seed::seeded()[SEEDED]).unwrap(),
        Scm::GitLab => serde_json::to_value(&sim::gitlab::seeded()[sim::gitlab::PROJECT]).unwrap(),
    }
}

impl World {
    /// Seeds `acme/<name>` with the seeded state as `change` leaves it.
    async fn repo(&self, name: &str, change: impl FnOnce(&mut Value)) -> String {
        let mut state = seeded_state(self.scm);
        change(&mut state);
        let url = match self.scm {
            Scm::GitHub => format!(
                "{}/_sim/github/repos/acme/{name}",
                self.sims.github.base_url
            ),
            Scm::GitLab => format!(
                "{}/_sim/gitlab/projects/acme%2F{name}",
                self.sims.gitlab.base_url
            ),
        };
        let r = self.http.put(url).json(&state).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "seeding {name}");
        format!("acme/{name}")
    }

    /// A check of `repo` at `commit` on `main`: the decision.
    async fn check(&self, repo: &str, commit: &str) -> Value {
        let host = match self.scm {
            Scm::GitHub => "github.com",
            Scm::GitLab => "gitlab.example.com",
        };
        let body = json!({"application": "app", "environment": "prod",
            "sources": [{"repository": format!("{host}/{repo}"), "commit": commit, "branch": "main"}]});
        self.app.check(&body).await.json_with(StatusCode::CREATED)
    }
}

/// A seeded repository, the one rule its weakness must fail, and the fact that shows it with
/// its expected value.
type Weakness<'a> = (&'a str, &'static str, fn(&Value) -> Value, Value);

impl World {
    /// Each weakness stops the deploy by its rule alone, and shows in the facts.
    async fn expect_stopped(&self, commit: &str, cases: &[Weakness<'_>]) {
        let namespace = match self.scm {
            Scm::GitHub => "github",
            Scm::GitLab => "gitlab",
        };
        for (repo, rule, fact, want) in cases {
            let d = self.check(repo, commit).await;
            assert!(
                matches!(d["verdict"].as_str(), Some("terminate" | "manual_review")),
                "{repo}: {d}"
            );
            assert_eq!(failed(&d), [*rule], "{repo}: {d}");
            assert_eq!(&fact(&d["evidence"][namespace]), want, "{repo}: {d}");
        }
    }
}

/// The rules that did not pass, by id.
fn failed(d: &Value) -> Vec<String> {
    d["rule_results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] != "pass")
        .map(|r| r["rule_id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn a_well_protected_repository_continues() {
    let w = world(Scm::GitHub).await;
    let d = w.check(SEEDED, &COMMIT[..10]).await;
    assert_eq!(d["verdict"], "continue", "{d}");
    let f = &d["evidence"]["github"];
    assert_eq!(f["protection"]["enforce_admins"], true, "{f}");
    assert_eq!(f["protection"]["allow_force_pushes"], false);
    assert_eq!(f["protection"]["required_status_checks"], json!(["build"]));
    assert_eq!(f["commit"]["pull_request"]["number"], 42);
    assert_eq!(f["commit"]["approvers"], json!(["bob"]));
    assert_eq!(f["commit"]["self_approved"], false);
    assert_eq!(f["commit"]["signature"]["reason"], "valid");
}

#[tokio::test]
async fn each_weakness_shows_in_the_facts_and_stops_the_deploy() {
    let w = world(Scm::GitHub).await;
    let unprotected = w.repo("unprotected", |s| s["protection"] = json!({})).await;
    let self_approved = w
        .repo("self-approved", |s| {
            s["reviews"]["42"] = json!([sim::github::seed::review(1, "alice", "APPROVED", HEAD)]);
        })
        .await;
    let pushed = w.repo("pushed", |s| s["pulls"] = json!([])).await;
    let red = w
        .repo("red", |s| {
            s["check_runs"][COMMIT] =
                json!([sim::github::seed::check_run(1, "build", "failure", COMMIT)]);
        })
        .await;
    let write_all = w
        .repo("write-all", |s| {
            s["files"][COMMIT][".github/workflows/release.yml"] =
                json!("on: push\npermissions: write-all\njobs:\n  publish:\n    runs-on: ubuntu-latest\n    steps: []\n");
        })
        .await;
    // Five reviews, two a page: the author's own approval is on the third page.
    let paged = w
        .repo("paged", |s| {
            let r = sim::github::seed::review;
            s["reviews"]["42"] = json!([
                r(1, "carol", "COMMENTED", HEAD),
                r(2, "dave", "COMMENTED", HEAD),
                r(3, "erin", "COMMENTED", HEAD),
                r(4, "frank", "COMMENTED", HEAD),
                r(5, "alice", "APPROVED", HEAD),
            ]);
        })
        .await;
    let cases: [Weakness; 6] = [
        (
            &unprotected,
            "branch-protected",
            |f| f["protection"]["protected"].clone(),
            json!(false),
        ),
        (
            &self_approved,
            "reviewed-by-another",
            |f| f["commit"]["self_approved"].clone(),
            json!(true),
        ),
        (
            &pushed,
            "reviewed-by-another",
            |f| f["commit"]["via_pull_request"].clone(),
            json!(false),
        ),
        (
            &red,
            "required-checks-green",
            |f| f["commit"]["failed_checks"].clone(),
            json!(["build"]),
        ),
        (
            &write_all,
            "workflow-token-minimal",
            |f| f["workflows"]["write_all_in"].clone(),
            json!([".github/workflows/release.yml"]),
        ),
        (
            &paged,
            "reviewed-by-another",
            |f| f["commit"]["self_approved"].clone(),
            json!(true),
        ),
    ];
    w.expect_stopped(COMMIT, &cases).await;
}

#[tokio::test]
async fn protection_the_credentials_may_not_read_is_missing_not_unprotected() {
    let w = world(Scm::GitHub).await;
    let hidden = w
        .repo("hidden", |s| s["protection_forbidden"] = json!(true))
        .await;
    let d = w.check(&hidden, COMMIT).await;
    assert_eq!(d["verdict"], "terminate", "{d}");
    assert!(d["evidence"]["github"].is_null(), "{d}");
    assert!(d.to_string().contains("HTTP 403"), "{d}");
}

#[tokio::test]
async fn a_rate_limit_that_lifts_is_waited_for_and_one_that_does_not_is_missing_evidence() {
    let w = world(Scm::GitHub).await;
    let r = w
        .http
        .post(format!(
            "{}/_sim/scenario/primary_rate_limit",
            w.sims.github.base_url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let d = w.check(SEEDED, COMMIT).await;
    assert_eq!(
        d["verdict"], "continue",
        "403 with x-ratelimit-remaining 0, then a retry: {d}"
    );

    w.sims.github.control.apply(&FaultSettings {
        rate_limit_next: Some(sim::faults::RateLimitNext {
            count: 1000,
            retry_after_s: 60,
        }),
        ..Default::default()
    });
    let d = w.check(SEEDED, COMMIT).await;
    assert_eq!(d["verdict"], "terminate", "{d}");
    assert!(d.to_string().contains("rate limited"), "{d}");
    assert!(d["evidence"]["github"].is_null(), "{d}");
}

#[tokio::test]
async fn a_listing_is_read_to_its_last_page_and_one_cut_short_is_missing_evidence() {
    let w = world(Scm::GitHub).await;
    // Five reviews, two a page: the only approval is on the third page.
    let long = w
        .repo("long", |s| {
            let r = sim::github::seed::review;
            s["reviews"]["42"] = json!([
                r(1, "carol", "COMMENTED", HEAD),
                r(2, "dave", "CHANGES_REQUESTED", HEAD),
                r(3, "erin", "COMMENTED", HEAD),
                r(4, "dave", "APPROVED", HEAD),
                r(5, "frank", "COMMENTED", HEAD),
            ]);
        })
        .await;
    let d = w.check(&long, COMMIT).await;
    assert_eq!(d["verdict"], "continue", "{d}");
    assert_eq!(
        d["evidence"]["github"]["commit"]["approvers"],
        json!(["dave"]),
        "{d}"
    );

    w.sims.github.control.apply(&FaultSettings {
        truncate_pagination: Some(true),
        ..Default::default()
    });
    let d = w.check(&long, COMMIT).await;
    assert_eq!(d["verdict"], "terminate", "{d}");
    assert!(d.to_string().contains("short read"), "{d}");
}

#[tokio::test]
async fn gitlab_weaknesses_stop_the_deploy_and_a_protected_project_continues() {
    let w = world(Scm::GitLab).await;
    const COMMIT: &str = sim::gitlab::SEEDED_COMMIT;
    let d = w.check(sim::gitlab::PROJECT, &COMMIT[..10]).await;
    assert_eq!(d["verdict"], "continue", "{d}");
    assert_eq!(
        d["evidence"]["gitlab"]["commit"]["merge_request"]["iid"], 12,
        "{d}"
    );

    let force_push = w
        .repo("force-push", |s| {
            s["protected_branches"][0]["allow_force_push"] = json!(true)
        })
        .await;
    let wildcard_only = w
        .repo("wildcard", |s| {
            s["protected_branches"][0]["name"] = json!("ma*")
        })
        .await;
    let self_approved = w
        .repo("self-approved", |s| {
            s["mr_approvals"]["12"] = sim::gitlab::approvals(12, &["alice"])
        })
        .await;
    let pushed = w.repo("pushed", |s| s["merge_requests"] = json!([])).await;
    let red = w
        .repo("red", |s| s["pipelines"][0]["status"] = json!("failed"))
        .await;
    let d = w.check(&wildcard_only, COMMIT).await;
    assert_eq!(
        d["verdict"], "continue",
        "a wildcard entry protects `main`: {d}"
    );
    let cases: [Weakness; 4] = [
        (
            &force_push,
            "branch-protected",
            |f| f["protection"]["allow_force_push"].clone(),
            json!(true),
        ),
        (
            &self_approved,
            "reviewed-by-another",
            |f| f["commit"]["self_approved"].clone(),
            json!(true),
        ),
        (
            &pushed,
            "reviewed-by-another",
            |f| f["commit"]["via_merge_request"].clone(),
            json!(false),
        ),
        (
            &red,
            "pipeline-green",
            |f| f["commit"]["pipeline"]["status"].clone(),
            json!("failed"),
        ),
    ];
    w.expect_stopped(COMMIT, &cases).await;
}

/// The App's installation token is minted once, reused, renewed five minutes before the expiry
/// GitHub stated (by the adapter's clock, never the wall clock), and minted again once when
/// GitHub refuses it.
#[tokio::test]
async fn the_app_installation_token_is_reused_renewed_and_reminted_once_when_refused() {
    use portcullis::adapters::{Adapter, GitHubAdapter, GitHubConfig};
    let sims = sim::start(0).await.unwrap();
    let start = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let clock = std::sync::Arc::new(portcullis::clock::ManualClock::new(start));
    let config: GitHubConfig = serde_json::from_value(json!({"name": "github",
        "base_url": sims.github.base_url, "cache_ttl": "0s",
        "auth": {"type": "app", "app_id": sim::github::APP_ID,
            "private_key": {"value": sim::github::APP_PRIVATE_KEY}}}))
    .unwrap();
    let adapter = GitHubAdapter::build(&config, clock.clone()).unwrap();
    let req = crate::support::fixtures::request(|d| {
        d.sources[0].repository = format!("github.com/{SEEDED}");
        d.sources[0].commit = COMMIT.into();
        d.sources[0].branch = "main".into();
    });
    // API requests one collection makes (the simulator counts every request).
    let calls = async || {
        let before = sims.github.control.requests();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let facts = adapter.collect(&req, deadline).await.unwrap();
        assert_eq!(facts.document["commit"]["via_pull_request"], true);
        sims.github.control.requests() - before
    };
    let minted = calls().await;
    let reused = calls().await;
    assert_eq!(minted, reused + 2, "installation lookup and token, once");
    clock.set(start + chrono::Duration::minutes(50));
    assert_eq!(
        calls().await,
        reused,
        "still valid for more than five minutes"
    );
    clock.set(start + chrono::Duration::minutes(56));
    assert_eq!(calls().await, reused + 2, "renewed before it expires");
    sims.github.control.apply(&FaultSettings {
        tokens_expired: Some(true),
        ..Default::default()
    });
    assert_eq!(
        calls().await,
        reused + 3,
        "one 401, a new token, the same read again"
    );
}

#[tokio::test]
async fn gitlab_listings_are_read_to_the_end_and_one_cut_short_is_missing_evidence() {
    let w = world(Scm::GitLab).await;
    // Five protected-branch entries, two a page: the one covering `main` is on the last page.
    let many = w
        .repo("many", |s| {
            let main = s["protected_branches"][0].clone();
            let mut entries: Vec<Value> = (1..=4)
                .map(|i| {
                    let mut e = main.clone();
                    e["name"] = json!(format!("release/{i}.x"));
                    e
                })
                .collect();
            entries.push(main);
            s["protected_branches"] = json!(entries);
        })
        .await;
    let d = w.check(&many, sim::gitlab::SEEDED_COMMIT).await;
    assert_eq!(d["verdict"], "continue", "{d}");
    assert_eq!(
        d["evidence"]["gitlab"]["protection"]["entries"],
        json!(["main"]),
        "{d}"
    );

    w.sims.gitlab.control.apply(&FaultSettings {
        truncate_pagination: Some(true),
        ..Default::default()
    });
    let d = w.check(&many, sim::gitlab::SEEDED_COMMIT).await;
    assert_eq!(d["verdict"], "terminate", "{d}");
    assert!(d.to_string().contains("short read"), "{d}");
}

/// The built-in rules read the adapters' real facts: with only GitHub (or only GitLab)
/// configured, a sound repository passes all four, and a weakness fails its rule alone — the
/// unconfigured other host does not turn the failure into "not configured".
#[tokio::test]
async fn the_built_in_source_control_rules_judge_the_real_facts() {
    let w = world_with(Scm::GitHub, BUILTIN).await;
    let d = w.check(SEEDED, COMMIT).await;
    assert_eq!(d["verdict"], "continue", "{d}");
    assert_eq!(
        d["rule_results"].as_array().unwrap().len(),
        4,
        "the four rules apply to prod: {d}"
    );
    let unprotected = w.repo("bare", |s| s["protection"] = json!({})).await;
    let d = w.check(&unprotected, COMMIT).await;
    assert_eq!(d["verdict"], "terminate", "{d}");
    assert_eq!(failed(&d), ["source-branch-protected"], "{d}");
    let write_all = w
        .repo("writer", |s| {
            s["files"][COMMIT][".github/workflows/release.yml"] =
                json!("on: push\npermissions: write-all\njobs:\n  publish:\n    runs-on: ubuntu-latest\n    steps: []\n");
        })
        .await;
    let d = w.check(&write_all, COMMIT).await;
    assert_eq!(d["verdict"], "manual_review", "{d}");
    assert_eq!(failed(&d), ["workflow-token-permissions-minimal"], "{d}");

    let w = world_with(Scm::GitLab, BUILTIN).await;
    let d = w
        .check(sim::gitlab::PROJECT, sim::gitlab::SEEDED_COMMIT)
        .await;
    assert_eq!(d["verdict"], "continue", "{d}");
}
