-- SQLite numbers and hashes a decision's `created` event as it stores it, instead of leaving it
-- for the sequencer (migration 0005). SQLite has one writer, and the store sends every write
-- through one connection behind an in-process queue (`store/sqlite.rs`), so the writer knows the
-- log's head: it passes the event's sequence number and chain hash with the insert, and the
-- trigger moves `ledger_head` with it. The sequencer used to rewrite every event row (≈ 10 KB,
-- overflow pages included) a second time to set `seq` and `hash`, and held the write lock for a
-- whole batch of them while checks queued behind it; in `benches/store.rs` that rewrite was most
-- of the 16-client tail. The sequencer stays, for events stored without a number (rows from
-- before this migration). PostgreSQL, with several replicas, keeps its lease-held sequencer.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- The view and trigger are migration 0009's plus `event_seq` and `event_hash`. A head that is
-- not the one the writer numbered after (another process wrote, or someone edited the table)
-- aborts the whole statement, so nothing is stored; the store reads the head again and retries.
-- A decision that loses its idempotency-key race stores nothing and leaves the head alone.
DROP TRIGGER decision_inserts_insert;
DROP VIEW decision_inserts;

CREATE VIEW decision_inserts AS
SELECT id, idempotency_key, request_fingerprint, application, environment, verdict, status,
       caller_kind, policy_version, created_at, decided_at, schema_version, body, principal,
       idempotency_base, idempotency_generation, NULL AS event_at, NULL AS event_body,
       NULL AS rules, NULL AS images, NULL AS event_seq, NULL AS event_hash
FROM decisions WHERE 0;

CREATE TRIGGER decision_inserts_insert INSTEAD OF INSERT ON decision_inserts
BEGIN
    SELECT RAISE(ABORT, 'portcullis: the ledger head moved')
    WHERE (SELECT seq FROM ledger_head WHERE id = 1) IS NOT NEW.event_seq - 1;
    INSERT INTO decisions (id, idempotency_key, request_fingerprint, application, environment,
                           verdict, status, caller_kind, policy_version, created_at, decided_at,
                           schema_version, body, principal, idempotency_base,
                           idempotency_generation, event_count)
    VALUES (NEW.id, NEW.idempotency_key, NEW.request_fingerprint, NEW.application,
            NEW.environment, NEW.verdict, NEW.status, NEW.caller_kind, NEW.policy_version,
            NEW.created_at, NEW.decided_at, NEW.schema_version, NEW.body, NEW.principal,
            NEW.idempotency_base, NEW.idempotency_generation, 1)
    ON CONFLICT (idempotency_key) DO NOTHING;
    -- Each of the rest only if the decision row is now there (ids are unique, so it is there
    -- only if this insert made it).
    INSERT INTO decision_events (decision_id, idx, at, kind, body, seq, hash)
    SELECT NEW.id, 0, NEW.event_at, 'created', NEW.event_body, NEW.event_seq, NEW.event_hash
    WHERE EXISTS (SELECT 1 FROM decisions WHERE id = NEW.id);
    UPDATE ledger_head SET seq = NEW.event_seq, hash = NEW.event_hash
    WHERE id = 1 AND EXISTS (SELECT 1 FROM decisions WHERE id = NEW.id);
    INSERT OR IGNORE INTO decision_rules (decision_id, rule_id, outcome)
    SELECT NEW.id, rule.value ->> 0, rule.value ->> 1
    FROM json_each(NEW.rules) AS rule
    WHERE EXISTS (SELECT 1 FROM decisions WHERE id = NEW.id);
    INSERT OR IGNORE INTO decision_images (digest, environment, decision_id)
    SELECT image.value, NEW.environment, NEW.id
    FROM json_each(NEW.images) AS image
    WHERE EXISTS (SELECT 1 FROM decisions WHERE id = NEW.id);
END;
