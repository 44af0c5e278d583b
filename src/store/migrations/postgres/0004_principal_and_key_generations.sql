-- Who requested each decision, and generations of an idempotency key. The PostgreSQL twin of
-- `migrations/sqlite/0004_principal_and_key_generations.sql`.
--
-- `principal` is the authenticated token name that requested the check (NULL for decisions
-- stored before it was recorded); lists of principals that may read only their own decisions
-- filter on it.
--
-- A repeat of an idempotency key whose stored answer is no longer sound (older than
-- `gate.replay_window`, or decided by another policy version) is evaluated anew and stored as the
-- key's next generation. `idempotency_key` stays the unique slot that settles races (the
-- caller's key for generation 0, `<key> #<n>` after), so replicas re-evaluating one key at once
-- store one decision per generation; `idempotency_base` is the caller's key, and the newest
-- generation of a key is the highest `idempotency_generation` under it.
ALTER TABLE decisions ADD COLUMN principal TEXT COLLATE "C";
ALTER TABLE decisions ADD COLUMN idempotency_base TEXT COLLATE "C";
ALTER TABLE decisions ADD COLUMN idempotency_generation BIGINT NOT NULL DEFAULT 0;
UPDATE decisions SET idempotency_base = idempotency_key;

CREATE UNIQUE INDEX decisions_idempotency_base_generation
    ON decisions (idempotency_base, idempotency_generation);
CREATE INDEX decisions_principal_id ON decisions (principal, id);
