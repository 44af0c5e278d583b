-- Reviews by the outside ticket they wait on (a ServiceNow change, a Jira issue): what a
-- ServiceNow callback or a Jira webhook asks ("which pending review waits on CHG0040001?")
-- with one indexed lookup (`Store::find_pending_by_ticket`), never a scan of the pending
-- decisions' bodies. The PostgreSQL twin is `migrations/postgres/0011_decision_tickets.sql`.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- Two rows per ticket: its number upper-cased (numbers are matched without regard to case) and
-- its id in that system as it is (a sys_id, a Jira issue id). Filled by a trigger on the one
-- event that attaches a ticket (`review_ticket_attached`, appended by the gate's one write
-- path), so no writer can forget it, and it commits with the event or not at all. Only that
-- small event body is parsed, never a decision's. Status stays in `decisions` (a resolution
-- changes it): the lookup joins back by primary key and keeps the pending ones.
CREATE TABLE decision_tickets (
    system      TEXT NOT NULL,   -- `servicenow` | `jira`
    handle      TEXT NOT NULL,   -- upper-cased number, or the id as the system gives it
    decision_id TEXT NOT NULL,
    PRIMARY KEY (system, handle, decision_id)
) STRICT, WITHOUT ROWID;
-- For the delete below (retention removes decisions by id).
CREATE INDEX decision_tickets_decision ON decision_tickets (decision_id);

CREATE TRIGGER decision_tickets_on_attach AFTER INSERT ON decision_events
WHEN NEW.kind = 'review_ticket_attached'
BEGIN
    INSERT OR IGNORE INTO decision_tickets (system, handle, decision_id)
    SELECT NEW.body ->> '$.change.ticket.system', h.handle, NEW.decision_id
    FROM (SELECT upper(NEW.body ->> '$.change.ticket.number') AS handle
          UNION ALL SELECT NEW.body ->> '$.change.ticket.id') AS h
    WHERE (NEW.body ->> '$.change.ticket.system') IS NOT NULL
      AND h.handle IS NOT NULL AND h.handle <> '';
END;

-- Retention prunes final decisions; their ticket rows go with them.
CREATE TRIGGER decision_tickets_on_delete AFTER DELETE ON decisions
BEGIN
    DELETE FROM decision_tickets WHERE decision_id = OLD.id;
END;

-- Pending decisions stored before this migration, from the ticket recorded on the decision
-- (only pending ones are ever looked up; the status index finds them without reading every body).
INSERT OR IGNORE INTO decision_tickets (system, handle, decision_id)
SELECT t.system, t.handle, t.decision_id
FROM (SELECT d.body ->> '$.review_ticket.system' AS system,
             upper(d.body ->> '$.review_ticket.number') AS handle, d.id AS decision_id
      FROM decisions AS d WHERE d.status = 'pending'
      UNION ALL
      SELECT d.body ->> '$.review_ticket.system', d.body ->> '$.review_ticket.id', d.id
      FROM decisions AS d WHERE d.status = 'pending') AS t
WHERE t.system IS NOT NULL AND t.handle IS NOT NULL AND t.handle <> '';
