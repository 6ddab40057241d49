-- Online backups and files-only restores (issue 26): see the SQLite
-- migration of the same number.

-- +goose Up
CREATE TABLE backup_leases (
    id         BIGSERIAL PRIMARY KEY,
    holder     TEXT   NOT NULL DEFAULT '',
    started_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
INSERT INTO audit_actions (name) VALUES
    ('restore.files');

-- +goose Down
DELETE FROM audit_actions WHERE name = 'restore.files'
    AND NOT EXISTS (SELECT 1 FROM audit_events WHERE action = 'restore.files');
DROP TABLE backup_leases;
