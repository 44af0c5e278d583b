//! The PostgreSQL backend, for several replicas on one database. All PostgreSQL-specific SQL,
//! connection settings, the startup wait and the per-statement deadline live here; row
//! conversion is in `row.rs`, paging in `page.rs`, error mapping in `errors.rs`.
//!
//! Every race between replicas is settled by a constraint or a conditional write inside one
//! statement (the unique idempotency key, compare-and-set on the event count, the lease upsert),
//! never by a read then a write. The two writes that span tables (a decision with its `created`
//! event; an event append with the decision it leads to) are one transaction each, whose first
//! statement is that deciding write.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder};
use tokio::time::Instant;

use crate::audit::merkle::Node;
use crate::domain::{Decision, DecisionEvent, DecisionId, IdempotencyKey};

use super::errors::{from_migrate, from_sqlx};
use super::ledger_rows::{
    PRUNE_STATEMENTS, checkpoint_from_body, db_int, node_columns, nodes_from_rows,
};
use super::list;
use super::pack_dictionary::{self, Packing};
use super::packed;
use super::page::{clamp_page_size, decode_token};
use super::row::{
    DecisionRow, EventRow, PendingRow, PolicyVersionRow, StoredDecision, StoredDue, StoredEntry,
    StoredPolicyVersion, StoredVersioned, StoredWithFingerprint, Unsequenced, due_page,
    image_digests, link_rows, rule_sets,
};
use super::{
    DecisionFilter, DecisionPage, DueCursor, DuePage, Inserted, Lease, PendingReview,
    RuleOutcomeFilter, STARTUP_WAIT_FACTOR, Store, StoreError, StoreOptions, redact_url,
    ttl_millis,
};

/// The migrations, embedded at build time so the binary carries its schema.
static MIGRATOR: Migrator = sqlx::migrate!("src/store/migrations/postgres");

/// The database's clock in unix milliseconds. `clock_timestamp()` rather than `now()`: `now()`
/// is frozen at the start of the transaction, which is harmless for autocommit statements but
/// wrong the day one of these runs inside a longer transaction.
macro_rules! now_ms {
    () => {
        "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT"
    };
}

/// Longest pause between two startup attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A pooled connection idle at least this long is pinged before it is handed out; one in use
/// more recently is not (`PgPoolOptions::before_acquire` in `open`).
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct PostgresStore {
    pool: PgPool,
    /// Client-side deadline for one operation (acquire + statement). The server-side
    /// `statement_timeout` cannot fire when the network itself has stalled.
    op_timeout: Duration,
    /// The dictionary this replica packs `created` events with, and when it trains the next.
    packing: Arc<Packing>,
}

