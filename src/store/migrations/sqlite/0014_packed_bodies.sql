-- Large decision and event bodies stored compressed (`store/packed.rs`): a packed row has an
-- empty `body` and its text, zstd-compressed, in `packed`. Rows from before this migration, and
-- bodies under 1 KB (every event but `created`, in practice), stay plain text in `body`.
-- SQLite only: PostgreSQL compresses bodies in its own storage (migration 0012).
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- Nothing in SQL reads a large body: the rule, image and ticket index rows come with the insert
-- or from small events (migrations 0009–0011), and hashes are over the text, computed by the
-- store before it packs.
ALTER TABLE decisions ADD COLUMN packed BLOB;
ALTER TABLE decision_events ADD COLUMN packed BLOB;

-- The insert view and its trigger are migration 0010's plus `packed` and `event_packed`, and
-- the pending-review projections `review_deadline` and `review_system` (migration 0013), so the
-- sweeper's and the followers' indexes hold every pending review from the statement that stores
-- it.
DROP TRIGGER decision_inserts_insert;
DROP VIEW decision_inserts;

CREATE VIEW decision_inserts AS
SELECT id, idempotency_key, request_fingerprint, application, environment, verdict, status,
       caller_kind, policy_version, created_at, decided_at, schema_version, body, principal,
       idempotency_base, idempotency_generation, packed, review_deadline, review_system,
       NULL AS event_at, NULL AS event_body,
       NULL AS event_packed, NULL AS rules, NULL AS images, NULL AS event_seq,
       NULL AS event_hash
FROM decisions WHERE 0;

CREATE TRIGGER decision_inserts_insert INSTEAD OF INSERT ON decision_inserts
BEGIN
    SELECT RAISE(ABORT, 'portcullis: the ledger head moved')
    WHERE (SELECT seq FROM ledger_head WHERE id = 1) IS NOT NEW.event_seq - 1;
    INSERT INTO decisions (id, idempotency_key, request_fingerprint, application, environment,
                           verdict, status, caller_kind, policy_version, created_at, decided_at,
                           schema_version, body, principal, idempotency_base,
                           idempotency_generation, event_count, packed, review_deadline,
                           review_system)
    VALUES (NEW.id, NEW.idempotency_key, NEW.request_fingerprint, NEW.application,
            NEW.environment, NEW.verdict, NEW.status, NEW.caller_kind, NEW.policy_version,
            NEW.created_at, NEW.decided_at, NEW.schema_version, NEW.body, NEW.principal,
            NEW.idempotency_base, NEW.idempotency_generation, 1, NEW.packed,
            NEW.review_deadline, NEW.review_system)
    ON CONFLICT (idempotency_key) DO NOTHING;
    -- Each of the rest only if the decision row is now there (ids are unique, so it is there
    -- only if this insert made it).
    INSERT INTO decision_events (decision_id, idx, at, kind, body, seq, hash, packed)
    SELECT NEW.id, 0, NEW.event_at, 'created', NEW.event_body, NEW.event_seq, NEW.event_hash,
           NEW.event_packed
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
