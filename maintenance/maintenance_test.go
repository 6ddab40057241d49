package maintenance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"depot"
	"depot/maintenance"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
	"depot/storage"
	"depot/storage/localstore"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// webhook records the alerts POSTed to it.
type webhook struct {
	mu     sync.Mutex
	alerts []maintenance.Alert
	srv    *httptest.Server
	fail   atomic.Int32 // fail this many requests first (500)
}

func newWebhook(t testing.TB) *webhook {
	w := &webhook{}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.fail.Add(-1) >= 0 {
			rw.WriteHeader(http.StatusInternalServerError)
			return
		}
		var a maintenance.Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.alerts = append(w.alerts, a)
		w.mu.Unlock()
	}))
	t.Cleanup(w.srv.Close)
	return w
}

func (w *webhook) kinds() map[string]int {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int{}
	for _, a := range w.alerts {
		out[a.Kind]++
	}
	return out
}

// failingDriver makes Delete fail for the objects in fail.
type failingDriver struct {
	storage.Driver
	mu      sync.Mutex
	fail    map[string]bool
	deletes atomic.Int32
}

func (d *failingDriver) Delete(ctx context.Context, id string) error {
	d.mu.Lock()
	bad := d.fail[id]
	d.mu.Unlock()
	if bad {
		d.deletes.Add(1)
		return errors.New("injected: read-only file system")
	}
	return d.Driver.Delete(ctx, id)
}

type fixture struct {
	t     testing.TB
	ctx   context.Context
	db    *servicedb.DB
	store *storage.Store
	root  string
	clk   *clock
	hook  *webhook
	m     *maintenance.Maintainer
	cfg   maintenance.Config
}

