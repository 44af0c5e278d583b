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
-- Keyed by decision: a check's ≈ 26 rows land together at the end of the table, in one or two
-- pages. "Rule X failed" pages newest first from a partial index `(rule_id, decision_id)` over
-- the failed rows only; "rule X passed" and "rule X" walk decisions newest first and look each
-- up by key (`(decision_id, rule_id)`), which stops after a page when the rule is common and
-- reads further the rarer it applies. Measured first (`benches/store.rs`, interleaved runs): an
-- index over every row by rule (`(rule_id, decision_id)` plus `(rule_id, outcome, decision_id)`,
-- as PostgreSQL has) puts each of a check's rows on another page, and in WAL mode every page a
-- commit dirties is written whole: checks lost about half their throughput (−49 % with one
-- client, −51 % with 16). This layout costs −29 % / −39 % in that benchmark, whose checks have
-- no evidence sources, so nearly every rule is missing, failed and indexed. Measured apart,
-- writing 26 rows of which 2 failed cost −1 % / −8 %, and parsing the body for them (the
-- trigger below) −4 % / −11 %. PostgreSQL logs row changes rather than whole pages and showed no
-- loss beyond noise with the full index.
--
-- No foreign key to `decisions`: rows are written only with their decision, and decisions are
-- never deleted.
CREATE TABLE decision_rules (
    decision_id TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    outcome     TEXT NOT NULL,   -- failed | passed
    PRIMARY KEY (decision_id, rule_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX decision_rules_failed ON decision_rules (rule_id, decision_id)
    WHERE outcome = 'failed';

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
