//! The embedded SQLite backend, the default store for a single replica. All SQLite-specific SQL
//! and connection settings live here; row conversion is in `row.rs`.
//!
//! Every write goes through one connection behind an in-process queue (`SqliteStore::writer`);
//! reads use the pool. Single writes are autocommit statements: a decision and its `created`
//! event are one statement (an insert into the `decision_inserts` view, whose trigger writes
//! both), as are lease writes. The multi-statement writes (an event append with the decision it
//! leads to, the sequencer) begin `IMMEDIATE`, which takes the write lock first: in WAL mode a
//! transaction that reads and then writes can fail with SQLITE_BUSY without waiting for
//! `busy_timeout`. Queueing in-process rather than in SQLite's busy handler matters under load:
//! the busy handler sleeps (up to 100 ms a time) instead of waiting its turn.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite};

use crate::audit::merkle::Node;
use crate::domain::{Decision, DecisionEvent, DecisionId, IdempotencyKey};

use super::errors::{from_migrate, from_sqlx};
use super::ledger_rows::{
    PRUNE_STATEMENTS, checkpoint_from_body, db_int, node_columns, nodes_from_rows,
};
use super::list;
use super::pack_dictionary::{self, Dictionary, Packing};
use super::packed::{self, Packed};
use super::page::{clamp_page_size, decode_token};
use super::row::{
    DecisionRow, EventRow, PendingRow, PolicyVersionRow, StoredDecision, StoredDue, StoredEntry,
    StoredPolicyVersion, StoredVersioned, StoredWithFingerprint, Unsequenced, due_page,
    image_digests, link_rows, rule_rows,
};
use super::{
    DecisionFilter, DecisionPage, DueCursor, DuePage, Inserted, Lease, PendingReview,
    RuleOutcomeFilter, Store, StoreError, StoreOptions, redact_url, ttl_millis,
};

/// The migrations, embedded at build time so the binary carries its schema.
static MIGRATOR: Migrator = sqlx::migrate!("src/store/migrations/sqlite");

/// The database's clock in unix milliseconds (SQLite 3.42+, bundled by sqlx).
macro_rules! now_ms {
    () => {
        "CAST(unixepoch('subsec') * 1000 AS INTEGER)"
    };
}

/// How long a statement waits for another connection's write lock before failing. Writes are
/// single small statements, so anything longer than this is a stuck writer, not a queue.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct SqliteStore {
    pool: SqlitePool,
    /// Taken around every write. SQLite has one writer; without
    /// this, connections that find the write lock taken back off in SQLite's busy handler
    /// (sleeps of up to 100 ms) instead of queueing, which put a 600 ms tail on checks under
    /// load. One process is the only writer of an embedded store, so an in-process queue is
    /// the whole queue.
    ///
    /// What it guards is the one connection every write goes through (`pool` serves reads).
    /// Writing through one connection keeps that connection's page cache valid from one write
    /// to the next; with writes spread over the pool, each connection found the database
    /// changed by another at its next transaction, dropped its whole cache and read the pages
    /// back (with this and migration 0010, `benches/store.rs` makes ≈ 18 `pread` calls a
    /// check instead of ≈ 75).
    writer: Arc<tokio::sync::Mutex<Writer>>,
    /// The dictionary bodies are packed with, and when to train the next.
    packing: Arc<Packing>,
    /// The task that checkpoints the write-ahead log (`checkpoint_wal`); stopped with the store.
    wal_checkpointer: Option<tokio::task::AbortHandle>,
}

/// The one connection that writes, and what it knows of the log.
#[derive(Debug)]
struct Writer {
    pool: SqlitePool,
    /// The log's head (sequence number, chain hash) as this writer last moved or read it, so a
    /// decision's `created` event is numbered and hashed as it is stored (migration 0010);
    /// `None` when it must be read again. The insert's trigger checks it against the table.
    head: Option<Head>,
}

/// Trains a dictionary from the newest `created` events, stores it, and packs with it from then
/// on. The row is committed before any body is packed with the dictionary, so no stored body
/// ever names a dictionary the database lacks.
async fn train_pack_dictionary(
    pool: &SqlitePool,
    writer: &tokio::sync::Mutex<Writer>,
    packing: &Packing,
) -> Result<Option<u32>, StoreError> {
    let rows: Vec<(i64, String, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT id, body, packed FROM decision_events WHERE kind = 'created' \
         ORDER BY id DESC LIMIT ?",
    )
    .bind(pack_dictionary::SAMPLES)
    .fetch_all(pool)
    .await
    .map_err(from_sqlx)?;
    let through = rows.first().map_or(0, |r| r.0);
    let Some((dictionary, bytes)) = pack_dictionary::train_from_events(rows).await? else {
        return Ok(None);
    };
    {
        let turn = writer.lock().await;
        sqlx::query(
            "INSERT INTO pack_dictionaries (id, trained_through, content) VALUES (?, ?, ?) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(i64::from(dictionary.id))
        .bind(through)
        .bind(&bytes)
        .execute(&turn.pool)
        .await
        .map_err(from_sqlx)?;
    }
    let id = dictionary.id;
    packing.pack_with(dictionary);
    Ok(Some(id))
}

/// A place in the log: the last sequence number and its chain hash.
type Head = (i64, [u8; 32]);

impl Writer {
    /// The head, read from the table unless known.
    async fn head(&mut self) -> Result<Head, StoreError> {
        if let Some(head) = self.head {
            return Ok(head);
        }
        let head = read_head(&self.pool).await?;
        self.head = Some(head);
        Ok(head)
    }
}

/// `ledger_head` as read through `executor`.
async fn read_head<'e, E>(executor: E) -> Result<Head, StoreError>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    let (seq, hash): (i64, String) =
        sqlx::query_as("SELECT seq, hash FROM ledger_head WHERE id = 1")
            .fetch_one(executor)
            .await
            .map_err(from_sqlx)?;
    let hash = crate::audit::hash_from_hex(&hash, "ledger_head.hash")
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok((seq, hash))
}

