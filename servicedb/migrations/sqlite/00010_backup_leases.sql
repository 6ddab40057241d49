-- Online backups (issue 26): a running backup holds a lease, and while any
-- lease is in force no stored object is removed (storage.Options.DeferDelete,
-- DB.Referenced), so every object of the backup's snapshot can still be
-- copied. A lease that is not renewed ends by itself (a crashed backup).
-- restore.files records an object put back from a backup into the live
-- storage without touching the database (depot restore --files-only).

-- +goose Up
CREATE TABLE backup_leases (
    id         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    holder     TEXT    NOT NULL DEFAULT '',
    started_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
) STRICT;
INSERT INTO audit_actions (name) VALUES
    ('restore.files');

-- +goose Down
DELETE FROM audit_actions WHERE name = 'restore.files'
    AND NOT EXISTS (SELECT 1 FROM audit_events WHERE action = 'restore.files');
DROP TABLE backup_leases;
