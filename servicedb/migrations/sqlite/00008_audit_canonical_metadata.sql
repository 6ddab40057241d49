-- An audit record's metadata is stored in one canonical encoding: a JSON
-- object of string values, keys unique and in ascending byte order, no
-- whitespace (what Go's encoding/json writes for a map[string]string). A
-- duplicated key would let SQL's json_extract (first value) and depot (last
-- value) read different things from one record. depot checks the whole
-- encoding on append and in verify; this trigger also refuses, on any
-- insert, metadata that is not an object of strings with strictly ascending
-- keys.

-- +goose Up
-- +goose StatementBegin
CREATE TRIGGER audit_events_canonical_metadata BEFORE INSERT ON audit_events
WHEN NOT json_valid(NEW.metadata)
    OR json_type(NEW.metadata) IS NOT 'object'
    OR EXISTS (SELECT 1 FROM json_each(NEW.metadata) WHERE type IS NOT 'text')
    OR EXISTS (SELECT 1 FROM json_each(NEW.metadata) a, json_each(NEW.metadata) b
               WHERE b.id > a.id AND b.key <= a.key)
BEGIN
    SELECT RAISE(ABORT, 'audit metadata must be a JSON object of strings with unique keys in ascending order');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER audit_events_canonical_metadata;
