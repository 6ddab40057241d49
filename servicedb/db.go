// Package servicedb is the services tier's one database. Its tables, and
// the files that own them, by concern:
//
//   - the audit trail (audit_*.go): append-only, hash-chained records of
//     every operation, written in batches, with their canonical encoding
//     (metadata included), the chain check, and the Merkle tree over the
//     records that signed checkpoints and proofs rest on;
//   - accounts (accounts*.go): users, cohorts, grants and access tokens
//     (stored as hashes), and the principal they resolve to;
//   - file state (files.go): what is stored under each path;
//   - maintenance (jobs.go): job runs, stored reports, cursors and
//     cleanup failures of the maintenance jobs;
//   - locks (locks.go): advisory locks that serialise work on one upload
//     session across services instances (PostgreSQL).
//
// River's job queue (river_* tables) lives in the same database but is
// River's own.
//
// One package serves two engines: SQLite (modernc.org/sqlite, pure Go, the
// default) and PostgreSQL (pgx). The few real differences between them live
// in a small dialect table (dialect.go); every query is otherwise shared and
// uses $N placeholders, which both drivers accept. Times are stored as
// integer unix milliseconds (UTC) in both engines.
//
// Every method takes a context first. Errors are *depot.Error values (wrapping
// the driver error for logs): CodeNotFound for a missing row, CodeConflict for
// a duplicate, CodeInvalid for a value the schema refuses, CodeUnavailable
// when the database cannot be reached or cannot write, CodeInternal otherwise.
package servicedb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"depot"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver
)

// Engine names returned by DB.Engine.
const (
	EngineSQLite   = "sqlite"
	EnginePostgres = "postgres"
)

// sqlitePragmas are applied by the modernc driver to every new connection.
// _txlock=immediate makes every read-write transaction start with BEGIN
// IMMEDIATE, which takes the database's write lock up front: appends are
// serialised across processes, and busy_timeout makes them wait for it.
const sqlitePragmas = "_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
	"&_pragma=foreign_keys(1)&_pragma=synchronous(FULL)&_txlock=immediate"

// DB is the audit, accounts and file-state database. It is safe for
// concurrent use; several DB values (in one or many processes) may share one
// database, and the audit chain stays single and linear.
type DB struct {
	// Now returns the current time. Tests may replace it before the DB is
	// used; nil means time.Now. Every stored time is truncated to the
	// millisecond and kept in UTC.
	Now func() time.Time

	sql    *sql.DB
	d      *dialect
	closed atomic.Bool
	dsn    string
	locks  sessionLockPool // see locks.go
	lazy   lazyPool        // see lazy.go
	stmts  statements      // see statements.go
	batch  batcher
	tree   treeCache                   // see audit_tree.go
	hook   atomic.Pointer[func(int64)] // see SetAppendHook
}

// Open connects to the database named by rawURL and checks that it answers.
// It does not migrate: call Migrate.
//
// Accepted URLs:
//
//	sqlite:///abs/path/depot.db   absolute path
//	sqlite://relative/path.db     relative to the working directory
//	sqlite:path.db, sqlite:/abs   the path follows "sqlite:" directly
//	postgres://… or postgresql://… a pgx connection URL
//
// A query string on a sqlite URL is passed to the modernc driver after
// depot's own settings (e.g. "?_pragma=query_only(1)" opens it read-only).
// For SQLite, Open creates the parent directory (0700) and the database file
// (0600) when they are missing, and uses a single connection. An unreachable
// database is CodeUnavailable; a malformed URL is CodeInvalid.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	var (
		d   *dialect
		dsn string
		err error
	)
	switch {
	case strings.HasPrefix(rawURL, "sqlite:"):
		d = sqliteDialect()
		dsn, err = sqliteDSN(rawURL)
	case strings.HasPrefix(rawURL, "postgres://"), strings.HasPrefix(rawURL, "postgresql://"):
		d = postgresDialect()
		dsn = rawURL
		if _, perr := url.Parse(rawURL); perr != nil {
			err = depot.WrapError(depot.CodeInvalid, "malformed database URL", perr)
		}
	default:
		err = depot.Errorf(depot.CodeInvalid, "database URL must start with sqlite: or postgres://")
	}
	if err != nil {
		return nil, err
	}
	sqldb, err := sql.Open(d.driver, dsn)
	if err != nil {
		return nil, depot.WrapError(depot.CodeInvalid, "cannot open database", err)
	}
	d.configure(sqldb)
	db := &DB{sql: sqldb, d: d, dsn: dsn, stmts: statements{db: sqldb}}
	if err := db.Ping(ctx); err != nil {
		_ = sqldb.Close()
		return nil, err
	}
	return db, nil
}

// sqliteDSN turns a sqlite: URL into a modernc DSN, creating the parent
// directory and an empty database file with private permissions.
func sqliteDSN(rawURL string) (string, error) {
	rest := strings.TrimPrefix(rawURL, "sqlite:")
	rest = strings.TrimPrefix(rest, "//")
	path, query, _ := strings.Cut(rest, "?")
	if path == "" {
		return "", depot.Errorf(depot.CodeInvalid, "sqlite URL has no path")
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", depot.WrapError(depot.CodeUnavailable, "cannot create database directory", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		// A read-only file or directory is still worth opening for reads.
		if _, serr := os.Stat(path); serr != nil {
			return "", depot.WrapError(depot.CodeUnavailable, "cannot create database file", err)
		}
	} else if err := f.Close(); err != nil {
		return "", depot.WrapError(depot.CodeUnavailable, "cannot create database file", err)
	}
	dsn := path + "?" + sqlitePragmas
	if query != "" {
		dsn += "&" + query
	}
	return dsn, nil
}

// Engine returns EngineSQLite or EnginePostgres.
func (db *DB) Engine() string { return db.d.name }

// SQL returns the underlying handle, for tools and tests. Writing to the
// audit table through it bypasses the hash chain (and the triggers refuse
// updates and deletes).
func (db *DB) SQL() *sql.DB { return db.sql }

// Ping checks that the database answers; CodeUnavailable when it does not.
func (db *DB) Ping(ctx context.Context) error {
	if err := db.sql.PingContext(ctx); err != nil {
		return db.wrap(err, "ping database")
	}
	return nil
}

// Close releases the connections. Calls after Close fail with
// CodeUnavailable.
func (db *DB) Close() error {
	db.closed.Store(true)
	db.stopBatcher()
	db.locks.close()
	db.lazy.close()
	db.stmts.close()
	if err := db.sql.Close(); err != nil {
		return fmt.Errorf("servicedb: close: %w", err)
	}
	return nil
}

// now is the current time, in UTC, truncated to the millisecond.
func (db *DB) now() time.Time {
	t := time.Now()
	if db.Now != nil {
		t = db.Now()
	}
	return fromMS(t.UnixMilli())
}

// toMS and fromMS convert between times and stored unix milliseconds.
func toMS(t time.Time) int64 { return t.UnixMilli() }

func fromMS(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// msOrNil returns the unix milliseconds of *t, or nil for a nil pointer (a
// SQL NULL).
func msOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UnixMilli()
}

// timeOrNil is the inverse of msOrNil for a scanned column.
func timeOrNil(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

// normTime returns a copy of *t in UTC truncated to the millisecond, or nil.
func normTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	n := fromMS(t.UnixMilli())
	return &n
}

// notFound reports whether err is sql.ErrNoRows.
func notFound(err error) bool { return errors.Is(err, sql.ErrNoRows) }