func newFixture(t testing.TB, e servicedbtest.EngineURL, wrap func(storage.Driver) storage.Driver, tweak func(*maintenance.Config)) *fixture {
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
	clk := &clock{t: time.Now().UTC().Truncate(time.Millisecond)}
	db.Now = clk.Now
	root := t.TempDir()
	var drv storage.Driver
	drv, err = localstore.Open(root, localstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		drv = wrap(drv)
	}
	t.Cleanup(func() { drv.Close() })
	store := storage.New(drv, db, storage.Options{UploadExpiry: time.Hour, Now: clk.Now})
	hook := newWebhook(t)
	cfg := maintenance.Config{
		DB: db, Store: store, Now: clk.Now, Node: "test",
		Alerts: &maintenance.Alerter{URL: hook.srv.URL, Retries: 3, Backoff: time.Millisecond},
		Lease:  time.Hour, StrayGrace: time.Hour, MaxFailures: 3, DeleteAttempts: 3, RetryBackoff: time.Millisecond,
		DeletedRetention: 48 * time.Hour,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	return &fixture{t: t, ctx: ctx, db: db, store: store, root: root, clk: clk, hook: hook, m: maintenance.New(cfg), cfg: cfg}
}

// put stores data as a new version of key, as the services tier does, and
// returns the version's ID.
func (f *fixture) put(key string, data []byte, class depot.Class, ttl time.Duration) string {
	f.t.Helper()
	obj, err := f.store.Put(f.ctx, storage.Chunk{Length: int64(len(data)), CRC32C: storage.CRC32C(data), Body: bytes.NewReader(data)}, "")
	if err != nil {
		f.t.Fatal(err)
	}
	v := servicedb.Version{ID: obj.ID, Key: key, Cohort: strings.SplitN(key, "/", 2)[0], Size: obj.Size, SHA256: obj.SHA256,
		Class: class, UploadedBy: "alice"}
	if class == depot.Temporary {
		at := f.clk.Now().Add(ttl)
		v.CleanupScheduledFor = &at
	}
	ev := depot.AuditEvent{Action: depot.ActionUploadCompleted, Outcome: depot.OutcomeSuccess, Actor: "alice", Key: key,
		Cohort: v.Cohort, DeclaredSize: -1, StoredSize: obj.Size}
	if _, err := f.db.AppendWith(f.ctx, ev, servicedb.CommitVersion(servicedb.Commit{Version: v, MayChangeClass: true})); err != nil {
		f.t.Fatal(err)
	}
	return obj.ID
}

// change applies a manager's change to the database, audited as action.
func (f *fixture) change(action depot.Action, c servicedb.Change) {
	f.t.Helper()
	if _, err := f.db.AppendWith(f.ctx, depot.AuditEvent{Action: action, Outcome: depot.OutcomeSuccess, DeclaredSize: -1, StoredSize: -1}, c); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) exists(id string) bool {
	_, err := f.store.Stat(f.ctx, id)
	return err == nil
}

func (f *fixture) objectPath(id string) string { return filepath.Join(f.root, "objects", id[:2], id) }

func (f *fixture) events(action depot.Action) []depot.AuditEvent {
	f.t.Helper()
	evs, err := f.db.Events(f.ctx, servicedb.Filter{Action: action})
	if err != nil {
		f.t.Fatal(err)
	}
	return evs
}

func engines(t *testing.T, fn func(t *testing.T, e servicedbtest.EngineURL)) {
	for _, e := range servicedbtest.Engines(t) {
		t.Run(e.Engine, func(t *testing.T) {
			t.Parallel()
			fn(t, e)
		})
	}
}

func chunk(off int64, s string) storage.Chunk {
	return storage.Chunk{Offset: off, Length: int64(len(s)), CRC32C: storage.CRC32C([]byte(s)), Body: strings.NewReader(s)}
}

func TestCleanupDuringActiveUpload(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e, nil, nil)
		up, err := f.store.CreateUpload(f.ctx, depot.Upload{Key: "c1/big.csv", DeclaredSize: 10, Resumable: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.Append(f.ctx, up.ID, chunk(0, "hello")); err != nil {
			t.Fatal(err)
		}
		// Paused: still inside its expiry, then past the expiry but
		// inside the lease. Neither cleanup touches it.
		for _, d := range []time.Duration{30 * time.Minute, 50 * time.Minute, 30 * time.Minute} {
			f.clk.Add(d)
			res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
			if err != nil {
				t.Fatal(err)
			}
			if res.UploadsExpired != 0 || res.StraysRemoved != 0 {
				t.Fatalf("after %v: active upload touched: %+v", d, res)
			}
			got, err := f.store.Upload(f.ctx, up.ID)
			if err != nil || got.Offset != 5 {
				t.Fatalf("session gone or changed: %+v %v", got, err)
			}
		}
		// The client resumes: activity renews the session.
		if _, err := f.store.Append(f.ctx, up.ID, chunk(5, "wor")); err != nil {
			t.Fatal(err)
		}
		f.clk.Add(2*time.Hour - time.Minute) // expiry + lease - 1m after the last activity
		if res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false); err != nil || res.UploadsExpired != 0 {
			t.Fatalf("session inside expiry+lease expired: %+v %v", res, err)
		}
		f.clk.Add(2 * time.Minute)
		res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.UploadsExpired != 1 {
			t.Fatalf("idle session not expired: %+v", res)
		}
		if _, err := f.store.Upload(f.ctx, up.ID); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("session still there: %v", err)
		}
		evs := f.events(depot.ActionUploadExpired)
		if len(evs) != 1 || evs[0].UploadID != up.ID || evs[0].BytesTransferred != 8 || evs[0].Actor != "system" {
			t.Fatalf("upload.expired audit: %+v", evs)
		}
		if strays, _ := f.store.Strays(f.ctx); len(strays) != 0 {
			t.Fatalf("staging left behind: %d", len(strays))
		}
	})
}

// TestPermanentNeverRemoved: no run of any job ever removes a permanent
// version, also when a later version of the same file is temporary (a
// manager's class change) and goes.
func TestPermanentNeverRemoved(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e, nil, nil)
		keep := f.put("c1/keep.csv", []byte("permanent data"), depot.Permanent, 0)
		first := f.put("c1/changed.csv", []byte("declared permanent"), depot.Permanent, 0)
		scratch := f.put("c1/changed.csv", []byte("scratch"), depot.Temporary, time.Hour)
		for _, age := range []time.Duration{time.Hour, 24 * time.Hour, 100 * 365 * 24 * time.Hour} {
			f.clk.Add(age)
			if _, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false); err != nil {
				t.Fatal(err)
			}
			if _, err := f.m.Verify(f.ctx, maintenance.TriggerCLI); err != nil {
				t.Fatal(err)
			}
			if _, err := f.m.Report(f.ctx, maintenance.TriggerCLI); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{keep, first} {
				if !f.exists(id) {
					t.Fatalf("permanent version %s removed after %v", id, age)
				}
				if v, err := f.db.Version(f.ctx, id); err != nil || v.Purged != nil {
					t.Fatalf("permanent version %s purged: %+v %v", id, v, err)
				}
			}
		}
		if f.exists(scratch) {
			t.Fatal("the due temporary version was kept")
		}
		evs := f.events(depot.ActionCleanupCompleted)
		if len(evs) != 1 || evs[0].Metadata["version"] != scratch {
			t.Fatalf("cleanup.completed: %+v", evs)
		}
	})
}

