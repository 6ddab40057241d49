package servicedb

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"depot"
)

// TestStatementsPreparedOnce: a query text is prepared once and shared, also
// when first asked for by many goroutines at once; a text that fails to
// prepare is not kept; an append on a fresh handle (nothing prepared yet)
// does not wait forever for SQLite's only connection.
func TestStatementsPreparedOnce(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	// Closed at the end only: after a deadlocked append, Close would wait
	// for it too.
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	const q = `SELECT count(*) FROM users WHERE name = $1`
	got := make([]any, 8)
	var wg sync.WaitGroup
	for i := range got {
		wg.Go(func() {
			st, err := db.stmts.get(ctx, q)
			if err != nil {
				t.Error(err)
			}
			got[i] = st
		})
	}
	wg.Wait()
	for i := range got {
		if got[i] == nil || got[i] != got[0] {
			t.Fatalf("goroutine %d got statement %p, goroutine 0 %p", i, got[i], got[0])
		}
	}
	var n int
	if err := db.stmts.queryRow(ctx, q, "nobody").Scan(&n); err != nil || n != 0 {
		t.Fatalf("queryRow: %d, %v", n, err)
	}

	if _, err := db.stmts.get(ctx, `SELECT nonsense FROM nowhere`); err == nil {
		t.Fatal("an invalid query prepared")
	}
	db.stmts.mu.Lock()
	kept := len(db.stmts.m)
	db.stmts.mu.Unlock()
	if kept != 1 {
		t.Fatalf("%d statements kept, want 1 (the invalid one must not be)", kept)
	}
	if err := db.stmts.queryRow(ctx, `SELECT nonsense FROM nowhere`).Scan(&n); err == nil {
		t.Fatal("queryRow of an invalid query scanned without an error")
	}

	// The audit append prepares its statements before it begins its
	// transaction; on SQLite's single connection the other order would
	// deadlock.
	appended := make(chan error, 1)
	go func() {
		_, err := db.Append(ctx, depot.AuditEvent{Action: depot.ActionList, Outcome: depot.OutcomeSuccess})
		appended <- err
	}()
	select {
	case err := <-appended:
		if err != nil {
			t.Fatalf("Append on a fresh handle: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Append on a fresh handle did not return within 10 s")
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}
