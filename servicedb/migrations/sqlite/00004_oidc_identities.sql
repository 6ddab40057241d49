-- Single sign-on through OpenID Connect (SQLite): the link from a
-- provider's subject to a depot user, the cohort roles last derived from
-- that person's group claims, and the audit actions of sign-in, sign-out,
-- refused sign-in and identity linking.
--
-- SQLite cannot change a CHECK constraint in place, so audit_events is
-- rebuilt: every record is copied as it is (seq, hashes and all), so the
-- hash chain is untouched, and the append-only triggers are recreated.

-- +goose Up
CREATE TABLE oidc_identities (
    issuer      TEXT    NOT NULL,
    subject     TEXT    NOT NULL,
    user_name   TEXT    NOT NULL REFERENCES users (name),
    email       TEXT    NOT NULL DEFAULT '',
    group_roles TEXT    NOT NULL DEFAULT '',
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (issuer, subject)
) STRICT;

-- One person per depot user and provider: a second account at the provider
-- cannot take over a user that is already linked.
CREATE UNIQUE INDEX oidc_identities_user ON oidc_identities (issuer, user_name);

CREATE TABLE audit_events_v4 (
    seq                      INTEGER NOT NULL PRIMARY KEY CHECK (seq >= 1),
    time_ms                  INTEGER NOT NULL,
    action                   TEXT    NOT NULL CHECK (action IN (
        'upload.started', 'upload.completed', 'upload.failed', 'upload.aborted',
        'upload.resumed', 'upload.expired', 'file.download', 'file.list', 'file.stat',
        'file.delete', 'cleanup.scheduled', 'cleanup.completed', 'cleanup.failed',
        'integrity.verified', 'integrity.failed', 'orphan.detected', 'access.denied',
        'auth.failed', 'auth.throttled', 'token.created', 'token.revoked',
        'user.created', 'user.disabled', 'cohort.created', 'grant.changed',
        'backup.created', 'restore.completed', 'report.generated', 'job.failed',
        'auth.sign_in', 'auth.sign_out', 'auth.sign_in_refused', 'identity.linked'
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

INSERT INTO audit_events_v4 SELECT * FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_v4 RENAME TO audit_events;

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

-- No down migration for the audit actions: the audit trail is never rolled
-- back by a migration.
-- +goose Down
DROP TABLE oidc_identities;
