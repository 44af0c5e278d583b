-- Dictionaries that packed bodies are compressed with (`store/pack_dictionary.rs`): trained by
-- the store from its newest `created` events once enough are stored, then used for every body
-- packed after. A packed frame names its dictionary by zstd's id, so old bodies keep reading
-- with the dictionary they were packed with: rows here are never deleted (a few tens of KB
-- each; one per 100,000 decisions by default).
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
CREATE TABLE pack_dictionaries (
    id              INTEGER NOT NULL PRIMARY KEY,  -- zstd's dictionary id, derived from content
    trained_through INTEGER NOT NULL,              -- the newest event row it was trained from
    content         BLOB    NOT NULL
);
