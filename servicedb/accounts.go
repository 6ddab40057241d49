package servicedb

import (
	"context"
	"database/sql"
	"time"

	"depot"
)

// User is an account. Users are never deleted, only disabled, so that audit
// records keep naming someone who existed.
type User struct {
	Name     string
	Admin    bool // may do everything in every cohort
	Created  time.Time
	Disabled *time.Time // nil while the user may authenticate
}

// Cohort is a named group of files and the unit of access.
type Cohort struct {
	Name    string
	Created time.Time
}

// maxNameBytes bounds user and cohort names.
const maxNameBytes = 64

// ValidateName checks a user or cohort name: 1 to 64 bytes of ASCII letters,
// digits, '.', '_', '-' and '@', starting with a letter or digit. Such a name
// is also a valid storage key segment. Violations are CodeInvalid.
func ValidateName(kind, name string) error {
	if name == "" || len(name) > maxNameBytes {
		return depot.Errorf(depot.CodeInvalid, "%s name must be 1 to %d characters", kind, maxNameBytes)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-' && c != '@') {
			return depot.Errorf(depot.CodeInvalid, "%s name may hold only letters, digits, '.', '_', '-' and '@', and must start with a letter or digit", kind)
		}
	}
	return nil
}

// CreateUser adds a user. An existing name is CodeConflict.
func (db *DB) CreateUser(ctx context.Context, name string, admin bool) error {
	if err := ValidateName("user", name); err != nil {
		return err
	}
	_, err := db.sql.ExecContext(ctx, `INSERT INTO users (name, admin, created_ms) VALUES ($1, $2, $3)`,
		name, admin, toMS(db.now()))
	return db.wrap(err, "create user")
}

// GetUser returns one user; CodeNotFound when there is none.
func (db *DB) GetUser(ctx context.Context, name string) (User, error) {
	var (
		u        User
		created  int64
		disabled sql.NullInt64
	)
	err := db.sql.QueryRowContext(ctx, `SELECT name, admin, created_ms, disabled_ms FROM users WHERE name = $1`, name).
		Scan(&u.Name, &u.Admin, &created, &disabled)
	if err != nil {
		return User{}, db.wrap(err, "get user")
	}
	u.Created, u.Disabled = fromMS(created), timeOrNil(disabled)
	return u, nil
}

// ListUsers returns every user, by name.
func (db *DB) ListUsers(ctx context.Context) ([]User, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT name, admin, created_ms, disabled_ms FROM users ORDER BY name`)
	if err != nil {
		return nil, db.wrap(err, "list users")
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var (
			u        User
			created  int64
			disabled sql.NullInt64
		)
		if err := rows.Scan(&u.Name, &u.Admin, &created, &disabled); err != nil {
			return nil, db.wrap(err, "list users")
		}
		u.Created, u.Disabled = fromMS(created), timeOrNil(disabled)
		out = append(out, u)
	}
	return out, db.wrap(rows.Err(), "list users")
}

// DisableUser stops a user from authenticating, with every token they hold.
// Disabling a disabled user keeps the first time. CodeNotFound when there is
// no such user.
func (db *DB) DisableUser(ctx context.Context, name string) error {
	res, err := db.sql.ExecContext(ctx, `UPDATE users SET disabled_ms = COALESCE(disabled_ms, $1) WHERE name = $2`,
		toMS(db.now()), name)
	return db.affectedOne(res, err, "disable user")
}

// CreateCohort adds a cohort. An existing name is CodeConflict.
func (db *DB) CreateCohort(ctx context.Context, name string) error {
	if err := ValidateName("cohort", name); err != nil {
		return err
	}
	_, err := db.sql.ExecContext(ctx, `INSERT INTO cohorts (name, created_ms) VALUES ($1, $2)`, name, toMS(db.now()))
	return db.wrap(err, "create cohort")
}

// ListCohorts returns every cohort, by name.
func (db *DB) ListCohorts(ctx context.Context) ([]Cohort, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT name, created_ms FROM cohorts ORDER BY name`)
	if err != nil {
		return nil, db.wrap(err, "list cohorts")
	}
	defer rows.Close()
	var out []Cohort
	for rows.Next() {
		var (
			c       Cohort
			created int64
		)
		if err := rows.Scan(&c.Name, &created); err != nil {
			return nil, db.wrap(err, "list cohorts")
		}
		c.Created = fromMS(created)
		out = append(out, c)
	}
	return out, db.wrap(rows.Err(), "list cohorts")
}

// Grant gives user the role in cohort, replacing any role they had there. An
// unknown user or cohort is CodeNotFound, an unknown role CodeInvalid.
func (db *DB) Grant(ctx context.Context, user, cohort string, role depot.Role) error {
	if !role.Valid() {
		return depot.Errorf(depot.CodeInvalid, "unknown role (want uploader, reader or manager)")
	}
	_, err := db.sql.ExecContext(ctx, `INSERT INTO grants (user_name, cohort, role, created_ms) VALUES ($1, $2, $3, $4)
		ON CONFLICT (user_name, cohort) DO UPDATE SET role = excluded.role`,
		user, cohort, string(role), toMS(db.now()))
	if db.classify(err) == depot.CodeNotFound {
		return depot.WrapError(depot.CodeNotFound, "grant: no such user or cohort", err)
	}
	return db.wrap(err, "grant")
}

// Revoke removes user's role in cohort; CodeNotFound when they had none.
func (db *DB) Revoke(ctx context.Context, user, cohort string) error {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM grants WHERE user_name = $1 AND cohort = $2`, user, cohort)
	return db.affectedOne(res, err, "revoke grant")
}

// Grants returns user's roles by cohort (empty, not nil, when none);
// CodeNotFound when there is no such user.
func (db *DB) Grants(ctx context.Context, user string) (map[string]depot.Role, error) {
	if _, err := db.GetUser(ctx, user); err != nil {
		return nil, err
	}
	return db.grantMap(ctx, `SELECT cohort, role FROM grants WHERE user_name = $1`, user)
}

// CohortGrants returns the roles held in cohort, by user name;
// CodeNotFound when there is no such cohort.
func (db *DB) CohortGrants(ctx context.Context, cohort string) (map[string]depot.Role, error) {
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT count(*) FROM cohorts WHERE name = $1`, cohort).Scan(&n); err != nil {
		return nil, db.wrap(err, "cohort grants")
	}
	if n == 0 {
		return nil, depot.Errorf(depot.CodeNotFound, "cohort grants: no such cohort")
	}
	return db.grantMap(ctx, `SELECT user_name, role FROM grants WHERE cohort = $1`, cohort)
}

// grantMap runs a fixed two-column (name, role) query into a map.
func (db *DB) grantMap(ctx context.Context, q string, arg string) (map[string]depot.Role, error) {
	rows, err := db.stmts.query(ctx, q, arg)
	if err != nil {
		return nil, db.wrap(err, "read grants")
	}
	defer rows.Close()
	out := map[string]depot.Role{}
	for rows.Next() {
		var name, role string
		if err := rows.Scan(&name, &role); err != nil {
			return nil, db.wrap(err, "read grants")
		}
		out[name] = depot.Role(role)
	}
	return out, db.wrap(rows.Err(), "read grants")
}

// affectedOne turns an Exec result into nil when it changed a row and
// CodeNotFound when it changed none.
func (db *DB) affectedOne(res sql.Result, err error, op string) error {
	if err != nil {
		return db.wrap(err, op)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return db.wrap(err, op)
	}
	if n == 0 {
		return depot.Errorf(depot.CodeNotFound, "%s: not found", op)
	}
	return nil
}
