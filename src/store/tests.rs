//! The store's behaviour, one suite run against both backends: each test below is an
//! `async fn(Backend)`, and `on_both_backends!` turns it into `sqlite::name` (a fresh SQLite file)
//! and `postgres::name` (a fresh schema in the database at `PORTCULLIS_TEST_DATABASE_URL`,
//! default `postgres://postgres@127.0.0.1:5432/test`, dropped when the test ends). Written
//! against `open()` and the `Store` trait only.

#![expect(clippy::unwrap_used, reason = "tests")]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{Duration as ChronoDuration, Utc};
use tempfile::TempDir;

use crate::domain::{
    Application, Caller, CallerKind, ChangeRefs, Channel, CheckRequest, Decision, DecisionEvent,
    DecisionId, DecisionStatus, Environment, EventKind, Evidence, IdempotencyKey, ImageRef,
    JiraKey, PolicyFile, PolicyVersion, PolicyVersionRecord, Resolution, ResolutionOutcome,
    RuleOutcome, RuleResult, Severity, SourceReport, SourceRevision, SourceStatus, Verdict,
};

use super::test_schema::PgSchema;
use super::{
    DecisionFilter, Inserted, RuleFilter, RuleOutcomeFilter, Store, StoreError, StoreOptions, open,
};

// === fixtures ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

/// One test's own store, its URL (to reopen it or reach it raw), and what keeps it alive.
struct Fixture {
    store: Arc<dyn Store>,
    url: String,
    _place: Place,
}

enum Place {
    /// Keep the directory for as long as the store.
    Sqlite {
        _dir: TempDir,
    },
    Postgres {
        _schema: PgSchema,
    },
}

/// A store on a fresh database: for SQLite a file in a subdirectory that does not exist yet (to
/// cover directory creation), for PostgreSQL a fresh schema.
async fn fresh(backend: Backend) -> Fixture {
    let (url, place) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/data/portcullis.db", dir.path().display());
            (url, Place::Sqlite { _dir: dir })
        }
        Backend::Postgres => {
            // The `postgres::` arm of `on_both_backends!` has already skipped the test where no
            // server is reachable.
            let schema = PgSchema::create().await.unwrap();
            (schema.url(), Place::Postgres { _schema: schema })
        }
    };
    let store = open(&url, &StoreOptions::default()).await.unwrap();
    Fixture {
        store,
        url,
        _place: place,
    }
}

/// Runs raw SQL against the fixture's database, behind the store's back.
async fn raw_exec(fx: &Fixture, backend: Backend, sql: &str) {
    match backend {
        Backend::Sqlite => {
            let raw = sqlx::SqlitePool::connect(&fx.url).await.unwrap();
            sqlx::query(sql).execute(&raw).await.unwrap();
        }
        Backend::Postgres => {
            let raw = sqlx::PgPool::connect(&fx.url).await.unwrap();
            sqlx::query(sql).execute(&raw).await.unwrap();
        }
    }
}

/// Turns each `async fn name(Backend)` into `sqlite::name` and `postgres::name` tests.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if super::PgSchema::create().await.is_none() {
                        return;
                    }
                    super::$name(super::Backend::Postgres).await;
                }
            )*
        }
    };
}

on_both_backends!(
    insert_then_get_returns_an_equal_decision,
    a_large_decision_and_its_events_read_back_whole,
    unknown_id_is_none,
    the_same_id_twice_is_a_conflict,
    a_repeated_idempotency_key_returns_the_first_decision,
    concurrent_inserts_with_one_key_store_one_decision,
    a_key_generation_is_stored_once_and_the_newest_is_found,
    lists_filter_on_the_principal,
    filters_select_matching_decisions_newest_first,
    pages_cover_every_decision_once,
    page_size_zero_means_the_default,
    a_garbled_page_token_is_refused,
    reopening_the_store_keeps_every_decision,
    a_damaged_row_is_reported_as_corrupt,
    an_append_is_a_compare_and_set_on_the_last_event,
    the_loser_of_a_key_race_records_no_event,
    a_decision_stored_before_events_takes_its_first_append,
    events_form_one_hash_chain_across_decisions,
    replicas_appending_at_once_never_fork_the_chain,
    a_checkpoint_index_is_stored_once,
    retention_removes_old_final_decisions_and_keeps_their_places,
    subtree_roots_are_stored_once_and_found_by_place,
    concurrent_reviews_have_one_winner,
    a_free_job_is_claimed_once,
    a_lapsed_lease_is_taken_over,
    concurrent_claims_have_one_winner,
    decisions_are_found_by_image_digest_and_environment,
    a_policy_version_is_stored_once_and_read_back,
    concurrent_puts_of_a_policy_version_store_one,
    a_policy_text_that_does_not_hash_to_its_version_is_refused,
    lists_filter_on_the_image_digest,
    lists_filter_on_a_rule_and_whether_it_failed_or_passed,
    a_result_replaced_at_approval_moves_the_decision_between_outcomes,
    lists_filter_on_a_creation_time_range,
    traceability_filters_combine_and_page,
    a_pending_review_is_found_by_its_ticket_among_many,
    migration_0011_indexes_the_tickets_of_reviews_already_pending,
    the_sweepers_query_reads_only_the_reviews_due,
    a_followers_list_of_pending_reviews_reads_no_bodies,
    migration_0013_indexes_the_reviews_already_pending,
);

/// PostgreSQL's migration 0014 moves each decision's `decision_rules` rows onto its own row
/// (`failed_rules`, `passed_rules`) and drops the table; lists by rule answer as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_migration_0014_moves_rule_rows_onto_the_decision() {
    use RuleOutcome::{Fail, Missing, Pass};
    use RuleOutcomeFilter::{Failed, Passed};
    if PgSchema::create().await.is_none() {
        return;
    }
    let backend = Backend::Postgres;
    let fx = fresh(backend).await;
    let p = decision()
        .rules(&[("pinned", Pass), ("reviewed", Fail)])
        .build();
    let q = decision()
        .rules(&[("pinned", Missing), ("reviewed", Pass)])
        .build();
    let none = decision().rules(&[]).build();
    for x in [&p, &q, &none] {
        insert(fx.store.as_ref(), x).await;
    }
    // As the database was before 0014: the rules as rows, the arrays not there yet.
    for statement in [
        "DROP INDEX decisions_failed_rules",
        "DROP INDEX decisions_passed_rules",
        "ALTER TABLE decisions DROP COLUMN failed_rules, DROP COLUMN passed_rules",
        "CREATE TABLE decision_rules (rule_id TEXT COLLATE \"C\" NOT NULL, \
         decision_id TEXT COLLATE \"C\" NOT NULL, outcome TEXT COLLATE \"C\" NOT NULL, \
         PRIMARY KEY (rule_id, decision_id))",
        "DELETE FROM _sqlx_migrations WHERE version = 14",
    ] {
        raw_exec(&fx, backend, statement).await;
    }
    let rows = [
        ("pinned", &p, "passed"),
        ("reviewed", &p, "failed"),
        ("pinned", &q, "failed"),
        ("reviewed", &q, "passed"),
    ];
    for (rule_id, d, outcome) in rows {
        raw_exec(
            &fx,
            backend,
            &format!(
                "INSERT INTO decision_rules VALUES ('{rule_id}', '{}', '{outcome}')",
                d.id.as_str()
            ),
        )
        .await;
    }
    let store = open(&fx.url, &StoreOptions::default()).await.unwrap();
    let cases = [
        (rule("pinned", None), newest_first(&[&p, &q])),
        (rule("pinned", Some(Passed)), newest_first(&[&p])),
        (rule("pinned", Some(Failed)), newest_first(&[&q])),
        (rule("reviewed", Some(Failed)), newest_first(&[&p])),
        (rule("reviewed", Some(Passed)), newest_first(&[&q])),
    ];
    for (rule, want) in cases {
        let filter = DecisionFilter {
            rule,
            ..Default::default()
        };
        assert_eq!(all_ids(store.as_ref(), &filter).await, want, "{filter:?}");
    }
    let raw = sqlx::PgPool::connect(&fx.url).await.unwrap();
    let table: Option<String> = sqlx::query_scalar("SELECT to_regclass('decision_rules')::TEXT")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(table, None, "the rule rows' table is gone");
    // A decision without rules has two empty arrays, not NULLs.
    let (failed, passed): (Vec<String>, Vec<String>) = sqlx::query_as(
        "SELECT failed_rules::TEXT[], passed_rules::TEXT[] FROM decisions WHERE id = $1",
    )
    .bind(none.id.as_str())
    .fetch_one(&raw)
    .await
    .unwrap();
    assert!(failed.is_empty() && passed.is_empty());
}

/// Builds a complete, valid `Decision` through the domain's own parse constructors.
struct DecisionBuilder {
    application: &'static str,
    environment: &'static str,
    caller: CallerKind,
    verdict: Verdict,
    status: DecisionStatus,
    idempotency_key: Option<String>,
    /// The image digest is `sha256:` and 32 times this pair of hex digits.
    digest: &'static str,
    /// `(rule id, outcome)` of each rule result; `None` is the one passing `quality-gate`.
    rules: Option<Vec<(&'static str, RuleOutcome)>>,
    created_at: Option<chrono::DateTime<Utc>>,
}

fn decision() -> DecisionBuilder {
    DecisionBuilder {
        application: "payments-api",
        environment: "prod",
        caller: CallerKind::Spinnaker,
        verdict: Verdict::Continue,
        status: DecisionStatus::Final,
        idempotency_key: None,
        digest: "ab",
        rules: None,
        created_at: None,
    }
}

/// A rule result with `outcome` (and the effect a high-severity rule gives it).
fn rule_result(rule_id: &str, outcome: RuleOutcome) -> RuleResult {
    RuleResult {
        rule_id: rule_id.into(),
        title: format!("{rule_id} holds"),
        category: "general".into(),
        severity: Severity::High,
        outcome,
        effect: match outcome {
            RuleOutcome::Pass => Verdict::Continue,
            RuleOutcome::Fail | RuleOutcome::Missing => Verdict::ManualReview,
        },
        reason: format!("{rule_id}: {}", outcome.as_str()),
        remediation: String::new(),
        policy_file: "p.yaml".into(),
    }
}

impl DecisionBuilder {
    fn application(mut self, application: &'static str) -> Self {
        self.application = application;
        self
    }

    fn environment(mut self, environment: &'static str) -> Self {
        self.environment = environment;
        self
    }

    fn caller(mut self, caller: CallerKind) -> Self {
        self.caller = caller;
        self
    }

    fn verdict(mut self, verdict: Verdict) -> Self {
        self.verdict = verdict;
        self
    }

    fn status(mut self, status: DecisionStatus) -> Self {
        self.status = status;
        self
    }

    fn idempotency_key(mut self, key: &str) -> Self {
        self.idempotency_key = Some(key.to_string());
        self
    }

    fn digest(mut self, pair: &'static str) -> Self {
        self.digest = pair;
        self
    }

