package servicedb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"sync"
	"time"

	"depot"
)

// sessionLockKey is the advisory lock namespace of SessionLock ("dpts").
const sessionLockKey = 0x64707473

// sessionLockPool is the connection pool of SessionLock on PostgreSQL,
// opened on first use. It is separate from the pool of audit writes so
// that uploads holding locks never starve the audit trail.
type sessionLockPool struct {
	once sync.Once
	db   *sql.DB
	err  error
}

func (p *sessionLockPool) close() {
	if p.db != nil {
		_ = p.db.Close()
	}
}

// maxSessionLocks bounds the connections SessionLock holds at once (one
// per upload being appended to or completed in this process); further
// callers wait for a connection.
const maxSessionLocks = 64

// SessionLock blocks until it holds the lock called name, shared by every
// process using this database, or ctx ends; it returns the function that
// releases it. On PostgreSQL it is a session advisory lock held on a
// dedicated connection (so the lock also ends if this process dies); on
// SQLite, which serves one services process, it does nothing.
//
// Services takes it around every change of an upload session, so that two
// services instances never append to the same session at once.
func (db *DB) SessionLock(ctx context.Context, name string) (func(), error) {
	if db.d.name != EnginePostgres {
		return func() {}, nil
	}
	p := &db.locks
	p.once.Do(func() {
		p.db, p.err = sql.Open(db.d.driver, db.dsn)
		if p.err == nil {
			p.db.SetMaxOpenConns(maxSessionLocks)
			p.db.SetMaxIdleConns(4)
			p.db.SetConnMaxIdleTime(5 * time.Minute)
		}
	})
	if p.err != nil {
		return nil, depot.WrapError(depot.CodeUnavailable, "session lock: cannot open database", p.err)
	}
	conn, err := p.db.Conn(ctx)
	if err != nil {
		return nil, db.wrap(err, "session lock: connect")
	}
	const lock = "SELECT pg_advisory_lock($1, hashtext(current_schema() || '/' || $2))"
	if _, err := conn.ExecContext(ctx, lock, sessionLockKey, name); err != nil {
		// The lock may have been granted as the wait was cancelled: drop
		// the connection, which ends its session and every lock it holds.
		discard(conn)
		return nil, db.wrap(err, "session lock")
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		const unlock = "SELECT pg_advisory_unlock($1, hashtext(current_schema() || '/' || $2))"
		if _, err := conn.ExecContext(ctx, unlock, sessionLockKey, name); err != nil {
			discard(conn)
			return
		}
		_ = conn.Close()
	}, nil
}

// discard closes conn's underlying connection instead of returning it to
// the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}
