package servicedb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"depot"
)

// TokenPrefix starts every personal access token, so that secret scanners
// and people recognise one.
const TokenPrefix = "dpt_"

// A token is TokenPrefix followed by 32 random bytes in lowercase unpadded
// base32 (52 characters).
const (
	tokenSecretBytes = 32
	tokenLen         = len(TokenPrefix) + 52
)

// lastUsedGranularity is how stale LastUsed may get before Authenticate
// writes it again; it keeps authentication from being a write per request.
const lastUsedGranularity = time.Minute

// AuthMethodToken is the Principal.AuthMethod set by Authenticate.
const AuthMethodToken = "token"

// TokenInfo describes a token. The token itself is shown once, by
// CreateToken, and never stored: only its SHA-256 is.
type TokenInfo struct {
	ID       string
	User     string
	Label    string
	Created  time.Time
	Expires  time.Time
	Revoked  *time.Time
	LastUsed *time.Time // updated at most once a minute
}

// CreateToken issues a token for user that expires after ttl (> 0) and
// returns the plaintext, which is not stored anywhere, with its description.
// An unknown user is CodeNotFound, a disabled one CodeConflict, a ttl <= 0
// CodeInvalid.
func (db *DB) CreateToken(ctx context.Context, user, label string, ttl time.Duration) (string, TokenInfo, error) {
	if ttl <= 0 {
		return "", TokenInfo{}, depot.Errorf(depot.CodeInvalid, "token lifetime must be positive")
	}
	u, err := db.GetUser(ctx, user)
	if err != nil {
		return "", TokenInfo{}, err
	}
	if u.Disabled != nil {
		return "", TokenInfo{}, depot.Errorf(depot.CodeConflict, "user is disabled")
	}
	secret := make([]byte, tokenSecretBytes)
	id := make([]byte, 8)
	if _, err := rand.Read(secret); err != nil {
		return "", TokenInfo{}, depot.WrapError(depot.CodeInternal, "cannot create token", err)
	}
	if _, err := rand.Read(id); err != nil {
		return "", TokenInfo{}, depot.WrapError(depot.CodeInternal, "cannot create token", err)
	}
	plaintext := TokenPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret))
	now := db.now()
	info := TokenInfo{
		ID:      hex.EncodeToString(id),
		User:    user,
		Label:   clean(label),
		Created: now,
		Expires: fromMS(toMS(now.Add(ttl))),
	}
	_, err = db.sql.ExecContext(ctx, `INSERT INTO tokens (id, user_name, label, hash, created_ms, expires_ms)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		info.ID, info.User, info.Label, tokenHash(plaintext), toMS(info.Created), toMS(info.Expires))
	if err != nil {
		return "", TokenInfo{}, db.wrap(err, "create token")
	}
	return plaintext, info, nil
}

// tokenHash is the stored form of a token: lowercase hex SHA-256. A fast
// hash is enough because tokens carry 256 random bits.
func tokenHash(plaintext string) string {
	sum := sha256.Sum256([]byte(plaintext))
	return hex.EncodeToString(sum[:])
}

// ListTokens returns user's tokens ("" for every user's), newest first.
func (db *DB) ListTokens(ctx context.Context, user string) ([]TokenInfo, error) {
	q := `SELECT id, user_name, label, created_ms, expires_ms, revoked_ms, last_used_ms FROM tokens`
	var args []any
	if user != "" {
		q += ` WHERE user_name = $1`
		args = append(args, user)
	}
	rows, err := db.sql.QueryContext(ctx, q+` ORDER BY created_ms DESC, id`, args...)
	if err != nil {
		return nil, db.wrap(err, "list tokens")
	}
	defer rows.Close()
	var out []TokenInfo
	for rows.Next() {
		var (
			t                 TokenInfo
			created, expires  int64
			revoked, lastUsed sql.NullInt64
		)
		if err := rows.Scan(&t.ID, &t.User, &t.Label, &created, &expires, &revoked, &lastUsed); err != nil {
			return nil, db.wrap(err, "list tokens")
		}
		t.Created, t.Expires = fromMS(created), fromMS(expires)
		t.Revoked, t.LastUsed = timeOrNil(revoked), timeOrNil(lastUsed)
		out = append(out, t)
	}
	return out, db.wrap(rows.Err(), "list tokens")
}

// RevokeToken makes a token unusable; revoking it again keeps the first
// time. CodeNotFound when there is no such token.
func (db *DB) RevokeToken(ctx context.Context, id string) error {
	res, err := db.sql.ExecContext(ctx, `UPDATE tokens SET revoked_ms = COALESCE(revoked_ms, $1) WHERE id = $2`,
		toMS(db.now()), id)
	return db.affectedOne(res, err, "revoke token")
}

// Authenticate returns the principal a token stands for, with the grants in
// force now. A malformed, unknown, expired or revoked token, or one whose
// user is disabled, is CodeUnauthorized with the same client message (the
// reason is in the wrapped error, for logs). The token is looked up by its
// SHA-256, which reveals nothing about stored tokens through timing, and the
// stored hash is compared in constant time.
func (db *DB) Authenticate(ctx context.Context, plaintext string) (depot.Principal, error) {
	deny := func(reason string) (depot.Principal, error) {
		return depot.Principal{}, depot.WrapError(depot.CodeUnauthorized, "invalid or expired token", errors.New(reason))
	}
	if len(plaintext) != tokenLen || !strings.HasPrefix(plaintext, TokenPrefix) {
		return deny("malformed token")
	}
	h := tokenHash(plaintext)
	var (
		id, stored, user            string
		admin                       bool
		expires                     int64
		revoked, lastUsed, disabled sql.NullInt64
	)
	err := db.stmts.queryRow(ctx, `SELECT t.id, t.hash, t.expires_ms, t.revoked_ms, t.last_used_ms,
		u.name, u.admin, u.disabled_ms FROM tokens t JOIN users u ON u.name = t.user_name WHERE t.hash = $1`, h).
		Scan(&id, &stored, &expires, &revoked, &lastUsed, &user, &admin, &disabled)
	switch {
	case notFound(err):
		return deny("unknown token")
	case err != nil:
		return depot.Principal{}, db.wrap(err, "authenticate")
	case subtle.ConstantTimeCompare([]byte(stored), []byte(h)) != 1:
		return deny("unknown token")
	case revoked.Valid:
		return deny("token revoked")
	case disabled.Valid:
		return deny("user disabled")
	}
	now := db.now()
	if toMS(now) >= expires {
		return deny("token expired")
	}
	grants, err := db.grantMap(ctx, `SELECT cohort, role FROM grants WHERE user_name = $1`, user)
	if err != nil {
		return depot.Principal{}, err
	}
	if !lastUsed.Valid || toMS(now)-lastUsed.Int64 >= lastUsedGranularity.Milliseconds() {
		if _, err := db.stmts.exec(ctx, `UPDATE tokens SET last_used_ms = $1 WHERE id = $2`, toMS(now), id); err != nil {
			return depot.Principal{}, db.wrap(err, "authenticate")
		}
	}
	return depot.Principal{User: user, Admin: admin, AuthMethod: AuthMethodToken, Grants: grants}, nil
}
