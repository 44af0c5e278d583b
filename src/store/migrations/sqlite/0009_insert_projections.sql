-- A decision's rule rows (`decision_rules`, migration 0008) and image rows (`decision_images`,
-- migration 0003) come with its insert as two small JSON arrays the store builds from the same
-- `Decision` it encodes into `body` (`store::row::{rule_rows, image_digests}`): `rules` is
-- `[["<rule id>", "failed" | "passed"], …]`, `images` is `["sha256:<hex>", …]`. Until now two
-- triggers parsed the whole body (≈ 10 KB of JSON) again on every insert, inside SQLite's one
-- write lock. The PostgreSQL twin is
-- `migrations/postgres/0009_insert_projections.sql`.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- The view and its trigger are those of migration 0005 plus the two columns; the insert into
-- the view stays the only way a decision is inserted, so every decision still lands with its
-- rows in one statement, and a decision that lost its idempotency-key race leaves none.
DROP TRIGGER decision_rules_on_insert;
DROP TRIGGER decision_images_on_insert;
DROP TRIGGER decision_inserts_insert;
DROP VIEW decision_inserts;

CREATE VIEW decision_inserts AS
SELECT id, idempotency_key, request_fingerprint, application, environment, verdict, status,
       caller_kind, policy_version, created_at, decided_at, schema_version, body, principal,
       idempotency_base, idempotency_generation, NULL AS event_at, NULL AS event_body,
       NULL AS rules, NULL AS images
FROM decisions WHERE 0;

CREATE TRIGGER decision_inserts_insert INSTEAD OF INSERT ON decision_inserts
BEGIN
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
    INSERT INTO decision_events (decision_id, idx, at, kind, body)
    SELECT NEW.id, 0, NEW.event_at, 'created', NEW.event_body
    WHERE EXISTS (SELECT 1 FROM decisions WHERE id = NEW.id);
    INSERT OR IGNORE INTO decision_rules (decision_id, rule_id, outcome)
    SELECT NEW.id, rule.value ->> 0, rule.value ->> 1
    FROM json_each(NEW.rules) AS rule
    WHERE EXISTS (SELECT 1 FROM decisions WHERE id = NEW.id);
    INSERT OR IGNORE INTO decision_images (digest, environment, decision_id)
    SELECT image.value, NEW.environment, NEW.id
    FROM json_each(NEW.images) AS image
    WHERE EXISTS (SELECT 1 FROM decisions WHERE id = NEW.id);
END;

-- "Rule X failed" keeps its index by rule, but the index is now a table the store fills in
-- batches rather than a partial index over `decision_rules`. Indexed by rule, one check's
-- ≈ 15 failed rows landed on ≈ 15 different pages, and in WAL mode each page a commit dirties is
-- written whole: in `benches/store.rs` that was a third of the pages a check wrote. A batch of
-- a thousand checks dirties each rule's page once.
--
-- `rule_index_head.event_id` is the last event whose decision's failed rules are in
-- `decision_rules_failed`; the store brings it up to date (`index_failed_rules`, in
-- `store/sqlite.rs`) with every sequencer batch and before it answers a "rule failed" list, so
-- a list is never missing a decision. Event ids commit in order (SQLite has one writer), so
-- "events after the head" is exactly what is not indexed yet. A review that changes a
-- decision's results changes its rows here in the same transaction.
DROP INDEX decision_rules_failed;
CREATE TABLE decision_rules_failed (
    rule_id     TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    PRIMARY KEY (rule_id, decision_id)
) STRICT, WITHOUT ROWID;
INSERT INTO decision_rules_failed (rule_id, decision_id)
SELECT rule_id, decision_id FROM decision_rules WHERE outcome = 'failed';

CREATE TABLE rule_index_head (
    id       INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    event_id INTEGER NOT NULL
) STRICT;
INSERT INTO rule_index_head (id, event_id)
VALUES (1, COALESCE((SELECT MAX(id) FROM decision_events), 0));
