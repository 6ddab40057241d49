-- Immutable versions (issue 21): see the SQLite migration of the same
-- number. The audit action list moves from a CHECK constraint to the
-- audit_actions table.

-- +goose Up
CREATE TABLE audit_actions (
    name TEXT NOT NULL PRIMARY KEY
);
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
ALTER TABLE audit_events DROP CONSTRAINT audit_events_action_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_action_fkey FOREIGN KEY (action) REFERENCES audit_actions (name);

CREATE TABLE paths (
    storage_key     TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    cohort          TEXT COLLATE "C"    NOT NULL,
    current_version TEXT,
    deleted_ms      BIGINT,
    deleted_by      TEXT    NOT NULL DEFAULT '',
    updated_ms      BIGINT NOT NULL
);
CREATE INDEX paths_cohort ON paths (cohort, storage_key);
CREATE INDEX paths_deleted ON paths (deleted_ms) WHERE deleted_ms IS NOT NULL;

CREATE TABLE versions (
    version_id               TEXT    NOT NULL PRIMARY KEY CHECK (length(version_id) = 32),
    storage_key              TEXT COLLATE "C"    NOT NULL,
    cohort                   TEXT COLLATE "C"    NOT NULL,
    size                     BIGINT NOT NULL CHECK (size >= 0),
    sha256                   TEXT    NOT NULL CHECK (length(sha256) = 64),
    class                    TEXT    NOT NULL CHECK (class IN ('permanent', 'temporary')),
    cleanup_scheduled_for_ms BIGINT CHECK (class = 'temporary' OR cleanup_scheduled_for_ms IS NULL),
    created_ms               BIGINT NOT NULL,
    uploaded_by              TEXT    NOT NULL DEFAULT '',
    last_verified_ms         BIGINT,
    purged_ms                BIGINT
);
CREATE INDEX versions_key ON versions (storage_key, created_ms);
CREATE INDEX versions_due ON versions (cleanup_scheduled_for_ms)
    WHERE cleanup_scheduled_for_ms IS NOT NULL AND purged_ms IS NULL;

CREATE TABLE uploads (
    upload_id       TEXT    NOT NULL PRIMARY KEY CHECK (length(upload_id) = 32),
    storage_key     TEXT COLLATE "C"    NOT NULL,
    cohort          TEXT COLLATE "C"    NOT NULL,
    owner           TEXT COLLATE "C"    NOT NULL,
    class           TEXT    NOT NULL CHECK (class IN ('permanent', 'temporary')),
    declared_size   BIGINT NOT NULL CHECK (declared_size >= -1),
    declared_sha256 TEXT    NOT NULL DEFAULT '',
    resumable       SMALLINT NOT NULL CHECK (resumable IN (0, 1)),
    offset_bytes    BIGINT NOT NULL DEFAULT 0 CHECK (offset_bytes >= 0),
    hash_state      BYTEA,
    driver_state    BYTEA,
    last_offset     BIGINT NOT NULL DEFAULT 0,
    last_length     BIGINT NOT NULL DEFAULT 0,
    last_crc32c     BIGINT NOT NULL DEFAULT 0,
    metadata        TEXT    NOT NULL DEFAULT '{}',
    created_ms      BIGINT NOT NULL,
    updated_ms      BIGINT NOT NULL
);
CREATE INDEX uploads_owner ON uploads (owner);
CREATE INDEX uploads_updated ON uploads (updated_ms);

CREATE TABLE holds (
    id          BIGSERIAL NOT NULL PRIMARY KEY,
    cohort      TEXT COLLATE "C"    NOT NULL,
    path_prefix TEXT COLLATE "C"    NOT NULL DEFAULT '',
    reason      TEXT    NOT NULL DEFAULT '',
    created_by  TEXT    NOT NULL DEFAULT '',
    created_ms  BIGINT NOT NULL,
    released_ms BIGINT,
    released_by TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX holds_cohort ON holds (cohort, released_ms);

DROP TABLE files;
DROP TABLE maint_cleanup_failures;
CREATE TABLE maint_cleanup_failures (
    version_id TEXT    NOT NULL PRIMARY KEY,
    failures   BIGINT NOT NULL,
    last_ms    BIGINT NOT NULL,
    last_code  TEXT    NOT NULL DEFAULT '',
    alerted    SMALLINT NOT NULL DEFAULT 0 CHECK (alerted IN (0, 1))
);

-- No down migration: versions and the audit trail are never rolled back.
