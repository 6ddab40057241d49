-- Single sign-on through OpenID Connect (PostgreSQL): the link from a
-- provider's subject to a depot user, the cohort roles last derived from
-- that person's group claims, and the audit actions of sign-in, sign-out,
-- refused sign-in and identity linking.

-- +goose Up
CREATE TABLE oidc_identities (
    issuer      TEXT   NOT NULL,
    subject     TEXT   NOT NULL,
    user_name   TEXT   COLLATE "C" NOT NULL REFERENCES users (name),
    email       TEXT   NOT NULL DEFAULT '',
    group_roles TEXT   NOT NULL DEFAULT '',
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);

-- One person per depot user and provider: a second account at the provider
-- cannot take over a user that is already linked.
CREATE UNIQUE INDEX oidc_identities_user ON oidc_identities (issuer, user_name);

ALTER TABLE audit_events DROP CONSTRAINT audit_events_action_check;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_action_check CHECK (action IN (
        'upload.started', 'upload.completed', 'upload.failed', 'upload.aborted',
        'upload.resumed', 'upload.expired', 'file.download', 'file.list', 'file.stat',
        'file.delete', 'cleanup.scheduled', 'cleanup.completed', 'cleanup.failed',
        'integrity.verified', 'integrity.failed', 'orphan.detected', 'access.denied',
        'auth.failed', 'auth.throttled', 'token.created', 'token.revoked',
        'user.created', 'user.disabled', 'cohort.created', 'grant.changed',
        'backup.created', 'restore.completed', 'report.generated', 'job.failed',
        'auth.sign_in', 'auth.sign_out', 'auth.sign_in_refused', 'identity.linked'
));

-- No down migration for the audit actions: the audit trail is never rolled
-- back by a migration.
-- +goose Down
DROP TABLE oidc_identities;
