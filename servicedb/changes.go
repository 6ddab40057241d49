package servicedb

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"depot"
)

// Change is a change of file state written in the same transaction as an
// audit record (AppendWith): the two are committed both or neither, so no
// version becomes visible, hidden or purged without its record. now is the
// record's time. A Change that refuses (a failed precondition, a hold)
// returns a *depot.Error; the record is then not written either.
type Change func(ctx context.Context, tx *sql.Tx, now time.Time) error

// Commit describes a new version to record.
type Commit struct {
	// Version is the new version: ID, Key, Cohort, Size, SHA256, Class,
	// CleanupScheduledFor, UploadedBy and Scan are stored; Created is the
	// record's time.
	Version Version
	// UploadID is the upload session committed, removed in the same
	// transaction; "" for a one-shot upload. If the session is gone (it
	// expired meanwhile, and its bytes with it), nothing is committed.
	UploadID string
	// Parts are the sessions of the partial uploads (tus concatenation)
	// whose bytes the version joins, removed in the same transaction; if
	// one is gone (joined by another final upload, or expired), nothing is
	// committed, so that partials make one version at most.
	Parts []string
	// IfMatch and IfNoneMatch are the upload's HTTP conditions (see
	// depot.PutOptions), checked against the path's current version.
	IfMatch, IfNoneMatch string
	// MayChangeClass allows a class other than that of the path's current
	// version (a manager's upload). Otherwise such an upload is refused.
	MayChangeClass bool
}

// CommitVersion records c.Version as the current version of its path.
func CommitVersion(c Commit) Change {
	return func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		v := c.Version
		cur, err := currentIn(ctx, tx, v.Key)
		if err != nil {
			return err
		}
		if err := (PathCheck{Visible: cur.visible, SHA256: cur.sha256, Class: cur.class}).Check(c); err != nil {
			return err
		}
		if c.UploadID != "" {
			res, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE upload_id = $1`, c.UploadID)
			if n, _ := rowsAffected(res, err); err != nil || n != 1 {
				if err != nil {
					return err
				}
				return depot.Errorf(depot.CodeNotFound, "the upload expired before it was committed")
			}
		}
		for _, id := range c.Parts {
			res, err := tx.ExecContext(ctx, `DELETE FROM uploads WHERE upload_id = $1`, id)
			if n, _ := rowsAffected(res, err); err != nil || n != 1 {
				if err != nil {
					return err
				}
				return depot.Errorf(depot.CodeConflict, "partial upload %s was joined by another final upload, or expired", id)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO versions (version_id, storage_key, cohort, size, sha256, class,
			cleanup_scheduled_for_ms, created_ms, uploaded_by, scan) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			v.ID, v.Key, v.Cohort, v.Size, v.SHA256, string(v.Class), msOrNil(v.CleanupScheduledFor), toMS(now), v.UploadedBy, string(v.Scan)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO paths (storage_key, cohort, current_version, deleted_ms, deleted_by, updated_ms)
			VALUES ($1, $2, $3, NULL, '', $4) ON CONFLICT (storage_key) DO UPDATE SET
			current_version = excluded.current_version, deleted_ms = NULL, deleted_by = '', updated_ms = excluded.updated_ms`,
			v.Key, v.Cohort, v.ID, toMS(now))
		return err
	}
}

// current is what a transaction sees of a path before changing it.
type current struct {
	exists  bool   // the path has a row
	visible bool   // it shows a kept version and is not deleted
	id      string // its current version ("" if none)
	sha256  string // of the current version
	class   depot.Class
	deleted bool
}

// PathCheck is what an upload is checked against before its bytes are
// read: whether the path shows a version, its entity tag and its class.
type PathCheck struct {
	Visible bool
	SHA256  string
	Class   depot.Class // "" for a path never written
}

// CheckPath returns the state of key that CommitVersion will check.
func (db *DB) CheckPath(ctx context.Context, key string) (PathCheck, error) {
	cur, err := currentIn(ctx, db.sql, key)
	if err != nil {
		return PathCheck{}, db.wrap(err, "read path")
	}
	return PathCheck{Visible: cur.visible, SHA256: cur.sha256, Class: cur.class}, nil
}

// Check applies an upload's conditions and class to the path's state, as
// CommitVersion does.
func (p PathCheck) Check(c Commit) error {
	cur := current{visible: p.Visible, sha256: p.SHA256, class: p.Class}
	if err := checkConditions(c, cur); err != nil {
		return err
	}
	if cur.class != "" && cur.class != c.Version.Class && !c.MayChangeClass {
		return errClassChange
	}
	return nil
}

var errClassChange = depot.Errorf(depot.CodeForbidden, "only a manager of the cohort may change a file's class")

