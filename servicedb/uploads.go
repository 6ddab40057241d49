package servicedb

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"depot"
	"depot/storage"
)

// The uploads table holds the open upload sessions (storage.Sessions): a
// session's row goes when it is committed (in the commit's transaction),
// aborted or expired.

var _ storage.Sessions = (*DB)(nil)

const uploadColumns = `upload_id, storage_key, owner, class, declared_size, declared_sha256, resumable,
	offset_bytes, hash_state, driver_state, last_offset, last_length, last_crc32c, metadata, created_ms, updated_ms, lazy`

// CreateSession stores a new upload session.
func (db *DB) CreateSession(ctx context.Context, s storage.Session) error {
	meta, err := MetadataJSON(s.Meta)
	if err != nil {
		return depot.WrapError(depot.CodeInvalid, "upload metadata", err)
	}
	cohort, _, _ := strings.Cut(s.Key, "/")
	_, err = db.stmts.exec(ctx, `INSERT INTO uploads (upload_id, storage_key, cohort, owner, class, declared_size,
		declared_sha256, resumable, offset_bytes, hash_state, driver_state, metadata, created_ms, updated_ms)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		s.ID, s.Key, cohort, s.Owner, string(s.Class), s.DeclaredSize, s.SHA256, boolInt(s.Resumable),
		s.Offset, s.HashState, s.DriverState, meta, toMS(s.Created), toMS(s.Updated))
	return db.wrap(err, "create upload session")
}

// Session returns upload session id; CodeNotFound when there is none.
func (db *DB) Session(ctx context.Context, id string) (storage.Session, error) {
	s, err := scanSession(db.stmts.queryRow(ctx, `SELECT `+uploadColumns+` FROM uploads WHERE upload_id = $1`, id))
	if notFound(err) {
		return storage.Session{}, depot.Errorf(depot.CodeNotFound, "no such upload")
	}
	return s, db.wrap(err, "read upload session")
}

// SaveProgress records a chunk appended to session id; a lazy one (p.Lazy,
// not p.Durable) without waiting for the disk (lazy.go).
func (db *DB) SaveProgress(ctx context.Context, id string, p storage.Progress) error {
	const update = `UPDATE uploads SET offset_bytes = $1, hash_state = $2, driver_state = $3,
		last_offset = $4, last_length = $5, last_crc32c = $6, updated_ms = $7, lazy = $8 WHERE upload_id = $9`
	exec := db.stmts.exec
	if p.Lazy && !p.Durable {
		exec = db.execLazy
	}
	res, err := exec(ctx, update,
		p.Offset, p.HashState, p.DriverState, p.Last.Offset, p.Last.Length, int64(p.Last.CRC32C), toMS(p.Updated), boolInt(p.Lazy), id)
	if n, err := rowsAffected(res, err); err != nil || n != 1 {
		if err != nil {
			return db.wrap(err, "save upload progress")
		}
		return depot.Errorf(depot.CodeNotFound, "no such upload")
	}
	return nil
}

// DeleteSession removes upload session id.
func (db *DB) DeleteSession(ctx context.Context, id string) error {
	_, err := db.stmts.exec(ctx, `DELETE FROM uploads WHERE upload_id = $1`, id)
	return db.wrap(err, "delete upload session")
}

// LockSession is SessionLock on the session's ID.
func (db *DB) LockSession(ctx context.Context, id string) (func(), error) {
	return db.SessionLock(ctx, id)
}

// OpenUploads counts the open upload sessions of owner.
func (db *DB) OpenUploads(ctx context.Context, owner string) (int, error) {
	var n int
	err := db.stmts.queryRow(ctx, `SELECT COUNT(*) FROM uploads WHERE owner = $1`, owner).Scan(&n)
	return n, db.wrap(err, "count open uploads")
}

// UploadFilter selects upload sessions. Zero fields do not filter.
type UploadFilter struct {
	IdleBefore time.Time // last activity before it
	Cohort     string
	After      string // upload IDs > After: the cursor for the next page
	Limit      int    // <= 0 means DefaultLimit
}

// Uploads returns the open upload sessions matching f in ID order.
func (db *DB) Uploads(ctx context.Context, f UploadFilter) ([]storage.Session, error) {
	var q query
	if f.After != "" {
		q.where("upload_id > $?", f.After)
	}
	if !f.IdleBefore.IsZero() {
		q.where("updated_ms < $?", toMS(f.IdleBefore))
	}
	if f.Cohort != "" {
		q.where("cohort = $?", f.Cohort)
	}
	stmt, args := q.build(`SELECT `+uploadColumns+` FROM uploads`, "upload_id", limitOr(f.Limit))
	rows, err := db.sql.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, db.wrap(err, "list uploads")
	}
	defer rows.Close()
	var out []storage.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, db.wrap(err, "list uploads")
		}
		out = append(out, s)
	}
	return out, db.wrap(rows.Err(), "list uploads")
}

func scanSession(sc scanner) (storage.Session, error) {
	var (
		s                 storage.Session
		class, meta       string
		resumable, lazy   int
		crc               int64
		created, updated  int64
		hashState, driver []byte
	)
	err := sc.Scan(&s.ID, &s.Key, &s.Owner, &class, &s.DeclaredSize, &s.SHA256, &resumable, &s.Offset,
		&hashState, &driver, &s.Last.Offset, &s.Last.Length, &crc, &meta, &created, &updated, &lazy)
	if err != nil {
		return storage.Session{}, err
	}
	s.Class, s.Resumable, s.Last.CRC32C, s.Lazy = depot.Class(class), resumable == 1, uint32(crc), lazy == 1
	s.Created, s.Updated = fromMS(created), fromMS(updated)
	if len(hashState) > 0 {
		s.HashState = hashState
	}
	if len(driver) > 0 {
		s.DriverState = driver
	}
	if meta != "" && meta != "{}" {
		if err := json.Unmarshal([]byte(meta), &s.Meta); err != nil {
			return storage.Session{}, err
		}
	}
	return s, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
