-- Decisions by image digest and environment: what the admission webhook asks ("is there a
-- decision for this digest in this environment?") with one indexed lookup, never a scan of
-- bodies.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
--
-- Filled by a trigger from the decision's own body in the same statement as the insert, so no
-- write path can forget it and a decision is never visible without its images. Verdict, status
-- and times stay in `decisions` (reviews change them): the lookup joins back by primary key.
CREATE TABLE decision_images (
    digest      TEXT NOT NULL,   -- `sha256:<hex>` as the request named it
    environment TEXT NOT NULL,
    decision_id TEXT NOT NULL REFERENCES decisions (id),
    PRIMARY KEY (digest, environment, decision_id)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER decision_images_on_insert AFTER INSERT ON decisions
BEGIN
    INSERT OR IGNORE INTO decision_images (digest, environment, decision_id)
    SELECT json_extract(image.value, '$.digest'), NEW.environment, NEW.id
    FROM json_each(NEW.body, '$.request.images') AS image
    WHERE json_extract(image.value, '$.digest') IS NOT NULL;
END;

-- Decisions stored before this migration.
INSERT OR IGNORE INTO decision_images (digest, environment, decision_id)
SELECT json_extract(image.value, '$.digest'), d.environment, d.id
FROM decisions AS d, json_each(d.body, '$.request.images') AS image
WHERE json_extract(image.value, '$.digest') IS NOT NULL;