    fn rules(mut self, rules: &[(&'static str, RuleOutcome)]) -> Self {
        self.rules = Some(rules.to_vec());
        self
    }

    fn created_at(mut self, at: chrono::DateTime<Utc>) -> Self {
        self.created_at = Some(at);
        self
    }

    fn build(self) -> Decision {
        let digest = format!("sha256:{}", self.digest.repeat(32));
        let request = CheckRequest {
            application: Application::parse(self.application).unwrap(),
            environment: Environment::parse(self.environment).unwrap(),
            images: vec![ImageRef::parse(&format!("ghcr.io/acme/api:1.4.2@{digest}")).unwrap()],
            sources: vec![
                SourceRevision::new(
                    "acme/api".into(),
                    Some(crate::domain::CommitSha::parse("0123abcd").unwrap()),
                    Some("main".into()),
                )
                .unwrap(),
            ],
            caller: Caller {
                kind: self.caller,
                ids: BTreeMap::from([("execution_id".into(), "01J-exec".into())]),
            },
            triggered_by: Some("alice".into()),
            change_refs: ChangeRefs {
                jira_keys: vec![JiraKey::parse("OPS-42").unwrap()],
                servicenow_changes: vec![],
            },
            labels: BTreeMap::from([("team".into(), "payments".into())]),
            idempotency_key: self
                .idempotency_key
                .as_deref()
                .map(|k| IdempotencyKey::parse(k).unwrap()),
        };
        let document = serde_json::json!({
            "request": request.evidence_view(),
            "sonarqube": { "quality_gate": "OK", "coverage": 81, "issues": [] },
        });
        // A fixed time, not the wall clock: what a test compares against is then the same on
        // every run.
        let created_at = self
            .created_at
            .unwrap_or_else(|| chrono::DateTime::from_timestamp_millis(1_790_000_000_000).unwrap());
        let rule_results = self.rules.map(|rules| {
            rules
                .iter()
                .map(|(id, outcome)| rule_result(id, *outcome))
                .collect::<Vec<_>>()
        });
        Decision {
            id: DecisionId::generate(),
            verdict: self.verdict,
            status: self.status,
            request,
            rule_results: rule_results.unwrap_or_else(|| {
                vec![RuleResult {
                    rule_id: "quality-gate".into(),
                    title: "Quality gate passes".into(),
                    category: "code".into(),
                    severity: Severity::High,
                    outcome: RuleOutcome::Pass,
                    effect: Verdict::Continue,
                    reason: "quality gate is OK".into(),
                    remediation: "fix the failing conditions in SonarQube".into(),
                    policy_file: "builtin:baseline".into(),
                }]
            }),
            evidence: Evidence {
                document,
                sources: vec![SourceReport {
                    name: "sonarqube".into(),
                    kind: "sonarqube".into(),
                    status: SourceStatus::Ok,
                    reason: None,
                    message: "quality gate fetched".into(),
                    duration_ms: 42,
                    url: Some("https://sonar.example/api/qualitygates/project_status".into()),
                    excerpt: Some("{\"projectStatus\":{\"status\":\"OK\"}}".into()),
                }],
            },
            policy_version: format!("sha256:{}", "cd".repeat(32)),
            created_at,
            decided_at: (self.status == DecisionStatus::Final)
                .then(|| created_at + ChronoDuration::milliseconds(3)),
            summary: format!("{}: no blocking rules", self.verdict),
            resolution: None,
            review_deadline: None,
            approvals: Vec::new(),
            review_ticket: None,
            refused_attempts: Vec::new(),
            principal: Some("ci".into()),
            replaces: None,
            key_generation: 0,
        }
    }
}

async fn insert(store: &dyn Store, d: &Decision) {
    let inserted = store.insert_decision(d, "fp").await.unwrap();
    assert!(matches!(inserted, Inserted::Created));
}

async fn all_ids(store: &dyn Store, filter: &DecisionFilter) -> Vec<DecisionId> {
    let page = store.list_decisions(filter, 500, None).await.unwrap();
    assert!(page.next_page_token.is_none());
    page.decisions.into_iter().map(|d| d.id).collect()
}

/// Every event recorded for decision `id`, oldest first, read the way proofs and exports read
/// them: sequenced into the log first, then the decision's log entries.
async fn events_of(store: &dyn Store, id: &DecisionId) -> Vec<DecisionEvent> {
    while store.sequence_events(1000).await.unwrap() > 0 {}
    store
        .decision_entries(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| serde_json::from_str(e.body.as_deref().unwrap()).unwrap())
        .collect()
}

// === insert and get ===

async fn insert_then_get_returns_an_equal_decision(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let d = decision()
        .status(DecisionStatus::Pending)
        .verdict(Verdict::ManualReview)
        .build();
    insert(store.as_ref(), &d).await;
    assert_eq!(store.get_decision(&d.id).await.unwrap(), Some(d));
}

async fn unknown_id_is_none(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    assert_eq!(
        store.get_decision(&DecisionId::generate()).await.unwrap(),
        None
    );
}

async fn the_same_id_twice_is_a_conflict(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let d = decision().build();
    insert(store.as_ref(), &d).await;
    let e = store.insert_decision(&d, "fp").await.unwrap_err();
    assert_eq!(e.reason_code(), "store.conflict", "{e}");
}

#[tokio::test]
async fn in_memory_store_is_one_database() {
    let store = open("sqlite::memory:", &StoreOptions::default())
        .await
        .unwrap();
    let ds: Vec<_> = (0..5).map(|_| decision().build()).collect();
    for d in &ds {
        insert(store.as_ref(), d).await;
    }
    // Concurrent reads would each get their own empty database if the pool had more than one
    // connection.
    let reads = ds.iter().map(|d| store.get_decision(&d.id));
    for (got, d) in futures::future::join_all(reads).await.into_iter().zip(&ds) {
        assert_eq!(got.unwrap().as_ref(), Some(d));
    }
    store.ping().await.unwrap();
}

// === idempotency ===

async fn a_repeated_idempotency_key_returns_the_first_decision(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let first = decision().idempotency_key("exec-1").build();
    assert!(matches!(
        store.insert_decision(&first, "fp-1").await.unwrap(),
        Inserted::Created
    ));

    let second = decision()
        .idempotency_key("exec-1")
        .verdict(Verdict::Terminate)
        .build();
    let replay = store.insert_decision(&second, "fp-2").await.unwrap();
    assert!(
        matches!(&replay, Inserted::Existing { decision, fingerprint }
            if **decision == first && fingerprint == "fp-1"),
        "a reused key must return the first decision, got {replay:?}"
    );
    assert_eq!(store.get_decision(&second.id).await.unwrap(), None);
    let key = IdempotencyKey::parse("exec-1").unwrap();
    assert_eq!(
        store.find_by_idempotency_key(&key).await.unwrap(),
        Some((first.clone(), "fp-1".to_string()))
    );
    let unused = IdempotencyKey::parse("exec-unused").unwrap();
    assert_eq!(store.find_by_idempotency_key(&unused).await.unwrap(), None);

    // Decisions without a key never collide with each other.
    insert(store.as_ref(), &decision().build()).await;
    insert(store.as_ref(), &decision().build()).await;
    assert_eq!(
        all_ids(store.as_ref(), &DecisionFilter::default())
            .await
            .len(),
        3
    );
}

async fn concurrent_inserts_with_one_key_store_one_decision(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let calls = (0..20).map(|i| {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let d = decision().idempotency_key("exec-race").build();
            match store.insert_decision(&d, &format!("fp-{i}")).await.unwrap() {
                Inserted::Created => (d.id, true),
                Inserted::Existing { decision, .. } => (decision.id, false),
            }
        })
    });
    let results: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();

    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
    let ids: HashSet<_> = results.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        ids.len(),
        1,
        "every call must answer with the same decision"
    );
    let stored = all_ids(store.as_ref(), &DecisionFilter::default()).await;
    assert_eq!(stored, ids.into_iter().collect::<Vec<_>>());
}

async fn a_key_generation_is_stored_once_and_the_newest_is_found(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let first = decision().idempotency_key("exec-gen").build();
    insert(store.as_ref(), &first).await;
    // Replicas that all found `first` stale race to store generation 1: exactly one does.
    let calls = (0..10).map(|_| {
        let store = Arc::clone(&store);
        let replaces = first.id.clone();
        tokio::spawn(async move {
            let mut d = decision().idempotency_key("exec-gen").build();
            d.key_generation = 1;
            d.replaces = Some(replaces);
            match store.insert_decision(&d, "fp").await.unwrap() {
                Inserted::Created => (d.id, true),
                Inserted::Existing { decision, .. } => (decision.id, false),
            }
        })
    });
    let results: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
    let ids: HashSet<_> = results.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(
        ids.len(),
        1,
        "every racer must answer with the one new decision"
    );
    let second = ids.into_iter().next().unwrap();

    let key = IdempotencyKey::parse("exec-gen").unwrap();
    let (newest, _) = store.find_by_idempotency_key(&key).await.unwrap().unwrap();
    assert_eq!(newest.id, second);
    assert_eq!(newest.key_generation, 1);
    assert_eq!(newest.replaces, Some(first.id.clone()));
    // The first generation is still there, unchanged.
    assert_eq!(store.get_decision(&first.id).await.unwrap(), Some(first));
    // A caller's key that looks like a slot cannot be sent (no spaces in keys).
    assert!(IdempotencyKey::parse("exec-gen #1").is_err());
}

async fn lists_filter_on_the_principal(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let mine = decision().build();
    let mut theirs = decision().build();
    theirs.principal = Some("other".into());
    insert(store.as_ref(), &mine).await;
    insert(store.as_ref(), &theirs).await;
    let filter = DecisionFilter {
        principal: Some("ci".into()),
        ..Default::default()
    };
    assert_eq!(all_ids(store.as_ref(), &filter).await, vec![mine.id]);
}

// === listing ===

async fn filters_select_matching_decisions_newest_first(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let a = decision().application("shop").environment("prod").build();
    let b = decision()
        .application("shop")
        .environment("staging")
        .caller(CallerKind::Argocd)
        .build();
    let c = decision()
        .application("ledger")
        .verdict(Verdict::ManualReview)
        .status(DecisionStatus::Pending)
        .build();
    let d = decision()
        .application("ledger")
        .verdict(Verdict::Terminate)
        .caller(CallerKind::Cli)
        .build();
    for x in [&a, &b, &c, &d] {
        insert(store.as_ref(), x).await;
    }
    let ids = |xs: &[&Decision]| {
        let mut v: Vec<_> = xs.iter().map(|x| x.id.clone()).collect();
        v.sort_by(|x, y| y.cmp(x));
        v
    };

    let all = all_ids(store.as_ref(), &DecisionFilter::default()).await;
    assert_eq!(all, ids(&[&a, &b, &c, &d]));
    assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first");

    let cases = [
        (
            DecisionFilter {
                application: Some(Application::parse("shop").unwrap()),
                ..Default::default()
            },
            ids(&[&a, &b]),
        ),
        (
            DecisionFilter {
                environment: Some(Environment::parse("staging").unwrap()),
                ..Default::default()
            },
            ids(&[&b]),
        ),
        (
            DecisionFilter {
                verdict: Some(Verdict::Terminate),
                ..Default::default()
            },
            ids(&[&d]),
        ),
        (
            DecisionFilter {
                status: Some(DecisionStatus::Pending),
                ..Default::default()
            },
            ids(&[&c]),
        ),
        (
            DecisionFilter {
                caller_kind: Some(CallerKind::Spinnaker),
                ..Default::default()
            },
            ids(&[&a, &c]),
        ),
        (
            DecisionFilter {
                application: Some(Application::parse("ledger").unwrap()),
                environment: Some(Environment::parse("prod").unwrap()),
                status: Some(DecisionStatus::Final),
                ..Default::default()
            },
            ids(&[&d]),
        ),
        (
            DecisionFilter {
                application: Some(Application::parse("nobody").unwrap()),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(all_ids(store.as_ref(), &filter).await, want, "{filter:?}");
    }
}

async fn pages_cover_every_decision_once(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let mut want = Vec::new();
    for i in 0..8 {
        // Every other decision is for another application, so paging with a filter skips rows.
        let app = if i % 2 == 0 { "shop" } else { "ledger" };
        let d = decision().application(app).build();
        insert(store.as_ref(), &d).await;
        want.push(d);
    }

    let filter = DecisionFilter::default();
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store
            .list_decisions(&filter, 3, token.as_deref())
            .await
            .unwrap();
        sizes.push(page.decisions.len());
        got.extend(page.decisions.into_iter().map(|d| d.id));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 2]);
    let mut want_ids: Vec<_> = want.iter().map(|d| d.id.clone()).collect();
    want_ids.sort_by(|x, y| y.cmp(x));
    assert_eq!(got, want_ids, "no duplicates, no gaps, newest first");

    // A page that ends exactly at the last row has no token (no empty page to fetch).
    let shop = DecisionFilter {
        application: Some(Application::parse("shop").unwrap()),
        ..Default::default()
    };
    let first = store.list_decisions(&shop, 2, None).await.unwrap();
    let second = store
        .list_decisions(&shop, 2, first.next_page_token.as_deref())
        .await
        .unwrap();
    assert_eq!(second.decisions.len(), 2);
    assert!(second.next_page_token.is_none());
    assert!(
        second
            .decisions
            .iter()
            .all(|d| d.request.application.as_str() == "shop")
    );
}

async fn page_size_zero_means_the_default(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    for _ in 0..(super::DEFAULT_PAGE_SIZE + 1) {
        insert(store.as_ref(), &decision().build()).await;
    }
    let page = store
        .list_decisions(&DecisionFilter::default(), 0, None)
        .await
        .unwrap();
    assert_eq!(page.decisions.len(), super::DEFAULT_PAGE_SIZE as usize);
    assert!(page.next_page_token.is_some());
    let page = store
        .list_decisions(&DecisionFilter::default(), u32::MAX, None)
        .await
        .unwrap();
    assert_eq!(page.decisions.len(), super::DEFAULT_PAGE_SIZE as usize + 1);
}

async fn a_garbled_page_token_is_refused(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    for token in ["not-hex", "00ff", ""] {
        let e = store
            .list_decisions(&DecisionFilter::default(), 10, Some(token))
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::InvalidPageToken), "{token}: {e}");
        assert_eq!(e.reason_code(), "store.invalid_page_token");
    }
}

// === durability ===

async fn reopening_the_store_keeps_every_decision(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let url = fx.url.clone();
    let d = decision().idempotency_key("exec-restart").build();
    insert(store.as_ref(), &d).await;
    drop(store);

    // Migrations run again on open and must find nothing to do.
    let store = open(&url, &StoreOptions::default()).await.unwrap();
    assert_eq!(store.get_decision(&d.id).await.unwrap().as_ref(), Some(&d));
    // The idempotency key survives too.
    let again = decision().idempotency_key("exec-restart").build();
    assert!(matches!(
        store.insert_decision(&again, "fp").await.unwrap(),
        Inserted::Existing { decision, .. } if *decision == d
    ));
}

