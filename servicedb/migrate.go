package servicedb

import (
	"context"
	"embed"
	"io/fs"
	"path"

	"depot"

	"github.com/pressly/goose/v3"
)

// migrationsFS holds the SQL migrations, one directory per engine
// (migrations/sqlite, migrations/postgres), numbered alike.
//
//go:embed migrations
var migrationsFS embed.FS

// MigrationTable is the table in which applied migrations are recorded.
const MigrationTable = "goose_db_version"

// Migrate applies every embedded migration that the database has not
// recorded yet, each in its own transaction, and records it in
// MigrationTable. It is idempotent. On PostgreSQL, concurrent Migrate calls
// (from several services processes) are serialised by a session advisory lock
// scoped to the current schema. A failure is CodeUnavailable when the
// database cannot be reached and CodeInternal otherwise; the migration that
// failed is rolled back and the earlier ones stay applied. Migrate then
// brings the audit tree up to date with the trail (SyncTree).
func (db *DB) Migrate(ctx context.Context) error {
	if db.d.lockMigrate != "" {
		conn, err := db.sql.Conn(ctx)
		if err != nil {
			return db.wrap(err, "migrate: connect")
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, db.d.lockMigrate); err != nil {
			return db.wrap(err, "migrate: lock")
		}
		defer func() {
			// Closing the connection would release the lock too; unlock
			// explicitly so a pooled connection does not keep it.
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), db.d.unlockMigrate)
		}()
	}
	p, err := db.provider()
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return db.wrap(err, "migrate") // goose.PartialError unwraps to the cause
	}
	// A trail written before the audit tree existed gets its tree now,
	// rather than in the first append after the upgrade.
	return db.SyncTree(ctx)
}

// MigrationStatus lists every embedded migration with whether it is applied.
type MigrationStatus struct {
	Version int64
	Name    string // file name, e.g. "00001_init.sql"
	Applied bool
}

// Migrations reports the state of every embedded migration.
func (db *DB) Migrations(ctx context.Context) ([]MigrationStatus, error) {
	p, err := db.provider()
	if err != nil {
		return nil, err
	}
	st, err := p.Status(ctx)
	if err != nil {
		return nil, db.wrap(err, "migration status")
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		out = append(out, MigrationStatus{
			Version: s.Source.Version,
			Name:    path.Base(s.Source.Path),
			Applied: s.State == goose.StateApplied,
		})
	}
	return out, nil
}

// provider builds a goose provider over this engine's migrations.
func (db *DB) provider() (*goose.Provider, error) {
	sub, err := fs.Sub(migrationsFS, db.d.dir)
	if err != nil {
		return nil, depot.WrapError(depot.CodeInternal, "migrations missing", err)
	}
	p, err := goose.NewProvider(db.d.goose, db.sql, sub,
		goose.WithTableName(MigrationTable),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return nil, depot.WrapError(depot.CodeInternal, "cannot load migrations", err)
	}
	return p, nil
}