func TestTemporaryRemovedWhenDue(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e, nil, nil)
		tmp := f.put("c1/tmp.csv", []byte("scratch"), depot.Temporary, 2*time.Hour)
		keep := f.put("c1/keep.csv", []byte("keep"), depot.Permanent, 0)
		f.clk.Add(time.Hour)
		res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil || res.Deleted != 0 || !f.exists(tmp) {
			t.Fatalf("deleted before due: %+v %v", res, err)
		}
		f.clk.Add(90 * time.Minute)
		dry, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, true)
		if err != nil || dry.Due != 1 || dry.Deleted != 0 || !f.exists(tmp) {
			t.Fatalf("dry run: %+v %v", dry, err)
		}
		res, err = f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil || res.Deleted != 1 || res.DeletedBytes != 7 {
			t.Fatalf("due file not deleted: %+v %v", res, err)
		}
		if f.exists(tmp) || !f.exists(keep) {
			t.Fatal("wrong versions removed")
		}
		if _, err := f.db.Current(f.ctx, "c1/tmp.csv"); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("the file is still visible: %v", err)
		}
		evs := f.events(depot.ActionCleanupCompleted)
		if len(evs) != 1 || evs[0].Key != "c1/tmp.csv" || evs[0].FileClass != depot.Temporary || evs[0].Cohort != "c1" {
			t.Fatalf("cleanup.completed: %+v", evs)
		}
		runs, err := f.db.JobRuns(f.ctx, maintenance.JobCleanup, 10)
		if err != nil || len(runs) != 3 || runs[0].Outcome != servicedb.RunSuccess {
			t.Fatalf("runs: %+v %v", runs, err)
		}
		if strings.Contains(runs[0].Summary, "tmp.csv") {
			t.Fatal("file name in run summary")
		}
	})
}

// TestHoldKeepsDueVersions: a retention hold keeps due temporary versions
// and deleted files past their retention until it is released.
func TestHoldKeepsDueVersions(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e, nil, nil)
		tmp := f.put("c1/study/tmp.csv", []byte("scratch"), depot.Temporary, time.Hour)
		gone := f.put("c1/study/old.csv", []byte("old"), depot.Permanent, 0)
		f.change(depot.ActionDelete, servicedb.MarkDeleted("c1/study/old.csv", "bob"))
		h := &servicedb.Hold{Cohort: "c1", Path: "c1/study/", Reason: "legal", CreatedBy: "bob"}
		f.change(depot.ActionHoldPlaced, servicedb.PlaceHold(h))
		f.clk.Add(72 * time.Hour)
		res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil || res.Held != 2 || res.Deleted != 0 || !f.exists(tmp) || !f.exists(gone) {
			t.Fatalf("cleanup under a hold: %+v %v", res, err)
		}
		f.change(depot.ActionHoldReleased, servicedb.ReleaseHold("c1", h.ID, "bob"))
		res, err = f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil || res.Deleted != 2 || res.RetentionEnded != 1 || f.exists(tmp) || f.exists(gone) {
			t.Fatalf("cleanup after the hold: %+v %v", res, err)
		}
		if _, err := f.db.Path(f.ctx, "c1/study/old.csv"); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("a deleted file past its retention is still known: %v", err)
		}
	})
}

// TestDeletedKeptForRetention: a deleted file's versions are kept (and it
// can be undeleted) until the deleted retention ends.
func TestDeletedKeptForRetention(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e, nil, nil)
		v1 := f.put("c1/d.csv", []byte("one"), depot.Permanent, 0)
		v2 := f.put("c1/d.csv", []byte("two"), depot.Permanent, 0)
		f.change(depot.ActionDelete, servicedb.MarkDeleted("c1/d.csv", "bob"))
		f.clk.Add(47 * time.Hour)
		if res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false); err != nil || res.Deleted != 0 {
			t.Fatalf("inside the retention: %+v %v", res, err)
		}
		f.clk.Add(2 * time.Hour)
		res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil || res.Deleted != 2 || res.RetentionEnded != 1 || f.exists(v1) || f.exists(v2) {
			t.Fatalf("past the retention: %+v %v", res, err)
		}
	})
}

