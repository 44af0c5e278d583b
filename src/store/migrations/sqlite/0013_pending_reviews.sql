-- Pending reviews found by indexed columns, never by reading every pending decision's body.
-- The expiry sweeper asks "which pending reviews are due by T?" (T = now plus the longest
-- reminder window the observers want) and each review follower asks "which pending reviews of
-- environment E exist, and which ticket system does each wait on?". Both used to list every
-- pending decision in full and parse its body (≈ 10 KB of JSON): with 69,000 pending reviews a
-- sweep cost 12–37 s of CPU. The PostgreSQL twin is `migrations/postgres/0013_pending_reviews.sql`.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- Two projections of the body, written with every insert and every append (the one write
-- path), from the same `Decision` as `body` (`store::row::DecisionRow`):
-- `review_deadline` is `body.review_deadline` in unix milliseconds, `review_system` is
-- `body.review_ticket.system` (`servicenow`, `jira`). Both indexes hold pending rows only, so a
-- resolution (status `final`, in the same UPDATE) takes the row out of them.
ALTER TABLE decisions ADD COLUMN review_deadline INTEGER;  -- unix milliseconds, UTC
ALTER TABLE decisions ADD COLUMN review_system TEXT;       -- the ticket's system, once routed

-- The sweeper's page: deadline order, then id (the page cursor).
CREATE INDEX decisions_pending_deadline ON decisions (review_deadline, id)
WHERE status = 'pending';
-- The followers' page, per environment, by id. `review_system` is in the key so the index
-- answers the whole query: the column sits after `body` in the table's records, and reading
-- it from the table would walk the body's overflow pages.
CREATE INDEX decisions_pending_environment ON decisions (environment, id, review_system)
WHERE status = 'pending';

-- Reviews pending before this migration, from their bodies (only pending rows are ever read
-- through these columns, so final ones are left NULL rather than parsed). SQLite reads the
-- time to the millisecond; a deadline with a sub-millisecond part may come out one
-- millisecond later than the store writes it, which delays that review by one sweep at most.
UPDATE decisions
SET review_deadline = CAST(ROUND(unixepoch(body ->> '$.review_deadline', 'subsec') * 1000) AS INTEGER),
    review_system = body ->> '$.review_ticket.system'
WHERE status = 'pending';

-- The insert view and its trigger are migration 0010's plus the two columns.
DROP TRIGGER decision_inserts_insert;
DROP VIEW decision_inserts;

CREATE VIEW decision_inserts AS
SELECT id, idempotency_key, request_fingerprint, application, environment, verdict, status,
       caller_kind, policy_version, created_at, decided_at, schema_version, body, principal,
       idempotency_base, idempotency_generation, review_deadline, review_system,
       NULL AS event_at, NULL AS event_body, NULL AS rules, NULL AS images, NULL AS event_seq,
       NULL AS event_hash
FROM decisions WHERE 0;

CREATE TRIGGER decision_inserts_insert INSTEAD OF INSERT ON decision_inserts
BEGIN
    SELECT RAISE(ABORT, 'portcullis: the ledger head moved')
    WHERE (SELECT seq FROM ledger_head WHERE id = 1) IS NOT NEW.event_seq - 1;
    INSERT INTO decisions (id, idempotency_key, request_fingerprint, application, environment,
                           verdict, status, caller_kind, policy_version, created_at, decided_at,
                           schema_version, body, principal, idempotency_base,
                           idempotency_generation, event_count, review_deadline, review_system)
    VALUES (NEW.id, NEW.idempotency_key, NEW.request_fingerprint, NEW.application,
            NEW.environment, NEW.verdict, NEW.status, NEW.caller_kind, NEW.policy_version,
            NEW.created_at, NEW.decided_at, NEW.schema_version, NEW.body, NEW.principal,
            NEW.idempotency_base, NEW.idempotency_generation, 1, NEW.review_deadline,
            NEW.review_system)
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
