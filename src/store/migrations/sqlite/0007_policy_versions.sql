-- The text of every policy version that decided something, content-addressed: any decision's
-- `policy_version` names a row here, so the decision can be re-explained and re-evaluated later
-- (`docs/audit.md`, "Policy versions"). The PostgreSQL twin is
-- `migrations/postgres/0007_policy_versions.sql`.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- A row is written once (insert-or-ignore on the version), before the first decision of that
-- version is stored; replicas storing the same version at once keep the first row. Rows are
-- never updated or deleted.
CREATE TABLE policy_versions (
    version    TEXT    NOT NULL PRIMARY KEY,  -- `sha256:` + 64 hex: the digest of `body`'s files
    created_at INTEGER NOT NULL,              -- unix milliseconds, UTC: when it was first stored
    body       TEXT    NOT NULL               -- JSON {"version": …, "files": [{"path", "content"}]},
                                              -- files sorted by path
) STRICT;
