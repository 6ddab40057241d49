-- depot audit trail, accounts and file state (SQLite).
--
-- Times are INTEGER unix milliseconds (UTC). The audit table is append-only:
-- triggers refuse UPDATE and DELETE, and no other table references it.
-- The action list below must equal depot.Actions (asserted by a Go test).

-- +goose Up
CREATE TABLE audit_events (
    seq                      INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 1),
    time_ms                  INTEGER NOT NULL,
    action                   TEXT    NOT NULL CHECK (action IN (
        'upload.started', 'upload.completed', 'upload.failed', 'upload.aborted',
        'upload.resumed', 'upload.expired', 'file.download', 'file.list', 'file.stat',
        'file.delete', 'cleanup.scheduled', 'cleanup.completed', 'cleanup.failed',
        'integrity.verified', 'integrity.failed', 'orphan.detected', 'access.denied',
        'auth.failed', 'auth.throttled', 'token.created', 'token.revoked',
        'user.created', 'user.disabled', 'cohort.created', 'grant.changed',
        'backup.created', 'restore.completed', 'report.generated', 'job.failed'
    )),
    outcome                  TEXT    NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    error_code               TEXT    NOT NULL DEFAULT '',
    actor                    TEXT    NOT NULL DEFAULT '',
    auth_method              TEXT    NOT NULL DEFAULT '',
    cohort                   TEXT    NOT NULL DEFAULT '',
    storage_key              TEXT    NOT NULL DEFAULT '',
    file_name                TEXT    NOT NULL DEFAULT '',
    upload_id                TEXT    NOT NULL DEFAULT '',
    declared_size            INTEGER NOT NULL DEFAULT -1,
    bytes_transferred        INTEGER NOT NULL DEFAULT 0,
    stored_size              INTEGER NOT NULL DEFAULT -1,
    sha256                   TEXT    NOT NULL DEFAULT '',
    server_role              TEXT    NOT NULL DEFAULT '',
    web_node                 TEXT    NOT NULL DEFAULT '',
    correlation_id           TEXT    NOT NULL DEFAULT '',
    client_ip                TEXT    NOT NULL DEFAULT '',
    user_agent               TEXT    NOT NULL DEFAULT '',
    stream_start_ms          INTEGER,
    stream_complete_ms       INTEGER,
    duration_ms              INTEGER NOT NULL DEFAULT 0,
    file_class               TEXT    NOT NULL DEFAULT '' CHECK (file_class IN ('', 'permanent', 'temporary')),
    cleanup_scheduled_for_ms INTEGER,
    metadata                 TEXT    NOT NULL DEFAULT '{}',
    prev_hash                TEXT    NOT NULL CHECK (length(prev_hash) = 64),
    hash                     TEXT    NOT NULL UNIQUE CHECK (length(hash) = 64)
) STRICT;

CREATE INDEX audit_events_time ON audit_events (time_ms);
CREATE INDEX audit_events_cohort ON audit_events (cohort, seq);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_key ON audit_events (storage_key, seq);
CREATE INDEX audit_events_upload ON audit_events (upload_id) WHERE upload_id <> '';
CREATE INDEX audit_events_correlation ON audit_events (correlation_id) WHERE correlation_id <> '';

-- +goose StatementBegin
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused');
END;
-- +goose StatementEnd

CREATE TABLE users (
    name        TEXT    NOT NULL PRIMARY KEY,
    admin       INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    created_ms  INTEGER NOT NULL,
    disabled_ms INTEGER
) STRICT;

CREATE TABLE cohorts (
    name       TEXT    NOT NULL PRIMARY KEY,
    created_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE grants (
    user_name  TEXT    NOT NULL REFERENCES users (name),
    cohort     TEXT    NOT NULL REFERENCES cohorts (name),
    role       TEXT    NOT NULL CHECK (role IN ('uploader', 'reader', 'manager')),
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (user_name, cohort)
) STRICT;

CREATE INDEX grants_cohort ON grants (cohort);

CREATE TABLE tokens (
    id           TEXT    NOT NULL PRIMARY KEY,
    user_name    TEXT    NOT NULL REFERENCES users (name),
    label        TEXT    NOT NULL DEFAULT '',
    hash         TEXT    NOT NULL UNIQUE CHECK (length(hash) = 64),
    created_ms   INTEGER NOT NULL,
    expires_ms   INTEGER NOT NULL,
    revoked_ms   INTEGER,
    last_used_ms INTEGER
) STRICT;

CREATE INDEX tokens_user ON tokens (user_name);

CREATE TABLE files (
    storage_key              TEXT    NOT NULL PRIMARY KEY,
    cohort                   TEXT    NOT NULL,
    size                     INTEGER NOT NULL CHECK (size >= 0),
    sha256                   TEXT    NOT NULL DEFAULT '',
    class                    TEXT    NOT NULL CHECK (class IN ('permanent', 'temporary')),
    cleanup_scheduled_for_ms INTEGER CHECK (class = 'temporary' OR cleanup_scheduled_for_ms IS NULL),
    created_ms               INTEGER NOT NULL,
    updated_ms               INTEGER NOT NULL,
    last_verified_ms         INTEGER,
    uploaded_by              TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX files_cohort ON files (cohort, storage_key);
CREATE INDEX files_cleanup ON files (cleanup_scheduled_for_ms) WHERE cleanup_scheduled_for_ms IS NOT NULL;

-- No down migration: the audit trail is never rolled back by a migration.
