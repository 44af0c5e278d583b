-- Which rules a decision failed and passed, as two arrays on its own row with a GIN index each,
-- instead of one `decision_rules` row per rule (migration 0008). Same meaning: `failed_rules`
-- holds the rule ids with a `fail` or `missing` result, `passed_rules` those with `pass`
-- (`store::RuleOutcomeFilter::of`; a rule listed twice is failed if any of its results is).
--
-- Why: 26 rules made 26 rows, each with its text keys three times over (the row and two B-tree
-- indexes) — 8.2 KB of a 16 KB decision. A GIN index keeps each rule id once and the decisions
-- under it as a compressed list, so the same facts take a few hundred bytes. A list filtered
-- by rule reads `failed_rules @> ARRAY[rule]` (or `passed_rules`, or either), and the planner
-- chooses between the GIN index (a rule that rarely matches) and the primary key in page order
-- (one that often does). `fastupdate = off`: an insert updates the index itself rather than a
-- pending list that some later insert would have to merge, which would land on its latency.
--
-- Existing decisions get their arrays from `decision_rules` (this rewrites the table once).
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
ALTER TABLE decisions
    ADD COLUMN failed_rules TEXT[] COLLATE "C" NOT NULL DEFAULT '{}',
    ADD COLUMN passed_rules TEXT[] COLLATE "C" NOT NULL DEFAULT '{}';

UPDATE decisions AS d
SET failed_rules = r.failed, passed_rules = r.passed
FROM (SELECT decision_id,
             COALESCE(array_agg(rule_id ORDER BY rule_id) FILTER (WHERE outcome = 'failed'),
                      '{}') AS failed,
             COALESCE(array_agg(rule_id ORDER BY rule_id) FILTER (WHERE outcome = 'passed'),
                      '{}') AS passed
      FROM decision_rules
      GROUP BY decision_id) AS r
WHERE d.id = r.decision_id;

DROP TABLE decision_rules;

CREATE INDEX decisions_failed_rules ON decisions USING GIN (failed_rules) WITH (fastupdate = off);
CREATE INDEX decisions_passed_rules ON decisions USING GIN (passed_rules) WITH (fastupdate = off);
