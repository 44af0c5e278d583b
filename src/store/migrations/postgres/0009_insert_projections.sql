-- A decision's image rows (`decision_images`, migration 0003) come with its insert, from an
-- array the store builds from the same `Decision` it encodes into `body`
-- (`store::row::image_digests`), as its rule rows already do (migration 0008): the trigger
-- below parsed the whole body as JSONB a second time on every insert. The SQLite twin is
-- `migrations/sqlite/0009_insert_projections.sql`.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- The statement that inserts a decision (`store/postgres.rs`) inserts its images in one more
-- data-modifying CTE, from what the decision insert returns, so a decision that lost its
-- idempotency-key race leaves no rows.
DROP TRIGGER decision_images_on_insert ON decisions;
DROP FUNCTION decision_images_fill();