async fn a_damaged_row_is_reported_as_corrupt(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let good = decision().build();
    let bad = decision().build();
    insert(store.as_ref(), &good).await;
    insert(store.as_ref(), &bad).await;

    // Ids are UUIDs (no quotes), so they can be spliced into the SQL as literals, which keeps
    // one statement text for both backends' placeholder styles.
    raw_exec(
        &fx,
        backend,
        &format!(
            "UPDATE decisions SET body = '{{\"not\": \"a decision\"}}' WHERE id = '{}'",
            bad.id
        ),
    )
    .await;
    raw_exec(
        &fx,
        backend,
        &format!(
            "UPDATE decisions SET schema_version = 99 WHERE id = '{}'",
            good.id
        ),
    )
    .await;

    for id in [&good.id, &bad.id] {
        let e = store.get_decision(id).await.unwrap_err();
        assert_eq!(e.reason_code(), "store.corrupt", "{e}");
        assert!(e.to_string().contains(id.as_str()), "{e}");
    }
}

// === review lifecycle ===

/// `pending` ended as `outcome`, and the event that says so.
fn resolve(pending: &Decision, outcome: ResolutionOutcome, by: &str) -> (Decision, DecisionEvent) {
    let at = pending.created_at + ChronoDuration::milliseconds(5);
    let resolution = Resolution {
        outcome,
        by: by.into(),
        principal: Some(by.into()),
        at,
        comment: String::new(),
        channel: Channel::Api,
    };
    let event = DecisionEvent::new(
        pending.id.clone(),
        at,
        EventKind::Resolved {
            resolution: resolution.clone(),
            groups: None,
            newly_blocking: Vec::new(),
        },
    );
    let next = crate::domain::apply(Some(pending), &event, at).unwrap();
    (next, event)
}

async fn an_append_is_a_compare_and_set_on_the_last_event(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let pending = decision()
        .verdict(Verdict::ManualReview)
        .status(DecisionStatus::Pending)
        .idempotency_key("exec-review")
        .build();
    insert(store.as_ref(), &pending).await;
    let (_, count) = store
        .get_decision_versioned(&pending.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(count, 1, "the created event");

    let (approved, approval) = resolve(&pending, ResolutionOutcome::Approved, "bob");
    assert!(
        store
            .append_events(&approved, 1, std::slice::from_ref(&approval))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_decision(&pending.id).await.unwrap().as_ref(),
        Some(&approved)
    );

    // A second reviewer working from the state with one event loses, and writes nothing.
    let (rejected, rejection) = resolve(&pending, ResolutionOutcome::Rejected, "carol");
    assert!(
        !store
            .append_events(&rejected, 1, std::slice::from_ref(&rejection))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get_decision_versioned(&pending.id).await.unwrap(),
        Some((approved.clone(), 2))
    );
    let events = events_of(store.as_ref(), &pending.id).await;
    assert_eq!(events.len(), 2);
    assert!(matches!(&events[0].change, EventKind::Created { decision } if **decision == pending));
    assert_eq!(events[1], approval);

    // The filter columns moved with the body.
    let finals = DecisionFilter {
        status: Some(DecisionStatus::Final),
        verdict: Some(Verdict::Continue),
        ..Default::default()
    };
    assert_eq!(
        all_ids(store.as_ref(), &finals).await,
        vec![pending.id.clone()]
    );
    let pendings = DecisionFilter {
        status: Some(DecisionStatus::Pending),
        ..Default::default()
    };
    assert!(all_ids(store.as_ref(), &pendings).await.is_empty());

    // An unknown id applies nothing.
    let stranger = decision().build();
    assert!(!store.append_events(&stranger, 0, &[]).await.unwrap());
    assert!(events_of(store.as_ref(), &stranger.id).await.is_empty());
}

async fn the_loser_of_a_key_race_records_no_event(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let first = decision().idempotency_key("exec-events").build();
    insert(store.as_ref(), &first).await;
    let second = decision().idempotency_key("exec-events").build();
    let inserted = store.insert_decision(&second, "fp").await.unwrap();
    assert!(matches!(inserted, Inserted::Existing { .. }));
    assert_eq!(events_of(store.as_ref(), &first.id).await.len(), 1);
    assert!(events_of(store.as_ref(), &second.id).await.is_empty());
    // The loser took no place in the log: the next decision takes the one after the winner's.
    let third = decision().idempotency_key("exec-events-2").build();
    insert(store.as_ref(), &third).await;
    while store.sequence_events(1000).await.unwrap() > 0 {}
    let (head, head_hash) = store.ledger_head().await.unwrap();
    assert_eq!(head, 2);
    let entries = store.ledger_entries(1, head).await.unwrap();
    assert_eq!(assert_chain(&entries), head_hash);
    assert_eq!(entries[1].decision_id.as_deref(), Some(third.id.as_str()));
}

async fn a_decision_stored_before_events_takes_its_first_append(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let pending = decision()
        .verdict(Verdict::ManualReview)
        .status(DecisionStatus::Pending)
        .build();
    insert(store.as_ref(), &pending).await;
    // As migration 0005 leaves a decision stored before it: no events, count 0.
    raw_exec(&fx, backend, "DELETE FROM decision_events").await;
    raw_exec(&fx, backend, "UPDATE decisions SET event_count = 0").await;
    let (expired, expiry) = resolve(&pending, ResolutionOutcome::Canceled, "ci");
    assert!(
        !store
            .append_events(&expired, 1, std::slice::from_ref(&expiry))
            .await
            .unwrap()
    );
    assert!(
        store
            .append_events(&expired, 0, std::slice::from_ref(&expiry))
            .await
            .unwrap()
    );
    assert_eq!(events_of(store.as_ref(), &pending.id).await, vec![expiry]);
}

async fn concurrent_reviews_have_one_winner(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let pending = decision()
        .verdict(Verdict::ManualReview)
        .status(DecisionStatus::Pending)
        .build();
    insert(store.as_ref(), &pending).await;
    let calls = (0..10).map(|i| {
        let store = Arc::clone(&store);
        let outcome = if i % 2 == 0 {
            ResolutionOutcome::Approved
        } else {
            ResolutionOutcome::Rejected
        };
        let (resolved, event) = resolve(&pending, outcome, &format!("reviewer-{i}"));
        tokio::spawn(async move {
            let applied = store
                .append_events(&resolved, 1, std::slice::from_ref(&event))
                .await
                .unwrap();
            applied.then_some((resolved, event))
        })
    });
    let winners: Vec<(Decision, DecisionEvent)> = futures::future::join_all(calls)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(winners.len(), 1, "exactly one reviewer wins");
    assert_eq!(
        store.get_decision(&pending.id).await.unwrap().as_ref(),
        winners.first().map(|(d, _)| d)
    );
    let events = events_of(store.as_ref(), &pending.id).await;
    assert_eq!(events.len(), 2, "the created event and the winner's");
    assert_eq!(events.get(1), winners.first().map(|(_, e)| e));
}

/// Recomputes the chain over `entries` (which must start at sequence 1) and checks each hash
/// and that sequence numbers have no gap; returns the last hash.
fn assert_chain(entries: &[super::LedgerEntry]) -> String {
    let mut previous = crate::audit::chain::GENESIS;
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "no gap, no reordering");
        previous = crate::audit::chain::link(&previous, e.body.as_deref().unwrap());
        assert_eq!(crate::audit::hex(&previous), e.hash, "event {}", e.seq);
    }
    crate::audit::hex(&previous)
}

async fn events_form_one_hash_chain_across_decisions(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    assert_eq!(
        store.ledger_head().await.unwrap(),
        (0, "0".repeat(64)),
        "an empty log starts at the zero hash"
    );
    let pending = decision()
        .verdict(Verdict::ManualReview)
        .status(DecisionStatus::Pending)
        .build();
    let other = decision().build();
    insert(store.as_ref(), &pending).await;
    insert(store.as_ref(), &other).await;
    let (approved, approval) = resolve(&pending, ResolutionOutcome::Approved, "bob");
    assert!(
        store
            .append_events(&approved, 1, std::slice::from_ref(&approval))
            .await
            .unwrap()
    );
    match backend {
        // One writer: events are numbered and hashed as they are stored (migration 0010).
        Backend::Sqlite => {
            assert_eq!(store.decision_entries(&pending.id).await.unwrap().len(), 2);
            assert_eq!(store.sequence_events(1000).await.unwrap(), 0);
        }
        // Several replicas: the lease-held sequencer numbers them afterwards, in batches.
        Backend::Postgres => {
            assert_eq!(
                store.decision_entries(&pending.id).await.unwrap(),
                vec![],
                "nothing is numbered before the sequencer runs"
            );
            assert_eq!(store.sequence_events(2).await.unwrap(), 2);
            assert_eq!(store.sequence_events(1000).await.unwrap(), 1);
            assert_eq!(store.sequence_events(1000).await.unwrap(), 0);
        }
    }
    let (head, head_hash) = store.ledger_head().await.unwrap();
    assert_eq!(head, 3);
    let entries = store.ledger_entries(1, head).await.unwrap();
    assert_eq!(assert_chain(&entries), head_hash);
    // The stored text is the canonical text of the event, so it is what was hashed; the
    // `created` event is written from a borrowed view, byte for byte the owned event's text.
    let created = DecisionEvent::new(
        pending.id.clone(),
        pending.created_at,
        EventKind::Created {
            decision: Box::new(pending.clone()),
        },
    );
    assert_eq!(
        entries[0].body.as_deref().unwrap(),
        crate::audit::chain::event_text(&created).unwrap()
    );
    // And through a `Value`, sorting keys itself: the definition, not the one-pass writer.
    assert_eq!(
        entries[0].body.as_deref().unwrap(),
        crate::audit::chain::canonical_json_slow(&created).unwrap()
    );
    assert_eq!(
        entries[2].body.as_deref().unwrap(),
        crate::audit::chain::event_text(&approval).unwrap()
    );
    let mine = store.decision_entries(&pending.id).await.unwrap();
    assert_eq!(
        mine.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 3],
        "a decision's events, in order, with their places in the log"
    );
}

async fn replicas_appending_at_once_never_fork_the_chain(backend: Backend) {
    let fx = fresh(backend).await;
    // A second replica: its own connection pool on the same database.
    let other = open(&fx.url, &StoreOptions::default()).await.unwrap();
    let replicas = [Arc::clone(&fx.store), other];
    let writers = (0..24).map(|i| {
        let store = Arc::clone(&replicas[i % 2]);
        tokio::spawn(async move {
            let pending = decision()
                .verdict(Verdict::ManualReview)
                .status(DecisionStatus::Pending)
                .build();
            insert(store.as_ref(), &pending).await;
            let (done, event) = resolve(&pending, ResolutionOutcome::Rejected, "carol");
            assert!(
                store
                    .append_events(&done, 1, std::slice::from_ref(&event))
                    .await
                    .unwrap()
            );
        })
    });
    // Sequencers on both replicas, racing each other and the writers.
    let sequencers = (0..6).map(|i| {
        let store = Arc::clone(&replicas[i % 2]);
        tokio::spawn(async move { store.sequence_events(5).await.unwrap() })
    });
    let (written, numbered) = futures::future::join(
        futures::future::join_all(writers),
        futures::future::join_all(sequencers),
    )
    .await;
    for w in written {
        w.unwrap();
    }
    let mut total: u64 = numbered.into_iter().map(|n| n.unwrap()).sum();
    loop {
        let n = replicas[1].sequence_events(7).await.unwrap();
        if n == 0 {
            break;
        }
        total += n;
    }
    let by_sequencer = match backend {
        Backend::Sqlite => 0,
        Backend::Postgres => 48,
    };
    assert_eq!(total, by_sequencer, "every event numbered exactly once");
    let (head, head_hash) = fx.store.ledger_head().await.unwrap();
    assert_eq!(head, 48);
    let entries = fx.store.ledger_entries(1, head).await.unwrap();
    assert_eq!(entries.len(), 48);
    assert_eq!(assert_chain(&entries), head_hash);
}