func TestFailingRemovalRetriedThenAlerted(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		fd := &failingDriver{fail: map[string]bool{}}
		f := newFixture(t, e, func(d storage.Driver) storage.Driver { fd.Driver = d; return fd }, nil)
		f.hook.fail.Store(2) // the webhook itself fails twice: the alert is retried
		stuck := f.put("c1/stuck.csv", []byte("x"), depot.Temporary, time.Minute)
		fine := f.put("c1/fine.csv", []byte("y"), depot.Temporary, time.Minute)
		fd.mu.Lock()
		fd.fail[stuck] = true
		fd.mu.Unlock()
		f.clk.Add(time.Hour)
		res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.Deleted != 2 || res.DeleteFailures != 3 || fd.deletes.Load() != 3 || f.exists(fine) {
			t.Fatalf("result %+v, %d delete calls", res, fd.deletes.Load())
		}
		fails := f.events(depot.ActionCleanupFailed)
		if len(fails) != 3 {
			t.Fatalf("%d cleanup.failed records, want one per attempt", len(fails))
		}
		for i, ev := range fails {
			if ev.Metadata["attempt"] != string(rune('1'+i)) || ev.Key != "c1/stuck.csv" {
				t.Fatalf("attempt %d audit: %+v", i, ev)
			}
		}
		if got := f.hook.kinds()[maintenance.AlertCleanupFailing]; got != 1 {
			t.Fatalf("%d cleanup_failing alerts, want 1 (%v)", got, f.hook.kinds())
		}
		f.hook.mu.Lock()
		body, _ := json.Marshal(f.hook.alerts)
		f.hook.mu.Unlock()
		if bytes.Contains(body, []byte("stuck")) {
			t.Fatalf("file name in alert: %s", body)
		}
		// The purged version's object, still there, is one nothing refers
		// to: a later run's sweep removes it once the store recovers.
		fd.mu.Lock()
		delete(fd.fail, stuck)
		fd.mu.Unlock()
		f.clk.Add(2 * time.Hour)
		res, err = f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil || res.OrphanObjects != 1 || f.exists(stuck) {
			t.Fatalf("%+v %v", res, err)
		}
	})
}

func TestOrphansAndCrashLeftovers(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e, nil, nil)
		a := f.put("c1/a.csv", []byte("a"), depot.Permanent, 0)
		// An object nothing refers to (a commit that never happened).
		loose, err := f.store.Put(f.ctx, chunk(0, "orphan"), "")
		if err != nil {
			t.Fatal(err)
		}
		// A version whose object is missing.
		lost := f.put("c2/lost.csv", []byte("abc"), depot.Permanent, 0)
		if err := os.Remove(f.objectPath(lost)); err != nil {
			t.Fatal(err)
		}
		// Crash leftovers: the staging of a session whose row vanished,
		// and an unknown file in the staging directory.
		up, err := f.store.CreateUpload(f.ctx, depot.Upload{Key: "c1/crashed.csv", DeclaredSize: -1, Resumable: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.Append(f.ctx, up.ID, chunk(0, "partial")); err != nil {
			t.Fatal(err)
		}
		if err := f.db.DeleteSession(f.ctx, up.ID); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.root, "staging", "junk"), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
		// Young entries are not judged yet.
		res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil || res.OrphanObjects+res.OrphanRecords+res.StraysRemoved != 0 {
			t.Fatalf("young entries judged: %+v %v", res, err)
		}
		f.clk.Add(2 * time.Hour)
		// The files' mtimes are real time; the test clock is ahead.
		res, err = f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.OrphanObjects != 1 || res.OrphanRecords != 1 || res.StraysRemoved != 2 {
			t.Fatalf("result: %+v", res)
		}
		if f.exists(loose.ID) || !f.exists(a) {
			t.Fatal("the sweep removed the wrong object")
		}
		if strays, _ := f.store.Strays(f.ctx); len(strays) != 0 {
			t.Fatalf("%d strays left", len(strays))
		}
		orphans := f.events(depot.ActionOrphanDetected)
		if len(orphans) != 1 || orphans[0].Key != "c2/lost.csv" || orphans[0].Metadata["kind"] != maintenance.OrphanRecord {
			t.Fatalf("orphan audits: %+v", orphans)
		}
		kinds := map[string]int{}
		for _, ev := range f.events(depot.ActionCleanupCompleted) {
			kinds[ev.Metadata["kind"]]++
		}
		if kinds["crash_leftover"] != 2 || kinds[maintenance.OrphanObject] != 1 {
			t.Fatalf("cleanup audits: %v", kinds)
		}
		if f.hook.kinds()[maintenance.AlertMissingObject] != 1 {
			t.Fatalf("alerts: %v", f.hook.kinds())
		}
	})
}

