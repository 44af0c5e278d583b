-- A decision that loses its idempotency-key race now fails its insert (SQLITE_CONSTRAINT_UNIQUE on
-- `decisions.idempotency_key`, which aborts the whole statement: nothing of it is stored) instead
-- of being skipped in silence. The store learns who won from the insert itself, not from a read
-- after it: one round trip through the database's worker per check instead of two.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- The view and its trigger are migration 0014's, but for the conflict clause.
DROP TRIGGER decision_inserts_insert;

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
            NEW.review_deadline, NEW.review_system);
    INSERT INTO decision_events (decision_id, idx, at, kind, body, seq, hash, packed)
    VALUES (NEW.id, 0, NEW.event_at, 'created', NEW.event_body, NEW.event_seq, NEW.event_hash,
            NEW.event_packed);
    UPDATE ledger_head SET seq = NEW.event_seq, hash = NEW.event_hash WHERE id = 1;
    INSERT OR IGNORE INTO decision_rules (decision_id, rule_id, outcome)
    SELECT NEW.id, rule.value ->> 0, rule.value ->> 1
    FROM json_each(NEW.rules) AS rule;
    INSERT OR IGNORE INTO decision_images (digest, environment, decision_id)
    SELECT image.value, NEW.environment, NEW.id
    FROM json_each(NEW.images) AS image;
END;