async fn a_checkpoint_index_is_stored_once(backend: Backend) {
    let fx = fresh(backend).await;
    let signer = crate::audit::checkpoint::CheckpointSigner::generate();
    assert!(fx.store.latest_checkpoint().await.unwrap().is_none());
    let checkpoint = |index: u64| crate::audit::checkpoint::Checkpoint {
        index,
        tree_size: index * 2,
        root: "ab".repeat(32),
        last_event_hash: "cd".repeat(32),
        previous: "00".repeat(32),
        at: chrono::DateTime::from_timestamp_millis(1_790_000_000_000).unwrap(),
        key_id: signer.key_id().to_string(),
    };
    let first = signer.sign(checkpoint(1)).unwrap();
    assert!(fx.store.insert_checkpoint(&first).await.unwrap());
    let rival = signer.sign(checkpoint(1)).unwrap();
    assert!(!fx.store.insert_checkpoint(&rival).await.unwrap());
    let second = signer.sign(checkpoint(2)).unwrap();
    assert!(fx.store.insert_checkpoint(&second).await.unwrap());
    assert_eq!(fx.store.latest_checkpoint().await.unwrap(), Some(second));
}

async fn retention_removes_old_final_decisions_and_keeps_their_places(backend: Backend) {
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();
    let done = decision().build();
    let pending = decision()
        .verdict(Verdict::ManualReview)
        .status(DecisionStatus::Pending)
        .build();
    insert(store, &done).await;
    insert(store, &pending).await;
    let by_sequencer = match backend {
        Backend::Sqlite => 0,
        Backend::Postgres => 2,
    };
    assert_eq!(store.sequence_events(1000).await.unwrap(), by_sequencer);
    // Final but numbered after the checkpoint (or, on PostgreSQL, not numbered yet): outside
    // the signed part of the log.
    let unsigned = decision().build();
    insert(store, &unsigned).await;
    let hashes = store.ledger_hashes(1, 2).await.unwrap();
    let later = done.created_at + ChronoDuration::minutes(1);

    assert_eq!(
        store.prune_decisions(0, later, 10).await.unwrap(),
        0,
        "nothing beyond the anchor goes"
    );
    assert_eq!(
        store.prune_decisions(2, done.created_at, 10).await.unwrap(),
        0,
        "nothing decided after the cut goes"
    );
    assert_eq!(store.prune_decisions(2, later, 10).await.unwrap(), 1);
    assert!(store.get_decision(&done.id).await.unwrap().is_none());
    assert!(store.get_decision(&pending.id).await.unwrap().is_some());
    assert!(store.get_decision(&unsigned.id).await.unwrap().is_some());
    assert_eq!(
        store.ledger_hashes(1, 2).await.unwrap(),
        hashes,
        "every place keeps its hash"
    );
    let entries = store.ledger_entries(1, 2).await.unwrap();
    assert_eq!(
        (
            entries[0].decision_id.as_deref(),
            entries[0].body.as_deref()
        ),
        (None, None),
        "the removed event's text is gone"
    );
    assert_eq!(entries[1].decision_id.as_deref(), Some(pending.id.as_str()));
    assert_eq!(store.prune_decisions(2, later, 10).await.unwrap(), 0);
}

async fn subtree_roots_are_stored_once_and_found_by_place(backend: Backend) {
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();
    let node = |level: u32, index: u64, byte: u8| crate::audit::merkle::Node {
        level,
        index,
        hash: [byte; 32],
    };
    store
        .insert_ledger_nodes(&[node(4, 0, 1), node(4, 1, 2), node(5, 0, 3)])
        .await
        .unwrap();
    // A second signer writing the same places changes nothing.
    store.insert_ledger_nodes(&[node(4, 0, 9)]).await.unwrap();
    let mut found = store
        .ledger_nodes(&[(4, 0), (5, 0), (6, 0), (4, 7)])
        .await
        .unwrap();
    found.sort_by_key(|n| (n.level, n.index));
    assert_eq!(found, vec![node(4, 0, 1), node(5, 0, 3)]);
}

// === leases ===

const TTL: std::time::Duration = std::time::Duration::from_secs(60);

async fn a_free_job_is_claimed_once(backend: Backend) {
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();

    let a = store
        .try_claim("review-poller", "replica-a", TTL)
        .await
        .unwrap();
    let a = a.unwrap();
    assert_eq!(
        (a.job.as_str(), a.holder.as_str(), a.generation),
        ("review-poller", "replica-a", 1)
    );
    assert_eq!(
        store
            .try_claim("review-poller", "replica-b", TTL)
            .await
            .unwrap(),
        None
    );
    // Claiming again as the holder extends the same lease; another job is independent.
    assert_eq!(
        store
            .try_claim("review-poller", "replica-a", TTL)
            .await
            .unwrap(),
        Some(a.clone())
    );
    assert!(
        store
            .try_claim("expiry-sweep", "replica-b", TTL)
            .await
            .unwrap()
            .is_some()
    );

    // Released, it is free at once, and the next holder's generation is higher.
    assert!(store.release(&a).await.unwrap());
    assert!(!store.release(&a).await.unwrap(), "released twice");
    let b = store
        .try_claim("review-poller", "replica-b", TTL)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b.generation, 2);
    assert_eq!(
        store
            .try_claim("review-poller", "replica-a", TTL)
            .await
            .unwrap(),
        None
    );
}

async fn a_lapsed_lease_is_taken_over(backend: Backend) {
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();
    // The shortest lease there is (1 ms): leases are kept by the database's clock, which no test
    // can set, so this is the least time that has to pass.
    let dead = store
        .try_claim(
            "review-poller",
            "replica-a",
            std::time::Duration::from_millis(1),
        )
        .await
        .unwrap()
        .unwrap();

    // replica-a "dies" (never renews). replica-b keeps trying, as a poller loop would, and gets
    // the job once the lease has lapsed; each try is a round trip to the database, no sleep.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let taken = loop {
        if let Some(lease) = store
            .try_claim("review-poller", "replica-b", TTL)
            .await
            .unwrap()
        {
            break lease;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lease never lapsed"
        );
    };
    assert_eq!(taken.generation, dead.generation + 1);
    // The old holder finds out when it next claims (a job renews its lease by claiming again),
    // and cannot release the new holder's lease; the new holder's claim extends its own.
    assert_eq!(
        store
            .try_claim("review-poller", "replica-a", TTL)
            .await
            .unwrap(),
        None
    );
    assert!(!store.release(&dead).await.unwrap());
    assert_eq!(
        store
            .try_claim("review-poller", "replica-b", TTL)
            .await
            .unwrap(),
        Some(taken)
    );
}

async fn concurrent_claims_have_one_winner(backend: Backend) {
    let fx = fresh(backend).await;
    let calls = (0..12).map(|i| {
        let store = Arc::clone(&fx.store);
        tokio::spawn(async move {
            store
                .try_claim("expiry-sweep", &format!("replica-{i}"), TTL)
                .await
                .unwrap()
        })
    });
    let winners: Vec<_> = futures::future::join_all(calls)
        .await
        .into_iter()
        .filter_map(|r| r.unwrap())
        .collect();
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(winners[0].generation, 1);
}

// === opening ===