/// The place after `head` of an event whose canonical text is `body`.
fn next_place(head: Head, body: &str) -> Head {
    (head.0 + 1, crate::audit::chain::link(&head.1, body))
}

/// The stored pack dictionaries, registered for unpacking; the newest packs from now on.
async fn load_packing(pool: &SqlitePool, after: u64) -> Result<Packing, StoreError> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT trained_through, content FROM pack_dictionaries ORDER BY trained_through",
    )
    .fetch_all(pool)
    .await
    .map_err(from_sqlx)?;
    let mut current = None;
    let mut through = 0;
    for (trained_through, content) in rows {
        current = Some(pack_dictionary::register(&content)?);
        through = trained_through;
    }
    // Event row ids grow by one per event: near enough to a count of `created` events.
    let newest: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM decision_events")
        .fetch_one(pool)
        .await
        .map_err(from_sqlx)?;
    Ok(Packing::new(
        current,
        u64::try_from(newest.saturating_sub(through)).unwrap_or(0),
        after,
    ))
}

/// Whether `e` is migration 0010's trigger refusing a stale head.
fn is_head_moved(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.message().contains("the ledger head moved"))
}

/// Whether `e` is an insert losing its idempotency slot to the decision that holds it
/// (migration 0015): the statement stored nothing.
fn is_slot_taken(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|d| {
        // The slot is unique twice over: `idempotency_key`, and `(idempotency_base,
        // idempotency_generation)` (migration 0004); SQLite names whichever it checked first.
        d.kind() == sqlx::error::ErrorKind::UniqueViolation
            && (d.message().contains("decisions.idempotency_key")
                || d.message().contains("decisions.idempotency_base"))
    })
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        if let Some(task) = &self.wal_checkpointer {
            task.abort();
        }
    }
}

/// How often a background task copies the write-ahead log into the database file.
///
/// SQLite's default is to do it inside whichever commit takes the log past 1,000 pages, so every
/// few dozen checks one of them waited for a checkpoint (and its fsync) before it could answer:
/// that was the one-connection p99 of `benches/store.rs`. Here commits never checkpoint unless
/// the task has fallen far behind (`WAL_BACKSTOP_PAGES`).
const WAL_CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// The log size (in 4 KiB pages) at which a commit checkpoints anyway, as SQLite would by
/// default at 1,000: a bound on the log should the background task stall.
const WAL_BACKSTOP_PAGES: u32 = 16_384;

