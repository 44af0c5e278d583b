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
-- Bodies are plain JSON text here (migration 0014 packs large ones later); `json_valid` only
-- keeps a stray body from failing the whole migration.
UPDATE decisions
SET review_deadline = CAST(ROUND(unixepoch(body ->> '$.review_deadline', 'subsec') * 1000) AS INTEGER),
    review_system = body ->> '$.review_ticket.system'
WHERE status = 'pending' AND json_valid(body);

-- The insert view writes the two columns from migration 0014 on, which replaces the view.
