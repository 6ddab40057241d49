package servicedb

import (
	"context"
	"database/sql"
	"sync"
)

// statements prepares each query text once per database handle and keeps
// it. The SQLite driver parses a query again on every Exec or Query of the
// handle (a sixth of the services tier's CPU for 4 KiB uploads, most of it
// in the token lookup, the audit insert and the file record); a prepared
// statement keeps its parsed form. PostgreSQL's driver caches statements
// itself, so there it only saves a map lookup in pgx.
//
// Only fixed query texts belong here: every distinct text stays prepared
// for the life of the handle. database/sql prepares a Stmt again on each
// connection that runs it and after a connection is replaced.
//
// With SQLite's single connection, get must not be called inside a
// transaction for a text not yet prepared (preparing needs the connection
// the transaction holds): take the statements before BeginTx and use
// Tx.StmtContext.
type statements struct {
	db *sql.DB
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

// get returns the prepared statement of query, preparing it on first use.
// A failed preparation is not remembered.
func (s *statements) get(ctx context.Context, query string) (*sql.Stmt, error) {
	s.mu.Lock()
	st, ok := s.m[query]
	s.mu.Unlock()
	if ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.m[query]; ok { // prepared concurrently
		_ = st.Close()
		return prev, nil
	}
	if s.m == nil {
		s.m = map[string]*sql.Stmt{}
	}
	s.m[query] = st
	return st, nil
}

// queryRow is sql.DB.QueryRowContext through the prepared statement.
func (s *statements) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.get(ctx, query)
	if err != nil {
		// A Row carrying the error: run the query unprepared, which
		// reports the same failure through Scan.
		return s.db.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// query is sql.DB.QueryContext through the prepared statement.
func (s *statements) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// exec is sql.DB.ExecContext through the prepared statement.
func (s *statements) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := s.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// close closes every prepared statement.
func (s *statements) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.m {
		_ = st.Close()
	}
	s.m = nil
}