#[tokio::test]
async fn an_unreachable_postgres_ends_in_a_clear_error_after_the_deadline() {
    // A port nobody listens on: bind, note the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = StoreOptions {
        max_connections: 2,
        connect_timeout: std::time::Duration::from_millis(50),
        ..StoreOptions::default()
    };
    let e = open(
        &format!("postgres://portcullis:hunter2@127.0.0.1:{port}/gate?password=hunter2"),
        &options,
    )
    .await
    .err()
    .unwrap();
    assert_eq!(e.reason_code(), "store.unavailable", "{e}");
    let message = e.to_string();
    assert!(message.contains("did not answer within"), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{port}/gate")),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test]
async fn a_wrong_postgres_database_fails_at_once_without_the_password() {
    if PgSchema::create().await.is_none() {
        return;
    }
    let base = super::test_schema::test_database_url();
    let (scheme_and_auth, _) = base.rsplit_once('/').unwrap();
    let url = format!("{scheme_and_auth}/portcullis_no_such_database?password=hunter2");
    let e = open(&url, &StoreOptions::default()).await.err().unwrap();
    let message = e.to_string();
    assert!(message.contains("refused the connection"), "{message}");
    assert!(message.contains("portcullis_no_such_database"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_migrating_at_once_share_one_schema() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let url = schema.url();
    let options = StoreOptions::default();
    let opens = (0..4).map(|_| open(&url, &options));
    let stores: Vec<_> = futures::future::join_all(opens)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let d = decision().idempotency_key("exec-migrate").build();
    insert(stores[0].as_ref(), &d).await;
    for s in &stores {
        assert_eq!(s.get_decision(&d.id).await.unwrap().as_ref(), Some(&d));
    }
}

#[tokio::test]
async fn other_databases_are_unsupported_and_secrets_stay_out_of_errors() {
    let e = open(
        "mysql://portcullis:hunter2@db.internal/gate?ssl=true",
        &StoreOptions::default(),
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(e, StoreError::UnsupportedUrl(_)), "{e}");
    assert_eq!(e.reason_code(), "store.unsupported_url");
    let message = e.to_string();
    assert!(
        !message.contains("hunter2") && !message.contains("portcullis:"),
        "{message}"
    );
    assert!(message.contains("db.internal"), "{message}");
}

#[test]
fn redaction_keeps_what_helps_and_drops_what_may_be_secret() {
    use super::redact_url;
    assert_eq!(
        redact_url("postgres://u:p@h:5432/db?password=x"),
        "postgres://…@h:5432/db?…"
    );
    assert_eq!(
        redact_url("sqlite:///var/lib/portcullis/db.sqlite"),
        "sqlite:///var/lib/portcullis/db.sqlite"
    );
    assert_eq!(redact_url("redis://h"), "redis://h");
    assert!(redact_url(&"x".repeat(10_000)).chars().count() <= 201);
}

async fn decisions_are_found_by_image_digest_and_environment(backend: Backend) {
    let f = fresh(backend).await;
    let digest = crate::domain::Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
    let prod = Environment::parse("prod").unwrap();
    let first = decision().build();
    let staging = decision().environment("staging").build();
    let later = decision().verdict(Verdict::Terminate).build();
    let pending = decision()
        .verdict(Verdict::ManualReview)
        .status(DecisionStatus::Pending)
        .build();
    for d in [&first, &staging, &later, &pending] {
        f.store.insert_decision(d, "fp").await.unwrap();
    }
    let found = f
        .store
        .decisions_for_image(&digest, &prod, 20)
        .await
        .unwrap();
    let mut want = vec![
        first.id.as_str().to_string(),
        later.id.as_str().to_string(),
        pending.id.as_str().to_string(),
    ];
    want.sort();
    want.reverse();
    let ids: Vec<String> = found.iter().map(|d| d.id.as_str().to_string()).collect();
    assert_eq!(ids, want, "newest first, prod only");
    let by_id = |id: &DecisionId| found.iter().find(|d| &d.id == id).unwrap().clone();
    assert_eq!(by_id(&later.id).verdict, Verdict::Terminate);
    assert_eq!(by_id(&pending.id).status, DecisionStatus::Pending);
    assert_eq!(by_id(&first.id).application, "payments-api");
    assert_eq!(
        by_id(&first.id).decided_at.map(|t| t.timestamp_millis()),
        first.decided_at.map(|t| t.timestamp_millis())
    );
    let staged = f
        .store
        .decisions_for_image(&digest, &Environment::parse("staging").unwrap(), 20)
        .await
        .unwrap();
    assert_eq!(staged.len(), 1);
    assert_eq!(staged[0].id, staging.id);
    let other = crate::domain::Digest::parse(&format!("sha256:{}", "cd".repeat(32))).unwrap();
    assert!(
        f.store
            .decisions_for_image(&other, &prod, 20)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        f.store
            .decisions_for_image(&digest, &prod, 1)
            .await
            .unwrap()
            .len(),
        1
    );

    // A review that ends is seen at once: the lookup reads status and verdict from the decision.
    let (approved, approval) = resolve(&pending, ResolutionOutcome::Approved, "bob");
    assert!(
        f.store
            .append_events(&approved, 1, std::slice::from_ref(&approval))
            .await
            .unwrap()
    );
    let found = f
        .store
        .decisions_for_image(&digest, &prod, 20)
        .await
        .unwrap();
    let now = found.iter().find(|d| d.id == pending.id).unwrap();
    assert_eq!(now.status, DecisionStatus::Final);
    assert_eq!(now.verdict, Verdict::Continue);
}

// === policy versions ===

/// A policy version's text, stored at a whole millisecond (the column's precision).
fn policy_record(content: &str, stored_at_ms: i64) -> PolicyVersionRecord {
    PolicyVersionRecord {
        policy: PolicyVersion::from_files(vec![
            PolicyFile {
                path: "z.yaml".into(),
                content: "rules: []\n".into(),
            },
            PolicyFile {
                path: "a.yaml".into(),
                content: content.into(),
            },
        ]),
        stored_at: chrono::DateTime::from_timestamp_millis(stored_at_ms).unwrap(),
    }
}

async fn a_policy_version_is_stored_once_and_read_back(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let first = policy_record("rules:\n  - id: a\n", 1_790_000_000_123);
    let version = first.policy.version.clone();
    assert_eq!(store.get_policy_version(&version).await.unwrap(), None);

    assert!(
        store.put_policy_version(&first).await.unwrap(),
        "newly stored"
    );
    // Again, later (another replica, a restart): nothing changes, the first time stays.
    let mut again = first.clone();
    again.stored_at += ChronoDuration::hours(1);
    assert!(!store.put_policy_version(&again).await.unwrap());

    let got = store.get_policy_version(&version).await.unwrap().unwrap();
    assert_eq!(got, first);
    assert_eq!(got.policy.files[0].path, "a.yaml", "sorted by path");
    assert_eq!(got.policy.digest(), version);

    let other = policy_record("rules:\n  - id: b\n", 1_790_000_000_456);
    assert!(store.put_policy_version(&other).await.unwrap());
    assert_ne!(other.policy.version, version);
    assert_eq!(
        store.get_policy_version(&version).await.unwrap().unwrap(),
        first,
        "versions do not overwrite each other"
    );
    let unknown = format!("sha256:{}", "0".repeat(64));
    assert_eq!(store.get_policy_version(&unknown).await.unwrap(), None);
}

async fn concurrent_puts_of_a_policy_version_store_one(backend: Backend) {
    let fx = fresh(backend).await;
    let puts = (0..8).map(|i| {
        let store = Arc::clone(&fx.store);
        let record = policy_record("rules:\n  - id: raced\n", 1_790_000_000_000 + i);
        tokio::spawn(async move { store.put_policy_version(&record).await.unwrap() })
    });
    let stored = futures::future::join_all(puts)
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(stored, 1);
}

async fn a_policy_text_that_does_not_hash_to_its_version_is_refused(backend: Backend) {
    let fx = fresh(backend).await;
    let store = Arc::clone(&fx.store);
    let mut forged = policy_record("rules:\n  - id: a\n", 1_790_000_000_000);
    forged.policy.files[0].content.push_str("# edited\n");
    let e = store.put_policy_version(&forged).await.unwrap_err();
    assert_eq!(e.reason_code(), "store.corrupt", "{e}");
    assert_eq!(
        store
            .get_policy_version(&forged.policy.version)
            .await
            .unwrap(),
        None,
        "nothing was stored"
    );

    // A stored text edited behind the store's back no longer hashes to its version.
    let good = policy_record("rules:\n  - id: b\n", 1_790_000_000_000);
    assert!(store.put_policy_version(&good).await.unwrap());
    raw_exec(
        &fx,
        backend,
        &format!(
            "UPDATE policy_versions SET body = replace(body, 'id: b', 'id: c') WHERE version = '{}'",
            good.policy.version
        ),
    )
    .await;
    let e = store
        .get_policy_version(&good.policy.version)
        .await
        .unwrap_err();
    assert_eq!(e.reason_code(), "store.corrupt", "{e}");
    assert!(e.to_string().contains("altered"), "{e}");
}

// === traceability: image digest, rule, time range ===

/// Every id `filter` selects, following page tokens `size` decisions at a time.
async fn page_through(store: &dyn Store, filter: &DecisionFilter, size: u32) -> Vec<DecisionId> {
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store
            .list_decisions(filter, size, token.as_deref())
            .await
            .unwrap();
        assert!(page.decisions.len() <= size as usize);
        got.extend(page.decisions.into_iter().map(|d| d.id));
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => return got,
        }
    }
}

/// The ids of `xs`, newest first (the list order).
fn newest_first(xs: &[&Decision]) -> Vec<DecisionId> {
    let mut v: Vec<_> = xs.iter().map(|x| x.id.clone()).collect();
    v.sort_by(|x, y| y.cmp(x));
    v
}

fn digest(pair: &str) -> crate::domain::Digest {
    crate::domain::Digest::parse(&format!("sha256:{}", pair.repeat(32))).unwrap()
}

fn rule(id: &str, outcome: Option<RuleOutcomeFilter>) -> Option<RuleFilter> {
    RuleFilter::parse(Some(id), outcome).unwrap()
}

async fn lists_filter_on_the_image_digest(backend: Backend) {
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();
    let a = decision().digest("ab").build();
    let b = decision().digest("cd").build();
    let c = decision().digest("ab").environment("staging").build();
    let d = decision().digest("cd").environment("staging").build();
    for x in [&a, &b, &c, &d] {
        insert(store, x).await;
    }
    let cases = [
        (
            DecisionFilter {
                image_digest: Some(digest("ab")),
                ..Default::default()
            },
            newest_first(&[&a, &c]),
        ),
        (
            DecisionFilter {
                image_digest: Some(digest("cd")),
                environment: Some(Environment::parse("prod").unwrap()),
                ..Default::default()
            },
            newest_first(&[&b]),
        ),
        (
            DecisionFilter {
                image_digest: Some(digest("ab")),
                application: Some(Application::parse("nobody").unwrap()),
                ..Default::default()
            },
            vec![],
        ),
        (
            DecisionFilter {
                image_digest: Some(digest("ef")),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(all_ids(store, &filter).await, want, "{filter:?}");
    }
}

async fn lists_filter_on_a_rule_and_whether_it_failed_or_passed(backend: Backend) {
    use RuleOutcome::{Fail, Missing, Pass};
    use RuleOutcomeFilter::{Failed, Passed};
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();
    let p = decision()
        .rules(&[("pinned", Pass), ("reviewed", Fail)])
        .build();
    let q = decision()
        .application("ledger")
        .digest("cd")
        .rules(&[("pinned", Fail), ("reviewed", Missing)])
        .build();
    let r = decision().rules(&[("pinned", Pass)]).build();
    // A rule id twice in one decision (no valid policy set does that) is failed if any is.
    let s = decision()
        .rules(&[("reviewed", Pass), ("pinned", Missing), ("pinned", Pass)])
        .build();
    let none = decision().rules(&[]).build();
    // Some before the sequencer's last batch and some after: SQLite indexes failed rules with
    // the batch and catches up before a list, and a list must see both alike.
    insert(store, &p).await;
    insert(store, &q).await;
    store.sequence_events(100).await.unwrap();
    for x in [&r, &s, &none] {
        insert(store, x).await;
    }
    let cases = [
        (rule("pinned", None), newest_first(&[&p, &q, &r, &s])),
        (rule("pinned", Some(Passed)), newest_first(&[&p, &r])),
        (rule("pinned", Some(Failed)), newest_first(&[&q, &s])),
        // Missing evidence counts as failed, whatever `on_missing` made of it.
        (rule("reviewed", Some(Failed)), newest_first(&[&p, &q])),
        (rule("reviewed", Some(Passed)), newest_first(&[&s])),
        (rule("reviewed", None), newest_first(&[&p, &q, &s])),
        (rule("never-evaluated", None), vec![]),
    ];
    for (rule, want) in cases {
        let filter = DecisionFilter {
            rule,
            ..Default::default()
        };
        assert_eq!(all_ids(store, &filter).await, want, "{filter:?}");
    }
    // With the other filters, including the image digest.
    let combined = [
        (
            DecisionFilter {
                rule: rule("pinned", Some(Failed)),
                application: Some(Application::parse("ledger").unwrap()),
                ..Default::default()
            },
            newest_first(&[&q]),
        ),
        (
            DecisionFilter {
                rule: rule("pinned", Some(Failed)),
                image_digest: Some(digest("ab")),
                ..Default::default()
            },
            newest_first(&[&s]),
        ),
        (
            DecisionFilter {
                rule: rule("reviewed", None),
                image_digest: Some(digest("cd")),
                environment: Some(Environment::parse("prod").unwrap()),
                ..Default::default()
            },
            newest_first(&[&q]),
        ),
        (
            DecisionFilter {
                rule: rule("pinned", Some(Passed)),
                image_digest: Some(digest("cd")),
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (filter, want) in combined {
        assert_eq!(all_ids(store, &filter).await, want, "{filter:?}");
    }
}

async fn a_result_replaced_at_approval_moves_the_decision_between_outcomes(backend: Backend) {
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();
    let pending = decision()
        .verdict(Verdict::ManualReview)
        .status(DecisionStatus::Pending)
        .rules(&[
            ("change-window", RuleOutcome::Pass),
            ("prod-needs-review", RuleOutcome::Fail),
        ])
        .build();
    insert(store, &pending).await;
    // Indexed before the review changes it (SQLite keeps failed rules in a batch-filled index).
    store.sequence_events(100).await.unwrap();
    let window = |outcome| DecisionFilter {
        rule: rule("change-window", Some(outcome)),
        ..Default::default()
    };
    assert_eq!(
        all_ids(store, &window(RuleOutcomeFilter::Passed)).await,
        vec![pending.id.clone()]
    );

    // Approved, but the change window closed in the meantime: the result is replaced.
    let at = pending.created_at + ChronoDuration::minutes(5);
    let event = DecisionEvent::new(
        pending.id.clone(),
        at,
        EventKind::Resolved {
            resolution: Resolution {
                outcome: ResolutionOutcome::Approved,
                by: "bob".into(),
                principal: Some("bob".into()),
                at,
                comment: String::new(),
                channel: Channel::Api,
            },
            groups: None,
            newly_blocking: vec![rule_result("change-window", RuleOutcome::Fail)],
        },
    );
    let approved = crate::domain::apply(Some(&pending), &event, at).unwrap();
    assert_eq!(approved.verdict, Verdict::Terminate);
    assert!(
        store
            .append_events(&approved, 1, std::slice::from_ref(&event))
            .await
            .unwrap()
    );
    assert_eq!(
        all_ids(store, &window(RuleOutcomeFilter::Failed)).await,
        vec![pending.id.clone()]
    );
    assert!(
        all_ids(store, &window(RuleOutcomeFilter::Passed))
            .await
            .is_empty()
    );
    // The results the approval did not touch stay where they were.
    let review = DecisionFilter {
        rule: rule("prod-needs-review", Some(RuleOutcomeFilter::Failed)),
        ..Default::default()
    };
    assert_eq!(all_ids(store, &review).await, vec![pending.id.clone()]);
}

async fn lists_filter_on_a_creation_time_range(backend: Backend) {
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let ms = ChronoDuration::milliseconds;
    let before = decision().created_at(t0 - ms(1)).build();
    let at = decision().created_at(t0).build();
    let hour = decision().created_at(t0 + ChronoDuration::hours(1)).build();
    let later = decision().created_at(t0 + ChronoDuration::hours(2)).build();
    for x in [&before, &at, &hour, &later] {
        insert(store, x).await;
    }
    let range = |from: Option<chrono::DateTime<Utc>>, until: Option<chrono::DateTime<Utc>>| {
        DecisionFilter {
            created_from: from,
            created_until: until,
            ..Default::default()
        }
    };
    let one_hour = t0 + ChronoDuration::hours(1);
    let cases = [
        // `created_from` is inclusive ...
        (range(Some(t0), None), newest_first(&[&at, &hour, &later])),
        // ... `created_until` exclusive.
        (range(None, Some(one_hour)), newest_first(&[&before, &at])),
        (range(Some(t0), Some(one_hour)), newest_first(&[&at])),
        (range(Some(t0 - ms(1)), Some(t0)), newest_first(&[&before])),
        (range(Some(later.created_at + ms(1)), None), vec![]),
    ];
    for (filter, want) in cases {
        assert_eq!(all_ids(store, &filter).await, want, "{filter:?}");
    }
}

async fn traceability_filters_combine_and_page(backend: Backend) {
    use RuleOutcome::{Fail, Pass};
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let mut all = Vec::new();
    for i in 0..12 {
        // Two digests, the rule failing in every third, one decision a minute.
        let d = decision()
            .digest(if i % 2 == 0 { "ab" } else { "cd" })
            .rules(&[("pinned", if i % 3 == 0 { Fail } else { Pass })])
            .created_at(t0 + ChronoDuration::minutes(i))
            .build();
        insert(store, &d).await;
        all.push(d);
    }
    let filters = [
        DecisionFilter {
            image_digest: Some(digest("ab")),
            ..Default::default()
        },
        DecisionFilter {
            image_digest: Some(digest("ab")),
            environment: Some(Environment::parse("prod").unwrap()),
            ..Default::default()
        },
        DecisionFilter {
            rule: rule("pinned", None),
            ..Default::default()
        },
        DecisionFilter {
            rule: rule("pinned", Some(RuleOutcomeFilter::Passed)),
            ..Default::default()
        },
        DecisionFilter {
            rule: rule("pinned", Some(RuleOutcomeFilter::Failed)),
            ..Default::default()
        },
        DecisionFilter {
            rule: rule("pinned", Some(RuleOutcomeFilter::Failed)),
            created_until: Some(t0 + ChronoDuration::minutes(10)),
            ..Default::default()
        },
        DecisionFilter {
            rule: rule("pinned", Some(RuleOutcomeFilter::Passed)),
            image_digest: Some(digest("cd")),
            ..Default::default()
        },
        DecisionFilter {
            created_from: Some(t0 + ChronoDuration::minutes(2)),
            created_until: Some(t0 + ChronoDuration::minutes(11)),
            ..Default::default()
        },
        DecisionFilter {
            rule: rule("pinned", Some(RuleOutcomeFilter::Passed)),
            image_digest: Some(digest("ab")),
            created_from: Some(t0 + ChronoDuration::minutes(1)),
            created_until: Some(t0 + ChronoDuration::minutes(11)),
            ..Default::default()
        },
    ];
    for filter in filters {
        let want: Vec<&Decision> = all
            .iter()
            .filter(|d| {
                let digest_ok = filter.image_digest.as_ref().is_none_or(|g| {
                    d.request
                        .images
                        .iter()
                        .any(|i| i.digest.as_ref() == Some(g))
                });
                let rule_ok = filter.rule.as_ref().is_none_or(|r| {
                    d.rule_results.iter().any(|x| {
                        x.rule_id == r.rule_id
                            && r.outcome.is_none_or(|o| RuleOutcomeFilter::of(x) == o)
                    })
                });
                let from_ok = filter.created_from.is_none_or(|t| d.created_at >= t);
                let until_ok = filter.created_until.is_none_or(|t| d.created_at < t);
                digest_ok && rule_ok && from_ok && until_ok
            })
            .collect();
        let want = newest_first(&want);
        assert!(want.len() >= 3, "the case pages: {filter:?}");
        assert_eq!(page_through(store, &filter, 2).await, want, "{filter:?}");
    }
}

#[test]
fn an_outcome_needs_a_rule_and_a_rule_id_has_the_policy_shape() {
    assert_eq!(RuleFilter::parse(None, None).unwrap(), None);
    let e = RuleFilter::parse(None, Some(RuleOutcomeFilter::Failed)).unwrap_err();
    assert_eq!(e.field, "rule_outcome");
    for bad in ["", "Pinned", "pinned rule", &"a".repeat(65), "pinned;--"] {
        let e = RuleFilter::parse(Some(bad), None).unwrap_err();
        assert_eq!(e.field, "rule_id", "{bad}");
    }
    assert_eq!(
        RuleFilter::parse(
            Some("image-pinned-by-digest"),
            Some(RuleOutcomeFilter::Passed)
        )
        .unwrap()
        .unwrap()
        .outcome,
        Some(RuleOutcomeFilter::Passed)
    );
    assert_eq!(
        RuleOutcomeFilter::parse("failed").unwrap(),
        RuleOutcomeFilter::Failed
    );
    assert_eq!(
        RuleOutcomeFilter::parse("passed").unwrap(),
        RuleOutcomeFilter::Passed
    );
    assert_eq!(
        RuleOutcomeFilter::parse("fail").unwrap_err().field,
        "rule_outcome"
    );
}

#[test]
fn a_time_range_must_end_after_it_starts() {
    let t0 = chrono::DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let range = |from, until| DecisionFilter {
        created_from: Some(from),
        created_until: Some(until),
        ..Default::default()
    };
    assert!(
        range(t0, t0 + ChronoDuration::milliseconds(1))
            .validate()
            .is_ok()
    );
    for (from, until) in [(t0, t0), (t0 + ChronoDuration::seconds(1), t0)] {
        let e = range(from, until).validate().unwrap_err();
        assert_eq!(e.field, "created_until");
    }
    assert!(DecisionFilter::default().validate().is_ok());
}

#[test]
fn rule_rows_are_one_per_rule_and_failed_wins() {
    let d = decision()
        .rules(&[
            ("b", RuleOutcome::Pass),
            ("a", RuleOutcome::Missing),
            ("b", RuleOutcome::Fail),
            ("c", RuleOutcome::Pass),
        ])
        .build();
    let (ids, outcomes) = super::row::rule_rows(&d);
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(outcomes, ["failed", "failed", "passed"]);
}

/// Attaches ticket `number` / `id` of `system` to pending `d` through the one write path
/// (an appended `review_ticket_attached` event), as the gate does.
async fn attach_ticket(store: &dyn Store, d: &Decision, system: &str, number: &str, id: &str) {
    let (_, count) = store.get_decision_versioned(&d.id).await.unwrap().unwrap();
    let at = d.created_at + ChronoDuration::milliseconds(1);
    let event = DecisionEvent::new(
        d.id.clone(),
        at,
        EventKind::ReviewTicketAttached {
            ticket: crate::domain::ReviewTicket {
                system: system.into(),
                adapter: system.into(),
                number: number.into(),
                id: id.into(),
                opened_by_gate: true,
                at,
            },
        },
    );
    let next = crate::domain::apply(Some(d), &event, at).unwrap();
    assert!(store.append_events(&next, count, &[event]).await.unwrap());
}

async fn a_pending_review_is_found_by_its_ticket_among_many(backend: Backend) {
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();
    let pending = || {
        decision()
            .verdict(Verdict::ManualReview)
            .status(DecisionStatus::Pending)
            .build()
    };
    // Many pending reviews, a few hundred more than one page of `list_decisions`, only some of
    // them routed.
    let mut all = Vec::new();
    for i in 0..700 {
        let d = pending();
        insert(store, &d).await;
        if i % 7 == 0 {
            attach_ticket(
                store,
                &d,
                "servicenow",
                &format!("CHG{i:07}"),
                &format!("sys{i}"),
            )
            .await;
        }
        all.push(d);
    }
    let wanted = &all[350];
    let found = |system: &'static str, handle: String| async move {
        store
            .find_pending_by_ticket(system, &handle)
            .await
            .unwrap()
            .map(|d| d.id)
    };
    // By number (any case) or by id (exactly), only in its own system.
    assert_eq!(
        found("servicenow", "CHG0000350".into()).await,
        Some(wanted.id.clone())
    );
    assert_eq!(
        found("servicenow", "chg0000350".into()).await,
        Some(wanted.id.clone())
    );
    assert_eq!(
        found("servicenow", "sys350".into()).await,
        Some(wanted.id.clone())
    );
    assert_eq!(
        found("servicenow", "SYS350".into()).await,
        None,
        "ids match exactly"
    );
    assert_eq!(found("jira", "CHG0000350".into()).await, None);
    assert_eq!(
        found("servicenow", "CHG0000351".into()).await,
        None,
        "never routed"
    );

    // A Jira issue: key and numeric id.
    let issue = pending();
    insert(store, &issue).await;
    attach_ticket(store, &issue, "jira", "REL-12", "10042").await;
    assert_eq!(found("jira", "rel-12".into()).await, Some(issue.id.clone()));
    assert_eq!(found("jira", "10042".into()).await, Some(issue.id.clone()));

    // Once resolved, the review no longer waits on its ticket.
    let (resolved, event) = resolve(wanted, ResolutionOutcome::Approved, "bob");
    let (_, count) = store
        .get_decision_versioned(&wanted.id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .append_events(&resolved, count, &[event])
            .await
            .unwrap()
    );
    assert_eq!(found("servicenow", "CHG0000350".into()).await, None);

    // The lookup is a search of the ticket index, not a scan.
    if let Backend::Sqlite = backend {
        let raw = sqlx::SqlitePool::connect(&fx.url).await.unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "EXPLAIN QUERY PLAN SELECT d.id, d.schema_version, d.body \
             FROM decision_tickets AS t CROSS JOIN decisions AS d ON d.id = t.decision_id \
             WHERE t.system = 'servicenow' AND t.handle IN ('A', 'a') AND d.status = 'pending' \
             ORDER BY t.decision_id DESC LIMIT 1",
        )
        .fetch_all(&raw)
        .await
        .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|(_, _, _, detail)| detail).collect();
        assert!(
            plan.iter()
                .any(|p| p.starts_with("SEARCH t USING PRIMARY KEY")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.starts_with("SCAN")), "{plan:?}");
    }
}

async fn migration_0011_indexes_the_tickets_of_reviews_already_pending(backend: Backend) {
    let fx = fresh(backend).await;
    let ticket = |number: &str, id: &str| crate::domain::ReviewTicket {
        system: "servicenow".into(),
        adapter: "servicenow".into(),
        number: number.into(),
        id: id.into(),
        opened_by_gate: false,
        at: chrono::DateTime::from_timestamp_millis(1_790_000_000_000).unwrap(),
    };
    // Stored as they were before 0011: the ticket in the body only, no index row.
    let mut pending = decision()
        .verdict(Verdict::ManualReview)
        .status(DecisionStatus::Pending)
        .build();
    pending.review_ticket = Some(ticket("CHG0000001", "sys1"));
    insert(fx.store.as_ref(), &pending).await;
    let mut finished = decision().build();
    finished.review_ticket = Some(ticket("CHG0000002", "sys2"));
    insert(fx.store.as_ref(), &finished).await;
    // Undo 0011, as if the database predates it, and open the store again: it migrates.
    write_plain_bodies(&fx, backend, &[&pending, &finished]).await;
    let undo: &[&str] = match backend {
        Backend::Sqlite => &[
            "DROP TRIGGER decision_tickets_on_attach",
            "DROP TRIGGER decision_tickets_on_delete",
            "DROP TABLE decision_tickets",
        ],
        Backend::Postgres => &[
            "DROP TRIGGER decision_tickets_on_attach ON decision_events",
            "DROP TRIGGER decision_tickets_on_delete ON decisions",
            "DROP FUNCTION decision_tickets_fill()",
            "DROP FUNCTION decision_tickets_forget()",
            "DROP TABLE decision_tickets",
        ],
    };
    for statement in undo {
        raw_exec(&fx, backend, statement).await;
    }
    raw_exec(
        &fx,
        backend,
        "DELETE FROM _sqlx_migrations WHERE version = 11",
    )
    .await;
    let store = open(&fx.url, &StoreOptions::default()).await.unwrap();
    let found = store
        .find_pending_by_ticket("servicenow", "chg0000001")
        .await
        .unwrap();
    assert_eq!(found.map(|d| d.id), Some(pending.id.clone()));
    let found = store
        .find_pending_by_ticket("servicenow", "sys1")
        .await
        .unwrap();
    assert_eq!(found.map(|d| d.id), Some(pending.id));
    // A final decision is never looked up by its ticket.
    assert!(
        store
            .find_pending_by_ticket("servicenow", "CHG0000002")
            .await
            .unwrap()
            .is_none()
    );
}

/// Migration 0012: PostgreSQL compresses decision and event bodies with lz4 (this project's CI
/// server has it), not pglz, which cost ≈ 3.5× the CPU on the check path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_compresses_bodies_with_lz4() {
    if PgSchema::create().await.is_none() {
        return;
    }
    let fx = fresh(Backend::Postgres).await;
    insert(fx.store.as_ref(), &decision().build()).await;
    let raw = sqlx::PgPool::connect(&fx.url).await.unwrap();
    let methods: Vec<(String, String)> = sqlx::query_as(
        "SELECT c.relname::text, a.attcompression::text FROM pg_attribute AS a \
         JOIN pg_class AS c ON c.oid = a.attrelid WHERE a.attname = 'body' \
         AND a.attrelid IN ('decisions'::regclass, 'decision_events'::regclass) ORDER BY 1",
    )
    .fetch_all(&raw)
    .await
    .unwrap();
    assert_eq!(
        methods,
        [
            ("decision_events".to_string(), "l".to_string()),
            ("decisions".to_string(), "l".to_string())
        ]
    );
}

// === pending reviews by indexed columns (migration 0013) ===

/// The fixture's fixed creation time.
fn t0() -> chrono::DateTime<Utc> {
    chrono::DateTime::from_timestamp_millis(1_790_000_000_000).unwrap()
}

/// A pending review (created at `t0`) whose deadline is `deadline`.
fn pending_until(deadline: Option<chrono::DateTime<Utc>>) -> Decision {
    let mut d = decision()
        .verdict(Verdict::ManualReview)
        .status(DecisionStatus::Pending)
        .build();
    d.review_deadline = deadline;
    d
}

/// Every review `pending_due(before)` returns, paging `size` at a time.
async fn due_by(store: &dyn Store, before: chrono::DateTime<Utc>, size: u32) -> Vec<DecisionId> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .pending_due(before, after.as_ref(), size)
            .await
            .unwrap();
        assert!(page.decisions.len() <= size as usize);
        out.extend(page.decisions.into_iter().map(|d| d.id));
        match page.next {
            Some(next) => after = Some(next),
            None => return out,
        }
    }
}