/// Checkpoints the write-ahead log every `WAL_CHECKPOINT_EVERY` until the pool closes. PASSIVE:
/// it copies what no reader still needs and never waits for, or blocks, readers or the writer.
async fn checkpoint_wal(pool: SqlitePool) {
    let mut every = tokio::time::interval(WAL_CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !pool.is_closed() {
        every.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await
        {
            // A busy or closing database; the next tick tries again, and the backstop bounds
            // the log meanwhile.
            tracing::debug!(error = %e, "write-ahead log checkpoint skipped");
        }
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database named by `url` and brings its schema up to date.
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(format!("{} ({e})", redact_url(url))))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode cannot corrupt the database; a power loss may drop the last
            // commits, the trade SQLite recommends for WAL.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("wal_autocheckpoint", WAL_BACKSTOP_PAGES.to_string());

        // sqlx pings every connection it hands out by default, a hand-off to the connection's
        // worker thread and back before every statement; a connection to a local file has no
        // peer to lose.
        let pool_options = SqlitePoolOptions::new()
            .acquire_timeout(options.connect_timeout)
            .test_before_acquire(false);
        let pool_options = if is_in_memory(url) {
            // Each connection to `:memory:` would be its own empty database (sqlx's shared
            // cache would join them, but shared-cache locking fails fast with SQLITE_LOCKED
            // instead of waiting), so there is exactly one connection, and it is never retired:
            // the database dies with its last connection.
            pool_options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            create_parent_dir(connect.get_filename())?;
            pool_options.max_connections(options.max_connections.max(1))
        };

        let pool = pool_options
            .connect_with(connect.clone())
            .await
            .map_err(from_sqlx)?;
        MIGRATOR.run(&pool).await.map_err(from_migrate)?;
        let write_pool = if is_in_memory(url) {
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .acquire_timeout(options.connect_timeout)
                .test_before_acquire(false)
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(connect)
                .await
                .map_err(from_sqlx)?
        };
        let packing = Arc::new(load_packing(&pool, options.pack_dictionary_after).await?);
        tracing::debug!(store.url = %redact_url(url), "sqlite store opened");
        // An in-memory database has no log to checkpoint.
        let wal_checkpointer =
            (!is_in_memory(url)).then(|| tokio::spawn(checkpoint_wal(pool.clone())).abort_handle());
        Ok(Self {
            pool,
            writer: Arc::new(tokio::sync::Mutex::new(Writer {
                pool: write_pool,
                head: None,
            })),
            packing,
            wal_checkpointer,
        })
    }

    /// Trains a pack dictionary from the newest `created` events now, and packs with it from
    /// then on; its id, or `None` when there was too little to train from. In service the store
    /// does this by itself in the background (`count_packed`); tests ask for it.
    #[cfg(test)]
    pub(crate) async fn train_pack_dictionary(&self) -> Result<Option<u32>, StoreError> {
        train_pack_dictionary(&self.pool, &self.writer, &self.packing).await
    }

    /// Counts a stored `created` event, and starts training a dictionary in the background
    /// when it is time. A check never waits for it.
    fn count_packed(&self) {
        if !self.packing.count_one() {
            return;
        }
        let (pool, writer, packing) = (
            self.pool.clone(),
            Arc::clone(&self.writer),
            Arc::clone(&self.packing),
        );
        Arc::clone(&self.packing).train_in_background(async move {
            train_pack_dictionary(&pool, &writer, &packing).await
        });
    }

    /// One writer's turn: the in-process queue (`writer`), then a transaction begun IMMEDIATE,
    /// which takes SQLite's write lock up front. Bind both, the guard first, so the transaction
    /// ends before the next writer's turn begins.
    async fn write_turn(
        &self,
    ) -> Result<
        (
            tokio::sync::MutexGuard<'_, Writer>,
            sqlx::Transaction<'static, Sqlite>,
        ),
        StoreError,
    > {
        let turn = self.writer.lock().await;
        let tx = turn
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(from_sqlx)?;
        Ok((turn, tx))
    }

    /// Indexes the failed rules of decisions stored since the last sequencer batch, if there
    /// are any, so a "rule failed" list sees every decision (migration 0009).
    async fn catch_up_failed_rules(&self) -> Result<(), StoreError> {
        let behind: bool = sqlx::query_scalar(
            "SELECT COALESCE((SELECT MAX(id) FROM decision_events), 0) > \
             (SELECT event_id FROM rule_index_head WHERE id = 1)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(from_sqlx)?;
        if !behind {
            return Ok(());
        }
        let (_turn, mut tx) = self.write_turn().await?;
        index_failed_rules(&mut tx).await?;
        tx.commit().await.map_err(from_sqlx)
    }

    /// The decision that won the idempotency slot `key` a decision just lost.
    async fn existing(&self, key: Option<&str>) -> Result<Inserted, StoreError> {
        let Some(key) = key else {
            return Err(StoreError::Corrupt(
                "a decision without an idempotency key was not stored".to_string(),
            ));
        };
        // The winner has committed (its row is what conflicted), and rows are never deleted,
        // so this read finds it.
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

    /// The decision in one idempotency slot (one generation of one key).
    async fn by_slot(&self, slot: &str) -> Result<Option<(Decision, String)>, StoreError> {
        let existing: Option<StoredWithFingerprint> = sqlx::query_as(concat!(
            "SELECT ",
            sqlite_decision_columns!(),
            ", d.request_fingerprint FROM decisions AS d WHERE d.idempotency_key = ?"
        ))
        .bind(slot)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        existing
            .map(|e| Ok((e.stored.into_decision()?, e.request_fingerprint)))
            .transpose()
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn decisions_for_image(
        &self,
        digest: &crate::domain::Digest,
        environment: &crate::domain::Environment,
        limit: u32,
    ) -> Result<Vec<super::ImageDecision>, StoreError> {
        let rows: Vec<super::row::ImageDecisionRow> = sqlx::query_as(
            "SELECT d.id, d.application, d.verdict, d.status, d.created_at, d.decided_at \
             FROM decision_images AS i JOIN decisions AS d ON d.id = i.decision_id \
             WHERE i.digest = ? AND i.environment = ? \
             ORDER BY i.decision_id DESC LIMIT ?",
        )
        .bind(digest.as_str())
        .bind(environment.as_str())
        .bind(i64::from(limit.clamp(1, super::MAX_IMAGE_DECISIONS)))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
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
        // The UNIQUE constraint on idempotency_key decides who wins, inside the database: of any
        // number of concurrent inserts with one key, exactly one writes. A read first would let
        // two callers both see "absent" and both write.
        let created = EventRow::created(decision, &row)?;
        let (rule_ids, outcomes) = rule_rows(decision);
        let rules = json_text(&rule_ids.iter().zip(&outcomes).collect::<Vec<_>>())?;
        let images = json_text(&image_digests(decision))?;
        // The decision, its `created` event and its rule and image rows in one statement (so one
        // autocommit transaction and one turn of the write lock): the view's INSTEAD OF trigger
        // inserts the decision and the rest (migration 0009); a decision whose idempotency slot
        // is taken fails the whole statement (migration 0015), so it stores nothing and the
        // insert itself says who won.
        // The in-process queue, not SQLite's busy handler, orders it behind other writes, and
        // the writer numbers and hashes the event as it stores it (migration 0010).
        let dictionary = self.packing.current();
        let new = NewDecision {
            row: &row,
            created: &created,
            // Stored once, in its `created` event, until a later event changes it (read back
            // through `sqlite_decision_columns!`).
            body: Packed {
                body: "",
                packed: None,
            },
            event_body: packed::pack(&created.body, dictionary.as_ref()),
            rules: &rules,
            images: &images,
        };
        let mut writer = self.writer.lock().await;
        let before = writer.head().await?;
        // Unknown until the statement has run: an error must not leave a head guessed.
        writer.head = None;
        let place = next_place(before, &created.body);
        match new.insert(&writer.pool, place).await {
            Ok(()) => {
                writer.head = Some(place);
                drop(writer);
                self.count_packed();
                Ok(Inserted::Created)
            }
            // Another decision holds the slot: nothing of this one was stored (migration
            // 0015), so the head is where it was.
            Err(e) if is_slot_taken(&e) => {
                writer.head = Some(before);
                drop(writer);
                self.existing(row.idempotency_key.as_deref()).await
            }
            // Another process moved the head (or someone edited the table), so nothing was
            // stored: read the head and insert in one transaction, which holds the write lock
            // from the read on.
            Err(e) if is_head_moved(&e) => {
                let mut tx = writer
                    .pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(from_sqlx)?;
                let before = read_head(&mut *tx).await?;
                let place = next_place(before, &created.body);
                match new.insert(&mut *tx, place).await {
                    Ok(()) => {
                        tx.commit().await.map_err(from_sqlx)?;
                        writer.head = Some(place);
                        drop(writer);
                        self.count_packed();
                        Ok(Inserted::Created)
                    }
                    Err(e) if is_slot_taken(&e) => {
                        tx.rollback().await.map_err(from_sqlx)?;
                        writer.head = Some(before);
                        drop(writer);
                        self.existing(row.idempotency_key.as_deref()).await
                    }
                    Err(e) => Err(from_sqlx(e)),
                }
            }
            Err(e) => Err(from_sqlx(e)),
        }
    }

    async fn find_by_idempotency_key(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<(Decision, String)>, StoreError> {
        let newest: Option<StoredWithFingerprint> = sqlx::query_as(concat!(
            "SELECT ",
            sqlite_decision_columns!(),
            ", d.request_fingerprint FROM decisions AS d WHERE d.idempotency_base = ? \
                 ORDER BY d.idempotency_generation DESC LIMIT 1"
        ))
        .bind(key.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        newest
            .map(|e| Ok((e.stored.into_decision()?, e.request_fingerprint)))
            .transpose()
    }

    async fn get_decision(&self, id: &DecisionId) -> Result<Option<Decision>, StoreError> {
        let stored: Option<StoredDecision> = sqlx::query_as(concat!(
            "SELECT ",
            sqlite_decision_columns!(),
            " FROM decisions AS d WHERE d.id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        stored.map(StoredDecision::into_decision).transpose()
    }

    async fn list_decisions(
        &self,
        filter: &DecisionFilter,
        page_size: u32,
        page_token: Option<&str>,
    ) -> Result<DecisionPage, StoreError> {
        let page_size = clamp_page_size(page_size);
        let after = page_token.map(decode_token).transpose()?;

        let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(list::SELECT_WITH_PACKED);
        // "Rule failed" and the image digest have indexes in id order (the table
        // `decision_rules_failed` `(rule_id, decision_id)`, brought up to date first, `decision_images` `(digest, environment, decision_id)`):
        // the list walks one newest first and joins each row to its decision by primary key, so
        // a page of a rare rule's failures reads about a page of rows, not every decision.
        // CROSS JOIN is how SQLite is told to keep that order of tables: without statistics its
        // planner could start from `decisions` and probe once per decision of the whole table.
        // "Rule passed" and "rule" have no index by rule (migration 0008 says why): they walk
        // decisions newest first and look each up by key.
        let rule_failed = filter
            .rule
            .as_ref()
            .filter(|r| r.outcome == Some(RuleOutcomeFilter::Failed));
        if rule_failed.is_some() {
            self.catch_up_failed_rules().await?;
        }
        let order = if let Some(rule) = rule_failed {
            query
                .push("decision_rules_failed AS r CROSS JOIN decisions AS d ")
                .push("WHERE d.id = r.decision_id AND r.rule_id = ")
                .push_bind(rule.rule_id.as_str());
            if let Some(digest) = &filter.image_digest {
                list::push_image_exists(&mut query, digest.as_str());
            }
            "r.decision_id"
        } else if let Some(digest) = &filter.image_digest {
            query
                .push("decision_images AS i CROSS JOIN decisions AS d ")
                .push("WHERE d.id = i.decision_id AND i.digest = ")
                .push_bind(digest.as_str());
            if let Some(environment) = &filter.environment {
                // With the environment too the key prefix is complete and already in id order.
                query
                    .push(" AND i.environment = ")
                    .push_bind(environment.as_str());
            }
            "i.decision_id"
        } else {
            query.push("decisions AS d WHERE 1 = 1");
            "d.id"
        };
        if let Some(rule) = filter.rule.as_ref().filter(|_| rule_failed.is_none()) {
            query
                .push(" AND EXISTS (SELECT 1 FROM decision_rules AS r WHERE r.decision_id = d.id")
                .push(" AND r.rule_id = ")
                .push_bind(rule.rule_id.as_str());
            if let Some(outcome) = rule.outcome {
                query.push(" AND r.outcome = ").push_bind(outcome.as_str());
            }
            query.push(")");
        }
        list::push_conditions(&mut query, filter);
        list::push_page(&mut query, order, after.as_ref(), page_size);

        let rows: Vec<StoredDecision> = query
            .build_query_as()
            .fetch_all(&self.pool)
            .await
            .map_err(from_sqlx)?;
        list::page(rows, page_size)
    }

    async fn get_decision_versioned(
        &self,
        id: &DecisionId,
    ) -> Result<Option<(Decision, u64)>, StoreError> {
        let stored: Option<StoredVersioned> = sqlx::query_as(concat!(
            "SELECT ",
            sqlite_decision_columns!(),
            ", d.event_count FROM decisions AS d WHERE d.id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        stored.map(StoredVersioned::into_versioned).transpose()
    }

    async fn append_events(
        &self,
        next: &Decision,
        expected_events: u64,
        events: &[DecisionEvent],
    ) -> Result<bool, StoreError> {
        // The fingerprint describes the request that created the row and stays as it is.
        let row = DecisionRow::new(next, "")?;
        let event_rows = EventRow::all(events, expected_events)?;
        let expected = i64::try_from(expected_events).unwrap_or(i64::MAX);
        let count = expected.saturating_add(i64::try_from(events.len()).unwrap_or(i64::MAX));
        let dictionary = self.packing.current();
        let body = packed::pack(&row.body, dictionary.as_ref());
        // IMMEDIATE takes the write lock up front (waiting `busy_timeout` for it), so the
        // compare-and-set UPDATE and the event inserts run as one writer's turn.
        let (mut turn, mut tx) = self.write_turn().await?;
        let updated = sqlx::query(
            "UPDATE decisions SET idempotency_key = ?, application = ?, environment = ?, \
             verdict = ?, status = ?, caller_kind = ?, policy_version = ?, created_at = ?, \
             decided_at = ?, schema_version = ?, body = ?, packed = ?, event_count = ?, \
             review_deadline = ?, review_system = ? \
             WHERE id = ? AND event_count = ?",
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
        .bind(body.body)
        .bind(body.packed.as_deref())
        .bind(count)
        .bind(row.review_deadline_ms)
        .bind(row.review_system)
        .bind(row.id)
        .bind(expected)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        if updated.rows_affected() != 1 {
            tx.rollback().await.map_err(from_sqlx)?;
            return Ok(false);
        }
        // Numbered and hashed as they are stored, after the head this turn reads (migration
        // 0010 explains why not by the sequencer).
        turn.head = None;
        let mut place = read_head(&mut *tx).await?;
        let mut places = Vec::with_capacity(event_rows.len());
        for e in &event_rows {
            place = next_place(place, &e.body);
            places.push(place);
        }
        insert_events(&mut tx, &event_rows, &places, dictionary.as_ref()).await?;
        move_head(&mut tx, place).await?;
        upsert_rule_rows(&mut tx, next).await?;
        sync_failed_rules(&mut tx, next.id.as_str()).await?;
        tx.commit().await.map_err(from_sqlx)?;
        turn.head = Some(place);
        Ok(true)
    }

    async fn sequence_events(&self, max: u32) -> Result<u64, StoreError> {
        // IMMEDIATE: the write lock is the sequencer's turn; nobody appends meanwhile. Events
        // are numbered as they are stored (migration 0010); this numbers those that were not:
        // rows stored before that migration.
        let (mut turn, mut tx) = self.write_turn().await?;
        // The batch's failed rules go into their index in the same turn (migration 0009).
        index_failed_rules(&mut tx).await?;
        let (head_seq, head_hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM ledger_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        let mut rows: Vec<Unsequenced> = sqlx::query_as(
            "SELECT id, body, packed FROM decision_events WHERE seq IS NULL ORDER BY id LIMIT ?",
        )
        .bind(i64::from(max))
        .fetch_all(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        // Hashed over the text, never over the packed bytes.
        for row in &mut rows {
            let (id, body) = (row.id, std::mem::take(&mut row.body));
            row.body = packed::unpack(body, row.packed.take(), || format!("event row {id}"))?;
        }
        if rows.is_empty() {
            tx.commit().await.map_err(from_sqlx)?;
            return Ok(0);
        }
        let (links, (seq, hash)) = link_rows(&rows, head_seq, &head_hash)?;
        // One UPDATE for the batch, so the write lock is held for one statement, not one per row.
        let mut update: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "UPDATE decision_events SET seq = v.column2, hash = v.column3 FROM (",
        );
        update.push_values(rows.iter().zip(&links), |mut b, (row, (seq, hash))| {
            b.push_bind(row.id).push_bind(*seq).push_bind(hash.as_str());
        });
        update.push(") AS v WHERE decision_events.id = v.column1");
        update.build().execute(&mut *tx).await.map_err(from_sqlx)?;
        turn.head = None;
        sqlx::query("UPDATE ledger_head SET seq = ?, hash = ? WHERE id = 1")
            .bind(seq)
            .bind(hash)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(rows.len() as u64)
    }

    async fn ledger_head(&self) -> Result<(u64, String), StoreError> {
        let (seq, hash): (i64, String) =
            sqlx::query_as("SELECT seq, hash FROM ledger_head WHERE id = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(from_sqlx)?;
        Ok((u64::try_from(seq).unwrap_or(0), hash))
    }

    async fn ledger_entries(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<super::LedgerEntry>, StoreError> {
        let rows: Vec<StoredEntry> = sqlx::query_as(
            "SELECT seq, hash, decision_id, body, packed FROM decision_events \
             WHERE seq >= ?1 AND seq <= ?2 \
             UNION ALL SELECT seq, hash, NULL, NULL, NULL FROM ledger_pruned \
             WHERE seq >= ?1 AND seq <= ?2 \
             ORDER BY seq",
        )
        .bind(db_int(from))
        .bind(db_int(to))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.into_iter().map(StoredEntry::unpack).collect()
    }

    async fn ledger_hashes(&self, from: u64, to: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, hash FROM decision_events WHERE seq >= ?1 AND seq <= ?2 \
             UNION ALL SELECT seq, hash FROM ledger_pruned WHERE seq >= ?1 AND seq <= ?2 \
             ORDER BY seq",
        )
        .bind(db_int(from))
        .bind(db_int(to))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(rows
            .into_iter()
            .map(|(seq, hash)| (u64::try_from(seq).unwrap_or(0), hash))
            .collect())
    }

    async fn insert_ledger_nodes(&self, nodes: &[Node]) -> Result<(), StoreError> {
        for chunk in nodes.chunks(500) {
            let mut insert: QueryBuilder<'_, Sqlite> =
                QueryBuilder::new("INSERT INTO ledger_nodes (level, idx, hash) ");
            insert.push_values(chunk, |mut b, node| {
                let (level, index, hash) = node_columns(node);
                b.push_bind(level).push_bind(index).push_bind(hash);
            });
            insert.push(" ON CONFLICT (level, idx) DO NOTHING");
            let writer = self.writer.lock().await;
            insert
                .build()
                .execute(&writer.pool)
                .await
                .map_err(from_sqlx)?;
        }
        Ok(())
    }

    async fn ledger_nodes(&self, wanted: &[(u32, u64)]) -> Result<Vec<Node>, StoreError> {
        let mut found = Vec::new();
        for chunk in wanted.chunks(500) {
            let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "SELECT level, idx, hash FROM ledger_nodes WHERE (level, idx) IN (",
            );
            let mut list = query.separated(", ");
            for (level, index) in chunk {
                list.push("(")
                    .push_bind_unseparated(i64::from(*level))
                    .push_unseparated(", ")
                    .push_bind_unseparated(db_int(*index))
                    .push_unseparated(")");
            }
            query.push(")");
            let rows: Vec<(i64, i64, String)> = query
                .build_query_as()
                .fetch_all(&self.pool)
                .await
                .map_err(from_sqlx)?;
            found.extend(nodes_from_rows(rows)?);
        }
        Ok(found)
    }

    async fn checkpoints(
        &self,
        from_index: u64,
        limit: u32,
    ) -> Result<Vec<crate::audit::checkpoint::SignedCheckpoint>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM ledger_checkpoints WHERE idx >= ? ORDER BY idx LIMIT ?",
        )
        .bind(db_int(from_index))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        bodies.iter().map(|b| checkpoint_from_body(b)).collect()
    }

    async fn prune_decisions(
        &self,
        through_seq: u64,
        before: chrono::DateTime<chrono::Utc>,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let (_turn, mut tx) = self.write_turn().await?;
        // Final, decided before the cut, and every event numbered inside the signed part.
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT d.id FROM decisions AS d \
             WHERE d.status = 'final' AND d.decided_at < ?1 \
             AND NOT EXISTS (SELECT 1 FROM decision_events AS e WHERE e.decision_id = d.id \
                             AND (e.seq IS NULL OR e.seq > ?2)) \
             LIMIT ?3",
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
        // The failed-rule index first, found through the rows it mirrors (it is keyed by rule).
        let statements = [
            (PRUNE_FAILED_RULES, "))"),
            ("DELETE FROM decision_rules WHERE decision_id IN", ")"),
        ]
        .into_iter()
        .chain(PRUNE_STATEMENTS.iter().map(|statement| (*statement, ")")));
        for (statement, close) in statements {
            let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(statement);
            query.push(" (");
            let mut list = query.separated(", ");
            for id in &ids {
                list.push_bind(id.as_str());
            }
            query.push(close);
            query.build().execute(&mut *tx).await.map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(ids.len() as u64)
    }

    async fn decision_entries(
        &self,
        id: &DecisionId,
    ) -> Result<Vec<super::LedgerEntry>, StoreError> {
        let rows: Vec<StoredEntry> = sqlx::query_as(
            "SELECT seq, hash, decision_id, body, packed FROM decision_events \
             WHERE decision_id = ? AND seq IS NOT NULL ORDER BY idx",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.into_iter().map(StoredEntry::unpack).collect()
    }

    async fn latest_checkpoint(
        &self,
    ) -> Result<Option<crate::audit::checkpoint::SignedCheckpoint>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM ledger_checkpoints ORDER BY idx DESC LIMIT 1")
                .fetch_optional(&self.pool)
                .await
                .map_err(from_sqlx)?;
        body.as_deref().map(checkpoint_from_body).transpose()
    }

    async fn insert_checkpoint(
        &self,
        checkpoint: &crate::audit::checkpoint::SignedCheckpoint,
    ) -> Result<bool, StoreError> {
        let body = serde_json::to_string(checkpoint)
            .map_err(|e| StoreError::Corrupt(format!("a checkpoint could not be encoded: {e}")))?;
        let c = &checkpoint.checkpoint;
        let result = sqlx::query("INSERT INTO ledger_checkpoints (idx, tree_size, at, body) VALUES (?, ?, ?, ?) ON CONFLICT (idx) DO NOTHING").bind(i64::try_from(c.index).unwrap_or(i64::MAX)).bind(i64::try_from(c.tree_size).unwrap_or(i64::MAX)).bind(c.at.timestamp_millis()).bind(body)
            .execute(&self.writer.lock().await.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(result.rows_affected() == 1)
    }

    async fn put_policy_version(
        &self,
        record: &crate::domain::PolicyVersionRecord,
    ) -> Result<bool, StoreError> {
        let row = PolicyVersionRow::new(record)?;
        // The primary key decides between concurrent writers; the loser changes nothing.
        let result = sqlx::query(
            "INSERT INTO policy_versions (version, created_at, body) VALUES (?, ?, ?) \
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(row.version)
        .bind(row.created_at_ms)
        .bind(&row.body)
        .execute(&self.writer.lock().await.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(result.rows_affected() == 1)
    }

    async fn get_policy_version(
        &self,
        version: &str,
    ) -> Result<Option<crate::domain::PolicyVersionRecord>, StoreError> {
        let stored: Option<StoredPolicyVersion> = sqlx::query_as(
            "SELECT version, created_at, body FROM policy_versions WHERE version = ?",
        )
        .bind(version)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        stored.map(StoredPolicyVersion::into_record).transpose()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    async fn try_claim(
        &self,
        job: &str,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        // The same upsert as PostgreSQL's (see there); the write lock serialises claimers.
        let generation: Option<i64> = sqlx::query_scalar(concat!(
            "INSERT INTO leases (job, holder, generation, expires_at) VALUES (?1, ?2, 1, ",
            now_ms!(),
            " + ?3) ON CONFLICT (job) DO UPDATE SET ",
            "generation = CASE WHEN leases.holder = excluded.holder AND leases.expires_at > ",
            now_ms!(),
            " THEN leases.generation ELSE leases.generation + 1 END, ",
            "holder = excluded.holder, expires_at = excluded.expires_at ",
            "WHERE leases.expires_at <= ",
            now_ms!(),
            " OR leases.holder = excluded.holder RETURNING generation"
        ))
        .bind(job)
        .bind(holder)
        .bind(ttl_millis(ttl))
        .fetch_optional(&self.writer.lock().await.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(generation.map(|generation| Lease {
            job: job.to_string(),
            holder: holder.to_string(),
            generation,
        }))
    }

    async fn release(&self, lease: &Lease) -> Result<bool, StoreError> {
        // Expire rather than delete, so the generation keeps counting up.
        let result = sqlx::query(concat!(
            "UPDATE leases SET expires_at = 0 ",
            "WHERE job = ?1 AND holder = ?2 AND generation = ?3 AND expires_at > ",
            now_ms!()
        ))
        .bind(&lease.job)
        .bind(&lease.holder)
        .bind(lease.generation)
        .execute(&self.writer.lock().await.pool)
        .await
        .map_err(from_sqlx)?;
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
        // INDEXED BY: the partial index of pending rows by deadline is the whole point; without
        // statistics SQLite could pick the status index and read every pending row (and a
        // query the index cannot serve fails here instead of scanning).
        let rows: Vec<StoredDue> = sqlx::query_as(concat!(
            "SELECT ",
            sqlite_decision_columns!(),
            ", d.review_deadline \
                 FROM decisions AS d INDEXED BY decisions_pending_deadline \
                 WHERE d.status = 'pending' AND d.review_deadline <= ?1 \
                 AND (d.review_deadline, d.id) > (?2, ?3) \
                 ORDER BY d.review_deadline, d.id LIMIT ?4"
        ))
        .bind(before.timestamp_millis())
        .bind(after.deadline_ms)
        .bind(after.id.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        due_page(rows, limit)
    }

    async fn pending_in_environment(
        &self,
        environment: &str,
        after: Option<&DecisionId>,
        limit: u32,
    ) -> Result<Vec<PendingReview>, StoreError> {
        // Answered by the index alone (it holds every column read), see migration 0013.
        let rows: Vec<PendingRow> = sqlx::query_as(
            "SELECT id, review_system \
             FROM decisions INDEXED BY decisions_pending_environment \
             WHERE status = 'pending' AND environment = ?1 AND id > ?2 \
             ORDER BY id LIMIT ?3",
        )
        .bind(environment)
        .bind(after.map_or("", DecisionId::as_str))
        .bind(i64::from(clamp_page_size(limit)))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.into_iter().map(PendingRow::into_pending).collect()
    }

    async fn find_pending_by_ticket(
        &self,
        system: &str,
        handle: &str,
    ) -> Result<Option<Decision>, StoreError> {
        // Numbers are stored upper-cased, ids as they are (migration 0011). CROSS JOIN keeps
        // the ticket index outermost: without statistics SQLite would otherwise start from the
        // status index, a scan of every pending decision.
        let stored: Option<StoredDecision> = sqlx::query_as(concat!(
            "SELECT ",
            sqlite_decision_columns!(),
            " FROM decision_tickets AS t CROSS JOIN decisions AS d ON d.id = t.decision_id \
             WHERE t.system = ?1 AND t.handle IN (?2, ?3) AND d.status = 'pending' \
             ORDER BY t.decision_id DESC LIMIT 1"
        ))
        .bind(system)
        .bind(handle)
        .bind(handle.to_ascii_uppercase())
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        stored.map(StoredDecision::into_decision).transpose()
    }
}

/// Stores `rows` at their `places` in the log inside the caller's transaction.
async fn insert_events(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    rows: &[EventRow],
    places: &[Head],
    dictionary: Option<&Dictionary>,
) -> Result<(), StoreError> {
    for (e, (seq, hash)) in rows.iter().zip(places) {
        let body = packed::pack_event(e.kind, &e.body, dictionary);
        sqlx::query(
            "INSERT INTO decision_events (decision_id, idx, at, kind, body, seq, hash, packed) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&e.decision_id)
        .bind(e.idx)
        .bind(e.at_ms)
        .bind(e.kind)
        .bind(body.body)
        .bind(*seq)
        .bind(crate::audit::hex(hash))
        .bind(body.packed.as_deref())
        .execute(&mut **tx)
        .await
        .map_err(from_sqlx)?;
    }
    Ok(())
}

/// Moves `ledger_head` to `head` inside the caller's transaction.
async fn move_head(tx: &mut sqlx::Transaction<'_, Sqlite>, head: Head) -> Result<(), StoreError> {
    sqlx::query("UPDATE ledger_head SET seq = ?, hash = ? WHERE id = 1")
        .bind(head.0)
        .bind(crate::audit::hex(&head.1))
        .execute(&mut **tx)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// Brings `next`'s `decision_rules` rows in step with its rule results inside the caller's
/// transaction: an approval can replace a result (a time-bound rule that no longer holds), and
/// lists must follow the stored results. Rows whose outcome is unchanged are not rewritten.
async fn upsert_rule_rows(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    next: &Decision,
) -> Result<(), StoreError> {
    let (rule_ids, outcomes) = rule_rows(next);
    let rows: Vec<(&str, &str)> = rule_ids.into_iter().zip(outcomes).collect();
    // Three parameters a row, well under SQLite's limit of 32766 a statement.
    for chunk in rows.chunks(1000) {
        let mut upsert: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("INSERT INTO decision_rules (rule_id, decision_id, outcome) ");
        upsert.push_values(chunk, |mut b, (rule_id, outcome)| {
            b.push_bind(*rule_id)
                .push_bind(next.id.as_str())
                .push_bind(*outcome);
        });
        upsert.push(
            " ON CONFLICT (decision_id, rule_id) DO UPDATE SET outcome = excluded.outcome \
             WHERE decision_rules.outcome <> excluded.outcome",
        );
        upsert.build().execute(&mut **tx).await.map_err(from_sqlx)?;
    }
    Ok(())
}

/// What retention runs first, for SQLite's own failed-rule index (migration 0009).
const PRUNE_FAILED_RULES: &str = "DELETE FROM decision_rules_failed WHERE (rule_id, decision_id) \
     IN (SELECT rule_id, decision_id FROM decision_rules WHERE outcome = 'failed' AND decision_id IN";

/// Puts the failed rules of every decision created after `rule_index_head` into
/// `decision_rules_failed` and moves the head to the last event (migration 0009). Inside the
/// caller's write transaction, so nothing is appended between the two statements.
async fn index_failed_rules(tx: &mut sqlx::Transaction<'_, Sqlite>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT OR IGNORE INTO decision_rules_failed (rule_id, decision_id) \
         SELECT r.rule_id, r.decision_id FROM decision_events AS e \
         CROSS JOIN decision_rules AS r \
         WHERE e.id > (SELECT event_id FROM rule_index_head WHERE id = 1) AND e.idx = 0 \
         AND r.decision_id = e.decision_id AND r.outcome = 'failed'",
    )
    .execute(&mut **tx)
    .await
    .map_err(from_sqlx)?;
    sqlx::query(
        "UPDATE rule_index_head SET event_id = (SELECT MAX(id) FROM decision_events) \
         WHERE id = 1 AND event_id < (SELECT COALESCE(MAX(id), 0) FROM decision_events)",
    )
    .execute(&mut **tx)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// Makes `decision_rules_failed` hold exactly the failed rules of decision `id` as
/// `decision_rules` has them, after a review changed its results. Whether or not the decision
/// was indexed yet: a later `index_failed_rules` reads the same rows and adds nothing new.
async fn sync_failed_rules(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    id: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM decision_rules_failed WHERE (rule_id, decision_id) IN \
         (SELECT rule_id, decision_id FROM decision_rules WHERE decision_id = ?1 \
          AND outcome = 'passed')",
    )
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(from_sqlx)?;
    sqlx::query(
        "INSERT OR IGNORE INTO decision_rules_failed (rule_id, decision_id) \
         SELECT rule_id, decision_id FROM decision_rules WHERE decision_id = ?1 \
         AND outcome = 'failed'",
    )
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(from_sqlx)?;
    Ok(())
}

/// Whether `url` names a database that lives only in memory (`sqlite::memory:`,
/// `sqlite://:memory:`, or `mode=memory`). sqlx parses the same forms but does not say.
fn is_in_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// SQLite creates the file but not its directory; a fresh data volume usually has neither.
fn create_parent_dir(file: &Path) -> Result<(), StoreError> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create directory `{}`: {e}", dir.display()))
        }),
        _ => Ok(()),
    }
}

/// A decision as the one statement that stores it (the `decision_inserts` view).
struct NewDecision<'a> {
    row: &'a DecisionRow<'a>,
    created: &'a EventRow,
    /// `row.body` and `created.body` as stored (`store/packed.rs`), packed once however many
    /// times the insert is tried.
    body: Packed<'a>,
    event_body: Packed<'a>,
    rules: &'a str,
    images: &'a str,
}

impl NewDecision<'_> {
    /// Stores the decision with its `created` event at `place` in the log; migration 0010's
    /// trigger refuses it, storing nothing, if the log's head is not the place before.
    async fn insert<'e, E>(&self, executor: E, place: Head) -> Result<(), sqlx::Error>
    where
        E: sqlx::Executor<'e, Database = Sqlite>,
    {
        let (row, created) = (self.row, self.created);
        sqlx::query(
            "INSERT INTO decision_inserts (id, idempotency_key, request_fingerprint, \
             application, environment, verdict, status, caller_kind, policy_version, \
             created_at, decided_at, schema_version, body, principal, idempotency_base, \
             idempotency_generation, event_at, event_body, rules, images, event_seq, \
             event_hash, packed, event_packed, review_deadline, review_system) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, \
             ?)",
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
        .bind(self.body.body)
        .bind(row.principal)
        .bind(row.idempotency_base)
        .bind(row.idempotency_generation)
        .bind(created.at_ms)
        .bind(self.event_body.body)
        .bind(self.rules)
        .bind(self.images)
        .bind(place.0)
        .bind(crate::audit::hex(&place.1))
        .bind(self.body.packed.as_deref())
        .bind(self.event_body.packed.as_deref())
        .bind(row.review_deadline_ms)
        .bind(row.review_system)
        .execute(executor)
        .await?;
        Ok(())
    }
}

/// A small value as the JSON text a trigger reads with `json_each` (migration 0009).
fn json_text<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("rows for a decision could not be encoded: {e}")))
}
