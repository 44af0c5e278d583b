-- Leases: which replica currently owns a named piece of background work (a review poller, a
-- sweep). A holder keeps its lease by renewing it before `expires_at`; once it lapses, any other
-- replica may take it over, and `generation` goes up by one so stale holders can be fenced off.
--
-- Times are unix milliseconds from the database's clock (never a replica's), so replicas with
-- skewed clocks still agree on who holds what.
CREATE TABLE leases (
    job         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    holder      TEXT COLLATE "C" NOT NULL,
    generation  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
