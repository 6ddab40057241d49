package servicedb_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
)

// testClock is a settable clock for db.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// A backup lease is in force from when it is taken until it is released
// or expires unrenewed; while it is, every object counts as referenced (the
// sweep of cleanup keeps it), a purged version's included. An expired
// lease cannot be renewed: the backup must fail.
func TestBackupLease(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := t.Context()
		clk := &testClock{t: time.Now().UTC()}
		db.Now = clk.now
		v := mustCommit(t, db, "c1/a.csv", "a")
		var purged []servicedb.Version
		if _, err := db.AppendWith(ctx, commitEvent("c1/a.csv"), servicedb.Purge("c1/a.csv", v.ID, &purged)); err != nil {
			t.Fatal(err)
		}
		referenced := func() bool {
			t.Helper()
			ok, err := db.Referenced(ctx, v.ID)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		running := func() bool {
			t.Helper()
			ok, err := db.BackupRunning(ctx)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if referenced() || running() {
			t.Fatal("a purged version's object is referenced without a lease")
		}
		id, err := db.TakeBackupLease(ctx, "test", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if !referenced() || !running() {
			t.Fatal("lease in force: the object must be kept")
		}
		clk.add(50 * time.Second)
		if err := db.RenewBackupLease(ctx, id, time.Minute); err != nil {
			t.Fatal(err)
		}
		clk.add(50 * time.Second) // 100 s after taking, 50 s after renewing
		if !running() {
			t.Fatal("a renewed lease ended at its first expiry")
		}
		clk.add(11 * time.Second)
		if running() || referenced() {
			t.Fatal("an expired lease still holds objects")
		}
		if err := db.RenewBackupLease(ctx, id, time.Minute); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("renewing an expired lease: %v, want not_found", err)
		}
		id2, err := db.TakeBackupLease(ctx, "test", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.ReleaseBackupLease(ctx, id2); err != nil {
			t.Fatal(err)
		}
		if running() {
			t.Fatal("a released lease is in force")
		}
		if _, err := db.TakeBackupLease(ctx, "test", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := db.ClearBackupLeases(ctx); err != nil || running() {
			t.Fatalf("ClearBackupLeases: %v", err)
		}
	})
}

// The manifest of a backup is read from the same point in time as the
// snapshot: on PostgreSQL a version committed after the snapshot was
// exported is not seen by its reader; on SQLite the snapshot file is read
// and never written.
func TestSnapshotReaders(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := t.Context()
		before := mustCommit(t, db, "c1/before.csv", "b")
		seq, head, err := db.Head(ctx)
		if err != nil {
			t.Fatal(err)
		}
		check := func(r servicedb.SnapshotReader) {
			t.Helper()
			gotSeq, gotHead, err := r.Head(ctx)
			if err != nil || gotSeq != seq || gotHead != head {
				t.Fatalf("snapshot head %d %s %v, want %d %s", gotSeq, gotHead, err, seq, head)
			}
			vs, err := r.Versions(ctx, "", 10)
			if err != nil || len(vs) != 1 || vs[0].ID != before.ID || vs[0].SHA256 != before.SHA256 {
				t.Fatalf("snapshot versions %+v %v", vs, err)
			}
		}
		if db.Engine() == servicedb.EngineSQLite {
			path := filepath.Join(t.TempDir(), "snap.db")
			if _, err := db.SQL().ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
				t.Fatal(err)
			}
			mustCommit(t, db, "c1/after.csv", "a")
			r, closeSnap, err := servicedb.OpenSnapshotFile(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			check(r)
			if err := closeSnap(); err != nil {
				t.Fatal(err)
			}
			if m, _ := filepath.Glob(path + "-*"); len(m) != 0 {
				t.Fatalf("reading the snapshot wrote beside it: %v", m)
			}
			return
		}
		err = db.ExportSnapshot(ctx, func(ctx context.Context, name string, r servicedb.SnapshotReader) error {
			if name == "" {
				t.Error("no snapshot name")
			}
			mustCommit(t, db, "c1/after.csv", "a") // another connection, after the snapshot
			check(r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