/// Every pending review of `environment`, paging `size` at a time.
async fn pending_of(store: &dyn Store, environment: &str, size: u32) -> Vec<super::PendingReview> {
    let mut out: Vec<super::PendingReview> = Vec::new();
    loop {
        let page = store
            .pending_in_environment(environment, out.last().map(|r| &r.id), size)
            .await
            .unwrap();
        let last = page.len() < size as usize;
        out.extend(page);
        if last {
            return out;
        }
    }
}

/// What else an UPDATE that makes bodies unreadable sets: SQLite keeps large bodies packed
/// (`store/packed.rs`), and a packed body is read from there.
/// Writes each decision's own text, plain, into its row, as every row held it before packing
/// (migration 0014) and before a decision was stored once, in its `created` event: what a
/// migration that backfills from bodies saw when it first ran.
async fn write_plain_bodies(fx: &Fixture, backend: Backend, decisions: &[&Decision]) {
    for d in decisions {
        let text = serde_json::to_string(d).unwrap().replace('\'', "''");
        let sql = format!(
            "UPDATE decisions SET body = '{text}'{} WHERE id = '{}'",
            unpacked(backend),
            d.id
        );
        raw_exec(fx, backend, &sql).await;
    }
}

fn unpacked(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => ", packed = NULL",
        Backend::Postgres => "",
    }
}

