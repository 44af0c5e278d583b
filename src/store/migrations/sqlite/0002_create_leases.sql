-- Leases: which replica currently owns a named piece of background work (a review poller, a
-- sweep). A holder keeps its lease by renewing it before `expires_at`; once it lapses, any other
-- holder may take it over, and `generation` goes up by one so stale holders can be fenced off.
-- The PostgreSQL twin is `migrations/postgres/0002_create_leases.sql`.
--
-- Times are unix milliseconds from the database's clock, not the caller's.
CREATE TABLE leases (
    job         TEXT    NOT NULL PRIMARY KEY,
    holder      TEXT    NOT NULL,
    generation  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
