package servicedb

import (
	"context"
	"database/sql"
	"strings"
	"sync"
)

// Lazy writes (storage.Progress.Lazy) are committed without waiting for the
// database's log to reach the disk: after a crash of the machine the last
// of them may be missing, never half there. SQLite runs them on a
// connection of their own with synchronous=NORMAL (in WAL mode a commit then
// skips the fsync; a later FULL commit of the main connection makes it
// durable with its own); PostgreSQL in a transaction with
// synchronous_commit off. Each saves a device flush per chunk appended.

// lazyPool is the SQLite connection of lazy writes, opened on first use.
type lazyPool struct {
	once  sync.Once
	db    *sql.DB
	stmts statements
	err   error
}

func (p *lazyPool) close() {
	if p.db != nil {
		p.stmts.close()
		_ = p.db.Close()
	}
}

// execLazy runs query as a lazy write.
func (db *DB) execLazy(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if db.d.name == EnginePostgres {
		tx, err := db.sql.BeginTx(ctx, nil)
		if err != nil {
			return nil, err
		}
		defer tx.Rollback() //nolint:errcheck // after Commit: a no-op
		if _, err := tx.ExecContext(ctx, "SET LOCAL synchronous_commit TO OFF"); err != nil {
			return nil, err
		}
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return nil, err
		}
		return res, tx.Commit()
	}
	p := &db.lazy
	p.once.Do(func() {
		dsn := strings.Replace(db.dsn, "synchronous(FULL)", "synchronous(NORMAL)", 1)
		if p.db, p.err = sql.Open(db.d.driver, dsn); p.err == nil {
			db.d.configure(p.db)
			p.stmts = statements{db: p.db}
		}
	})
	if p.err != nil {
		return nil, p.err
	}
	return p.stmts.exec(ctx, query, args...)
}
