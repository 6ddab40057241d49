package servicedb

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"depot"
)

// OpenID Connect identities. A person signed in through a provider is named
// by the provider's issuer URL and their subject ("sub" claim), which never
// changes for them at that provider; oidc_identities binds that pair to one
// depot user. Each change of a binding is written in the transaction of the
// audit record that reports it, so that neither exists without the other.

// OIDCAccount returns the user bound to (issuer, subject), as a principal
// with the grants recorded in depot (not those derived from group claims),
// and the group roles last recorded for that identity (see
// SetOIDCGroupRoles). No binding is CodeNotFound; a disabled user is
// CodeUnauthorized.
func (db *DB) OIDCAccount(ctx context.Context, issuer, subject string) (depot.Principal, string, error) {
	var (
		user, roles string
		admin       bool
		disabled    sql.NullInt64
	)
	err := db.stmts.queryRow(ctx, `SELECT i.user_name, i.group_roles, u.admin, u.disabled_ms
		FROM oidc_identities i JOIN users u ON u.name = i.user_name
		WHERE i.issuer = $1 AND i.subject = $2`, issuer, subject).Scan(&user, &roles, &admin, &disabled)
	switch {
	case notFound(err):
		return depot.Principal{}, "", depot.Errorf(depot.CodeNotFound, "no depot user is bound to this identity")
	case err != nil:
		return depot.Principal{}, "", db.wrap(err, "load identity")
	case disabled.Valid:
		return depot.Principal{}, "", depot.WrapError(depot.CodeUnauthorized, "unknown user", errors.New("user disabled"))
	}
	grants, err := db.grantMap(ctx, `SELECT cohort, role FROM grants WHERE user_name = $1`, user)
	if err != nil {
		return depot.Principal{}, "", err
	}
	return depot.Principal{
		User: user, Admin: admin, AuthMethod: depot.AuthMethodOIDC, Grants: grants,
		IdP: issuer, Subject: subject,
	}, roles, nil
}

// LinkOIDC binds (issuer, subject) to user and appends ev, in one
// transaction. With create the user is created first (a taken name is
// CodeConflict, an invalid one CodeInvalid); otherwise the user must exist
// and be enabled (CodeNotFound otherwise). A subject already bound, or a user
// already bound to another subject of issuer, is CodeConflict.
func (db *DB) LinkOIDC(ctx context.Context, ev depot.AuditEvent, issuer, subject, email, user string, create bool) (depot.AuditEvent, error) {
	if create {
		if err := ValidateName("user", user); err != nil {
			return depot.AuditEvent{}, err
		}
	}
	if issuer == "" || subject == "" {
		return depot.AuditEvent{}, depot.Errorf(depot.CodeInvalid, "an identity needs an issuer and a subject")
	}
	return db.AppendWith(ctx, ev, func(ctx context.Context, tx *sql.Tx, at time.Time) error {
		now := toMS(at)
		if create {
			if _, err := tx.ExecContext(ctx, `INSERT INTO users (name, admin, created_ms) VALUES ($1, $2, $3)`, user, false, now); err != nil {
				return db.wrap(err, "create user")
			}
		} else {
			var disabled sql.NullInt64
			err := tx.QueryRowContext(ctx, `SELECT disabled_ms FROM users WHERE name = $1`, user).Scan(&disabled)
			if err != nil {
				return db.wrap(err, "bind identity: user")
			}
			if disabled.Valid {
				return depot.Errorf(depot.CodeNotFound, "bind identity: user is disabled")
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO oidc_identities (issuer, subject, user_name, email, created_ms)
			VALUES ($1, $2, $3, $4, $5)`, issuer, subject, user, clean(email), now)
		return db.wrap(err, "bind identity")
	})
}

// SetOIDCGroupRoles records roles as the cohort roles last derived from the
// group claims of (issuer, subject) and appends ev, in one transaction.
// CodeNotFound when the identity is not bound.
func (db *DB) SetOIDCGroupRoles(ctx context.Context, ev depot.AuditEvent, issuer, subject, roles string) (depot.AuditEvent, error) {
	return db.AppendWith(ctx, ev, func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		res, err := tx.ExecContext(ctx, `UPDATE oidc_identities SET group_roles = $1 WHERE issuer = $2 AND subject = $3`,
			roles, issuer, subject)
		return db.affectedOne(res, err, "record group roles")
	})
}

// OIDCIdentity is one binding of a provider's subject to a user.
type OIDCIdentity struct {
	Issuer, Subject, User, Email, GroupRoles string
}

// OIDCIdentities lists the identities bound to user ("" for all), by issuer
// and subject.
func (db *DB) OIDCIdentities(ctx context.Context, user string) ([]OIDCIdentity, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT issuer, subject, user_name, email, group_roles FROM oidc_identities
		WHERE $1 = '' OR user_name = $1 ORDER BY issuer, subject`, user)
	if err != nil {
		return nil, db.wrap(err, "list identities")
	}
	defer rows.Close()
	var out []OIDCIdentity
	for rows.Next() {
		var i OIDCIdentity
		if err := rows.Scan(&i.Issuer, &i.Subject, &i.User, &i.Email, &i.GroupRoles); err != nil {
			return nil, db.wrap(err, "list identities")
		}
		out = append(out, i)
	}
	return out, db.wrap(rows.Err(), "list identities")
}
