package servicedb

import (
	"context"
	"database/sql"
	"time"

	"depot"
)

// Unscanned returns up to limit kept (not purged) versions committed
// unscanned, with IDs after after, in ID order: the work of a rescan.
func (db *DB) Unscanned(ctx context.Context, after string, limit int) ([]Version, error) {
	var q query
	q.always("v.scan = 'unscanned'")
	q.always("v.purged_ms IS NULL")
	q.where("v.version_id > $?", after)
	stmt, args := q.build(`SELECT `+versionColumns+` FROM versions v`, "v.version_id", limitOr(limit))
	rows, err := db.sql.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, db.wrap(err, "list unscanned versions")
	}
	vs, err := collectVersions(rows)
	return vs, db.wrap(err, "list unscanned versions")
}

// SetScan records the verdict of a rescan of version id (clean or
// infected), in the transaction of its file.scanned record. A version that
// is no longer unscanned (another rescan came first) or was purged is
// CodeConflict: the record is not written either.
func SetScan(id string, status depot.ScanStatus) Change {
	return func(ctx context.Context, tx *sql.Tx, _ time.Time) error {
		res, err := tx.ExecContext(ctx, `UPDATE versions SET scan = $1
			WHERE version_id = $2 AND scan = 'unscanned' AND purged_ms IS NULL`, string(status), id)
		n, err := rowsAffected(res, err)
		if err != nil {
			return err
		}
		if n != 1 {
			return depot.Errorf(depot.CodeConflict, "the version was rescanned or purged meanwhile")
		}
		return nil
	}
}