func TestVerifyFindsCorruptionAndMissing(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e, nil, nil)
		data := bytes.Repeat([]byte("0123456789"), 100_000)
		ids := map[string]string{}
		for _, k := range []string{"c1/a.csv", "c1/b.csv", "c1/c.csv", "c2/d.csv"} {
			ids[k] = f.put(k, data, depot.Permanent, 0)
		}
		res, err := f.m.Verify(f.ctx, maintenance.TriggerCLI)
		if err != nil || res.Verified != 4 || res.Failed != 0 || res.Bytes != 4*int64(len(data)) {
			t.Fatalf("clean pass: %+v %v", res, err)
		}
		// Flip one byte in b, remove c.
		p := f.objectPath(ids["c1/b.csv"])
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		raw[12345] ^= 0x01
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(f.objectPath(ids["c1/c.csv"])); err != nil {
			t.Fatal(err)
		}
		f.clk.Add(time.Minute)
		res, err = f.m.Verify(f.ctx, maintenance.TriggerCLI)
		if err != nil || res.Verified != 2 || res.Mismatched != 1 || res.Missing != 1 {
			t.Fatalf("result: %+v %v", res, err)
		}
		codes := map[string]string{}
		for _, ev := range f.events(depot.ActionIntegrityFailed) {
			codes[ev.Key] = ev.ErrorCode
		}
		if codes["c1/b.csv"] != maintenance.CodeHashMismatch || codes["c1/c.csv"] != maintenance.CodeMissing {
			t.Fatalf("audits: %v", codes)
		}
		if f.hook.kinds()[maintenance.AlertIntegrity] != 2 {
			t.Fatalf("alerts: %v", f.hook.kinds())
		}
		v, _ := f.db.Version(f.ctx, ids["c1/a.csv"])
		if v.LastVerified == nil || !v.LastVerified.Equal(f.clk.Now()) {
			t.Fatalf("LastVerified: %v", v.LastVerified)
		}
		// Resumable: a cursor left by an interrupted run is continued.
		last := ""
		for _, id := range ids {
			last = max(last, id)
		}
		second := ""
		for _, id := range ids {
			if id != last && id > second {
				second = id
			}
		}
		if err := f.db.SetCursor(f.ctx, "verify", second); err != nil {
			t.Fatal(err)
		}
		res, err = f.m.Verify(f.ctx, maintenance.TriggerCLI)
		if err != nil || !res.ResumedAfter || res.Files != 1 {
			t.Fatalf("resumed run: %+v %v", res, err)
		}
		if c, _ := f.db.Cursor(f.ctx, "verify"); c != "" {
			t.Fatalf("cursor kept after a full pass: %q", c)
		}
		// Rate limit: 3 MiB at 1 MiB/s takes at least ~2 s (1 s burst).
		slow := newFixture(t, e, nil, func(c *maintenance.Config) { c.VerifyRate = 1 << 20 })
		slow.put("c1/x.csv", bytes.Repeat([]byte("x"), 3<<20), depot.Permanent, 0)
		start := time.Now()
		if _, err := slow.m.Verify(slow.ctx, maintenance.TriggerCLI); err != nil {
			t.Fatal(err)
		}
		if el := time.Since(start); el < 1500*time.Millisecond {
			t.Fatalf("3 MiB at 1 MiB/s took %v", el)
		}
	})
}

