package servicedb

import (
	"context"
	"testing"
	"time"

	"depot/servicedb/servicedbtest"
)

// TestSessionLock checks that SessionLock excludes a second holder of the
// same name in another process (another DB handle) until it is released,
// that other names are independent, and that a wait ends with its context.
func TestSessionLock(t *testing.T) {
	url := servicedbtest.PostgresURL(t)
	ctx := context.Background()
	a, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	unlock, err := a.SessionLock(ctx, "upload-1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := b.SessionLock(ctx, "upload-2")
	if err != nil {
		t.Fatal(err)
	}
	other()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := b.SessionLock(short, "upload-1"); err == nil {
		t.Fatal("a second process took a held lock")
	}
	got := make(chan error, 1)
	go func() {
		u, err := b.SessionLock(ctx, "upload-1")
		if err == nil {
			u()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("lock taken while held: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("lock not granted after release")
	}

	// SQLite serves one process: the lock is a no-op.
	s, err := Open(ctx, servicedbtest.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u1, err := s.SessionLock(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	u1()
}
