package servicedb

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"depot"
)

// Hold is a retention (legal or study) hold: while it is in force, no
// version of a path it covers is purged, by anyone or any job.
type Hold struct {
	ID     int64
	Cohort string
	// Path is what the hold covers within the cohort: "" the whole cohort,
	// a key ("c1/a.csv"), or a folder ending in "/" ("c1/2026/").
	Path       string
	Reason     string
	CreatedBy  string
	Created    time.Time
	Released   *time.Time
	ReleasedBy string
}

// Covers reports whether h covers key.
func (h Hold) Covers(key string) bool {
	if h.Released != nil || !strings.HasPrefix(key, h.Cohort+"/") {
		return false
	}
	return h.Path == "" || h.Path == key || (strings.HasSuffix(h.Path, "/") && strings.HasPrefix(key, h.Path))
}

const holdColumns = `id, cohort, path_prefix, reason, created_by, created_ms, released_ms, released_by`

func scanHold(s scanner) (Hold, error) {
	var (
		h        Hold
		created  int64
		released sql.NullInt64
	)
	if err := s.Scan(&h.ID, &h.Cohort, &h.Path, &h.Reason, &h.CreatedBy, &created, &released, &h.ReleasedBy); err != nil {
		return Hold{}, err
	}
	h.Created, h.Released = fromMS(created), timeOrNil(released)
	return h, nil
}

// PlaceHold records h (Cohort, Path, Reason, CreatedBy) and sets its ID.
func PlaceHold(h *Hold) Change {
	return func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		h.Created = now
		return tx.QueryRowContext(ctx, `INSERT INTO holds (cohort, path_prefix, reason, created_by, created_ms)
			VALUES ($1, $2, $3, $4, $5) RETURNING id`, h.Cohort, h.Path, h.Reason, h.CreatedBy, toMS(now)).Scan(&h.ID)
	}
}

// ReleaseHold ends hold id of cohort; one already released or unknown is
// CodeNotFound.
func ReleaseHold(cohort string, id int64, by string) Change {
	return func(ctx context.Context, tx *sql.Tx, now time.Time) error {
		res, err := tx.ExecContext(ctx, `UPDATE holds SET released_ms = $1, released_by = $2
			WHERE id = $3 AND cohort = $4 AND released_ms IS NULL`, toMS(now), by, id, cohort)
		if n, err := rowsAffected(res, err); err != nil || n != 1 {
			if err != nil {
				return err
			}
			return depot.Errorf(depot.CodeNotFound, "no such hold in force")
		}
		return nil
	}
}

// Holds returns the holds of cohort ("" every cohort), those in force only
// unless all.
func (db *DB) Holds(ctx context.Context, cohort string, all bool) ([]Hold, error) {
	var q query
	if cohort != "" {
		q.where("cohort = $?", cohort)
	}
	if !all {
		q.always("released_ms IS NULL")
	}
	stmt, args := q.build(`SELECT `+holdColumns+` FROM holds`, "id", 100000)
	rows, err := db.sql.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, db.wrap(err, "list holds")
	}
	defer rows.Close()
	var out []Hold
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return nil, db.wrap(err, "list holds")
		}
		out = append(out, h)
	}
	return out, db.wrap(rows.Err(), "list holds")
}

// Held reports whether a hold in force covers key.
func (db *DB) Held(ctx context.Context, key string) (bool, error) {
	cohort, _, _ := strings.Cut(key, "/")
	holds, err := db.Holds(ctx, cohort, false)
	if err != nil {
		return false, err
	}
	for _, h := range holds {
		if h.Covers(key) {
			return true, nil
		}
	}
	return false, nil
}

// heldIn is Held within tx.
func heldIn(ctx context.Context, tx *sql.Tx, key string) (bool, error) {
	cohort, _, _ := strings.Cut(key, "/")
	rows, err := tx.QueryContext(ctx, `SELECT `+holdColumns+` FROM holds WHERE cohort = $1 AND released_ms IS NULL`, cohort)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	for rows.Next() {
		h, err := scanHold(rows)
		if err != nil {
			return false, err
		}
		if h.Covers(key) {
			return true, nil
		}
	}
	return false, rows.Err()
}
