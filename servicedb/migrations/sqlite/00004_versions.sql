-- Immutable versions (issue 21): a path's current version is a pointer in
-- paths; every committed upload is a row of versions with an object of its
-- own; upload sessions live here instead of in the storage; holds keep
-- versions from being purged. The files table, which stood for the object
-- stored at a path, goes (the storage layout changed with it: objects are
-- named by version ID). The audit action list moves from a CHECK constraint
-- to the audit_actions table, so that a new action is an INSERT rather than
-- a rebuild of the audit table (SQLite cannot alter a CHECK constraint);
-- this migration rebuilds it once. The actions inserted below, with those
-- of later migrations, must equal depot.Actions (asserted by a Go test).

-- +goose Up
CREATE TABLE audit_actions (
    name TEXT NOT NULL PRIMARY KEY
) STRICT;
INSERT INTO audit_actions (name) VALUES
    ('upload.started'),
    ('upload.completed'),
    ('upload.failed'),
    ('upload.aborted'),
    ('upload.resumed'),
    ('upload.expired'),
    ('file.download'),
    ('file.list'),
    ('file.stat'),
    ('file.delete'),
    ('cleanup.scheduled'),
    ('cleanup.completed'),
    ('cleanup.failed'),
    ('integrity.verified'),
    ('integrity.failed'),
    ('orphan.detected'),
    ('access.denied'),
    ('auth.failed'),
    ('auth.throttled'),
    ('token.created'),
    ('token.revoked'),
    ('user.created'),
    ('user.disabled'),
    ('cohort.created'),
    ('grant.changed'),
    ('backup.created'),
    ('restore.completed'),
    ('report.generated'),
    ('job.failed'),
    ('download.completed'),
    ('file.undelete'),
    ('file.purge'),
    ('file.restore_version'),
    ('hold.placed'),
    ('hold.released');

CREATE TABLE audit_events_new (
    seq                      INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 1),
    time_ms                  INTEGER NOT NULL,
    action                   TEXT    NOT NULL REFERENCES audit_actions (name),
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
INSERT INTO audit_events_new SELECT * FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
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

CREATE TABLE paths (
    storage_key     TEXT    NOT NULL PRIMARY KEY,
    cohort          TEXT    NOT NULL,
    current_version TEXT,
    deleted_ms      INTEGER,
    deleted_by      TEXT    NOT NULL DEFAULT '',
    updated_ms      INTEGER NOT NULL
) STRICT;
CREATE INDEX paths_cohort ON paths (cohort, storage_key);
CREATE INDEX paths_deleted ON paths (deleted_ms) WHERE deleted_ms IS NOT NULL;

CREATE TABLE versions (
    version_id               TEXT    NOT NULL PRIMARY KEY CHECK (length(version_id) = 32),
    storage_key              TEXT    NOT NULL,
    cohort                   TEXT    NOT NULL,
    size                     INTEGER NOT NULL CHECK (size >= 0),
    sha256                   TEXT    NOT NULL CHECK (length(sha256) = 64),
    class                    TEXT    NOT NULL CHECK (class IN ('permanent', 'temporary')),
    cleanup_scheduled_for_ms INTEGER CHECK (class = 'temporary' OR cleanup_scheduled_for_ms IS NULL),
    created_ms               INTEGER NOT NULL,
    uploaded_by              TEXT    NOT NULL DEFAULT '',
    last_verified_ms         INTEGER,
    purged_ms                INTEGER
) STRICT;
CREATE INDEX versions_key ON versions (storage_key, created_ms);
CREATE INDEX versions_due ON versions (cleanup_scheduled_for_ms)
    WHERE cleanup_scheduled_for_ms IS NOT NULL AND purged_ms IS NULL;

CREATE TABLE uploads (
    upload_id       TEXT    NOT NULL PRIMARY KEY CHECK (length(upload_id) = 32),
    storage_key     TEXT    NOT NULL,
    cohort          TEXT    NOT NULL,
    owner           TEXT    NOT NULL,
    class           TEXT    NOT NULL CHECK (class IN ('permanent', 'temporary')),
    declared_size   INTEGER NOT NULL CHECK (declared_size >= -1),
    declared_sha256 TEXT    NOT NULL DEFAULT '',
    resumable       INTEGER NOT NULL CHECK (resumable IN (0, 1)),
    offset_bytes    INTEGER NOT NULL DEFAULT 0 CHECK (offset_bytes >= 0),
    hash_state      BLOB,
    driver_state    BLOB,
    last_offset     INTEGER NOT NULL DEFAULT 0,
    last_length     INTEGER NOT NULL DEFAULT 0,
    last_crc32c     INTEGER NOT NULL DEFAULT 0,
    metadata        TEXT    NOT NULL DEFAULT '{}',
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL
) STRICT;
CREATE INDEX uploads_owner ON uploads (owner);
CREATE INDEX uploads_updated ON uploads (updated_ms);

CREATE TABLE holds (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    cohort      TEXT    NOT NULL,
    path_prefix TEXT    NOT NULL DEFAULT '',
    reason      TEXT    NOT NULL DEFAULT '',
    created_by  TEXT    NOT NULL DEFAULT '',
    created_ms  INTEGER NOT NULL,
    released_ms INTEGER,
    released_by TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX holds_cohort ON holds (cohort, released_ms);

DROP TABLE files;
DROP TABLE maint_cleanup_failures;
CREATE TABLE maint_cleanup_failures (
    version_id TEXT    NOT NULL PRIMARY KEY,
    failures   INTEGER NOT NULL,
    last_ms    INTEGER NOT NULL,
    last_code  TEXT    NOT NULL DEFAULT '',
    alerted    INTEGER NOT NULL DEFAULT 0 CHECK (alerted IN (0, 1))
) STRICT;

-- No down migration: versions and the audit trail are never rolled back.
