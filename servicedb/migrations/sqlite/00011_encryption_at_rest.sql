-- Encryption at rest (issue 22): keys.rotated records a run of depot keys
-- rotate, which re-wraps the data keys of stored objects under the current
-- key-encryption key (how many objects, under which KEK, done or stopped);
-- storage.encrypted records a run of depot keys encrypt-existing, which
-- replaces unencrypted objects by their encryption in place.

-- +goose Up
INSERT INTO audit_actions (name) VALUES
    ('keys.rotated'),
    ('storage.encrypted');

-- +goose Down
DELETE FROM audit_actions WHERE name = 'storage.encrypted'
    AND NOT EXISTS (SELECT 1 FROM audit_events WHERE action = 'storage.encrypted');
DELETE FROM audit_actions WHERE name = 'keys.rotated'
    AND NOT EXISTS (SELECT 1 FROM audit_events WHERE action = 'keys.rotated');