func TestReportRendersAndGrows(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e, nil, nil)
		f.put("c1/a.csv", []byte("aaaa"), depot.Permanent, 0)
		f.put("c1/t.csv", []byte("tt"), depot.Temporary, time.Hour)
		r1, err := f.m.Report(f.ctx, maintenance.TriggerCLI)
		if err != nil || r1.Total.Files != 2 || r1.Total.TemporaryFiles != 1 || r1.Total.GrowthFiles != nil || r1.Total.CurrentFiles != 2 {
			t.Fatalf("%+v %v", r1.Total, err)
		}
		f.put("c2/b.csv", []byte("bbbbbb"), depot.Permanent, 0)
		f.put("c1/a.csv", []byte("aaaaa"), depot.Permanent, 0) // a second version
		f.change(depot.ActionDelete, servicedb.MarkDeleted("c1/t.csv", "bob"))
		f.clk.Add(time.Hour)
		r2, err := f.m.Report(f.ctx, maintenance.TriggerCLI)
		if err != nil || r2.PreviousID != r1.ID || *r2.Total.GrowthFiles != 2 || *r2.Total.GrowthBytes != 11 {
			t.Fatalf("%+v %v", r2, err)
		}
		if tot := r2.Total; tot.CurrentFiles != 2 || tot.OlderVersions != 1 || tot.OlderBytes != 4 || tot.DeletedVersions != 1 || tot.DeletedBytes != 2 {
			t.Fatalf("version split: %+v", tot)
		}
		for _, format := range []string{"text", "json", "html"} {
			var b bytes.Buffer
			if err := maintenance.Render(&b, r2, format); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "c2") || strings.Contains(b.String(), "b.csv") {
				t.Fatalf("%s report: %s", format, b.String())
			}
			if format == "html" && (!strings.Contains(b.String(), "<svg") || strings.Contains(b.String(), "http://") && !strings.Contains(b.String(), "xmlns=\"http://www.w3.org/2000/svg\"")) {
				t.Fatal("html report without inline chart")
			}
		}
		kept, err := f.db.Reports(f.ctx, 10, false)
		if err != nil || len(kept) != 2 {
			t.Fatalf("kept: %v %v", kept, err)
		}
		back, err := maintenance.LoadReport(f.ctx, f.db, r1.ID)
		if err != nil || back.Total.Files != 2 {
			t.Fatalf("%+v %v", back, err)
		}
	})
}

func TestMissedRunAlert(t *testing.T) {
	e := servicedbtest.Engines(t)[0]
	f := newFixture(t, e, nil, func(c *maintenance.Config) { c.CleanupInterval = time.Hour })
	up := f.clk.Now()
	if _, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false); err != nil {
		t.Fatal(err)
	}
	f.clk.Add(90 * time.Minute)
	var alerted sync.Map
	missed, err := f.m.CheckMissed(f.ctx, up, &alerted)
	if err != nil || len(missed) != 0 {
		t.Fatalf("missed too early: %v %v", missed, err)
	}
	f.clk.Add(time.Hour) // 2.5 h since the last success
	missed, _ = f.m.CheckMissed(f.ctx, up, &alerted)
	if len(missed) != 1 || missed[0] != maintenance.JobCleanup {
		t.Fatalf("missed: %v", missed)
	}
	f.m.CheckMissed(f.ctx, up, &alerted) // same episode: no second alert
	if f.hook.kinds()[maintenance.AlertMissedRun] != 1 {
		t.Fatalf("alerts: %v", f.hook.kinds())
	}
}

// cancellingDriver cancels the job's context on the first object read, as a
// shutdown does in the middle of a verification pass.
type cancellingDriver struct {
	storage.Driver
	cancel context.CancelFunc
}

func (d *cancellingDriver) Open(ctx context.Context, id string, offset, length int64) (io.ReadCloser, error) {
	d.cancel()
	return nil, ctx.Err()
}

// TestInterruptedRunIsNotFailure: a run cut short by a shutdown is recorded
// as interrupted, raises no job-failed audit record and does not count as a
// failure in the report.
func TestInterruptedRunIsNotFailure(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		f := newFixture(t, e, func(d storage.Driver) storage.Driver {
			return &cancellingDriver{Driver: d, cancel: cancel}
		}, nil)
		f.put("c1/a.csv", []byte("a,b\n1,2\n"), depot.Permanent, 0)
		if _, err := f.m.Verify(ctx, maintenance.TriggerCLI); err == nil {
			t.Fatal("verify with a cancelled context succeeded")
		}
		runs, err := f.db.JobRuns(f.ctx, maintenance.JobVerify, 10)
		if err != nil || len(runs) != 1 {
			t.Fatalf("runs %+v, %v", runs, err)
		}
		if r := runs[0]; r.Outcome != servicedb.RunInterrupted || r.Finished == nil {
			t.Fatalf("run %+v, want interrupted and finished", r)
		}
		if evs := f.events(depot.ActionJobFailed); len(evs) != 0 {
			t.Fatalf("job.failed records for an interrupted run: %+v", evs)
		}
		fails, err := f.db.JobFailuresSince(f.ctx, time.Time{})
		if err != nil || fails[maintenance.JobVerify] != 0 {
			t.Fatalf("failures %v, %v", fails, err)
		}
	})
}
