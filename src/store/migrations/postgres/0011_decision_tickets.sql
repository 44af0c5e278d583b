-- Reviews by the outside ticket they wait on. The PostgreSQL twin of
-- `migrations/sqlite/0011_decision_tickets.sql` (see there for why and what the rows mean):
-- same table, filled by a trigger on the `review_ticket_attached` event.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
CREATE TABLE decision_tickets (
    system      TEXT COLLATE "C" NOT NULL,
    handle      TEXT COLLATE "C" NOT NULL,
    decision_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (system, handle, decision_id)
);
CREATE INDEX decision_tickets_decision ON decision_tickets (decision_id);

CREATE FUNCTION decision_tickets_fill() RETURNS trigger AS $$
BEGIN
    INSERT INTO decision_tickets (system, handle, decision_id)
    SELECT s.t ->> 'system', v.h, NEW.decision_id
    FROM (SELECT NEW.body::jsonb -> 'change' -> 'ticket' AS t) AS s,
         LATERAL (VALUES (upper(s.t ->> 'number')), (s.t ->> 'id')) AS v(h)
    WHERE s.t ->> 'system' IS NOT NULL AND v.h IS NOT NULL AND v.h <> ''
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER decision_tickets_on_attach AFTER INSERT ON decision_events
    FOR EACH ROW WHEN (NEW.kind = 'review_ticket_attached')
    EXECUTE FUNCTION decision_tickets_fill();

-- Retention prunes final decisions; their ticket rows go with them.
CREATE FUNCTION decision_tickets_forget() RETURNS trigger AS $$
BEGIN
    DELETE FROM decision_tickets WHERE decision_id = OLD.id;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER decision_tickets_on_delete AFTER DELETE ON decisions
    FOR EACH ROW EXECUTE FUNCTION decision_tickets_forget();

-- Pending decisions stored before this migration, from the ticket recorded on the decision.
INSERT INTO decision_tickets (system, handle, decision_id)
SELECT s.t ->> 'system', v.h, s.id
FROM (SELECT d.id, d.body::jsonb -> 'review_ticket' AS t FROM decisions AS d WHERE d.status = 'pending') AS s,
     LATERAL (VALUES (upper(s.t ->> 'number')), (s.t ->> 'id')) AS v(h)
WHERE s.t ->> 'system' IS NOT NULL AND v.h IS NOT NULL AND v.h <> ''
ON CONFLICT DO NOTHING;
