-- Decisions by rule and whether it failed or passed, and by creation time. The PostgreSQL twin
-- of `migrations/sqlite/0008_decision_rules.sql` (see there for what a row means: `passed` for
-- a `pass` result, `failed` for `fail` and `missing`).
--
-- The same rows, indexed differently: here every row is indexed by rule, so "rule X passed" and
-- "rule X" page from an index too. SQLite indexes only the failed rows by rule, because there
-- the full index halved check throughput; PostgreSQL showed no loss beyond noise with it.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- Unlike SQLite (a trigger over the body), new rows are written by the statement that inserts
-- the decision (`store/postgres.rs`: one more data-modifying CTE, from arrays the store builds
-- with `store::RuleOutcomeFilter::of`), so the check path does not parse its body as JSONB a
-- second time. No foreign key, as in SQLite: its per-row check would cost every insert ≈ 26
-- lookups.
CREATE TABLE decision_rules (
    rule_id     TEXT COLLATE "C" NOT NULL,
    decision_id TEXT COLLATE "C" NOT NULL,
    outcome     TEXT COLLATE "C" NOT NULL,   -- failed | passed
    PRIMARY KEY (rule_id, decision_id)
);
CREATE INDEX decision_rules_outcome ON decision_rules (rule_id, outcome, decision_id);

-- Decisions stored before this migration.
INSERT INTO decision_rules (rule_id, decision_id, outcome)
SELECT result ->> 'rule_id', d.id,
       MIN(CASE result ->> 'outcome' WHEN 'pass' THEN 'passed' ELSE 'failed' END)
FROM decisions AS d,
     jsonb_array_elements(COALESCE(d.body::jsonb -> 'rule_results', '[]'::jsonb)) AS result
WHERE result ->> 'rule_id' IS NOT NULL
GROUP BY d.id, result ->> 'rule_id'
ON CONFLICT DO NOTHING;

-- Time ranges on `created_at` (see the SQLite twin for why the primary key cannot serve them).
CREATE INDEX decisions_created_at_id ON decisions (created_at, id);
