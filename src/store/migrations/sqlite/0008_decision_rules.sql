-- Decisions by rule and whether it failed or passed, and by creation time: the traceability
-- lists (`GET /v1/decisions?rule_id=&rule_outcome=&created_from=&created_until=`) with indexed
-- lookups, never a scan of bodies. The PostgreSQL twin is
-- `migrations/postgres/0008_decision_rules.sql`. Lists by image digest reuse `decision_images`
-- (migration 0003).
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- One row per rule result of a decision, projected from `body` (`rule_results[]`):
-- `outcome` is `passed` when the result's outcome is `pass`, and `failed` for `fail` and for
-- `missing` (the condition was never shown to hold, whatever verdict `on_missing` gave it). A
-- rule id listed twice in one body (no valid policy set does that) is one row, `failed` if any
-- of its results is. `store::RuleOutcomeFilter::of` is the same rule in Rust; the store writes
-- rows from it when a review changes a decision's results (`append_events`).
--
-- `(rule_id, decision_id)` is the key: one row per rule of a decision, and the order "this
-- rule, newest first" pages in (ids are UUIDv7, so id order is creation order).
-- `(rule_id, outcome, decision_id)` is the same for "this rule failed / passed". No foreign key
-- to `decisions`: rows are written only with their decision, decisions are never deleted, and
-- a key check per rule row (≈ 26 a check) would be paid on every insert.
CREATE TABLE decision_rules (
    rule_id     TEXT NOT NULL,
    decision_id TEXT NOT NULL,
    outcome     TEXT NOT NULL,   -- failed | passed
    PRIMARY KEY (rule_id, decision_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX decision_rules_outcome ON decision_rules (rule_id, outcome, decision_id);

-- Filled by a trigger from the decision's own body in the same statement as the insert (the
-- insert into the `decision_inserts` view of migration 0005 inserts into `decisions`, which
-- fires this), so no write path can forget it and a decision is never listed without its rules.
-- A trigger on `decisions` rather than a new column on the view: other migrations may replace
-- the view, and this composes with whatever they do.
CREATE TRIGGER decision_rules_on_insert AFTER INSERT ON decisions
BEGIN
    INSERT OR IGNORE INTO decision_rules (rule_id, decision_id, outcome)
    SELECT result.value ->> '$.rule_id', NEW.id,
           MIN(CASE result.value ->> '$.outcome' WHEN 'pass' THEN 'passed' ELSE 'failed' END)
    FROM json_each(NEW.body, '$.rule_results') AS result
    WHERE result.value ->> '$.rule_id' IS NOT NULL
    GROUP BY result.value ->> '$.rule_id';
END;

-- Decisions stored before this migration.
INSERT OR IGNORE INTO decision_rules (rule_id, decision_id, outcome)
SELECT result.value ->> '$.rule_id', d.id,
       MIN(CASE result.value ->> '$.outcome' WHEN 'pass' THEN 'passed' ELSE 'failed' END)
FROM decisions AS d, json_each(d.body, '$.rule_results') AS result
WHERE result.value ->> '$.rule_id' IS NOT NULL
GROUP BY d.id, result.value ->> '$.rule_id';

-- Time ranges (`created_from` inclusive, `created_until` exclusive) on the integer-millisecond
-- `created_at`. Nothing served it before: lists order by id (UUIDv7, whose creation order the
-- primary key already gives), but `created_at` is the gate's clock and the id the wall clock's,
-- so a range on one cannot be answered from the other.
CREATE INDEX decisions_created_at_id ON decisions (created_at, id);
