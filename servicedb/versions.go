package servicedb

import (
	"context"
	"database/sql"
	"time"

	"depot"
)

// Version is one committed version of a path. Versions are immutable but
// for their bookkeeping: the last successful integrity check, and the time
// their bytes were purged (the row stays, for history).
type Version struct {
	ID                  string // also the ID of its stored object
	Key                 string // the path (storage key) it is a version of
	Cohort              string
	Size                int64
	SHA256              string // lowercase hex
	Class               depot.Class
	CleanupScheduledFor *time.Time // temporary versions only
	Created             time.Time
	UploadedBy          string
	LastVerified        *time.Time
	Purged              *time.Time
	// Scan is the malware scan status ("" when scanning was off).
	Scan depot.ScanStatus
}

// Object returns v as the public description of a file version.
func (v Version) Object() depot.Object {
	return depot.Object{
		Key: v.Key, Version: v.ID, Size: v.Size, SHA256: v.SHA256, ModTime: v.Created,
		Class: v.Class, UploadedBy: v.UploadedBy, CleanupScheduledFor: v.CleanupScheduledFor,
		Scan: v.Scan,
	}
}

// Path is a path's row: which version it shows, and its delete marker.
type Path struct {
	Key       string
	Cohort    string
	Current   string     // version ID, "" when no version is current
	Deleted   *time.Time // delete marker: the path is hidden
	DeletedBy string
	Updated   time.Time
}

const versionColumns = `v.version_id, v.storage_key, v.cohort, v.size, v.sha256, v.class,
	v.cleanup_scheduled_for_ms, v.created_ms, v.uploaded_by, v.last_verified_ms, v.purged_ms, v.scan`

const pathColumns = `p.storage_key, p.cohort, p.current_version, p.deleted_ms, p.deleted_by, p.updated_ms`

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

func scanVersion(s scanner) (Version, error) {
	var (
		v                           Version
		class, scan                 string
		created                     int64
		cleanupAt, verified, purged sql.NullInt64
	)
	if err := s.Scan(&v.ID, &v.Key, &v.Cohort, &v.Size, &v.SHA256, &class, &cleanupAt, &created,
		&v.UploadedBy, &verified, &purged, &scan); err != nil {
		return Version{}, err
	}
	v.Class, v.Created, v.Scan = depot.Class(class), fromMS(created), depot.ScanStatus(scan)
	v.CleanupScheduledFor, v.LastVerified, v.Purged = timeOrNil(cleanupAt), timeOrNil(verified), timeOrNil(purged)
	return v, nil
}

func scanPath(s scanner) (Path, error) {
	var (
		p       Path
		current sql.NullString
		deleted sql.NullInt64
		updated int64
	)
	if err := s.Scan(&p.Key, &p.Cohort, &current, &deleted, &p.DeletedBy, &updated); err != nil {
		return Path{}, err
	}
	p.Current, p.Deleted, p.Updated = current.String, timeOrNil(deleted), fromMS(updated)
	return p, nil
}

// selectCurrent reads the version a path shows, if it is visible.
const selectCurrent = `SELECT ` + versionColumns + ` FROM paths p JOIN versions v ON v.version_id = p.current_version
	WHERE p.storage_key = $1 AND p.deleted_ms IS NULL AND v.purged_ms IS NULL`

// Current returns the version key shows now; CodeNotFound when the path
// does not exist, is deleted or has no version left.
func (db *DB) Current(ctx context.Context, key string) (Version, error) {
	v, err := scanVersion(db.stmts.queryRow(ctx, selectCurrent, key))
	if notFound(err) {
		return Version{}, depot.Errorf(depot.CodeNotFound, "no such file")
	}
	return v, db.wrap(err, "read current version")
}

// Version returns version id, purged or not; CodeNotFound when unknown.
func (db *DB) Version(ctx context.Context, id string) (Version, error) {
	v, err := scanVersion(db.stmts.queryRow(ctx, `SELECT `+versionColumns+` FROM versions v WHERE v.version_id = $1`, id))
	if notFound(err) {
		return Version{}, depot.Errorf(depot.CodeNotFound, "no such version")
	}
	return v, db.wrap(err, "read version")
}

