-- Every change to a decision as an event (`domain::DecisionEvent`): created, approval recorded,
-- refusal recorded, review ticket attached, resolved. The PostgreSQL twin is
-- `migrations/postgres/0005_decision_events.sql`.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- `decisions.event_count` is how many events the decision has; it is the compare-and-set token
-- of the one write path: an append names the count it read, and the UPDATE of the decision that
-- bumps it applies only if nobody appended in between. Events and the new decision body are
-- written in the same transaction, so the row is always the state its events imply.
--
-- Decisions stored before this migration have no events (count 0); the first change to one
-- records it as `adopted` (as it stood then) before the change itself.
ALTER TABLE decisions ADD COLUMN event_count INTEGER NOT NULL DEFAULT 0;

CREATE TABLE decision_events (
    id          INTEGER NOT NULL PRIMARY KEY,  -- insertion order: the sequencer numbers in it
    decision_id TEXT    NOT NULL REFERENCES decisions (id),
    idx         INTEGER NOT NULL,   -- 0 for the first event of a decision, then 1, 2, …
    at          INTEGER NOT NULL,   -- unix milliseconds, UTC (full precision in `body`)
    kind        TEXT    NOT NULL,   -- created | adopted | approval_recorded | …
    body        TEXT    NOT NULL,   -- the event's canonical JSON (`audit::chain::event_text`)
    seq         INTEGER UNIQUE,     -- its place in the one log of all decisions: 1, 2, 3, …;
                                    -- NULL until the sequencer reaches it
    hash        TEXT,               -- hex SHA-256(hash of event seq-1 || body); see docs/audit.md
    UNIQUE (decision_id, idx)
) STRICT;
CREATE INDEX decision_events_unsequenced ON decision_events (id) WHERE seq IS NULL;

-- A decision and its `created` event are stored by one statement, an insert into this view:
-- its trigger inserts the decision (the idempotency slot decides, as before) and then the event
-- only if the decision row is now there (ids are unique, so it is there only if this insert
-- made it). One statement is one autocommit transaction and one turn of SQLite's write lock;
-- an explicit transaction around two inserts cost checks about 40 % of their throughput.
CREATE VIEW decision_inserts AS
SELECT id, idempotency_key, request_fingerprint, application, environment, verdict, status,
       caller_kind, policy_version, created_at, decided_at, schema_version, body, principal,
       idempotency_base, idempotency_generation, NULL AS event_at, NULL AS event_body
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
    INSERT INTO decision_events (decision_id, idx, at, kind, body)
    SELECT NEW.id, 0, NEW.event_at, 'created', NEW.event_body
    WHERE EXISTS (SELECT 1 FROM decisions WHERE id = NEW.id);
END;

-- The head of the log: the last sequence number and its hash. The sequencer (the holder of the
-- `audit-checkpoint` lease) reads and moves it in the transaction that numbers and hashes new
-- events (SQLite: under the database write lock; PostgreSQL: under this row's lock), so any
-- number of replicas appending form one chain, never a fork.
CREATE TABLE ledger_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
) STRICT;
INSERT INTO ledger_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed checkpoints over the log (`audit::checkpoint`), one per `index`; the unique index
-- keeps two signers from both writing the same one.
CREATE TABLE ledger_checkpoints (
    idx        INTEGER NOT NULL PRIMARY KEY,
    tree_size  INTEGER NOT NULL,
    at         INTEGER NOT NULL,   -- unix milliseconds, UTC
    body       TEXT    NOT NULL    -- the signed checkpoint as JSON
) STRICT;