impl PostgresStore {
    /// Connects (waiting for the server to come up, within a deadline) and brings the schema up
    /// to date. Replicas starting together are safe: sqlx migrates under an advisory lock.
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let op_timeout = options.connect_timeout.max(Duration::from_millis(1));
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(format!("{} ({e})", redact_url(url))))?;
        // `portcullis` in `pg_stat_activity`, unless the URL names the application itself.
        let connect = match connect.get_application_name() {
            Some(_) => connect,
            None => connect.application_name("portcullis"),
        }
        // A statement stuck behind a lock or on an overloaded server ends as an error the
        // gate turns into 503, instead of holding a check (and a connection) forever.
        .options([("statement_timeout", op_timeout.as_millis().to_string())]);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(op_timeout)
            // sqlx pings every connection it hands out by default: a round trip before every
            // statement, a third of a check's on one client. A connection used moments ago is
            // as good as the statement that would ping it (a failure there is the same 503),
            // so only one that sat idle is pinged.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            // Connections are made on demand, so a database that is down at this moment does
            // not fail the build of the pool; `wait_until_up` decides how long to wait.
            .connect_lazy_with(connect);
        let mut store = Self {
            pool,
            op_timeout,
            packing: Arc::new(Packing::new(None, 0, options.pack_dictionary_after)),
        };
        store
            .wait_until_up(url, op_timeout * STARTUP_WAIT_FACTOR)
            .await?;
        MIGRATOR.run(&store.pool).await.map_err(from_migrate)?;
        store.packing = Arc::new(store.load_packing(options.pack_dictionary_after).await?);
        tracing::debug!(store.url = %redact_url(url), "postgres store opened");
        Ok(store)
    }

    /// The stored pack dictionaries (every replica's), registered for unpacking; the newest
    /// packs from now on.
    async fn load_packing(&self, after: u64) -> Result<Packing, StoreError> {
        let rows: Vec<(i64, Vec<u8>)> = self
            .bounded(
                sqlx::query_as(
                    "SELECT trained_through, content FROM pack_dictionaries \
                     ORDER BY trained_through, id",
                )
                .fetch_all(&self.pool),
            )
            .await?;
        let mut current = None;
        let mut through = 0;
        for (trained_through, content) in rows {
            current = Some(pack_dictionary::register(&content)?);
            through = trained_through;
        }
        // Event row ids grow by one per event, across replicas: near enough to a count of the
        // `created` events since the newest dictionary.
        let newest: i64 = self
            .bounded(
                sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM decision_events")
                    .fetch_one(&self.pool),
            )
            .await?;
        Ok(Packing::new(
            current,
            u64::try_from(newest.saturating_sub(through)).unwrap_or(0),
            after,
        ))
    }

    /// Trains a pack dictionary from the newest `created` events now, and packs with it from
    /// then on; its id, or `None` when there was too little to train from. In service the store
    /// does this by itself in the background (`count_packed`); tests ask for it.
    #[cfg(test)]
    pub(crate) async fn train_pack_dictionary(&self) -> Result<Option<u32>, StoreError> {
        train_pack_dictionary(
            self.pool.clone(),
            self.op_timeout,
            Arc::clone(&self.packing),
        )
        .await
    }

    /// Counts a stored `created` event, and starts training a dictionary in the background
    /// when it is time.
    fn count_packed(&self) {
        if self.packing.count_one() {
            let (pool, timeout, packing) = (
                self.pool.clone(),
                self.op_timeout,
                Arc::clone(&self.packing),
            );
            Arc::clone(&self.packing)
                .train_in_background(train_pack_dictionary(pool, timeout, packing));
        }
    }

    /// Registers the pack dictionaries that `stored` decisions' packed `created` events name
    /// and this process has not loaded yet: another replica trained them after this one
    /// started. Without a packed event, or with every dictionary known, it reads nothing.
    async fn load_dictionaries_for<'a>(
        &self,
        stored: impl Iterator<Item = &'a StoredDecision>,
    ) -> Result<(), StoreError> {
        let frames = stored.filter_map(|s| s.created_packed.as_deref());
        self.bounded_tx(load_dictionaries(&self.pool, frames)).await
    }

    /// `rows` with their packed texts unpacked, after loading the dictionaries they name.
    async fn unpack_entries(
        &self,
        rows: Vec<StoredEntry>,
    ) -> Result<Vec<super::LedgerEntry>, StoreError> {
        let frames = rows.iter().filter_map(|r| r.packed.as_deref());
        self.bounded_tx(load_dictionaries(&self.pool, frames))
            .await?;
        rows.into_iter().map(StoredEntry::unpack).collect()
    }

    /// Pings until the server answers or `wait` has passed. Faults that waiting cannot cure
    /// (wrong password, unknown database) end at once; the error names the server, never the
    /// password.
    async fn wait_until_up(&self, url: &str, wait: Duration) -> Result<(), StoreError> {
        let deadline = Instant::now() + wait;
        let mut backoff = Duration::from_millis(50);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            let outcome = tokio::time::timeout(
                remaining.max(Duration::from_millis(1)),
                sqlx::query("SELECT 1").execute(&self.pool),
            )
            .await;
            let error = match outcome {
                Ok(Ok(_)) => {
                    if attempt > 1 {
                        tracing::info!(store.url = %redact_url(url), attempt, "PostgreSQL is up");
                    }
                    return Ok(());
                }
                Ok(Err(e)) if !is_transient(&e) => {
                    return Err(StoreError::Unavailable(format!(
                        "PostgreSQL at `{}` refused the connection: {}",
                        redact_url(url),
                        from_sqlx(e)
                    )));
                }
                Ok(Err(e)) => from_sqlx(e).to_string(),
                Err(_) => "no answer".to_string(),
            };
            if Instant::now() + backoff >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "PostgreSQL at `{}` did not answer within {}: {error}",
                    redact_url(url),
                    humantime::format_duration(wait)
                )));
            }
            tracing::warn!(
                store.url = %redact_url(url),
                attempt,
                error = %error,
                "waiting for PostgreSQL"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Runs one database operation under the client-side deadline.
    async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.op_timeout, op).await {
            Ok(result) => result.map_err(from_sqlx),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the database did not answer within {}",
                humantime::format_duration(self.op_timeout)
            ))),
        }
    }

    /// Runs a transaction, or any operation whose statements map their own errors, under the
    /// client-side deadline.
    async fn bounded_tx<T>(
        &self,
        op: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.op_timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Unavailable(format!(
                "the database did not answer within {}",
                humantime::format_duration(self.op_timeout)
            ))),
        }
    }

    /// The decision in one idempotency slot (one generation of one key).
    async fn by_slot(&self, slot: &str) -> Result<Option<(Decision, String)>, StoreError> {
        let existing: Option<StoredWithFingerprint> = self
            .bounded(
                sqlx::query_as(concat!(
                    "SELECT ",
                    postgres_decision_columns!(),
                    ", d.request_fingerprint FROM decisions AS d WHERE d.idempotency_key = $1"
                ))
                .bind(slot)
                .fetch_optional(&self.pool),
            )
            .await?;
        self.load_dictionaries_for(existing.iter().map(|e| &e.stored))
            .await?;
        existing
            .map(|e| Ok((e.stored.into_decision()?, e.request_fingerprint)))
            .transpose()
    }
}

