-- SSH public keys (issue 23): see the SQLite migration of the same number.

-- +goose Up
CREATE TABLE ssh_keys (
    fingerprint TEXT   NOT NULL PRIMARY KEY,
    user_name   TEXT   NOT NULL REFERENCES users (name),
    public_key  TEXT   NOT NULL,
    comment     TEXT   NOT NULL DEFAULT '',
    created_ms  BIGINT NOT NULL,
    revoked_ms  BIGINT
);
CREATE INDEX ssh_keys_user ON ssh_keys (user_name);
INSERT INTO audit_actions (name) VALUES
    ('ssh_key.added'), ('ssh_key.removed');

-- +goose Down
DELETE FROM audit_actions WHERE name IN ('ssh_key.added', 'ssh_key.removed')
    AND NOT EXISTS (SELECT 1 FROM audit_events WHERE action IN ('ssh_key.added', 'ssh_key.removed'));
DROP TABLE ssh_keys;