async fn the_sweepers_query_reads_only_the_reviews_due(backend: Backend) {
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();
    let minute = ChronoDuration::minutes(1);
    let by = t0() + minute * 10;
    // Many pending reviews far from their deadline, one a millisecond past `by`, one with
    // none, and a final decision whose deadline had passed.
    for i in 0..600 {
        insert(
            store,
            &pending_until(Some(
                t0() + ChronoDuration::hours(1) + ChronoDuration::seconds(i),
            )),
        )
        .await;
    }
    insert(
        store,
        &pending_until(Some(by + ChronoDuration::milliseconds(1))),
    )
    .await;
    insert(store, &pending_until(None)).await;
    let mut finished = decision().build();
    finished.review_deadline = Some(t0() + minute);
    insert(store, &finished).await;
    // The due ones, stored out of deadline order: one exactly at `by`, two sharing a deadline.
    let due: Vec<Decision> = [by, t0() + minute * 2, t0() + minute, t0() + minute * 2]
        .into_iter()
        .map(|deadline| pending_until(Some(deadline)))
        .collect();
    for d in &due {
        insert(store, d).await;
    }
    let mut expected: Vec<(chrono::DateTime<Utc>, DecisionId)> = due
        .iter()
        .map(|d| (d.review_deadline.unwrap(), d.id.clone()))
        .collect();
    expected.sort();
    let expected: Vec<DecisionId> = expected.into_iter().map(|(_, id)| id).collect();

    // Every other body is made unreadable: the query must not read them at all.
    raw_exec(
        &fx,
        backend,
        &format!(
            "UPDATE decisions SET body = '{{'{} WHERE status <> 'pending' \
             OR review_deadline IS NULL OR review_deadline > {}",
            unpacked(backend),
            by.timestamp_millis()
        ),
    )
    .await;
    // Deadline order then id, across pages of any size.
    for size in [1, 2, 500] {
        assert_eq!(due_by(store, by, size).await, expected, "pages of {size}");
    }
    assert_eq!(
        due_by(
            store,
            t0() + minute * 2 - ChronoDuration::milliseconds(1),
            500
        )
        .await,
        expected[..1]
    );
    assert!(due_by(store, t0(), 500).await.is_empty());

    // A resolved review is no longer due.
    let (resolved, event) = resolve(&due[2], ResolutionOutcome::Approved, "bob");
    assert!(store.append_events(&resolved, 1, &[event]).await.unwrap());
    let remaining: Vec<DecisionId> = expected
        .iter()
        .filter(|id| **id != due[2].id)
        .cloned()
        .collect();
    assert_eq!(due_by(store, by, 2).await, remaining);

    // SQLite is told which index to use; a query it cannot serve would fail, not scan.
    if let Backend::Sqlite = backend {
        let raw = sqlx::SqlitePool::connect(&fx.url).await.unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "EXPLAIN QUERY PLAN SELECT id, schema_version, body, review_deadline \
             FROM decisions INDEXED BY decisions_pending_deadline \
             WHERE status = 'pending' AND review_deadline <= 1 \
             AND (review_deadline, id) > (0, '') ORDER BY review_deadline, id LIMIT 5",
        )
        .fetch_all(&raw)
        .await
        .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|(_, _, _, detail)| detail).collect();
        assert!(
            plan.iter()
                .any(|p| p.starts_with("SEARCH decisions USING INDEX decisions_pending_deadline")),
            "{plan:?}"
        );
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
    }
}

async fn a_followers_list_of_pending_reviews_reads_no_bodies(backend: Backend) {
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();
    let deadline = Some(t0() + ChronoDuration::hours(1));
    // More pending reviews in `prod` than one page, some routed; others elsewhere or final.
    let mut prod = Vec::new();
    for i in 0..520 {
        let d = pending_until(deadline);
        insert(store, &d).await;
        let system = match i % 10 {
            0 => Some("servicenow"),
            5 => Some("jira"),
            _ => None,
        };
        if let Some(system) = system {
            attach_ticket(store, &d, system, &format!("T-{i}"), &format!("id{i}")).await;
        }
        prod.push((d, system));
    }
    for _ in 0..3 {
        let mut d = decision()
            .environment("staging")
            .verdict(Verdict::ManualReview)
            .status(DecisionStatus::Pending)
            .build();
        d.review_deadline = deadline;
        insert(store, &d).await;
    }
    insert(store, &decision().build()).await;
    // One resolved after it was routed.
    let (routed, count) = store
        .get_decision_versioned(&prod[10].0.id)
        .await
        .unwrap()
        .unwrap();
    let (resolved, event) = resolve(&routed, ResolutionOutcome::Rejected, "bob");
    assert!(
        store
            .append_events(&resolved, count, &[event])
            .await
            .unwrap()
    );

    // Every body is made unreadable: the list must not read any.
    raw_exec(
        &fx,
        backend,
        &format!("UPDATE decisions SET body = '{{'{}", unpacked(backend)),
    )
    .await;
    let mut expected: Vec<(DecisionId, Option<String>)> = prod
        .iter()
        .filter(|(d, _)| d.id != prod[10].0.id)
        .map(|(d, system)| (d.id.clone(), system.map(str::to_string)))
        .collect();
    expected.sort();
    for size in [7, 500] {
        let listed: Vec<(DecisionId, Option<String>)> = pending_of(store, "prod", size)
            .await
            .into_iter()
            .map(|r| (r.id, r.review_system))
            .collect();
        assert_eq!(listed, expected, "pages of {size}");
    }
    assert_eq!(pending_of(store, "staging", 500).await.len(), 3);
    assert!(pending_of(store, "dev", 500).await.is_empty());

    // SQLite answers from the index alone: the ticket system sits after the body in the row.
    if let Backend::Sqlite = backend {
        let raw = sqlx::SqlitePool::connect(&fx.url).await.unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "EXPLAIN QUERY PLAN SELECT id, review_system \
             FROM decisions INDEXED BY decisions_pending_environment \
             WHERE status = 'pending' AND environment = 'prod' AND id > '' \
             ORDER BY id LIMIT 5",
        )
        .fetch_all(&raw)
        .await
        .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|(_, _, _, detail)| detail).collect();
        assert!(
            plan.iter().any(|p| p.starts_with(
                "SEARCH decisions USING COVERING INDEX decisions_pending_environment"
            )),
            "{plan:?}"
        );
    }
}

async fn migration_0013_indexes_the_reviews_already_pending(backend: Backend) {
    let fx = fresh(backend).await;
    let deadline = t0() + ChronoDuration::hours(1) + ChronoDuration::milliseconds(250);
    let mut pending = pending_until(Some(deadline));
    pending.review_ticket = Some(crate::domain::ReviewTicket {
        system: "jira".into(),
        adapter: "jira".into(),
        number: "REL-1".into(),
        id: "10001".into(),
        opened_by_gate: true,
        at: t0(),
    });
    insert(fx.store.as_ref(), &pending).await;
    let unrouted = pending_until(Some(deadline + ChronoDuration::minutes(1)));
    insert(fx.store.as_ref(), &unrouted).await;
    let mut finished = decision().build();
    finished.review_deadline = Some(t0());
    insert(fx.store.as_ref(), &finished).await;
    write_plain_bodies(&fx, backend, &[&pending, &unrouted, &finished]).await;
    // Undo 0013, as if the database predates it (the view and trigger it replaces become
    // stand-ins), and open the store again: it migrates.
    let undo: &[&str] = match backend {
        Backend::Sqlite => &[
            "DROP TRIGGER decision_inserts_insert",
            "DROP VIEW decision_inserts",
            "DROP INDEX decisions_pending_deadline",
            "DROP INDEX decisions_pending_environment",
            "ALTER TABLE decisions DROP COLUMN review_deadline",
            "ALTER TABLE decisions DROP COLUMN review_system",
            // 0014 (packed bodies) carries the columns into the insert view: undone too.
            "ALTER TABLE decisions DROP COLUMN packed",
            "ALTER TABLE decision_events DROP COLUMN packed",
            "CREATE VIEW decision_inserts AS SELECT 1 AS id",
            "CREATE TRIGGER decision_inserts_insert INSTEAD OF INSERT ON decision_inserts \
             BEGIN SELECT 1; END",
        ],
        Backend::Postgres => &[
            "DROP INDEX decisions_pending_deadline",
            "DROP INDEX decisions_pending_environment",
            "ALTER TABLE decisions DROP COLUMN review_deadline, DROP COLUMN review_system",
            // 0014 (rule arrays) and 0015 (packed events) run again below: the table 0014
            // empties comes back, and the bodies are plain on the decision rows already.
            "ALTER TABLE decisions DROP COLUMN failed_rules, DROP COLUMN passed_rules",
            "CREATE TABLE decision_rules (rule_id TEXT NOT NULL, decision_id TEXT NOT NULL, \
             outcome TEXT NOT NULL, PRIMARY KEY (rule_id, decision_id))",
            "ALTER TABLE decision_events DROP COLUMN packed",
            "DROP TABLE pack_dictionaries",
        ],
    };
    for statement in undo {
        raw_exec(&fx, backend, statement).await;
    }
    // SQLite's insert view gains the columns in 0014 and its trigger is restated in 0015: run
    // them all again, so the trigger is the one a migrated database has. (PostgreSQL's 0014
    // and 0015 are its rule arrays and packed events, undone above.)
    raw_exec(
        &fx,
        backend,
        "DELETE FROM _sqlx_migrations WHERE version IN (13, 14, 15)",
    )
    .await;
    let store = open(&fx.url, &StoreOptions::default()).await.unwrap();
    // The deadline to the millisecond.
    assert!(
        due_by(
            store.as_ref(),
            deadline - ChronoDuration::milliseconds(1),
            10
        )
        .await
        .is_empty()
    );
    assert_eq!(
        due_by(store.as_ref(), deadline, 10).await,
        [pending.id.clone()]
    );
    let mut expected = vec![
        (pending.id.clone(), Some("jira".to_string())),
        (unrouted.id.clone(), None),
    ];
    expected.sort();
    let listed: Vec<(DecisionId, Option<String>)> = pending_of(store.as_ref(), "prod", 10)
        .await
        .into_iter()
        .map(|r| (r.id, r.review_system))
        .collect();
    assert_eq!(listed, expected);
    // Decisions stored after it carry the columns from their insert.
    let later = pending_until(Some(t0()));
    insert(store.as_ref(), &later).await;
    assert_eq!(due_by(store.as_ref(), t0(), 10).await, [later.id]);
}

/// A decision whose evidence is large, as a real check's is (SQLite packs such bodies).
fn large_decision() -> Decision {
    let mut d = decision()
        .status(DecisionStatus::Pending)
        .idempotency_key("large-1")
        .build();
    let findings: Vec<_> = (0..120)
        .map(|i| serde_json::json!({"id": format!("CVE-2026-{i:05}"), "severity": "high", "package": "openssl", "fixed_in": "3.0.15"}))
        .collect();
    d.evidence.document["aqua"] = serde_json::json!({ "findings": findings });
    d
}