// currentIn reads the state of key. class is the class of the current
// version, or of the newest kept version when there is none, so a deleted
// path keeps its class for the next upload.
func currentIn(ctx context.Context, tx querier, key string) (current, error) {
	var c current
	var id sql.NullString
	var deleted sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT current_version, deleted_ms FROM paths WHERE storage_key = $1`, key).Scan(&id, &deleted)
	if notFound(err) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	c.exists, c.id, c.deleted = true, id.String, deleted.Valid
	var class string
	if c.id != "" {
		err = tx.QueryRowContext(ctx, `SELECT sha256, class FROM versions WHERE version_id = $1 AND purged_ms IS NULL`, c.id).Scan(&c.sha256, &class)
		switch {
		case err == nil:
			c.visible = !c.deleted
		case notFound(err):
			c.id = ""
		default:
			return c, err
		}
	}
	if class == "" {
		err = tx.QueryRowContext(ctx, `SELECT class FROM versions WHERE storage_key = $1 AND purged_ms IS NULL
			ORDER BY created_ms DESC LIMIT 1`, key).Scan(&class)
		if err != nil && !notFound(err) {
			return c, err
		}
	}
	c.class = depot.Class(class)
	return c, nil
}

// checkConditions applies If-Match and If-None-Match to the path's state.
func checkConditions(c Commit, cur current) error {
	failed := depot.Errorf(depot.CodePrecondition, "the file changed: its condition (If-Match / If-None-Match) does not hold")
	switch {
	case c.IfNoneMatch == "*" && cur.visible:
		return failed
	case c.IfNoneMatch != "" && c.IfNoneMatch != "*" && cur.visible && ETagMatches(c.IfNoneMatch, cur.sha256):
		return failed
	case c.IfMatch == "*" && !cur.visible:
		return failed
	case c.IfMatch != "" && c.IfMatch != "*" && (!cur.visible || !ETagMatches(c.IfMatch, cur.sha256)):
		return failed
	}
	return nil
}

// ETagMatches reports whether an If-Match / If-None-Match header (a list
// of entity tags, weak or strong) names the entity tag of sha256.
func ETagMatches(header, sha256 string) bool {
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/")
		if tag == "*" || strings.Trim(tag, `"`) == sha256 {
			return true
		}
	}
	return false
}

// MarkDeleted hides key behind a delete marker; its versions are kept.
// A path that is not visible is CodeNotFound.
func MarkDeleted(key, by string) Change {
	return func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		cur, err := currentIn(ctx, tx, key)
		if err != nil {
			return err
		}
		if !cur.visible {
			return depot.Errorf(depot.CodeNotFound, "no such file")
		}
		_, err = tx.ExecContext(ctx, `UPDATE paths SET deleted_ms = $1, deleted_by = $2, updated_ms = $1 WHERE storage_key = $3`, toMS(now), by, key)
		return err
	}
}

// Undelete removes the delete marker of key, showing its current version
// again. A path that is not deleted is CodeConflict; one whose current
// version was purged is CodeNotFound.
func Undelete(key string) Change {
	return func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		cur, err := currentIn(ctx, tx, key)
		switch {
		case err != nil:
			return err
		case !cur.exists || cur.id == "":
			return depot.Errorf(depot.CodeNotFound, "no such deleted file")
		case !cur.deleted:
			return depot.Errorf(depot.CodeConflict, "the file is not deleted")
		}
		_, err = tx.ExecContext(ctx, `UPDATE paths SET deleted_ms = NULL, deleted_by = '', updated_ms = $1 WHERE storage_key = $2`, toMS(now), key)
		return err
	}
}

// RestoreVersion makes version id, a kept version of key, its current one
// (and removes a delete marker).
func RestoreVersion(key, id string) Change {
	return func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM versions WHERE version_id = $1 AND storage_key = $2 AND purged_ms IS NULL`,
			id, key).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return depot.Errorf(depot.CodeNotFound, "no such version of this file")
		}
		_, err := tx.ExecContext(ctx, `UPDATE paths SET current_version = $1, deleted_ms = NULL, deleted_by = '', updated_ms = $2
			WHERE storage_key = $3`, id, toMS(now), key)
		return err
	}
}

// ErrHeld is the error of a purge that a retention hold forbids.
var ErrHeld = depot.Errorf(depot.CodeConflict, "a retention hold covers this file; nothing was purged")

// Purge marks versions of key as purged, so that their bytes can be
// removed after the transaction: version id, or every kept version when id
// is "". A hold on the path refuses it (ErrHeld). The current version
// purged leaves the path without one; a path left with no kept version
// goes. The purged versions are stored in *out.
func Purge(key, id string, out *[]Version) Change {
	return func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		held, err := heldIn(ctx, tx, key)
		if err != nil {
			return err
		}
		if held {
			return ErrHeld
		}
		q := `SELECT ` + versionColumns + ` FROM versions v WHERE v.storage_key = $1 AND v.purged_ms IS NULL`
		args := []any{key}
		if id != "" {
			q += ` AND v.version_id = $2`
			args = append(args, id)
		}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		vs, err := collectVersions(rows)
		if err != nil {
			return err
		}
		if len(vs) == 0 {
			return depot.Errorf(depot.CodeNotFound, "no such version")
		}
		for _, v := range vs {
			if _, err := tx.ExecContext(ctx, `UPDATE versions SET purged_ms = $1 WHERE version_id = $2`, toMS(now), v.ID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE paths SET current_version = NULL, updated_ms = $1
			WHERE storage_key = $2 AND current_version IN (SELECT version_id FROM versions WHERE purged_ms IS NOT NULL)`,
			toMS(now), key); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM paths WHERE storage_key = $1
			AND NOT EXISTS (SELECT 1 FROM versions WHERE storage_key = $1 AND purged_ms IS NULL)`, key); err != nil {
			return err
		}
		*out = vs
		return nil
	}
}

func rowsAffected(res sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