/// Stores `rows` (not yet numbered: the sequencer does that) inside the caller's transaction.
async fn insert_events(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    rows: &[EventRow],
) -> Result<(), StoreError> {
    for e in rows {
        sqlx::query(
            "INSERT INTO decision_events (decision_id, idx, at, kind, body) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&e.decision_id)
        .bind(e.idx)
        .bind(e.at_ms)
        .bind(e.kind)
        .bind(&e.body)
        .execute(&mut **tx)
        .await
        .map_err(from_sqlx)?;
    }
    Ok(())
}

/// Whether waiting may cure a failed startup attempt: the server is unreachable, starting,
/// shutting down or out of connections. Authentication and "no such database" are not.
fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P0x: admin shutdown, crash shutdown, cannot connect
            // now; 53300: too many connections.
            code.starts_with("08") || code.starts_with("57P0") || code == "53300"
        }),
        _ => false,
    }
}

/// Registers the dictionaries `frames` name that this process lacks, read through `executor`.
async fn load_dictionaries<'a, 'e, E>(
    executor: E,
    frames: impl Iterator<Item = &'a [u8]>,
) -> Result<(), StoreError>
where
    E: sqlx::Executor<'e, Database = Postgres>,
{
    let unknown = pack_dictionary::unknown_ids(frames);
    if unknown.is_empty() {
        return Ok(());
    }
    let rows: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT content FROM pack_dictionaries WHERE id = ANY($1)")
            .bind(&unknown)
            .fetch_all(executor)
            .await
            .map_err(from_sqlx)?;
    // One still unknown after this is reported by the unpack that needs it.
    for content in rows {
        pack_dictionary::register(&content)?;
    }
    Ok(())
}

