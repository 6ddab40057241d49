package servicedb

import (
	"context"
	"database/sql"
	"time"

	"depot"
)

// This file holds the state of the maintenance jobs (package maintenance):
// their run history, stored reports, resumable cursors and per-file cleanup
// failure counts. The tables are created by migration 00002_maintenance.

// Job run outcomes.
const (
	RunRunning = "running"
	RunSuccess = "success"
	RunFailure = "failure"
	// RunInterrupted is a run cut short by a shutdown: not a failure.
	RunInterrupted = "interrupted"
	// RunIntegrityFailed is a verification pass that completed and found
	// damaged or missing files (migration 00004).
	RunIntegrityFailed = "integrity_failed"
)

// DryRunTriggerSuffix ends the trigger of a run that changed nothing
// (cleanup --dry-run: "cli-dry-run", "request-dry-run").
const DryRunTriggerSuffix = "-dry-run"

// JobRun is one run of a maintenance job.
type JobRun struct {
	ID        int64
	Job       string // "cleanup", "verify", "report"
	Trigger   string // "schedule" or "cli"
	Node      string
	Started   time.Time
	Finished  *time.Time
	Outcome   string // RunRunning, RunSuccess, RunFailure, RunInterrupted or RunIntegrityFailed
	ErrorCode string
	Summary   string // JSON counts; never file names
}

// StartJobRun records that job started and returns the run's ID.
func (db *DB) StartJobRun(ctx context.Context, job, trigger, node string) (int64, error) {
	var id int64
	err := db.sql.QueryRowContext(ctx, `INSERT INTO maint_runs (job, trigger, node, started_ms, outcome)
		VALUES ($1, $2, $3, $4, 'running') RETURNING id`, job, trigger, node, toMS(db.now())).Scan(&id)
	return id, db.wrap(err, "start job run")
}

// FinishJobRun records the end of run id.
func (db *DB) FinishJobRun(ctx context.Context, id int64, outcome, errorCode, summary string) error {
	if summary == "" {
		summary = "{}"
	}
	res, err := db.sql.ExecContext(ctx, `UPDATE maint_runs SET finished_ms = $1, outcome = $2,
		error_code = $3, summary = $4 WHERE id = $5`, toMS(db.now()), outcome, errorCode, summary, id)
	return db.affectedOne(res, err, "finish job run")
}

const runColumns = `id, job, trigger, node, started_ms, finished_ms, outcome, error_code, summary`

// JobRuns returns the most recent runs, newest first; job "" means all
// jobs. limit <= 0 means DefaultLimit.
func (db *DB) JobRuns(ctx context.Context, job string, limit int) ([]JobRun, error) {
	var q query
	if job != "" {
		q.where("job = $?", job)
	}
	stmt, args := q.build(`SELECT `+runColumns+` FROM maint_runs`, "id DESC", limitOr(limit))
	rows, err := db.sql.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, db.wrap(err, "list job runs")
	}
	defer rows.Close()
	var out []JobRun
	for rows.Next() {
		var (
			r        JobRun
			started  int64
			finished sql.NullInt64
		)
		if err := rows.Scan(&r.ID, &r.Job, &r.Trigger, &r.Node, &started, &finished, &r.Outcome, &r.ErrorCode, &r.Summary); err != nil {
			return nil, db.wrap(err, "list job runs")
		}
		r.Started, r.Finished = fromMS(started), timeOrNil(finished)
		out = append(out, r)
	}
	return out, db.wrap(rows.Err(), "list job runs")
}

// LastJobSuccess returns when job last finished a complete run, or nil: a
// success, or a verification pass that found damage (RunIntegrityFailed,
// which alerts of its own). A dry run changed nothing and does not count.
func (db *DB) LastJobSuccess(ctx context.Context, job string) (*time.Time, error) {
	var ms sql.NullInt64
	err := db.sql.QueryRowContext(ctx, `SELECT MAX(finished_ms) FROM maint_runs
		WHERE job = $1 AND outcome IN ('success', 'integrity_failed') AND trigger NOT LIKE $2`,
		job, "%"+DryRunTriggerSuffix).Scan(&ms)
	if err != nil {
		return nil, db.wrap(err, "last job success")
	}
	return timeOrNil(ms), nil
}

