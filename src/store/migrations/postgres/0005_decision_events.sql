-- Every change to a decision as an event. The PostgreSQL twin of
-- `migrations/sqlite/0005_decision_events.sql` (see there for the meaning of each column).
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
ALTER TABLE decisions ADD COLUMN event_count BIGINT NOT NULL DEFAULT 0;

CREATE TABLE decision_events (
    decision_id TEXT COLLATE "C" NOT NULL REFERENCES decisions (id),
    idx         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    kind        TEXT COLLATE "C" NOT NULL,
    body        TEXT   NOT NULL,
    PRIMARY KEY (decision_id, idx)
);
