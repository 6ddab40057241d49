-- SSH public keys (issue 23): a user signs in to the SFTP entrance of web
-- with a registered key. web proves the client holds the private key (the
-- SSH handshake) and forwards the public key; services looks it up here by
-- its SHA256 fingerprint. A revoked key stays for the record.

-- +goose Up
CREATE TABLE ssh_keys (
    fingerprint TEXT    NOT NULL PRIMARY KEY,
    user_name   TEXT    NOT NULL REFERENCES users (name),
    public_key  TEXT    NOT NULL,
    comment     TEXT    NOT NULL DEFAULT '',
    created_ms  INTEGER NOT NULL,
    revoked_ms  INTEGER
) STRICT;
CREATE INDEX ssh_keys_user ON ssh_keys (user_name);
INSERT INTO audit_actions (name) VALUES
    ('ssh_key.added'), ('ssh_key.removed');

-- +goose Down
DELETE FROM audit_actions WHERE name IN ('ssh_key.added', 'ssh_key.removed')
    AND NOT EXISTS (SELECT 1 FROM audit_events WHERE action IN ('ssh_key.added', 'ssh_key.removed'));
DROP TABLE ssh_keys;
