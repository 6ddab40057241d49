package servicedb

import (
	"database/sql"
	"strconv"
	"time"

	"depot"

	"github.com/pressly/goose/v3"
)

// Advisory lock namespaces (the first key of PostgreSQL's two-key advisory
// locks; the second is hashtext(current_schema()), so each schema has its
// own chain lock). The values spell "dpta" and "dptm".
const (
	appendLockKey  = 0x64707461
	migrateLockKey = 0x6470746d
)

// dialect is what differs between the engines. Everything else — schema
// shape, queries with $N placeholders, ON CONFLICT upserts — is shared.
type dialect struct {
	name   string        // EngineSQLite or EnginePostgres
	driver string        // database/sql driver name
	goose  goose.Dialect // migration dialect
	dir    string        // migrations directory in migrationsFS

	// lockAppend runs first in every append transaction and serialises
	// appenders across processes until commit. "" when the transaction's
	// BEGIN already did (SQLite's BEGIN IMMEDIATE).
	lockAppend string

	// lockMigrate and unlockMigrate bracket Migrate on a dedicated
	// connection so that concurrent Migrate calls from several processes
	// apply each migration once. "" when not supported.
	lockMigrate, unlockMigrate string

	// configure sets pool limits on a fresh handle.
	configure func(*sql.DB)

	// classify maps a driver error to its depot code, or "" when the error
	// is not one this dialect recognises.
	classify func(error) depot.Code
}

func sqliteDialect() *dialect {
	return &dialect{
		name:   EngineSQLite,
		driver: "sqlite",
		goose:  goose.DialectSQLite3,
		dir:    "migrations/sqlite",
		configure: func(db *sql.DB) {
			// One connection: a single writer in this process, and no
			// SQLITE_BUSY between our own connections. Other processes
			// are serialised by BEGIN IMMEDIATE and busy_timeout.
			db.SetMaxOpenConns(1)
			db.SetMaxIdleConns(1)
			db.SetConnMaxLifetime(0)
			db.SetConnMaxIdleTime(0)
		},
		classify: classifySQLite,
	}
}

func postgresDialect() *dialect {
	return &dialect{
		name:          EnginePostgres,
		driver:        "pgx",
		goose:         goose.DialectPostgres,
		dir:           "migrations/postgres",
		lockAppend:    "SELECT pg_advisory_xact_lock(" + strconv.Itoa(appendLockKey) + ", hashtext(current_schema()))",
		lockMigrate:   "SELECT pg_advisory_lock(" + strconv.Itoa(migrateLockKey) + ", hashtext(current_schema()))",
		unlockMigrate: "SELECT pg_advisory_unlock(" + strconv.Itoa(migrateLockKey) + ", hashtext(current_schema()))",
		configure: func(db *sql.DB) {
			db.SetMaxOpenConns(10)
			db.SetMaxIdleConns(4)
			db.SetConnMaxIdleTime(5 * time.Minute)
			db.SetConnMaxLifetime(time.Hour)
		},
		classify: classifyPostgres,
	}
}