async fn a_large_decision_and_its_events_read_back_whole(backend: Backend) {
    let fx = fresh(backend).await;
    let store = fx.store.as_ref();
    let d = large_decision();
    assert!(serde_json::to_string(&d).unwrap().len() > 8_000);
    insert(store, &d).await;
    // Stored once: the row's body is empty, the text is its `created` event's.
    assert_eq!(body_length(&fx, backend, &d).await, 0);
    assert_eq!(store.get_decision(&d.id).await.unwrap().unwrap(), d);
    let listed = store
        .list_decisions(&DecisionFilter::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(listed.decisions, std::slice::from_ref(&d));
    let key = d.request.idempotency_key.clone().unwrap();
    let (by_key, _) = store.find_by_idempotency_key(&key).await.unwrap().unwrap();
    assert_eq!(by_key, d);
    let (versioned, count) = store.get_decision_versioned(&d.id).await.unwrap().unwrap();
    assert_eq!((versioned, count), (d.clone(), 1));
    let (resolved, event) = resolve(&d, ResolutionOutcome::Approved, "carol");
    assert!(store.append_events(&resolved, 1, &[event]).await.unwrap());
    assert_eq!(store.get_decision(&d.id).await.unwrap().unwrap(), resolved);
    // A later event writes the decision's own text (packed on SQLite).
    assert_ne!(
        body_length(&fx, backend, &d).await,
        0,
        "the resolved decision has a body of its own"
    );
    // The created event reads back as the text that was hashed: the chain verifies.
    assert_eq!(events_of(store, &d.id).await.len(), 2);
    store.sequence_events(100).await.unwrap();
    let (head, _) = store.ledger_head().await.unwrap();
    assert_chain(&store.ledger_entries(1, head).await.unwrap());
}

/// The length of `d`'s row body as stored (packed or empty bodies are 0 long).
async fn body_length(fx: &Fixture, backend: Backend, d: &Decision) -> i64 {
    let sql = "SELECT CAST(length(body) AS BIGINT) + \
               CAST(COALESCE(length(packed), 0) AS BIGINT) FROM decisions WHERE id = ";
    match backend {
        Backend::Sqlite => {
            let raw = sqlx::SqlitePool::connect(&fx.url).await.unwrap();
            sqlx::query_scalar(&format!("{sql}?"))
                .bind(d.id.as_str())
                .fetch_one(&raw)
                .await
                .unwrap()
        }
        Backend::Postgres => {
            let raw = sqlx::PgPool::connect(&fx.url).await.unwrap();
            let sql = sql.replace(" + CAST(COALESCE(length(packed), 0) AS BIGINT)", "");
            sqlx::query_scalar(&format!("{sql}$1"))
                .bind(d.id.as_str())
                .fetch_one(&raw)
                .await
                .unwrap()
        }
    }
}

#[tokio::test]
async fn sqlite_stores_a_large_decision_once_and_packed() {
    let fx = fresh(Backend::Sqlite).await;
    let d = large_decision();
    insert(fx.store.as_ref(), &d).await;
    let raw = sqlx::SqlitePool::connect(&fx.url).await.unwrap();
    let text = serde_json::to_string(&d).unwrap().len() as i64;
    // The row holds no text: the decision is its `created` event's, packed.
    let row: (i64, Option<i64>) =
        sqlx::query_as("SELECT length(body), length(packed) FROM decisions")
            .fetch_one(&raw)
            .await
            .unwrap();
    assert_eq!(row, (0, None));
    let event: (i64, i64) =
        sqlx::query_as("SELECT length(body), length(packed) FROM decision_events")
            .fetch_one(&raw)
            .await
            .unwrap();
    assert_eq!(event.0, 0);
    assert!(event.1 * 4 < text, "{} bytes packed of {text}", event.1);
    // Once a later event changes it, the decision's own text is stored, packed.
    let (resolved, resolution) = resolve(&d, ResolutionOutcome::Approved, "carol");
    assert!(
        fx.store
            .append_events(&resolved, 1, &[resolution])
            .await
            .unwrap()
    );
    let row: (i64, i64) = sqlx::query_as("SELECT length(body), length(packed) FROM decisions")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(row.0, 0);
    assert!(row.1 * 4 < text, "{} bytes packed of {text}", row.1);
}

#[tokio::test]
async fn a_decision_whose_created_event_is_not_one_reads_as_corrupt() {
    let fx = fresh(Backend::Sqlite).await;
    let d = decision().build();
    insert(fx.store.as_ref(), &d).await;
    let raw = sqlx::SqlitePool::connect(&fx.url).await.unwrap();
    sqlx::query("UPDATE decision_events SET body = '{\"at\":1}', packed = NULL WHERE idx = 0")
        .execute(&raw)
        .await
        .unwrap();
    let err = fx.store.get_decision(&d.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
    assert!(
        err.to_string().contains("does not hold a decision"),
        "{err}"
    );
    sqlx::query("DELETE FROM decision_events")
        .execute(&raw)
        .await
        .unwrap();
    let err = fx.store.get_decision(&d.id).await.unwrap_err();
    assert!(err.to_string().contains("no `created` event"), "{err}");
}

// === pack dictionaries (SQLite) ===

/// A large decision like the others of one gate but not the same: its own key, findings that
/// differ a little.
fn alike_decision(i: usize) -> Decision {
    let mut d = decision()
        .status(DecisionStatus::Pending)
        .idempotency_key(&format!("alike-{i}"))
        .build();
    let findings: Vec<_> = (0..120)
        .map(|f| serde_json::json!({"id": format!("CVE-2026-{:05}", f * 3 + i % 7), "severity": "high", "package": "openssl", "fixed_in": "3.0.15"}))
        .collect();
    d.evidence.document["aqua"] = serde_json::json!({ "findings": findings, "scan": i });
    d
}

/// The packed sizes of the `created` events stored, oldest first, and the dictionary each
/// names (0: none).
async fn created_frames(url: &str) -> Vec<(usize, u32)> {
    let raw = sqlx::SqlitePool::connect(url).await.unwrap();
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT packed FROM decision_events WHERE kind = 'created' ORDER BY id")
            .fetch_all(&raw)
            .await
            .unwrap();
    rows.iter()
        .map(|p| {
            let id = zstd::zstd_safe::get_dict_id_from_frame(p).map_or(0, u32::from);
            (p.len(), id)
        })
        .collect()
}

/// `pending` approved through `writes` (its first event after `created`), read back whole
/// through `reads`, and the log sequenced by `writes` still chains as `reads` sees it.
async fn a_resolution_reads_back_and_chains<W: Store, R: Store>(
    writes: &W,
    reads: &R,
    pending: &Decision,
) {
    let (resolved, event) = resolve(pending, ResolutionOutcome::Approved, "carol");
    assert!(writes.append_events(&resolved, 1, &[event]).await.unwrap());
    assert_eq!(
        reads.get_decision(&resolved.id).await.unwrap().unwrap(),
        resolved
    );
    writes.sequence_events(1_000).await.unwrap();
    let (head, _) = reads.ledger_head().await.unwrap();
    assert_chain(&reads.ledger_entries(1, head).await.unwrap());
}

/// Forty alike decisions stored in `store`, a dictionary trained from them (`train`, the
/// backend's `train_pack_dictionary`), and ten more stored after it: the fifty decisions and
/// the dictionary's id.
async fn packed_around_a_training<S: Store>(
    store: &S,
    train: impl AsyncFnOnce() -> Result<Option<u32>, StoreError>,
) -> (Vec<Decision>, u32) {
    let mut all: Vec<Decision> = (0..40).map(alike_decision).collect();
    for d in &all {
        insert(store, d).await;
    }
    let id = train()
        .await
        .unwrap()
        // Forty alike decisions are enough to train one.
        .unwrap();
    for i in 40..50 {
        let d = alike_decision(i);
        insert(store, &d).await;
        all.push(d);
    }
    (all, id)
}

#[tokio::test]
async fn sqlite_packs_with_a_dictionary_trained_from_its_own_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/portcullis.db", dir.path().display());
    let never = StoreOptions {
        pack_dictionary_after: u64::MAX,
        ..StoreOptions::default()
    };
    let store = super::sqlite::SqliteStore::open(&url, &never)
        .await
        .unwrap();
    let (all, id) =
        packed_around_a_training(&store, async || store.train_pack_dictionary().await).await;
    let frames = created_frames(&url).await;
    assert!(frames[..40].iter().all(|&(_, dict)| dict == 0));
    assert!(frames[40..].iter().all(|&(_, dict)| dict == id));
    let before: usize = frames[..40].iter().map(|f| f.0).sum::<usize>() / 40;
    let after: usize = frames[40..].iter().map(|f| f.0).sum::<usize>() / 10;
    assert!(
        after * 2 < before,
        "{after} bytes with it, {before} without"
    );

    // Every body reads back, packed with the dictionary or without; so does a later write.
    for d in &all {
        assert_eq!(store.get_decision(&d.id).await.unwrap().as_ref(), Some(d));
    }
    a_resolution_reads_back_and_chains(&store, &store, &all[45]).await;
    drop(store);

    // Reopened, the store packs with the stored dictionary.
    let store = super::sqlite::SqliteStore::open(&url, &never)
        .await
        .unwrap();
    let d = alike_decision(50);
    insert(&store, &d).await;
    assert_eq!(created_frames(&url).await.last().unwrap().1, id);
    assert_eq!(store.get_decision(&d.id).await.unwrap().unwrap(), d);
}

#[tokio::test]
async fn sqlite_trains_its_first_dictionary_by_itself_without_holding_up_a_check() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/portcullis.db", dir.path().display());
    let options = StoreOptions {
        pack_dictionary_after: 30,
        ..StoreOptions::default()
    };
    let store = open(&url, &options).await.unwrap();
    for i in 0..30 {
        insert(store.as_ref(), &alike_decision(i)).await;
    }
    // The 30th insert started a training in the background and answered without waiting for
    // it; checks stored from the moment it is done are packed with the dictionary.
    let mut i = 30;
    let (dictionary, d) = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        loop {
            let d = alike_decision(i);
            insert(store.as_ref(), &d).await;
            i += 1;
            let named = created_frames(&url).await.last().unwrap().1;
            if named != 0 {
                return (named, d);
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    // A dictionary is trained in time.
    .unwrap();
    let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
    let stored: Vec<i64> = sqlx::query_scalar("SELECT id FROM pack_dictionaries")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert_eq!(stored, [i64::from(dictionary)]);
    assert_eq!(store.get_decision(&d.id).await.unwrap().unwrap(), d);
}

/// The `created` events PostgreSQL stored, oldest first: whether each is packed and the
/// dictionary its frame names (0: none).
async fn postgres_created_frames(url: &str) -> Vec<(bool, u32)> {
    let raw = sqlx::PgPool::connect(url).await.unwrap();
    let rows: Vec<Option<Vec<u8>>> =
        sqlx::query_scalar("SELECT packed FROM decision_events WHERE kind = 'created' ORDER BY id")
            .fetch_all(&raw)
            .await
            .unwrap();
    rows.iter()
        .map(|p| match p {
            Some(p) => (
                true,
                zstd::zstd_safe::get_dict_id_from_frame(p).map_or(0, u32::from),
            ),
            None => (false, 0),
        })
        .collect()
}

/// PostgreSQL packs `created` events (migration 0015) with a dictionary a replica trains and
/// stores first; another replica that started before it existed loads it the first time it
/// reads such an event — to sequence, to export, or to answer a read.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_packs_created_events_and_another_replica_reads_them() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let url = schema.url();
    let never = StoreOptions {
        pack_dictionary_after: u64::MAX,
        ..StoreOptions::default()
    };
    let a = super::postgres::PostgresStore::open(&url, &never)
        .await
        .unwrap();
    let b = super::postgres::PostgresStore::open(&url, &never)
        .await
        .unwrap();
    let (all, id) = packed_around_a_training(&a, async || a.train_pack_dictionary().await).await;
    let frames = postgres_created_frames(&url).await;
    assert!(frames.iter().all(|&(packed, _)| packed), "{frames:?}");
    assert!(frames[..40].iter().all(|&(_, dict)| dict == 0));
    assert!(frames[40..].iter().all(|&(_, dict)| dict == id));
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    let stored: Vec<i64> = sqlx::query_scalar("SELECT id FROM pack_dictionaries")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert_eq!(stored, [i64::from(id)]);

    // Replica `b` never loaded the dictionary (this process registered it for `a`): each
    // path that reads events finds it in the table.
    super::pack_dictionary::forget(id);
    assert_eq!(b.sequence_events(1_000).await.unwrap(), 50);
    super::pack_dictionary::forget(id);
    let (head, _) = b.ledger_head().await.unwrap();
    let entries = b.ledger_entries(1, head).await.unwrap();
    assert_chain(&entries);
    assert_eq!(
        entries[45].body.as_deref(),
        a.decision_entries(&all[45].id).await.unwrap()[0]
            .body
            .as_deref()
    );
    super::pack_dictionary::forget(id);
    for d in &all {
        assert_eq!(b.get_decision(&d.id).await.unwrap().as_ref(), Some(d));
    }
    super::pack_dictionary::forget(id);
    let page = b
        .list_decisions(&DecisionFilter::default(), 100, None)
        .await
        .unwrap();
    assert_eq!(page.decisions.len(), 50);

    // A later event stores the decision whole on its row; it reads back on both.
    a_resolution_reads_back_and_chains(&b, &a, &all[45]).await;

    // A replica opened now packs with the stored dictionary.
    drop(a);
    let c = super::postgres::PostgresStore::open(&url, &never)
        .await
        .unwrap();
    let d = alike_decision(50);
    insert(&c, &d).await;
    assert_eq!(postgres_created_frames(&url).await.last().unwrap().1, id);
    assert_eq!(c.get_decision(&d.id).await.unwrap().unwrap(), d);
}
