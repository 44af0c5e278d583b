-- Decisions: one row per answered check.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- `body` is the whole decision as JSON (the serde shape of `domain::Decision`, versioned by
-- `schema_version`) and is the source of truth. The other columns are copies written from the
-- same value in the same statement, for filtering, ordering and idempotency.
--
-- No CHECK constraints on the enum columns: the domain parses them before any write, and SQLite
-- can change a CHECK only by rebuilding the table, which would make adding a status (the review
-- lifecycle will) a copy of every row.
--
-- A rowid table rather than WITHOUT ROWID: bodies carry evidence and are often larger than the
-- small rows WITHOUT ROWID suits; ordering by id is served by the indexes below.
CREATE TABLE decisions (
    id                  TEXT    NOT NULL PRIMARY KEY,  -- UUIDv7, canonical lower-case text
    idempotency_key     TEXT    UNIQUE,                -- NULL when the caller sent none; NULLs never conflict
    request_fingerprint TEXT    NOT NULL,              -- hash of the creating request, to refuse a reused key
    application         TEXT    NOT NULL,
    environment         TEXT    NOT NULL,
    verdict             TEXT    NOT NULL,              -- continue | manual_review | terminate
    status              TEXT    NOT NULL,              -- pending | final
    caller_kind         TEXT    NOT NULL,
    policy_version      TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,              -- unix milliseconds, UTC
    decided_at          INTEGER,                       -- unix milliseconds, UTC; NULL while pending
    schema_version      INTEGER NOT NULL,              -- shape of `body`
    body                TEXT    NOT NULL
) STRICT;

-- Lists filter on one of these columns and page newest first by id; `(column, id)` serves both
-- the filter and the order without a sort. Without a filter the primary key index serves.
CREATE INDEX decisions_application_id ON decisions (application, id);
CREATE INDEX decisions_environment_id ON decisions (environment, id);
CREATE INDEX decisions_verdict_id ON decisions (verdict, id);
CREATE INDEX decisions_status_id ON decisions (status, id);
CREATE INDEX decisions_caller_kind_id ON decisions (caller_kind, id);
