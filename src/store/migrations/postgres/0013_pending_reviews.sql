-- Pending reviews found by indexed columns, never by reading every pending decision's body.
-- The PostgreSQL twin of `migrations/sqlite/0013_pending_reviews.sql` (see there for why and
-- what the columns mean): same columns, same indexes, written by the insert statement and the
-- append's UPDATE in `store/postgres.rs`.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
ALTER TABLE decisions
    ADD COLUMN review_deadline BIGINT,             -- unix milliseconds, UTC
    ADD COLUMN review_system   TEXT COLLATE "C";   -- the ticket's system, once routed

CREATE INDEX decisions_pending_deadline ON decisions (review_deadline, id)
WHERE status = 'pending';
CREATE INDEX decisions_pending_environment ON decisions (environment, id, review_system)
WHERE status = 'pending';

-- Reviews pending before this migration, from their bodies; final ones stay NULL.
UPDATE decisions AS d
SET review_deadline = floor(EXTRACT(EPOCH FROM (p.b ->> 'review_deadline')::timestamptz) * 1000)::BIGINT,
    review_system = p.b -> 'review_ticket' ->> 'system'
FROM (SELECT id, body::jsonb AS b FROM decisions WHERE status = 'pending') AS p
WHERE d.id = p.id;
