-- Decisions by image digest and environment. The PostgreSQL twin of
-- `migrations/sqlite/0003_decision_images.sql`: same table, filled by a trigger from the body.
--
-- Applied migrations are checksummed by sqlx; never edit this file once released, add a new one.
CREATE TABLE decision_images (
    digest      TEXT COLLATE "C" NOT NULL,
    environment TEXT COLLATE "C" NOT NULL,
    decision_id TEXT COLLATE "C" NOT NULL REFERENCES decisions (id),
    PRIMARY KEY (digest, environment, decision_id)
);

CREATE FUNCTION decision_images_fill() RETURNS trigger AS $$
BEGIN
    INSERT INTO decision_images (digest, environment, decision_id)
    SELECT DISTINCT image ->> 'digest', NEW.environment, NEW.id
    FROM jsonb_array_elements(COALESCE(NEW.body::jsonb -> 'request' -> 'images', '[]'::jsonb)) AS image
    WHERE image ->> 'digest' IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER decision_images_on_insert AFTER INSERT ON decisions
    FOR EACH ROW EXECUTE FUNCTION decision_images_fill();

-- Decisions stored before this migration.
INSERT INTO decision_images (digest, environment, decision_id)
SELECT DISTINCT image ->> 'digest', d.environment, d.id
FROM decisions AS d,
     jsonb_array_elements(COALESCE(d.body::jsonb -> 'request' -> 'images', '[]'::jsonb)) AS image
WHERE image ->> 'digest' IS NOT NULL
ON CONFLICT DO NOTHING;
