package servicedb

import (
	"context"
	"database/sql"
	"time"

	"depot"
)

// FileRecord is the current state of one stored file. Unlike the audit
// trail, this table is updated and deleted as files change; its history is
// in the audit records.
type FileRecord struct {
	Key                 string // storage key (depot.ValidateKey); the primary key
	Cohort              string
	Size                int64
	SHA256              string // lowercase hex
	Class               depot.Class
	CleanupScheduledFor *time.Time // only for Temporary files
	Created             time.Time
	Updated             time.Time
	LastVerified        *time.Time // last successful integrity check
	UploadedBy          string
}

// FileFilter selects file records. Zero fields do not filter.
type FileFilter struct {
	Cohort    string
	KeyPrefix string      // keys starting with it (bytewise)
	Class     depot.Class // only this class
	// DueBefore selects temporary files whose cleanup is scheduled at or
	// before it. Permanent files are never selected by it.
	DueBefore time.Time
	After     string // keys > After: the cursor for the next page
	Limit     int    // <= 0 means DefaultLimit
}

const fileColumns = `storage_key, cohort, size, sha256, class, cleanup_scheduled_for_ms,
	created_ms, updated_ms, last_verified_ms, uploaded_by`

// PutFile stores rec as the current state of rec.Key, replacing any earlier
// state. An empty Class means Permanent. A zero Updated becomes now; a zero
// Created becomes now for a new key and keeps the stored value for an
// existing one. A key breaking the key policy is CodeInvalidPath; a negative
// size, an unknown class, or a permanent file with a cleanup time is
// CodeInvalid.
func (db *DB) PutFile(ctx context.Context, rec FileRecord) error {
	args, err := db.fileArgs(rec)
	if err != nil {
		return err
	}
	_, err = db.stmts.exec(ctx, upsertFile, args...)
	return db.wrap(err, "put file record")
}

// upsertFile stores a file record; its arguments come from fileArgs.
const upsertFile = `INSERT INTO files (` + fileColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
	ON CONFLICT (storage_key) DO UPDATE SET
		cohort = excluded.cohort, size = excluded.size, sha256 = excluded.sha256,
		class = excluded.class, cleanup_scheduled_for_ms = excluded.cleanup_scheduled_for_ms,
		created_ms = COALESCE(CAST($11 AS BIGINT), files.created_ms),
		updated_ms = excluded.updated_ms, last_verified_ms = excluded.last_verified_ms,
		uploaded_by = excluded.uploaded_by`

// fileArgs validates rec as PutFile documents and returns the arguments of
// upsertFile.
func (db *DB) fileArgs(rec FileRecord) ([]any, error) {
	if err := depot.ValidateKey(rec.Key); err != nil {
		return nil, err
	}
	if rec.Class == "" {
		rec.Class = depot.Permanent
	}
	switch {
	case !rec.Class.Valid():
		return nil, depot.Errorf(depot.CodeInvalid, "unknown file class")
	case rec.Size < 0:
		return nil, depot.Errorf(depot.CodeInvalid, "negative file size")
	case rec.Class == depot.Permanent && rec.CleanupScheduledFor != nil:
		return nil, depot.Errorf(depot.CodeInvalid, "a permanent file cannot have a cleanup time")
	}
	now := db.now()
	var keepCreated any // NULL: keep the stored Created on update
	created := now
	if !rec.Created.IsZero() {
		created = rec.Created
		keepCreated = toMS(rec.Created)
	}
	if rec.Updated.IsZero() {
		rec.Updated = now
	}
	return []any{rec.Key, rec.Cohort, rec.Size, rec.SHA256, string(rec.Class), msOrNil(rec.CleanupScheduledFor),
		toMS(created), toMS(rec.Updated), msOrNil(rec.LastVerified), rec.UploadedBy, keepCreated}, nil
}

// GetFile returns the state of key; CodeNotFound when there is none.
func (db *DB) GetFile(ctx context.Context, key string) (FileRecord, error) {
	rows, err := db.stmts.query(ctx, `SELECT `+fileColumns+` FROM files WHERE storage_key = $1`, key)
	if err != nil {
		return FileRecord{}, db.wrap(err, "get file record")
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return FileRecord{}, db.wrap(err, "get file record")
		}
		return FileRecord{}, depot.Errorf(depot.CodeNotFound, "get file record: not found")
	}
	rec, err := scanFile(rows)
	return rec, db.wrap(err, "get file record")
}

// DeleteFile removes the state of key; CodeNotFound when there is none.
func (db *DB) DeleteFile(ctx context.Context, key string) error {
	res, err := db.sql.ExecContext(ctx, `DELETE FROM files WHERE storage_key = $1`, key)
	return db.affectedOne(res, err, "delete file record")
}

// ListFiles returns the records matching f in key order (bytewise). Page
// with After set to the last Key returned.
func (db *DB) ListFiles(ctx context.Context, f FileFilter) ([]FileRecord, error) {
	var q query
	if f.After != "" {
		q.where("storage_key > $?", f.After)
	}
	if f.Cohort != "" {
		q.where("cohort = $?", f.Cohort)
	}
	if f.KeyPrefix != "" {
		q.where("storage_key >= $?", f.KeyPrefix)
		q.where("substr(storage_key, 1, length(CAST($? AS TEXT))) = $?", f.KeyPrefix)
	}
	if f.Class != "" {
		q.where("class = $?", string(f.Class))
	}
	if !f.DueBefore.IsZero() {
		q.where("class = 'temporary' AND cleanup_scheduled_for_ms IS NOT NULL AND cleanup_scheduled_for_ms <= $?", toMS(f.DueBefore))
	}
	stmt, args := q.build(`SELECT `+fileColumns+` FROM files`, "storage_key", limitOr(f.Limit))
	rows, err := db.sql.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, db.wrap(err, "list file records")
	}
	defer rows.Close()
	var out []FileRecord
	for rows.Next() {
		rec, err := scanFile(rows)
		if err != nil {
			return nil, db.wrap(err, "list file records")
		}
		out = append(out, rec)
	}
	return out, db.wrap(rows.Err(), "list file records")
}

// scanFile reads one row selected with fileColumns.
func scanFile(rows *sql.Rows) (FileRecord, error) {
	var (
		rec                 FileRecord
		class               string
		created, updated    int64
		cleanupAt, verified sql.NullInt64
	)
	err := rows.Scan(&rec.Key, &rec.Cohort, &rec.Size, &rec.SHA256, &class, &cleanupAt,
		&created, &updated, &verified, &rec.UploadedBy)
	if err != nil {
		return FileRecord{}, err
	}
	rec.Class = depot.Class(class)
	rec.CleanupScheduledFor, rec.LastVerified = timeOrNil(cleanupAt), timeOrNil(verified)
	rec.Created, rec.Updated = fromMS(created), fromMS(updated)
	return rec, nil
}
