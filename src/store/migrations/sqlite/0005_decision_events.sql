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
