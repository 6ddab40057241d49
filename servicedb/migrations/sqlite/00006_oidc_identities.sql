-- Single sign-on through OpenID Connect (sqlite): the binding of a
-- provider's subject to a depot user, the cohort roles last derived from
-- that person's group claims, and the audit actions of sign-in, sign-out,
-- refused sign-in and identity binding.

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
-- cannot take over a user that is already bound.
CREATE UNIQUE INDEX oidc_identities_user ON oidc_identities (issuer, user_name);

INSERT INTO audit_actions (name) VALUES
    ('auth.sign_in'),
    ('auth.sign_out'),
    ('auth.sign_in_refused'),
    ('identity.linked');

-- +goose Down
DROP TABLE oidc_identities;
