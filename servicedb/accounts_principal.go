package servicedb

import (
	"context"
	"database/sql"
	"errors"

	"depot"
)

// PrincipalOf returns the principal of an existing, enabled user, for
// identities vouched for by a trusted single-sign-on proxy (no token). An
// unknown or disabled user is CodeUnauthorized.
func (db *DB) PrincipalOf(ctx context.Context, user string) (depot.Principal, error) {
	var admin bool
	var disabled sql.NullInt64
	err := db.stmts.queryRow(ctx, `SELECT admin, disabled_ms FROM users WHERE name = $1`, user).Scan(&admin, &disabled)
	switch {
	case notFound(err):
		return depot.Principal{}, depot.WrapError(depot.CodeUnauthorized, "unknown user", errors.New("no such user"))
	case err != nil:
		return depot.Principal{}, db.wrap(err, "load user")
	case disabled.Valid:
		return depot.Principal{}, depot.WrapError(depot.CodeUnauthorized, "unknown user", errors.New("user disabled"))
	}
	grants, err := db.grantMap(ctx, `SELECT cohort, role FROM grants WHERE user_name = $1`, user)
	if err != nil {
		return depot.Principal{}, err
	}
	return depot.Principal{User: user, Admin: admin, AuthMethod: "trusted_header", Grants: grants}, nil
}
