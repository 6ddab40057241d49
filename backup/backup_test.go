package backup_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"depot"
	"depot/backup"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
	"depot/storage"
	"depot/storage/localstore"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	t     *testing.T
	ctx   context.Context
	url   string
	db    *servicedb.DB
	store *storage.Store
	root  string
}

func newFixture(t *testing.T, e servicedbtest.EngineURL) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := servicedb.Open(ctx, e.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	drv, err := localstore.Open(root, localstore.Options{BufferedIO: true})
	if err != nil {
		t.Fatal(err)
	}
	store := storage.New(drv, db, storage.Options{DeferDelete: db.BackupRunning})
	t.Cleanup(func() { store.Close() })
	return &fixture{t: t, ctx: ctx, url: e.URL, db: db, store: store, root: root}
}

// put stores data as a new version of key and returns its ID.
func (f *fixture) put(key, data string) string {
	f.t.Helper()
	obj, err := f.store.Put(f.ctx, storage.Chunk{Length: int64(len(data)), CRC32C: storage.CRC32C([]byte(data)), Body: strings.NewReader(data)}, "")
	if err != nil {
		f.t.Fatal(err)
	}
	cohort, _, _ := strings.Cut(key, "/")
	v := servicedb.Version{ID: obj.ID, Key: key, Cohort: cohort, Size: obj.Size, SHA256: obj.SHA256, Class: depot.Permanent}
	ev := depot.AuditEvent{Action: depot.ActionUploadCompleted, Outcome: depot.OutcomeSuccess, Actor: "alice", Cohort: cohort, Key: key, DeclaredSize: -1, StoredSize: obj.Size}
	if _, err := f.db.AppendWith(f.ctx, ev, servicedb.CommitVersion(servicedb.Commit{Version: v, MayChangeClass: true})); err != nil {
		f.t.Fatal(err)
	}
	return obj.ID
}

func (f *fixture) objectPath(id string) string { return filepath.Join(f.root, "objects", id[:2], id) }

