-- Decisions: one row per answered check. The PostgreSQL twin of
-- `migrations/sqlite/0001_create_decisions.sql`: same columns, same meaning, same indexes.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
-- sqlx holds a session advisory lock while migrating, so replicas starting together migrate once.
--
-- Text columns that are compared or ordered use COLLATE "C" (byte order). The page cursor is
-- "ids below the last one seen" over UUIDv7 text, which sorts by time only in byte order; a
-- linguistic collation such as en_US.UTF-8 ignores the hyphens at the first level and could
-- order ids differently from SQLite and from the cursor.
--
-- `body` is TEXT, not JSONB: JSONB reorders keys and drops duplicate whitespace, and the stored
-- document should come back byte for byte as it was written, as it does from SQLite. Nothing
-- queries inside the body; the filter columns are copies.
CREATE TABLE decisions (
    id                  TEXT COLLATE "C" NOT NULL PRIMARY KEY,  -- UUIDv7, canonical lower-case text
    idempotency_key     TEXT COLLATE "C" UNIQUE,                -- NULL when the caller sent none; NULLs never conflict
    request_fingerprint TEXT    NOT NULL,
    application         TEXT COLLATE "C" NOT NULL,
    environment         TEXT COLLATE "C" NOT NULL,
    verdict             TEXT COLLATE "C" NOT NULL,              -- continue | manual_review | terminate
    status              TEXT COLLATE "C" NOT NULL,              -- pending | final
    caller_kind         TEXT COLLATE "C" NOT NULL,
    policy_version      TEXT    NOT NULL,
    created_at          BIGINT  NOT NULL,                       -- unix milliseconds, UTC
    decided_at          BIGINT,                                 -- unix milliseconds, UTC; NULL while pending
    schema_version      BIGINT  NOT NULL,                       -- shape of `body`
    body                TEXT    NOT NULL
);

CREATE INDEX decisions_application_id ON decisions (application, id);
CREATE INDEX decisions_environment_id ON decisions (environment, id);
CREATE INDEX decisions_verdict_id ON decisions (verdict, id);
CREATE INDEX decisions_status_id ON decisions (status, id);
CREATE INDEX decisions_caller_kind_id ON decisions (caller_kind, id);
