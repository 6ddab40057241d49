package servicedb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"strings"

	"depot"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// wrap turns a database error into a *depot.Error whose client-safe message
// names the operation, and which wraps err for logs. sql.ErrNoRows becomes
// CodeNotFound, connection and I/O failures CodeUnavailable, constraint
// violations CodeConflict, CodeNotFound (foreign key) or CodeInvalid, and
// anything else CodeInternal. A *depot.Error passes through unchanged.
func (db *DB) wrap(err error, op string) error {
	if err == nil {
		return nil
	}
	var de *depot.Error
	if errors.As(err, &de) {
		return err
	}
	code := db.classify(err)
	msg := op
	switch code {
	case depot.CodeNotFound:
		msg = op + ": not found"
	case depot.CodeConflict:
		msg = op + ": already exists"
	case depot.CodeInvalid:
		msg = op + ": value refused by the database"
	case depot.CodeUnavailable:
		msg = op + ": database unavailable"
	default:
		msg = op + ": database error"
	}
	return depot.WrapError(code, msg, err)
}

// classify maps err to a depot code.
func (db *DB) classify(err error) depot.Code {
	if err == nil {
		return ""
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return depot.CodeNotFound
	case db.closed.Load(),
		errors.Is(err, driver.ErrBadConn),
		errors.Is(err, sql.ErrConnDone),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled):
		return depot.CodeUnavailable
	}
	if code := db.d.classify(err); code != "" {
		return code
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return depot.CodeUnavailable
	}
	if strings.Contains(err.Error(), "database is closed") {
		return depot.CodeUnavailable
	}
	return depot.CodeInternal
}

// classifySQLite maps modernc result codes.
func classifySQLite(err error) depot.Code {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return ""
	}
	code := se.Code()
	switch code {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return depot.CodeConflict
	case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
		return depot.CodeNotFound
	case sqlite3.SQLITE_CONSTRAINT_CHECK, sqlite3.SQLITE_CONSTRAINT_NOTNULL,
		sqlite3.SQLITE_CONSTRAINT_DATATYPE:
		return depot.CodeInvalid
	}
	switch code & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_FULL,
		sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOTADB,
		sqlite3.SQLITE_PERM, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_INTERRUPT:
		return depot.CodeUnavailable
	}
	return ""
}

// classifyPostgres maps SQLSTATE classes and pgx connection errors.
func classifyPostgres(err error) depot.Code {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505":
			return depot.CodeConflict
		case pe.Code == "23503":
			return depot.CodeNotFound
		case pe.Code == "23514", pe.Code == "23502", strings.HasPrefix(pe.Code, "22"):
			return depot.CodeInvalid
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"), // insufficient resources
			strings.HasPrefix(pe.Code, "57"), // operator intervention
			strings.HasPrefix(pe.Code, "58"), // system error (I/O)
			strings.HasPrefix(pe.Code, "40"), // serialization failure, deadlock
			pe.Code == "25006":               // read-only transaction
			return depot.CodeUnavailable
		}
		return ""
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) || pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return depot.CodeUnavailable
	}
	return ""
}
