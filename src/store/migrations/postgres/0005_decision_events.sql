-- Every change to a decision as an event. The PostgreSQL twin of
-- `migrations/sqlite/0005_decision_events.sql` (see there for the meaning of each column).
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
ALTER TABLE decisions ADD COLUMN event_count BIGINT NOT NULL DEFAULT 0;

CREATE TABLE decision_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    decision_id TEXT COLLATE "C" NOT NULL REFERENCES decisions (id),
    idx         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    body        TEXT   NOT NULL,
    seq         BIGINT UNIQUE,
    hash        TEXT COLLATE "C",
    UNIQUE (decision_id, idx)
);
CREATE INDEX decision_events_unsequenced ON decision_events (id) WHERE seq IS NULL;

-- The sequencer locks this one row (`SELECT … FOR UPDATE`) while it numbers and hashes new
-- events: sequencers on several replicas queue here and form one chain.
CREATE TABLE ledger_head (
    id   INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    seq  BIGINT  NOT NULL,
    hash TEXT    NOT NULL
);
INSERT INTO ledger_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE ledger_checkpoints (
    idx        BIGINT NOT NULL PRIMARY KEY,
    tree_size  BIGINT NOT NULL,
    at         BIGINT NOT NULL,
    body       TEXT   NOT NULL
);
