package servicedb

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"depot"
)

// AuthMethodSSHKey is the Principal.AuthMethod set by AuthenticateSSHKey.
const AuthMethodSSHKey = "ssh_key"

// SSHKeyInfo describes a registered SSH public key.
type SSHKeyInfo struct {
	Fingerprint string // SHA256:… as OpenSSH prints it
	User        string
	Type        string // e.g. ssh-ed25519
	Comment     string
	Created     time.Time
	Revoked     *time.Time
}

// ParseSSHKey parses one public key in authorized_keys form ("type base64
// [comment]") and returns it with its SHA256 fingerprint. Anything else
// (a private key, options, several keys) is CodeInvalid.
func ParseSSHKey(line string) (ssh.PublicKey, string, string, error) {
	line = strings.TrimSpace(line)
	key, comment, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	switch {
	case err != nil:
		return nil, "", "", depot.WrapError(depot.CodeInvalid, "not an SSH public key (expected one line as in authorized_keys)", err)
	case len(options) > 0:
		return nil, "", "", depot.Errorf(depot.CodeInvalid, "authorized_keys options are not supported")
	case len(strings.TrimSpace(string(rest))) > 0:
		return nil, "", "", depot.Errorf(depot.CodeInvalid, "one key per file")
	}
	return key, ssh.FingerprintSHA256(key), comment, nil
}

// AddSSHKey registers the public key line (authorized_keys form) to user
// and returns its description. An unknown user is CodeNotFound, a disabled
// one or a key already registered (to anyone, even revoked) CodeConflict.
func (db *DB) AddSSHKey(ctx context.Context, user, line string) (SSHKeyInfo, error) {
	key, fp, comment, err := ParseSSHKey(line)
	if err != nil {
		return SSHKeyInfo{}, err
	}
	u, err := db.GetUser(ctx, user)
	if err != nil {
		return SSHKeyInfo{}, err
	}
	if u.Disabled != nil {
		return SSHKeyInfo{}, depot.Errorf(depot.CodeConflict, "user is disabled")
	}
	info := SSHKeyInfo{Fingerprint: fp, User: user, Type: key.Type(), Comment: clean(comment), Created: db.now()}
	var n int
	if err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM ssh_keys WHERE fingerprint = $1`, fp).Scan(&n); err != nil {
		return SSHKeyInfo{}, db.wrap(err, "add ssh key")
	}
	if n > 0 {
		return SSHKeyInfo{}, depot.Errorf(depot.CodeConflict, "this key is already registered")
	}
	_, err = db.sql.ExecContext(ctx, `INSERT INTO ssh_keys (fingerprint, user_name, public_key, comment, created_ms)
		VALUES ($1, $2, $3, $4, $5)`, fp, user, string(ssh.MarshalAuthorizedKey(key)), info.Comment, toMS(info.Created))
	if err != nil {
		return SSHKeyInfo{}, db.wrap(err, "add ssh key")
	}
	return info, nil
}

// ListSSHKeys returns user's keys, oldest first.
func (db *DB) ListSSHKeys(ctx context.Context, user string) ([]SSHKeyInfo, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT fingerprint, user_name, public_key, comment, created_ms, revoked_ms
		FROM ssh_keys WHERE user_name = $1 ORDER BY created_ms, fingerprint`, user)
	if err != nil {
		return nil, db.wrap(err, "list ssh keys")
	}
	defer rows.Close()
	var out []SSHKeyInfo
	for rows.Next() {
		var (
			k       SSHKeyInfo
			pub     string
			created int64
			revoked sql.NullInt64
		)
		if err := rows.Scan(&k.Fingerprint, &k.User, &pub, &k.Comment, &created, &revoked); err != nil {
			return nil, db.wrap(err, "list ssh keys")
		}
		k.Type, _, _ = strings.Cut(pub, " ")
		k.Created, k.Revoked = fromMS(created), timeOrNil(revoked)
		out = append(out, k)
	}
	return out, db.wrap(rows.Err(), "list ssh keys")
}

// RevokeSSHKey makes user's key with fingerprint unusable; revoking it
// again keeps the first time. CodeNotFound when user has no such key.
func (db *DB) RevokeSSHKey(ctx context.Context, user, fingerprint string) error {
	res, err := db.sql.ExecContext(ctx, `UPDATE ssh_keys SET revoked_ms = COALESCE(revoked_ms, $1)
		WHERE fingerprint = $2 AND user_name = $3`, toMS(db.now()), fingerprint, user)
	return db.affectedOne(res, err, "revoke ssh key")
}

// AuthenticateSSHKey returns the principal of the user a public key (in
// authorized_keys form) is registered to, with the grants in force now.
// The caller must have verified that the client holds the private key. An
// unparsable, unknown or revoked key, or one whose user is disabled, is
// CodeUnauthorized (the reason is in the wrapped error, for logs).
func (db *DB) AuthenticateSSHKey(ctx context.Context, line string) (depot.Principal, error) {
	deny := func(reason string) (depot.Principal, error) {
		return depot.Principal{}, depot.WrapError(depot.CodeUnauthorized, "unknown or revoked SSH key", errors.New(reason))
	}
	key, fp, _, err := ParseSSHKey(line)
	if err != nil {
		return deny("malformed key")
	}
	var (
		stored, user      string
		admin             bool
		revoked, disabled sql.NullInt64
	)
	err = db.stmts.queryRow(ctx, `SELECT k.public_key, k.revoked_ms, u.name, u.admin, u.disabled_ms
		FROM ssh_keys k JOIN users u ON u.name = k.user_name WHERE k.fingerprint = $1`, fp).
		Scan(&stored, &revoked, &user, &admin, &disabled)
	switch {
	case notFound(err):
		return deny("unknown key")
	case err != nil:
		return depot.Principal{}, db.wrap(err, "authenticate")
	case subtle.ConstantTimeCompare([]byte(stored), ssh.MarshalAuthorizedKey(key)) != 1:
		return deny("unknown key")
	case revoked.Valid:
		return deny("key revoked")
	case disabled.Valid:
		return deny("user disabled")
	}
	grants, err := db.grantMap(ctx, `SELECT cohort, role FROM grants WHERE user_name = $1`, user)
	if err != nil {
		return depot.Principal{}, err
	}
	return depot.Principal{User: user, Admin: admin, AuthMethod: AuthMethodSSHKey, Grants: grants}, nil
}