/// Trains a dictionary from the newest `created` events, stores it, and packs with it from then
/// on. The row is committed before any event is packed with it, so no stored event ever names
/// a dictionary the database lacks; other replicas load it when they first read such an event.
async fn train_pack_dictionary(
    pool: PgPool,
    timeout: Duration,
    packing: Arc<Packing>,
) -> Result<Option<u32>, StoreError> {
    let train = async {
        let rows: Vec<(i64, String, Option<Vec<u8>>)> = sqlx::query_as(
            "SELECT id, body, packed FROM decision_events WHERE kind = 'created' \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(pack_dictionary::SAMPLES)
        .fetch_all(&pool)
        .await
        .map_err(from_sqlx)?;
        load_dictionaries(&pool, rows.iter().filter_map(|r| r.2.as_deref())).await?;
        let through = rows.first().map_or(0, |r| r.0);
        let Some((dictionary, bytes)) = pack_dictionary::train_from_events(rows).await? else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO pack_dictionaries (id, trained_through, content) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(i64::from(dictionary.id))
        .bind(through)
        .bind(&bytes)
        .execute(&pool)
        .await
        .map_err(from_sqlx)?;
        let id = dictionary.id;
        packing.pack_with(dictionary);
        Ok(Some(id))
    };
    // Training itself is CPU work off the runtime; the deadline bounds the statements.
    match tokio::time::timeout(timeout * 4, train).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(
            "training a pack dictionary did not finish in time".to_string(),
        )),
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn decisions_for_image(
        &self,
        digest: &crate::domain::Digest,
        environment: &crate::domain::Environment,
        limit: u32,
    ) -> Result<Vec<super::ImageDecision>, StoreError> {
        let rows: Vec<super::row::ImageDecisionRow> = self
            .bounded(
                sqlx::query_as(
                    "SELECT d.id, d.application, d.verdict, d.status, d.created_at, d.decided_at \
             FROM decision_images AS i JOIN decisions AS d ON d.id = i.decision_id \
             WHERE i.digest = $1 AND i.environment = $2 \
             ORDER BY i.decision_id DESC LIMIT $3",
                )
                .bind(digest.as_str())
                .bind(environment.as_str())
                .bind(i64::from(limit.clamp(1, super::MAX_IMAGE_DECISIONS)))
                .fetch_all(&self.pool),
            )
            .await?;
        rows.into_iter()
            .map(super::row::ImageDecisionRow::into_summary)
            .collect()
    }
    async fn insert_decision(
        &self,
        decision: &Decision,
        fingerprint: &str,
    ) -> Result<Inserted, StoreError> {
        let row = DecisionRow::new(decision, fingerprint)?;
        // The unique slot decides who wins: a concurrent insert with the same key waits for the
        // first to commit and then does nothing. Replicas race here. No conflict target: the slot
        // (`idempotency_key`) and `(idempotency_base, idempotency_generation)` are two unique
        // indexes over one fact, and PostgreSQL raises a violation of an index that is not the
        // arbiter when the racing row commits between the two checks.
        let created = EventRow::created(decision, &row)?;
        let (failed_rules, passed_rules) = rule_sets(decision);
        let images = image_digests(decision);
        let dictionary = self.packing.current();
        // Packed with this replica's newest dictionary, which is stored before it packs
        // anything (`train_pack_dictionary`).
        let event_body = packed::pack(&created.body, dictionary.as_ref());
        // The decision with its rules (`failed_rules`, `passed_rules`, migration 0014), its
        // image rows (`decision_images`, migration 0009) and its `created` event in one
        // statement: the others are inserted from what the decision insert returns, so the loser
        // of a key race inserts none of them.
        let result = self
            .bounded(
                sqlx::query(
                    "WITH d AS (INSERT INTO decisions (id, idempotency_key, request_fingerprint, \
                     application, environment, verdict, status, caller_kind, policy_version, \
                     created_at, decided_at, schema_version, body, principal, idempotency_base, \
                     idempotency_generation, event_count, review_deadline, review_system, \
                     failed_rules, passed_rules) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, 1, $23, $24, $20, $21) \
                     ON CONFLICT DO NOTHING RETURNING id), \
                     i AS (INSERT INTO decision_images (digest, environment, decision_id) \
                     SELECT u.digest, $5, d.id FROM d, UNNEST($22::TEXT[]) AS u(digest)) \
                     INSERT INTO decision_events (decision_id, idx, at, kind, body, packed) \
                     SELECT id, 0, $17, $18, $19, $25 FROM d",
                )
                .bind(row.id)
                .bind(row.idempotency_key.as_deref())
                .bind(row.request_fingerprint)
                .bind(row.application)
                .bind(row.environment)
                .bind(row.verdict)
                .bind(row.status)
                .bind(row.caller_kind)
                .bind(row.policy_version)
                .bind(row.created_at_ms)
                .bind(row.decided_at_ms)
                .bind(row.schema_version)
                // Stored once, in its `created` event, until a later event changes it (read
                // back through `postgres_decision_columns!`).
                .bind("")
                .bind(row.principal)
                .bind(row.idempotency_base)
                .bind(row.idempotency_generation)
                .bind(created.at_ms)
                .bind(created.kind)
                .bind(event_body.body)
                .bind(&failed_rules)
                .bind(&passed_rules)
                .bind(&images)
                .bind(row.review_deadline_ms)
                .bind(row.review_system)
                .bind(event_body.packed.as_deref())
                .execute(&self.pool),
            )
            .await?;
        let inserted = result.rows_affected() > 0;
        if inserted {
            self.count_packed();
        }

        let key = match row.idempotency_key.as_deref() {
            _ if inserted => return Ok(Inserted::Created),
            Some(key) => key,
            None => {
                return Err(StoreError::Conflict(format!(
                    "decision `{}` is already stored",
                    decision.id
                )));
            }
        };
        // The winner has committed (ON CONFLICT waited for it), and rows are never deleted.
        let (decision, fingerprint) = self.by_slot(key).await?.ok_or_else(|| {
            StoreError::Corrupt(format!(
                "idempotency key `{key}` conflicted but no decision holds it"
            ))
        })?;
        Ok(Inserted::Existing {
            decision: Box::new(decision),
            fingerprint,
        })
    }

    async fn get_decision(&self, id: &DecisionId) -> Result<Option<Decision>, StoreError> {
        let stored: Option<StoredDecision> = self
            .bounded(
                sqlx::query_as(concat!(
                    "SELECT ",
                    postgres_decision_columns!(),
                    " FROM decisions AS d WHERE d.id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(&self.pool),
            )
            .await?;
        self.load_dictionaries_for(stored.iter()).await?;
        stored.map(StoredDecision::into_decision).transpose()
    }

    async fn find_by_idempotency_key(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<(Decision, String)>, StoreError> {
        let newest: Option<StoredWithFingerprint> = self
            .bounded(
                sqlx::query_as(concat!(
                    "SELECT ",
                    postgres_decision_columns!(),
                    ", d.request_fingerprint FROM decisions AS d WHERE d.idempotency_base = $1 \
                         ORDER BY d.idempotency_generation DESC LIMIT 1"
                ))
                .bind(key.as_str())
                .fetch_optional(&self.pool),
            )
            .await?;
        self.load_dictionaries_for(newest.iter().map(|e| &e.stored))
            .await?;
        newest
            .map(|e| Ok((e.stored.into_decision()?, e.request_fingerprint)))
            .transpose()
    }

    async fn list_decisions(
        &self,
        filter: &DecisionFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<DecisionPage, StoreError> {
        let page_size = clamp_page_size(page_size);
        let after = page_token.map(decode_token).transpose()?;

        let mut query: QueryBuilder<'_, Postgres> = QueryBuilder::new(list::SELECT);
        // The same shape as SQLite's (see there): a rule or image filter joins its index table
        // by primary key. PostgreSQL orders the joins by its statistics, so nothing is forced;
        // ordering by the joined id lets either table's index give the page order.
        let order = if let Some(rule) = &filter.rule {
            // The rule arrays' GIN indexes (migration 0014), or the primary key in page order
            // with the arrays as a filter: the planner picks by how often the rule matches.
            query.push("decisions AS d WHERE ");
            let rule_id = rule.rule_id.as_str();
            match rule.outcome {
                Some(RuleOutcomeFilter::Failed) => {
                    query
                        .push("d.failed_rules @> ARRAY[")
                        .push_bind(rule_id)
                        .push("]::TEXT[]");
                }
                Some(RuleOutcomeFilter::Passed) => {
                    query
                        .push("d.passed_rules @> ARRAY[")
                        .push_bind(rule_id)
                        .push("]::TEXT[]");
                }
                None => {
                    query
                        .push("(d.failed_rules @> ARRAY[")
                        .push_bind(rule_id)
                        .push("]::TEXT[] OR d.passed_rules @> ARRAY[")
                        .push_bind(rule_id)
                        .push("]::TEXT[])");
                }
            }
            if let Some(digest) = &filter.image_digest {
                list::push_image_exists(&mut query, digest.as_str());
            }
            "d.id"
        } else if let Some(digest) = &filter.image_digest {
            query
                .push("decision_images AS i JOIN decisions AS d ON d.id = i.decision_id ")
                .push("WHERE i.digest = ")
                .push_bind(digest.as_str());
            if let Some(environment) = &filter.environment {
                query
                    .push(" AND i.environment = ")
                    .push_bind(environment.as_str());
            }
            "i.decision_id"
        } else {
            query.push("decisions AS d WHERE TRUE");
            "d.id"
        };
        list::push_conditions(&mut query, filter);
        list::push_page(&mut query, order, after.as_ref(), page_size);

        let rows: Vec<StoredDecision> = self
            .bounded(query.build_query_as().fetch_all(&self.pool))
            .await?;
        self.load_dictionaries_for(rows.iter()).await?;
        list::page(rows, page_size)
    }

    async fn get_decision_versioned(
        &self,
        id: &DecisionId,
    ) -> Result<Option<(Decision, u64)>, StoreError> {
        let stored: Option<StoredVersioned> = self
            .bounded(
                sqlx::query_as(concat!(
                    "SELECT ",
                    postgres_decision_columns!(),
                    ", d.event_count FROM decisions AS d WHERE d.id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(&self.pool),
            )
            .await?;
        self.load_dictionaries_for(stored.iter().map(|s| &s.stored))
            .await?;
        stored.map(StoredVersioned::into_versioned).transpose()
    }

    async fn append_events(
        &self,
        next: &Decision,
        expected_events: u64,
        events: &[DecisionEvent],
    ) -> Result<bool, StoreError> {
        let row = DecisionRow::new(next, "")?;
        let event_rows = EventRow::all(events, expected_events)?;
        let (failed_rules, passed_rules) = rule_sets(next);
        let expected = i64::try_from(expected_events).unwrap_or(i64::MAX);
        let count = expected.saturating_add(i64::try_from(events.len()).unwrap_or(i64::MAX));
        let pool = &self.pool;
        let row = &row;
        let event_rows = &event_rows;
        self.bounded_tx(async move {
            let mut tx = pool.begin().await.map_err(from_sqlx)?;
            // Compare-and-set on the event count: the row lock taken by UPDATE serialises two
            // writers on two replicas, and the loser re-checks the count after the winner
            // commits, finds it moved, and writes nothing.
            let updated = sqlx::query(
                "UPDATE decisions SET idempotency_key = $1, application = $2, \
                 environment = $3, verdict = $4, status = $5, caller_kind = $6, \
                 policy_version = $7, created_at = $8, decided_at = $9, \
                 schema_version = $10, body = $11, event_count = $12, \
                 review_deadline = $15, review_system = $16, \
                 failed_rules = $17, passed_rules = $18 \
                 WHERE id = $13 AND event_count = $14",
            )
            .bind(row.idempotency_key.as_deref())
            .bind(row.application)
            .bind(row.environment)
            .bind(row.verdict)
            .bind(row.status)
            .bind(row.caller_kind)
            .bind(row.policy_version)
            .bind(row.created_at_ms)
            .bind(row.decided_at_ms)
            .bind(row.schema_version)
            .bind(&row.body)
            .bind(count)
            .bind(row.id)
            .bind(expected)
            .bind(row.review_deadline_ms)
            .bind(row.review_system)
            // An approval can replace a rule's result (a time-bound rule that no longer
            // holds); lists follow the stored results.
            .bind(&failed_rules)
            .bind(&passed_rules)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
            if updated.rows_affected() != 1 {
                tx.rollback().await.map_err(from_sqlx)?;
                return Ok(false);
            }
            insert_events(&mut tx, event_rows).await?;
            tx.commit().await.map_err(from_sqlx)?;
            Ok(true)
        })
        .await
    }

    async fn sequence_events(&self, max: u32) -> Result<u64, StoreError> {
        let pool = &self.pool;
        self.bounded_tx(async move {
            let mut tx = pool.begin().await.map_err(from_sqlx)?;
            // The head's row lock is the sequencer's turn: a second sequencer waits here, then
            // sees this one's numbers (READ COMMITTED: each statement reads what has committed).
            let (head_seq, head_hash): (i64, String) =
                sqlx::query_as("SELECT seq, hash FROM ledger_head WHERE id = 1 FOR UPDATE")
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
            let mut rows: Vec<Unsequenced> = sqlx::query_as(
                "SELECT id, body, packed FROM decision_events WHERE seq IS NULL \
                 ORDER BY id LIMIT $1",
            )
            .bind(i64::from(max))
            .fetch_all(&mut *tx)
            .await
            .map_err(from_sqlx)?;
            if rows.is_empty() {
                tx.rollback().await.map_err(from_sqlx)?;
                return Ok(0);
            }
            load_dictionaries(&mut *tx, rows.iter().filter_map(|r| r.packed.as_deref())).await?;
            // Hashed over the text, never over the packed bytes.
            for row in &mut rows {
                let (id, body) = (row.id, std::mem::take(&mut row.body));
                row.body = packed::unpack(body, row.packed.take(), || format!("event row {id}"))?;
            }
            let (links, (seq, hash)) = link_rows(&rows, head_seq, &head_hash)?;
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let seqs: Vec<i64> = links.iter().map(|(s, _)| *s).collect();
            let hashes: Vec<String> = links.into_iter().map(|(_, h)| h).collect();
            sqlx::query(
                "UPDATE decision_events AS e SET seq = v.seq, hash = v.hash \
                 FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[]) AS v(id, seq, hash) \
                 WHERE e.id = v.id",
            )
            .bind(&ids)
            .bind(&seqs)
            .bind(&hashes)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
            sqlx::query("UPDATE ledger_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(seq)
                .bind(hash)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
            tx.commit().await.map_err(from_sqlx)?;
            Ok(rows.len() as u64)
        })
        .await
    }

    async fn ledger_head(&self) -> Result<(u64, String), StoreError> {
        let (seq, hash): (i64, String) = self
            .bounded(
                sqlx::query_as("SELECT seq, hash FROM ledger_head WHERE id = 1")
                    .fetch_one(&self.pool),
            )
            .await?;
        Ok((u64::try_from(seq).unwrap_or(0), hash))
    }

    async fn ledger_entries(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<super::LedgerEntry>, StoreError> {
        let rows: Vec<StoredEntry> = self
            .bounded(
                sqlx::query_as(
                    "SELECT seq, hash, decision_id, body, packed FROM decision_events \
                     WHERE seq >= $1 AND seq <= $2 \
                     UNION ALL SELECT seq, hash, NULL, NULL, NULL FROM ledger_pruned \
                     WHERE seq >= $1 AND seq <= $2 ORDER BY seq",
                )
                .bind(db_int(from))
                .bind(db_int(to))
                .fetch_all(&self.pool),
            )
            .await?;
        self.unpack_entries(rows).await
    }

    async fn ledger_hashes(&self, from: u64, to: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let rows: Vec<(i64, String)> = self
            .bounded(
                sqlx::query_as(
                    "SELECT seq, hash FROM decision_events WHERE seq >= $1 AND seq <= $2 \
                     UNION ALL SELECT seq, hash FROM ledger_pruned WHERE seq >= $1 AND seq <= $2 \
                     ORDER BY seq",
                )
                .bind(db_int(from))
                .bind(db_int(to))
                .fetch_all(&self.pool),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, hash)| (u64::try_from(seq).unwrap_or(0), hash))
            .collect())
    }

    async fn insert_ledger_nodes(&self, nodes: &[Node]) -> Result<(), StoreError> {
        if nodes.is_empty() {
            return Ok(());
        }
        let (mut levels, mut indexes, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
        for node in nodes {
            let (level, index, hash) = node_columns(node);
            levels.push(level);
            indexes.push(index);
            hashes.push(hash);
        }
        self.bounded(
            sqlx::query(
                "INSERT INTO ledger_nodes (level, idx, hash) \
                 SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[]) \
                 ON CONFLICT (level, idx) DO NOTHING",
            )
            .bind(&levels)
            .bind(&indexes)
            .bind(&hashes)
            .execute(&self.pool),
        )
        .await?;
        Ok(())
    }

    async fn ledger_nodes(&self, wanted: &[(u32, u64)]) -> Result<Vec<Node>, StoreError> {
        let levels: Vec<i64> = wanted.iter().map(|(l, _)| i64::from(*l)).collect();
        let indexes: Vec<i64> = wanted.iter().map(|(_, i)| db_int(*i)).collect();
        let rows: Vec<(i64, i64, String)> = self
            .bounded(
                sqlx::query_as(
                    "SELECT n.level, n.idx, n.hash FROM ledger_nodes AS n \
                     JOIN UNNEST($1::BIGINT[], $2::BIGINT[]) AS w(level, idx) \
                     ON n.level = w.level AND n.idx = w.idx",
                )
                .bind(&levels)
                .bind(&indexes)
                .fetch_all(&self.pool),
            )
            .await?;
        nodes_from_rows(rows)
    }

    async fn checkpoints(
        &self,
        from_index: u64,
        limit: u32,
    ) -> Result<Vec<crate::audit::checkpoint::SignedCheckpoint>, StoreError> {
        let bodies: Vec<String> = self
            .bounded(
                sqlx::query_scalar(
                    "SELECT body FROM ledger_checkpoints WHERE idx >= $1 ORDER BY idx LIMIT $2",
                )
                .bind(db_int(from_index))
                .bind(i64::from(limit))
                .fetch_all(&self.pool),
            )
            .await?;
        bodies.iter().map(|b| checkpoint_from_body(b)).collect()
    }

    async fn prune_decisions(
        &self,
        through_seq: u64,
        before: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let pool = &self.pool;
        self.bounded_tx(async move {
            let mut tx = pool.begin().await.map_err(from_sqlx)?;
            // Final, decided before the cut, and every event numbered inside the signed part.
            let ids: Vec<String> = sqlx::query_scalar(
                "SELECT d.id FROM decisions AS d \
                 WHERE d.status = 'final' AND d.decided_at < $1 \
                 AND NOT EXISTS (SELECT 1 FROM decision_events AS e WHERE e.decision_id = d.id \
                                 AND (e.seq IS NULL OR e.seq > $2)) \
                 LIMIT $3 FOR UPDATE OF d SKIP LOCKED",
            )
            .bind(before.timestamp_millis())
            .bind(db_int(through_seq))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(from_sqlx)?;
            if ids.is_empty() {
                tx.rollback().await.map_err(from_sqlx)?;
                return Ok(0);
            }
            for statement in PRUNE_STATEMENTS {
                sqlx::query(&format!("{statement} (SELECT UNNEST($1::TEXT[]))"))
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
            }
            tx.commit().await.map_err(from_sqlx)?;
            Ok(ids.len() as u64)
        })
        .await
    }

    async fn decision_entries(
        &self,
        id: &DecisionId,
    ) -> Result<Vec<super::LedgerEntry>, StoreError> {
        let rows: Vec<StoredEntry> = self
            .bounded(
                sqlx::query_as(
                    "SELECT seq, hash, decision_id, body, packed FROM decision_events \
                     WHERE decision_id = $1 AND seq IS NOT NULL ORDER BY idx",
                )
                .bind(id.as_str())
                .fetch_all(&self.pool),
            )
            .await?;
        self.unpack_entries(rows).await
    }

    async fn latest_checkpoint(
        &self,
    ) -> Result<Option<crate::audit::checkpoint::SignedCheckpoint>, StoreError> {
        let body: Option<String> = self
            .bounded(
                sqlx::query_scalar("SELECT body FROM ledger_checkpoints ORDER BY idx DESC LIMIT 1")
                    .fetch_optional(&self.pool),
            )
            .await?;
        body.as_deref().map(checkpoint_from_body).transpose()
    }

    async fn insert_checkpoint(
        &self,
        checkpoint: &crate::audit::checkpoint::SignedCheckpoint,
    ) -> Result<bool, StoreError> {
        let body = serde_json::to_string(checkpoint)
            .map_err(|e| StoreError::Corrupt(format!("a checkpoint could not be encoded: {e}")))?;
        let c = &checkpoint.checkpoint;
        let result = self.bounded(sqlx::query("INSERT INTO ledger_checkpoints (idx, tree_size, at, body) VALUES ($1, $2, $3, $4) ON CONFLICT (idx) DO NOTHING").bind(i64::try_from(c.index).unwrap_or(i64::MAX)).bind(i64::try_from(c.tree_size).unwrap_or(i64::MAX)).bind(c.at.timestamp_millis()).bind(body).execute(&self.pool))
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn put_policy_version(
        &self,
        record: &crate::domain::PolicyVersionRecord,
    ) -> Result<bool, StoreError> {
        let row = PolicyVersionRow::new(record)?;
        // The primary key decides between replicas storing the same version at once.
        let result = self
            .bounded(
                sqlx::query(
                    "INSERT INTO policy_versions (version, created_at, body) VALUES ($1, $2, $3) \
                     ON CONFLICT (version) DO NOTHING",
                )
                .bind(row.version)
                .bind(row.created_at_ms)
                .bind(&row.body)
                .execute(&self.pool),
            )
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn get_policy_version(
        &self,
        version: &str,
    ) -> Result<Option<crate::domain::PolicyVersionRecord>, StoreError> {
        let stored: Option<StoredPolicyVersion> = self
            .bounded(
                sqlx::query_as(
                    "SELECT version, created_at, body FROM policy_versions WHERE version = $1",
                )
                .bind(version)
                .fetch_optional(&self.pool),
            )
            .await?;
        stored.map(StoredPolicyVersion::into_record).transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.bounded(sqlx::query("SELECT 1").execute(&self.pool))
            .await?;
        Ok(())
    }

    async fn try_claim(
        &self,
        job: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        // One upsert: insert if nobody ever held the job; otherwise take it over only if it has
        // lapsed or is ours. Concurrent claimers serialise on the row; the WHERE sees the
        // winner's committed row, so exactly one gets a row back.
        let sql = concat!(
            "INSERT INTO leases (job, holder, generation, expires_at) VALUES ($1, $2, 1, ",
            now_ms!(),
            " + $3) ON CONFLICT (job) DO UPDATE SET ",
            "generation = CASE WHEN leases.holder = EXCLUDED.holder AND leases.expires_at > ",
            now_ms!(),
            " THEN leases.generation ELSE leases.generation + 1 END, ",
            "holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at ",
            "WHERE leases.expires_at <= ",
            now_ms!(),
            " OR leases.holder = EXCLUDED.holder RETURNING generation"
        );
        let generation: Option<i64> = self
            .bounded(
                sqlx::query_scalar(sql)
                    .bind(job)
                    .bind(holder)
                    .bind(ttl_millis(ttl))
                    .fetch_optional(&self.pool),
            )
            .await?;
        Ok(generation.map(|generation| Lease {
            job: job.to_string(),
            holder: holder.to_string(),
            generation,
        }))
    }

    async fn release(&self, lease: &Lease) -> Result<bool, StoreError> {
        // Expire rather than delete: the row keeps its generation, so the next holder's is
        // higher than every earlier one.
        let sql = concat!(
            "UPDATE leases SET expires_at = 0 ",
            "WHERE job = $1 AND holder = $2 AND generation = $3 AND expires_at > ",
            now_ms!()
        );
        let result = self
            .bounded(
                sqlx::query(sql)
                    .bind(&lease.job)
                    .bind(&lease.holder)
                    .bind(lease.generation)
                    .execute(&self.pool),
            )
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn pending_due(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        after: Option<&DueCursor>,
        limit: u32,
    ) -> Result<DuePage, StoreError> {
        let start = DueCursor::start();
        let after = after.unwrap_or(&start);
        let limit = i64::from(clamp_page_size(limit));
        // The partial index of pending rows by deadline serves the range and the order
        // (migration 0013).
        let rows: Vec<StoredDue> = self
            .bounded(
                sqlx::query_as(concat!(
                    "SELECT ",
                    postgres_decision_columns!(),
                    ", d.review_deadline FROM decisions AS d \
                         WHERE d.status = 'pending' AND d.review_deadline <= $1 \
                         AND (d.review_deadline, d.id) > ($2, $3) \
                         ORDER BY d.review_deadline, d.id LIMIT $4"
                ))
                .bind(before.timestamp_millis())
                .bind(after.deadline_ms)
                .bind(after.id.as_str())
                .bind(limit)
                .fetch_all(&self.pool),
            )
            .await?;
        self.load_dictionaries_for(rows.iter().map(|r| &r.stored))
            .await?;
        due_page(rows, limit)
    }

    async fn pending_in_environment(
        &self,
        environment: &str,
        after: Option<&DecisionId>,
        limit: u32,
    ) -> Result<Vec<PendingReview>, StoreError> {
        let rows: Vec<PendingRow> = self
            .bounded(
                sqlx::query_as(
                    "SELECT id, review_system FROM decisions \
                     WHERE status = 'pending' AND environment = $1 AND id > $2 \
                     ORDER BY id LIMIT $3",
                )
                .bind(environment)
                .bind(after.map_or("", DecisionId::as_str))
                .bind(i64::from(clamp_page_size(limit)))
                .fetch_all(&self.pool),
            )
            .await?;
        rows.into_iter().map(PendingRow::into_pending).collect()
    }

    async fn find_pending_by_ticket(
        &self,
        system: &str,
        handle: &str,
    ) -> Result<Option<Decision>, StoreError> {
        // Numbers are stored upper-cased, ids as they are (migration 0011).
        let stored: Option<StoredDecision> = self
            .bounded(
                sqlx::query_as(concat!(
                    "SELECT ",
                    postgres_decision_columns!(),
                    " FROM decision_tickets AS t JOIN decisions AS d ON d.id = t.decision_id \
                         WHERE t.system = $1 AND t.handle IN ($2, $3) AND d.status = 'pending' \
                         ORDER BY t.decision_id DESC LIMIT 1"
                ))
                .bind(system)
                .bind(handle)
                .bind(handle.to_ascii_uppercase())
                .fetch_optional(&self.pool),
            )
            .await?;
        self.load_dictionaries_for(stored.iter()).await?;
        stored.map(StoredDecision::into_decision).transpose()
    }
}
