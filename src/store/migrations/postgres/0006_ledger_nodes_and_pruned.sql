-- What inclusion proofs and retention need from the decision log (docs/audit.md). The
-- SQLite twin is `migrations/sqlite/0006_ledger_nodes_and_pruned.sql`.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- `ledger_nodes`: the roots of perfect subtrees of the log's Merkle tree, `2^level` leaves
-- starting at leaf `idx * 2^level`, for level 4 and up, written by the checkpoint signer as it
-- completes them. A proof for one event is then O(log² n) rows (plus at most 15 leaves per
-- level-below-4 piece), never a read of the whole log. A missing row is recomputed from the
-- leaves, so a log older than this table still proves.
CREATE TABLE ledger_nodes (
    level BIGINT  NOT NULL,
    idx   BIGINT  NOT NULL,
    hash  TEXT COLLATE "C" NOT NULL,   -- hex
    PRIMARY KEY (level, idx)
);

-- Events removed by `audit.retention` leave their place in the log: sequence number and chain
-- hash only (their text and their decisions are gone). The tree and the chain over what
-- remains still verify against the checkpoints, which are never pruned.
CREATE TABLE ledger_pruned (
    seq  BIGINT NOT NULL PRIMARY KEY,
    hash TEXT COLLATE "C" NOT NULL
);
