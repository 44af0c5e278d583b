-- A decision's `created` event packed with zstd and a dictionary the store trains from its own
-- decisions (`store/packed.rs`, `store/pack_dictionary.rs`), as SQLite does since its
-- migrations 0014 and 0016. TOAST's lz4 packed the peer benchmark's 17.3 KB event to ≈ 5.1 KB
-- (6.2 KB on disk with TOAST's chunk rows); with a dictionary of what every decision repeats
-- (keys, rule texts, evidence shapes) it packs to a few hundred bytes, small enough to stay in
-- the row. Hashes stay over the text: the sequencer, proofs and exports unpack first.
--
-- `packed` is set only for a `created` event whose text packs smaller; `body` is then ''.
-- Each replica trains its own dictionaries (after `StoreOptions::pack_dictionary_after` (1,000) of its own
-- inserts, again after a hundred times as many) and stores one before it packs with it; a
-- replica reading a frame that names a dictionary it has not loaded reads it from here first.
-- Rows are never deleted: old bodies need them.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
ALTER TABLE decision_events ADD COLUMN packed BYTEA;

CREATE TABLE pack_dictionaries (
    id              BIGINT NOT NULL PRIMARY KEY,  -- zstd's dictionary id, derived from content
    trained_through BIGINT NOT NULL,              -- the newest event row (`decision_events.id`) it was trained from
    content         BYTEA  NOT NULL
);