// rewrite replaces the bytes of object id behind depot's back.
func (f *fixture) rewrite(id, data string) {
	f.t.Helper()
	p := f.objectPath(id)
	if err := os.Chmod(p, 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// A backup records, rather than aborts on, a stored object that is
// missing, shorter, longer or different: it copies the rest, marks those in
// the manifest (what verify would report) and stores no copy of them. It
// releases its lease. Repair then writes back, under the same version,
// what the backup holds, checking it against the live version, audits
// each, and reports what it cannot repair.
func TestBackupAndRepair(t *testing.T) {
	servicedbtest.Run(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e)
		ok := f.put("c1/ok.csv", "intact")
		missing := f.put("c1/missing.csv", "gone")
		short := f.put("c1/short.csv", "longer than this")
		long := f.put("c1/long.csv", "short")
		changed := f.put("c1/changed.csv", "original")
		if err := os.Remove(f.objectPath(missing)); err != nil {
			t.Fatal(err)
		}
		f.rewrite(short, "longer")
		f.rewrite(long, "short and then some")
		f.rewrite(changed, "0riginal")
		target, err := backup.OpenTarget(f.ctx, filepath.Join(t.TempDir(), "b"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := backup.Create(f.ctx, backup.Options{DB: f.db, DBURL: f.url, Store: f.store, Target: target, WithFiles: true})
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{ok: "", missing: "missing", short: "size_mismatch", long: "size_mismatch", changed: "hash_mismatch"}
		for _, e := range m.Files {
			if e.Damaged != want[e.Version] {
				t.Errorf("%s: damaged %q, want %q", e.Key, e.Damaged, want[e.Version])
			}
			_, err := os.Stat(filepath.Join(target.Dir(), "files", e.Version))
			if (err == nil) != (e.Damaged == "") {
				t.Errorf("%s: copy present %v, damaged %q", e.Key, err == nil, e.Damaged)
			}
		}
		if m.Damaged != 4 || len(m.Files) != 5 {
			t.Fatalf("manifest: %d files, %d damaged", len(m.Files), m.Damaged)
		}
		if running, err := f.db.BackupRunning(f.ctx); err != nil || running {
			t.Fatalf("lease still held after the backup: %v %v", running, err)
		}
		back, err := backup.ReadManifest(f.ctx, target)
		if err != nil || back.AuditHeadSeq != m.AuditHeadSeq || len(back.Files) != 5 {
			t.Fatalf("manifest read back: %+v %v", back, err)
		}

		f.rewrite(ok, "intacT") // damaged after the backup: repairable
		var audited []depot.AuditEvent
		res, err := backup.Repair(f.ctx, backup.RepairOptions{DB: f.db, Store: f.store, Target: target, Manifest: m,
			Audit: func(_ context.Context, ev depot.AuditEvent) error { audited = append(audited, ev); return nil }})
		if err != nil {
			t.Fatal(err)
		}
		if res.Checked != 5 || res.Restored != 1 || res.Failed != 4 || len(audited) != 5 {
			t.Fatalf("repair: %+v, %d audited", res, len(audited))
		}
		if match, _ := f.store.Matches(f.ctx, ok, 6, m.Files[indexOf(m, ok)].SHA256); !match {
			t.Fatal("the repaired object does not match its version")
		}
		for _, ev := range audited {
			if ev.Action != depot.ActionRestoreFiles || (ev.Outcome == depot.OutcomeSuccess) != (ev.Key == "c1/ok.csv") {
				t.Errorf("audit: %+v", ev)
			}
		}
		// Only the paths asked for; a purged version of one is reported.
		var purged []servicedb.Version
		if _, err := f.db.AppendWith(f.ctx, depot.AuditEvent{Action: depot.ActionPurge, Outcome: depot.OutcomeSuccess, DeclaredSize: -1, StoredSize: -1},
			servicedb.Purge("c1/ok.csv", "", &purged)); err != nil {
			t.Fatal(err)
		}
		res, err = backup.Repair(f.ctx, backup.RepairOptions{DB: f.db, Store: f.store, Target: target, Manifest: m, Paths: []string{"c1/ok.csv", "c1/changed.csv"}})
		if err != nil || res.Checked != 1 || len(res.Items) != 2 {
			t.Fatalf("repair of two paths: %+v %v", res, err)
		}
		for _, it := range res.Items {
			if it.Key == "c1/ok.csv" && it.Outcome != backup.RepairGone || it.Key == "c1/changed.csv" && it.Outcome != backup.RepairNotInBackup {
				t.Errorf("item %+v", it)
			}
		}
	})
}

func indexOf(m backup.Manifest, id string) int {
	for i, e := range m.Files {
		if e.Version == id {
			return i
		}
	}
	return -1
}

// slowTarget holds the first object copy until the backup's context ends,
// after moving the clock past the lease's end: the lease cannot be
// renewed, and the backup stops with that reason instead of finishing
// without the objects a purge may have removed meanwhile.
type slowTarget struct {
	backup.Target
	once    sync.Once
	advance func()
}

func (s *slowTarget) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if strings.HasPrefix(name, "files/") {
		s.once.Do(s.advance)
		<-ctx.Done()
		return ctx.Err()
	}
	return s.Target.Put(ctx, name, r, size)
}

func TestBackupStopsWhenItsLeaseEnds(t *testing.T) {
	f := newFixture(t, servicedbtest.EngineURL{Engine: servicedbtest.SQLite, URL: servicedbtest.SQLiteURL(t)})
	f.put("c1/a.csv", "a")
	var mu sync.Mutex
	offset := time.Duration(0)
	f.db.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) }
	dir, err := backup.OpenTarget(f.ctx, filepath.Join(t.TempDir(), "b"))
	if err != nil {
		t.Fatal(err)
	}
	target := &slowTarget{Target: dir, advance: func() { mu.Lock(); offset = time.Hour; mu.Unlock() }}
	_, err = backup.Create(f.ctx, backup.Options{DB: f.db, DBURL: f.url, Store: f.store, Target: target, WithFiles: true, LeaseTTL: 40 * time.Millisecond})
	if depot.ErrorCode(err) != depot.CodeNotFound || !strings.Contains(err.Error(), "lease ended") {
		t.Fatalf("backup past its lease: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir.Dir(), backup.ManifestName)); !os.IsNotExist(err) {
		t.Fatalf("a manifest was written: %v", err)
	}
}

// A target that is not empty is refused.
func TestBackupRefusesNonEmptyTarget(t *testing.T) {
	f := newFixture(t, servicedbtest.EngineURL{Engine: servicedbtest.SQLite, URL: servicedbtest.SQLiteURL(t)})
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	target, _ := backup.OpenTarget(f.ctx, dir)
	if _, err := backup.Create(f.ctx, backup.Options{DB: f.db, DBURL: f.url, Store: f.store, Target: target}); err == nil {
		t.Fatal("backup into a non-empty directory")
	}
}
