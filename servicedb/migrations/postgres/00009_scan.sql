-- Malware scanning (issue 25): each version records what the scanner said
-- of it when it was committed ('' when scanning was off, 'clean', or
-- 'unscanned' under the fail-open or oversize policy), changed later only
-- by a rescan ('clean' or 'infected'), in the transaction of its
-- file.scanned audit record. Unscanned versions are found by the rescan
-- job through a partial index.

-- +goose Up
ALTER TABLE versions ADD COLUMN scan TEXT NOT NULL DEFAULT ''
    CHECK (scan IN ('', 'clean', 'unscanned', 'infected'));
CREATE INDEX versions_unscanned ON versions (version_id)
    WHERE scan = 'unscanned' AND purged_ms IS NULL;
INSERT INTO audit_actions (name) VALUES
    ('file.scanned');

-- +goose Down
DELETE FROM audit_actions WHERE name = 'file.scanned';
DROP INDEX versions_unscanned;
ALTER TABLE versions DROP COLUMN scan;