// JobFailuresSince counts failed runs of each job since t.
func (db *DB) JobFailuresSince(ctx context.Context, t time.Time) (map[string]int, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT job, COUNT(*) FROM maint_runs
		WHERE outcome = 'failure' AND started_ms >= $1 GROUP BY job`, toMS(t))
	if err != nil {
		return nil, db.wrap(err, "count job failures")
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			job string
			n   int
		)
		if err := rows.Scan(&job, &n); err != nil {
			return nil, db.wrap(err, "count job failures")
		}
		out[job] = n
	}
	return out, db.wrap(rows.Err(), "count job failures")
}

// StoredReport is a kept storage report; Body is its JSON form.
type StoredReport struct {
	ID      int64
	Created time.Time
	Body    string
}

// SaveReport keeps a report and returns its ID.
func (db *DB) SaveReport(ctx context.Context, created time.Time, body string) (int64, error) {
	var id int64
	err := db.sql.QueryRowContext(ctx, `INSERT INTO maint_reports (created_ms, body) VALUES ($1, $2) RETURNING id`,
		toMS(created), body).Scan(&id)
	return id, db.wrap(err, "save report")
}

// Reports lists kept reports, newest first, without their bodies when
// withBody is false.
func (db *DB) Reports(ctx context.Context, limit int, withBody bool) ([]StoredReport, error) {
	col := "''"
	if withBody {
		col = "body"
	}
	rows, err := db.sql.QueryContext(ctx, `SELECT id, created_ms, `+col+` FROM maint_reports
		ORDER BY id DESC LIMIT $1`, limitOr(limit))
	if err != nil {
		return nil, db.wrap(err, "list reports")
	}
	defer rows.Close()
	var out []StoredReport
	for rows.Next() {
		var (
			r  StoredReport
			ms int64
		)
		if err := rows.Scan(&r.ID, &ms, &r.Body); err != nil {
			return nil, db.wrap(err, "list reports")
		}
		r.Created = fromMS(ms)
		out = append(out, r)
	}
	return out, db.wrap(rows.Err(), "list reports")
}

// GetReport returns report id; CodeNotFound when there is none.
func (db *DB) GetReport(ctx context.Context, id int64) (StoredReport, error) {
	var (
		r  StoredReport
		ms int64
	)
	err := db.sql.QueryRowContext(ctx, `SELECT id, created_ms, body FROM maint_reports WHERE id = $1`, id).
		Scan(&r.ID, &ms, &r.Body)
	if err != nil {
		return StoredReport{}, db.wrap(err, "get report")
	}
	r.Created = fromMS(ms)
	return r, nil
}

// Cursor returns the value of a resumable job cursor, "" when unset.
func (db *DB) Cursor(ctx context.Context, name string) (string, error) {
	var v string
	err := db.sql.QueryRowContext(ctx, `SELECT value FROM maint_cursors WHERE name = $1`, name).Scan(&v)
	if notFound(err) {
		return "", nil
	}
	return v, db.wrap(err, "get cursor")
}

// SetCursor stores a resumable job cursor; "" clears it.
func (db *DB) SetCursor(ctx context.Context, name, value string) error {
	if value == "" {
		_, err := db.sql.ExecContext(ctx, `DELETE FROM maint_cursors WHERE name = $1`, name)
		return db.wrap(err, "clear cursor")
	}
	_, err := db.sql.ExecContext(ctx, `INSERT INTO maint_cursors (name, value, updated_ms) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms`,
		name, value, toMS(db.now()))
	return db.wrap(err, "set cursor")
}

// CleanupFailure counts the failed attempts to remove the bytes of one
// version.
type CleanupFailure struct {
	Version  string
	Failures int
	Last     time.Time
	LastCode string
	Alerted  bool
}

// AddCleanupFailure counts one more failed attempt to remove version id's
// bytes and returns the new state.
func (db *DB) AddCleanupFailure(ctx context.Context, id string, code depot.Code) (CleanupFailure, error) {
	_, err := db.sql.ExecContext(ctx, `INSERT INTO maint_cleanup_failures (version_id, failures, last_ms, last_code)
		VALUES ($1, 1, $2, $3) ON CONFLICT (version_id) DO UPDATE SET
		failures = maint_cleanup_failures.failures + 1, last_ms = excluded.last_ms, last_code = excluded.last_code`,
		id, toMS(db.now()), string(code))
	if err != nil {
		return CleanupFailure{}, db.wrap(err, "count cleanup failure")
	}
	return db.getCleanupFailure(ctx, id)
}

func (db *DB) getCleanupFailure(ctx context.Context, id string) (CleanupFailure, error) {
	var (
		f       CleanupFailure
		ms      int64
		alerted int
	)
	err := db.sql.QueryRowContext(ctx, `SELECT version_id, failures, last_ms, last_code, alerted
		FROM maint_cleanup_failures WHERE version_id = $1`, id).Scan(&f.Version, &f.Failures, &ms, &f.LastCode, &alerted)
	if err != nil {
		return CleanupFailure{}, db.wrap(err, "get cleanup failure")
	}
	f.Last, f.Alerted = fromMS(ms), alerted == 1
	return f, nil
}

// MarkCleanupAlerted records that an alert was raised for id's failures.
func (db *DB) MarkCleanupAlerted(ctx context.Context, id string) error {
	_, err := db.sql.ExecContext(ctx, `UPDATE maint_cleanup_failures SET alerted = 1 WHERE version_id = $1`, id)
	return db.wrap(err, "mark cleanup alerted")
}

// ClearCleanupFailures forgets the failures of id (after a success).
func (db *DB) ClearCleanupFailures(ctx context.Context, id string) error {
	_, err := db.sql.ExecContext(ctx, `DELETE FROM maint_cleanup_failures WHERE version_id = $1`, id)
	return db.wrap(err, "clear cleanup failures")
}

// CleanupFailures lists the versions whose removal is currently failing.
func (db *DB) CleanupFailures(ctx context.Context) ([]CleanupFailure, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT version_id, failures, last_ms, last_code, alerted
		FROM maint_cleanup_failures ORDER BY version_id`)
	if err != nil {
		return nil, db.wrap(err, "list cleanup failures")
	}
	defer rows.Close()
	var out []CleanupFailure
	for rows.Next() {
		var (
			f       CleanupFailure
			ms      int64
			alerted int
		)
		if err := rows.Scan(&f.Version, &f.Failures, &ms, &f.LastCode, &alerted); err != nil {
			return nil, db.wrap(err, "list cleanup failures")
		}
		f.Last, f.Alerted = fromMS(ms), alerted == 1
		out = append(out, f)
	}
	return out, db.wrap(rows.Err(), "list cleanup failures")
}

// CountActions counts audit records of action per cohort since t.
func (db *DB) CountActions(ctx context.Context, action depot.Action, since time.Time) (map[string]int, error) {
	rows, err := db.sql.QueryContext(ctx, `SELECT cohort, COUNT(*) FROM audit_events
		WHERE action = $1 AND time_ms >= $2 GROUP BY cohort`, string(action), toMS(since))
	if err != nil {
		return nil, db.wrap(err, "count audit actions")
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var (
			c string
			n int
		)
		if err := rows.Scan(&c, &n); err != nil {
			return nil, db.wrap(err, "count audit actions")
		}
		out[c] = n
	}
	return out, db.wrap(rows.Err(), "count audit actions")
}