// Path returns the row of key; CodeNotFound when the path was never
// written or all its versions were purged.
func (db *DB) Path(ctx context.Context, key string) (Path, error) {
	p, err := scanPath(db.stmts.queryRow(ctx, `SELECT `+pathColumns+` FROM paths p WHERE p.storage_key = $1`, key))
	if notFound(err) {
		return Path{}, depot.Errorf(depot.CodeNotFound, "no such file")
	}
	return p, db.wrap(err, "read path")
}

// History returns the row of key and its versions whose bytes are kept,
// newest first.
func (db *DB) History(ctx context.Context, key string) (Path, []Version, error) {
	p, err := db.Path(ctx, key)
	if err != nil {
		return Path{}, nil, err
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT `+versionColumns+` FROM versions v
		WHERE v.storage_key = $1 AND v.purged_ms IS NULL ORDER BY v.created_ms DESC, v.version_id DESC`, key)
	if err != nil {
		return Path{}, nil, db.wrap(err, "read versions")
	}
	vs, err := collectVersions(rows)
	return p, vs, db.wrap(err, "read versions")
}

// ListCurrent returns the visible files under prefix (a key prefix,
// bytewise) with keys after after, in key order: each path's current
// version.
func (db *DB) ListCurrent(ctx context.Context, prefix, after string, limit int) ([]Version, error) {
	var q query
	q.always("p.deleted_ms IS NULL")
	q.always("v.purged_ms IS NULL")
	if after != "" {
		q.where("p.storage_key > $?", after)
	}
	if prefix != "" {
		q.where("p.storage_key >= $?", prefix)
		q.where("substr(p.storage_key, 1, length(CAST($? AS TEXT))) = $?", prefix)
	}
	stmt, args := q.build(`SELECT `+versionColumns+` FROM paths p JOIN versions v ON v.version_id = p.current_version`,
		"p.storage_key", limitOr(limit))
	rows, err := db.sql.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, db.wrap(err, "list files")
	}
	vs, err := collectVersions(rows)
	return vs, db.wrap(err, "list files")
}

// VersionFilter selects versions whose bytes are kept (not purged). Zero
// fields do not filter.
type VersionFilter struct {
	Cohort string
	// DueBefore selects temporary versions whose cleanup is scheduled at
	// or before it. Permanent versions are never selected by it.
	DueBefore time.Time
	After     string // version IDs > After: the cursor for the next page
	Limit     int    // <= 0 means DefaultLimit
}

// ListVersions returns the kept versions matching f in version ID order.
func (db *DB) ListVersions(ctx context.Context, f VersionFilter) ([]Version, error) {
	var q query
	q.always("v.purged_ms IS NULL")
	if f.After != "" {
		q.where("v.version_id > $?", f.After)
	}
	if f.Cohort != "" {
		q.where("v.cohort = $?", f.Cohort)
	}
	if !f.DueBefore.IsZero() {
		q.where("v.class = 'temporary' AND v.cleanup_scheduled_for_ms IS NOT NULL AND v.cleanup_scheduled_for_ms <= $?", toMS(f.DueBefore))
	}
	stmt, args := q.build(`SELECT `+versionColumns+` FROM versions v`, "v.version_id", limitOr(f.Limit))
	rows, err := db.sql.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, db.wrap(err, "list versions")
	}
	vs, err := collectVersions(rows)
	return vs, db.wrap(err, "list versions")
}

// DeletedPaths returns paths whose delete marker is older than before, with
// keys after after, in key order.
func (db *DB) DeletedPaths(ctx context.Context, before time.Time, after string, limit int) ([]Path, error) {
	var q query
	q.where("p.deleted_ms IS NOT NULL AND p.deleted_ms <= $?", toMS(before))
	q.where("p.storage_key > $?", after)
	stmt, args := q.build(`SELECT `+pathColumns+` FROM paths p`, "p.storage_key", limitOr(limit))
	rows, err := db.sql.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, db.wrap(err, "list deleted paths")
	}
	defer rows.Close()
	var out []Path
	for rows.Next() {
		p, err := scanPath(rows)
		if err != nil {
			return nil, db.wrap(err, "list deleted paths")
		}
		out = append(out, p)
	}
	return out, db.wrap(rows.Err(), "list deleted paths")
}

// Referenced reports whether the object id is one that must be kept: the
// bytes of a version not purged, or of an upload session not yet ended.
func (db *DB) Referenced(ctx context.Context, id string) (bool, error) {
	var n int
	err := db.stmts.queryRow(ctx, `SELECT (SELECT COUNT(*) FROM versions WHERE version_id = $1 AND purged_ms IS NULL)
		+ (SELECT COUNT(*) FROM uploads WHERE upload_id = $1)`, id).Scan(&n)
	if err != nil {
		return false, db.wrap(err, "check object reference")
	}
	return n > 0, nil
}

// SetVerified records a successful integrity check of version id.
func (db *DB) SetVerified(ctx context.Context, id string, t time.Time) error {
	res, err := db.sql.ExecContext(ctx, `UPDATE versions SET last_verified_ms = $1 WHERE version_id = $2`, toMS(t), id)
	return db.affectedOne(res, err, "record verification")
}

func collectVersions(rows *sql.Rows) ([]Version, error) {
	defer rows.Close()
	var out []Version
	for rows.Next() {
		v, err := scanVersion(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// Usage is the storage held by one cohort's kept versions, split by what
// they are: the current versions of visible files, the older versions of
// visible files, and the versions of deleted files (kept until their
// retention ends).
type Usage struct {
	Cohort                        string
	CurrentFiles, CurrentBytes    int64
	OlderVersions, OlderBytes     int64
	DeletedVersions, DeletedBytes int64
}

// Usages returns the Usage of every cohort that holds kept versions.
func (db *DB) Usages(ctx context.Context) ([]Usage, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT v.cohort,
		CASE WHEN p.deleted_ms IS NOT NULL THEN 2 WHEN p.current_version = v.version_id THEN 0 ELSE 1 END AS kind,
		COUNT(*), COALESCE(SUM(v.size), 0)
		FROM versions v LEFT JOIN paths p ON p.storage_key = v.storage_key
		WHERE v.purged_ms IS NULL GROUP BY v.cohort, kind ORDER BY v.cohort`)
	if err != nil {
		return nil, db.wrap(err, "sum storage use")
	}
	defer rows.Close()
	var out []Usage
	for rows.Next() {
		var (
			cohort      string
			kind        int
			count, size int64
		)
		if err := rows.Scan(&cohort, &kind, &count, &size); err != nil {
			return nil, db.wrap(err, "sum storage use")
		}
		if len(out) == 0 || out[len(out)-1].Cohort != cohort {
			out = append(out, Usage{Cohort: cohort})
		}
		u := &out[len(out)-1]
		switch kind {
		case 0:
			u.CurrentFiles, u.CurrentBytes = count, size
		case 1:
			u.OlderVersions, u.OlderBytes = count, size
		default:
			u.DeletedVersions, u.DeletedBytes = count, size
		}
	}
	return out, db.wrap(rows.Err(), "sum storage use")
}

// UploadUsage returns, per cohort, the open upload sessions and the bytes
// they hold so far.
func (db *DB) UploadUsage(ctx context.Context) (map[string][2]int64, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT cohort, COUNT(*), COALESCE(SUM(offset_bytes), 0) FROM uploads GROUP BY cohort`)
	if err != nil {
		return nil, db.wrap(err, "sum upload use")
	}
	defer rows.Close()
	out := map[string][2]int64{}
	for rows.Next() {
		var (
			cohort string
			n, b   int64
		)
		if err := rows.Scan(&cohort, &n, &b); err != nil {
			return nil, db.wrap(err, "sum upload use")
		}
		out[cohort] = [2]int64{n, b}
	}
	return out, db.wrap(rows.Err(), "sum upload use")
}
