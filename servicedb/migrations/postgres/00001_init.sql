-- depot audit trail, accounts and file state (PostgreSQL).
--
-- Times are BIGINT unix milliseconds (UTC). Keys and names use the "C"
-- collation so ordering and ranges are bytewise, as in SQLite. The audit
-- table is append-only: triggers refuse UPDATE, DELETE and TRUNCATE, and no
-- other table references it. The action list below must equal depot.Actions
-- (asserted by a Go test).

-- +goose Up
CREATE TABLE audit_events (
    seq                      BIGINT NOT NULL PRIMARY KEY CHECK (seq >= 1),
    time_ms                  BIGINT NOT NULL,
    action                   TEXT   NOT NULL CHECK (action IN (
        'upload.started', 'upload.completed', 'upload.failed', 'upload.aborted',
        'upload.resumed', 'upload.expired', 'file.download', 'file.list', 'file.stat',
        'file.delete', 'cleanup.scheduled', 'cleanup.completed', 'cleanup.failed',
        'integrity.verified', 'integrity.failed', 'orphan.detected', 'access.denied',
        'auth.failed', 'auth.throttled', 'token.created', 'token.revoked',
        'user.created', 'user.disabled', 'cohort.created', 'grant.changed',
        'backup.created', 'restore.completed', 'report.generated', 'job.failed'
    )),
    outcome                  TEXT   NOT NULL CHECK (outcome IN ('success', 'failure', 'denied')),
    error_code               TEXT   NOT NULL DEFAULT '',
    actor                    TEXT   COLLATE "C" NOT NULL DEFAULT '',
    auth_method              TEXT   NOT NULL DEFAULT '',
    cohort                   TEXT   COLLATE "C" NOT NULL DEFAULT '',
    storage_key              TEXT   COLLATE "C" NOT NULL DEFAULT '',
    file_name                TEXT   NOT NULL DEFAULT '',
    upload_id                TEXT   NOT NULL DEFAULT '',
    declared_size            BIGINT NOT NULL DEFAULT -1,
    bytes_transferred        BIGINT NOT NULL DEFAULT 0,
    stored_size              BIGINT NOT NULL DEFAULT -1,
    sha256                   TEXT   NOT NULL DEFAULT '',
    server_role              TEXT   NOT NULL DEFAULT '',
    web_node                 TEXT   NOT NULL DEFAULT '',
    correlation_id           TEXT   NOT NULL DEFAULT '',
    client_ip                TEXT   NOT NULL DEFAULT '',
    user_agent               TEXT   NOT NULL DEFAULT '',
    stream_start_ms          BIGINT,
    stream_complete_ms       BIGINT,
    duration_ms              BIGINT NOT NULL DEFAULT 0,
    file_class               TEXT   NOT NULL DEFAULT '' CHECK (file_class IN ('', 'permanent', 'temporary')),
    cleanup_scheduled_for_ms BIGINT,
    metadata                 TEXT   NOT NULL DEFAULT '{}',
    prev_hash                TEXT   NOT NULL CHECK (length(prev_hash) = 64),
    hash                     TEXT   NOT NULL UNIQUE CHECK (length(hash) = 64)
);

CREATE INDEX audit_events_time ON audit_events (time_ms);
CREATE INDEX audit_events_cohort ON audit_events (cohort, seq);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_key ON audit_events (storage_key, seq);
CREATE INDEX audit_events_upload ON audit_events (upload_id) WHERE upload_id <> '';
CREATE INDEX audit_events_correlation ON audit_events (correlation_id) WHERE correlation_id <> '';

-- +goose StatementBegin
CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END;
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change();

CREATE TABLE users (
    name        TEXT    COLLATE "C" NOT NULL PRIMARY KEY,
    admin       BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms  BIGINT  NOT NULL,
    disabled_ms BIGINT
);

CREATE TABLE cohorts (
    name       TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    created_ms BIGINT NOT NULL
);

CREATE TABLE grants (
    user_name  TEXT   COLLATE "C" NOT NULL REFERENCES users (name),
    cohort     TEXT   COLLATE "C" NOT NULL REFERENCES cohorts (name),
    role       TEXT   NOT NULL CHECK (role IN ('uploader', 'reader', 'manager')),
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (user_name, cohort)
);

CREATE INDEX grants_cohort ON grants (cohort);

CREATE TABLE tokens (
    id           TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    user_name    TEXT   COLLATE "C" NOT NULL REFERENCES users (name),
    label        TEXT   NOT NULL DEFAULT '',
    hash         TEXT   NOT NULL UNIQUE CHECK (length(hash) = 64),
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL,
    revoked_ms   BIGINT,
    last_used_ms BIGINT
);

CREATE INDEX tokens_user ON tokens (user_name);

CREATE TABLE files (
    storage_key              TEXT   COLLATE "C" NOT NULL PRIMARY KEY,
    cohort                   TEXT   COLLATE "C" NOT NULL,
    size                     BIGINT NOT NULL CHECK (size >= 0),
    sha256                   TEXT   NOT NULL DEFAULT '',
    class                    TEXT   NOT NULL CHECK (class IN ('permanent', 'temporary')),
    cleanup_scheduled_for_ms BIGINT CHECK (class = 'temporary' OR cleanup_scheduled_for_ms IS NULL),
    created_ms               BIGINT NOT NULL,
    updated_ms               BIGINT NOT NULL,
    last_verified_ms         BIGINT,
    uploaded_by              TEXT   NOT NULL DEFAULT ''
);

CREATE INDEX files_cohort ON files (cohort, storage_key);
CREATE INDEX files_cleanup ON files (cleanup_scheduled_for_ms) WHERE cleanup_scheduled_for_ms IS NOT NULL;

-- No down migration: the audit trail is never rolled back by a migration.
