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
    decision_id TEXT    NOT NULL REFERENCES decisions (id),
    idx         INTEGER NOT NULL,   -- 0 for the first event of a decision, then 1, 2, …
    at          INTEGER NOT NULL,   -- unix milliseconds, UTC (full precision in `body`)
    kind        TEXT    NOT NULL,   -- created | adopted | approval_recorded | …
    body        TEXT    NOT NULL,   -- the event as JSON (serde of `domain::DecisionEvent`)
    PRIMARY KEY (decision_id, idx)
) STRICT, WITHOUT ROWID;
