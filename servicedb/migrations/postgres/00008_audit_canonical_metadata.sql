-- An audit record's metadata is stored in one canonical encoding: a JSON
-- object of string values, keys unique and in ascending byte order, no
-- whitespace (what Go's encoding/json writes for a map[string]string). A
-- duplicated key would let SQL's JSON functions and depot read different
-- things from one record. depot checks the whole encoding on append and in
-- verify; this trigger also refuses, on any insert, metadata that is not an
-- object of strings with strictly ascending keys (a cast to json refuses
-- what is not JSON).

-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION audit_events_check_metadata() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF json_typeof(NEW.metadata::json) IS DISTINCT FROM 'object'
        OR EXISTS (SELECT 1 FROM json_each(NEW.metadata::json) e WHERE json_typeof(e.value) <> 'string')
        OR EXISTS (SELECT 1 FROM (
                SELECT e.key COLLATE "C" AS k, lag(e.key COLLATE "C") OVER (ORDER BY e.n) AS prev
                FROM json_each(NEW.metadata::json) WITH ORDINALITY AS e(key, value, n)) s
            WHERE s.prev IS NOT NULL AND s.k <= s.prev)
    THEN
        RAISE EXCEPTION 'audit metadata must be a JSON object of strings with unique keys in ascending order';
    END IF;
    RETURN NEW;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_events_canonical_metadata
    BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_check_metadata();

-- +goose Down
DROP TRIGGER audit_events_canonical_metadata ON audit_events;
DROP FUNCTION audit_events_check_metadata();
