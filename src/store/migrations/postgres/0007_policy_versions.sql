-- The text of every policy version that decided something, content-addressed. The PostgreSQL
-- twin of `migrations/sqlite/0007_policy_versions.sql` (see there for the meaning of each
-- column).
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
CREATE TABLE policy_versions (
    version    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    created_at BIGINT NOT NULL,
    body       TEXT   NOT NULL
);
