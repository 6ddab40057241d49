package servicedb

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"time"

	"depot"
)

// This file holds what an online backup (package backup) needs of the
// database: a lease that keeps stored objects from being removed while the
// backup copies them, and a read of the versions and the audit head from
// the same point in time as the database snapshot.
//
// The lease is race-free without locks because it is checked when an
// object is about to be removed, after the transaction that purged its
// version committed: if the check sees no lease, the lease (and so the
// backup's snapshot, taken after it) commits after the purge, and the
// snapshot does not list the version.

// TakeBackupLease records a backup lease held by holder until now+ttl and
// returns its ID. It must be committed before the backup's snapshot is
// taken.
func (db *DB) TakeBackupLease(ctx context.Context, holder string, ttl time.Duration) (int64, error) {
	now := db.now()
	var id int64
	err := db.sql.QueryRowContext(ctx, `INSERT INTO backup_leases (holder, started_ms, expires_ms)
		VALUES ($1, $2, $3) RETURNING id`, holder, toMS(now), toMS(now.Add(ttl))).Scan(&id)
	return id, db.wrap(err, "take backup lease")
}

// RenewBackupLease extends lease id to now+ttl. A lease that has ended
// (expired, or removed) is CodeNotFound: objects may have been removed
// since, and the backup must fail.
func (db *DB) RenewBackupLease(ctx context.Context, id int64, ttl time.Duration) error {
	now := db.now()
	res, err := db.sql.ExecContext(ctx, `UPDATE backup_leases SET expires_ms = $1 WHERE id = $2 AND expires_ms > $3`,
		toMS(now.Add(ttl)), id, toMS(now))
	if n, err := rowsAffected(res, err); err != nil || n != 1 {
		if err != nil {
			return db.wrap(err, "renew backup lease")
		}
		return depot.Errorf(depot.CodeNotFound, "the backup lease ended; stored objects may have been removed since")
	}
	return nil
}

// ReleaseBackupLease ends lease id; a missing one is not an error.
func (db *DB) ReleaseBackupLease(ctx context.Context, id int64) error {
	_, err := db.sql.ExecContext(ctx, `DELETE FROM backup_leases WHERE id = $1`, id)
	return db.wrap(err, "release backup lease")
}

// ClearBackupLeases removes every lease: a restored database holds the
// leases of the backup that made its snapshot, whose holders are gone.
func (db *DB) ClearBackupLeases(ctx context.Context) error {
	_, err := db.sql.ExecContext(ctx, `DELETE FROM backup_leases`)
	return db.wrap(err, "clear backup leases")
}

// BackupRunning reports whether a backup lease is in force: while one is,
// no stored object may be removed (storage.Options.DeferDelete).
func (db *DB) BackupRunning(ctx context.Context) (bool, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, `SELECT COUNT(*) FROM backup_leases WHERE expires_ms > $1`, toMS(db.now())).Scan(&n)
	if err != nil {
		return false, db.wrap(err, "read backup leases")
	}
	return n > 0, nil
}

// queryer is *sql.DB, *sql.Tx or *sql.Conn.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// SnapshotReader reads the state a backup records in its manifest — the
// audit head and the kept versions — from one point in time: a snapshot
// file opened as a database (SQLite), or a repeatable-read transaction
// whose snapshot pg_dump shares (PostgreSQL, ExportSnapshot).
type SnapshotReader struct{ q queryer }

// Reader reads db as it is now (for a snapshot file opened as a database).
func (db *DB) Reader() SnapshotReader { return SnapshotReader{q: db.sql} }

// Head returns the sequence number and hash of the last audit record
// (0 and GenesisHash for an empty trail).
func (r SnapshotReader) Head(ctx context.Context) (int64, string, error) {
	var seq int64
	var hash string
	err := r.q.QueryRowContext(ctx, selectChainHead).Scan(&seq, &hash)
	if notFound(err) {
		return 0, GenesisHash, nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("read audit head: %w", err)
	}
	return seq, hash, nil
}

// Versions returns up to limit kept (not purged) versions with IDs after
// after, in ID order.
func (r SnapshotReader) Versions(ctx context.Context, after string, limit int) ([]Version, error) {
	rows, err := r.q.QueryContext(ctx, `SELECT `+versionColumns+` FROM versions v
		WHERE v.purged_ms IS NULL AND v.version_id > $1 ORDER BY v.version_id LIMIT $2`, after, limitOr(limit))
	if err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	vs, err := collectVersions(rows)
	if err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	return vs, nil
}

// ExportSnapshot runs fn inside a read-only repeatable-read transaction of
// PostgreSQL whose snapshot is exported: fn gets its name (for
// pg_dump --snapshot) and a reader of the same snapshot. The transaction
// stays open until fn returns, as pg_dump needs. SQLite has no exported
// snapshots: it is an error there.
func (db *DB) ExportSnapshot(ctx context.Context, fn func(ctx context.Context, name string, r SnapshotReader) error) error {
	if db.d.name != EnginePostgres {
		return depot.Errorf(depot.CodeInvalid, "exported snapshots are a PostgreSQL feature")
	}
	tx, err := db.sql.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return db.wrap(err, "begin snapshot")
	}
	defer tx.Rollback() //nolint:errcheck // read-only: nothing to keep
	var name string
	if err := tx.QueryRowContext(ctx, `SELECT pg_export_snapshot()`).Scan(&name); err != nil {
		return db.wrap(err, "export snapshot")
	}
	return fn(ctx, name, SnapshotReader{q: tx})
}

// OpenSnapshotFile opens a SQLite snapshot file (made with VACUUM INTO)
// read-only and immutable — nothing is written to it or beside it — and
// returns a reader of it and the function that closes it.
func OpenSnapshotFile(ctx context.Context, path string) (SnapshotReader, func() error, error) {
	u := url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro&immutable=1"}
	sqldb, err := sql.Open("sqlite", u.String())
	if err != nil {
		return SnapshotReader{}, nil, fmt.Errorf("open the snapshot: %w", err)
	}
	sqldb.SetMaxOpenConns(1)
	if err := sqldb.PingContext(ctx); err != nil {
		sqldb.Close()
		return SnapshotReader{}, nil, fmt.Errorf("open the snapshot: %w", err)
	}
	return SnapshotReader{q: sqldb}, sqldb.Close, nil
}

// HasAuditTrail reports whether the database has an audit table (a
// database that was never migrated has none).
func (db *DB) HasAuditTrail(ctx context.Context) (bool, error) {
	q := `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'`
	if db.d.name == EnginePostgres {
		q = `SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = 'audit_events'`
	}
	var n int
	if err := db.sql.QueryRowContext(ctx, q).Scan(&n); err != nil {
		return false, db.wrap(err, "look for the audit table")
	}
	return n > 0, nil
}
