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

// failingDriver makes Delete fail for keys with the given prefix.
type failingDriver struct {
	storage.Driver
	prefix  string
	deletes atomic.Int32
}

func (d *failingDriver) Delete(ctx context.Context, key string) error {
	if strings.HasPrefix(key, d.prefix) {
		d.deletes.Add(1)
		return errors.New("injected: read-only file system")
	}
	return d.Driver.Delete(ctx, key)
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
	drv, err = localstore.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		drv = wrap(drv)
	}
	t.Cleanup(func() { drv.Close() })
	store := storage.New(drv, storage.Options{UploadExpiry: time.Hour, Now: clk.Now})
	hook := newWebhook(t)
	cfg := maintenance.Config{
		DB: db, Store: store, Now: clk.Now, Node: "test",
		Alerts: &maintenance.Alerter{URL: hook.srv.URL, Retries: 3, Backoff: time.Millisecond},
		Lease:  time.Hour, StrayGrace: time.Hour, MaxFailures: 3, DeleteAttempts: 3, RetryBackoff: time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	return &fixture{t: t, ctx: ctx, db: db, store: store, root: root, clk: clk, hook: hook, m: maintenance.New(cfg), cfg: cfg}
}

// put stores a committed file and its record, as the services tier does.
func (f *fixture) put(key string, data []byte, class depot.Class, ttl time.Duration) {
	f.t.Helper()
	obj, err := f.store.PutBytes(f.ctx, key, data, class)
	if err != nil {
		f.t.Fatal(err)
	}
	rec := servicedb.FileRecord{Key: key, Cohort: strings.SplitN(key, "/", 2)[0], Size: obj.Size, SHA256: obj.SHA256,
		Class: class, UploadedBy: "alice"}
	if class == depot.Temporary {
		at := f.clk.Now().Add(ttl)
		rec.CleanupScheduledFor = &at
	}
	if err := f.db.PutFile(f.ctx, rec); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) exists(key string) bool {
	_, err := f.store.Driver().Stat(f.ctx, key)
	return err == nil
}

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

func TestCleanupDuringActiveUpload(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e, nil, nil)
		up, err := f.store.CreateUpload(f.ctx, "c1/big.csv", storage.UploadOptions{Size: 10, Class: depot.Permanent})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.Append(f.ctx, up.ID, 0, strings.NewReader("hello")); err != nil {
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
		if _, err := f.store.Append(f.ctx, up.ID, 5, strings.NewReader("wor")); err != nil {
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
		strays, _ := f.store.Driver().Strays(f.ctx)
		if len(strays) != 0 {
			t.Fatalf("staging left behind: %d", len(strays))
		}
	})
}

func TestPermanentNeverDeleted(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e, nil, nil)
		f.put("c1/keep.csv", []byte("permanent data"), depot.Permanent, 0)
		// A record that claims temporary over an object declared
		// permanent: refused, never guessed.
		f.put("c1/conflict.csv", []byte("declared permanent"), depot.Permanent, 0)
		at := f.clk.Now().Add(time.Hour)
		rec, _ := f.db.GetFile(f.ctx, "c1/conflict.csv")
		rec.Class, rec.CleanupScheduledFor = depot.Temporary, &at
		if err := f.db.PutFile(f.ctx, rec); err != nil {
			t.Fatal(err)
		}
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
			for _, k := range []string{"c1/keep.csv", "c1/conflict.csv"} {
				if !f.exists(k) {
					t.Fatalf("%s deleted after %v", k, age)
				}
				if _, err := f.db.GetFile(f.ctx, k); err != nil {
					t.Fatalf("%s record gone: %v", k, err)
				}
			}
		}
		if n := len(f.events(depot.ActionCleanupCompleted)); n != 0 {
			t.Fatalf("%d cleanup.completed records", n)
		}
		fails := f.events(depot.ActionCleanupFailed)
		if len(fails) == 0 || fails[0].ErrorCode != "class_conflict" {
			t.Fatalf("class conflict not audited: %+v", fails)
		}
		if f.hook.kinds()[maintenance.AlertClassConflict] == 0 {
			t.Fatal("class conflict not alerted")
		}
	})
}

func TestTemporaryRemovedWhenDue(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e, nil, nil)
		f.put("c1/tmp.csv", []byte("scratch"), depot.Temporary, 2*time.Hour)
		f.put("c1/keep.csv", []byte("keep"), depot.Permanent, 0)
		f.clk.Add(time.Hour)
		res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil || res.Deleted != 0 || !f.exists("c1/tmp.csv") {
			t.Fatalf("deleted before due: %+v %v", res, err)
		}
		f.clk.Add(90 * time.Minute)
		dry, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, true)
		if err != nil || dry.Due != 1 || dry.Deleted != 0 || !f.exists("c1/tmp.csv") {
			t.Fatalf("dry run: %+v %v", dry, err)
		}
		res, err = f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil || res.Deleted != 1 || res.DeletedBytes != 7 {
			t.Fatalf("due file not deleted: %+v %v", res, err)
		}
		if f.exists("c1/tmp.csv") || !f.exists("c1/keep.csv") {
			t.Fatal("wrong files deleted")
		}
		if _, err := f.db.GetFile(f.ctx, "c1/tmp.csv"); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("record kept: %v", err)
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

func TestFailingDeleteRetriedThenAlerted(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		var fd *failingDriver
		f := newFixture(t, e, func(d storage.Driver) storage.Driver {
			fd = &failingDriver{Driver: d, prefix: "c1/stuck"}
			return fd
		}, nil)
		f.hook.fail.Store(2) // the webhook itself fails twice: the alert is retried
		f.put("c1/stuck.csv", []byte("x"), depot.Temporary, time.Minute)
		f.put("c1/fine.csv", []byte("y"), depot.Temporary, time.Minute)
		f.clk.Add(time.Hour)
		res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.Deleted != 1 || res.DeleteFailures != 3 || fd.deletes.Load() != 3 {
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
		// The next run retries; no second alert for the same file.
		if _, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false); err != nil {
			t.Fatal(err)
		}
		if fd.deletes.Load() != 6 || f.hook.kinds()[maintenance.AlertCleanupFailing] != 1 {
			t.Fatalf("%d deletes, alerts %v", fd.deletes.Load(), f.hook.kinds())
		}
		f.clk.Add(2 * time.Hour) // due for longer than one cleanup period: overdue
		rep, err := f.m.Report(f.ctx, maintenance.TriggerCLI)
		if err != nil || rep.Total.CleanupFailing != 1 || rep.Total.OverdueCleanups != 1 {
			t.Fatalf("report: %+v %v", rep.Total, err)
		}
		// Once the store recovers the file goes and its failures are cleared.
		fd.prefix = "nothing"
		if res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false); err != nil || res.Deleted != 1 {
			t.Fatalf("%+v %v", res, err)
		}
		if left, _ := f.db.CleanupFailureKeys(f.ctx); len(left) != 0 {
			t.Fatalf("failures kept: %+v", left)
		}
	})
}

func TestOrphansAndCrashLeftovers(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f := newFixture(t, e, nil, nil)
		f.put("c1/a.csv", []byte("a"), depot.Permanent, 0)
		// An object without a record (permanent by default): reported, kept.
		if _, err := f.store.PutBytes(f.ctx, "c1/no-record.csv", []byte("orphan"), depot.Permanent); err != nil {
			t.Fatal(err)
		}
		// A record without an object.
		if err := f.db.PutFile(f.ctx, servicedb.FileRecord{Key: "c2/lost.csv", Cohort: "c2", Size: 3,
			SHA256: strings.Repeat("0", 64), Class: depot.Permanent}); err != nil {
			t.Fatal(err)
		}
		// Crash leftovers: staging of a session whose record vanished, and
		// an interrupted write's temp file.
		up, err := f.store.CreateUpload(f.ctx, "c1/crashed.csv", storage.UploadOptions{Size: -1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.store.Append(f.ctx, up.ID, 0, strings.NewReader("partial")); err != nil {
			t.Fatal(err)
		}
		if err := f.store.Driver().DeleteSession(f.ctx, up.ID); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(f.root, "c1", ".depot-tmp-123"), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
		// Young entries are not judged yet.
		res, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil || res.OrphanObjects+res.OrphanRecords+res.StraysRemoved != 0 || res.Strays != 2 {
			t.Fatalf("young entries judged: %+v %v", res, err)
		}
		f.clk.Add(2 * time.Hour)
		// The strays' mtimes are real time; the test clock is ahead.
		res, err = f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.OrphanObjects != 1 || res.OrphanRecords != 1 || res.StraysRemoved != 2 {
			t.Fatalf("result: %+v", res)
		}
		if !f.exists("c1/no-record.csv") || !f.exists("c1/a.csv") {
			t.Fatal("an orphan object was deleted")
		}
		if strays, _ := f.store.Driver().Strays(f.ctx); len(strays) != 0 {
			t.Fatalf("%d strays left", len(strays))
		}
		kinds := map[string]string{}
		for _, ev := range f.events(depot.ActionOrphanDetected) {
			kinds[ev.Key] = ev.Metadata["kind"]
		}
		if kinds["c1/no-record.csv"] != maintenance.OrphanObject || kinds["c2/lost.csv"] != maintenance.OrphanRecord || len(kinds) != 2 {
			t.Fatalf("orphan audits: %v", kinds)
		}
		leftovers := 0
		for _, ev := range f.events(depot.ActionCleanupCompleted) {
			if ev.Metadata["kind"] == "crash_leftover" {
				leftovers++
			}
		}
		if leftovers != 2 {
			t.Fatalf("%d crash_leftover audits", leftovers)
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
		for _, k := range []string{"c1/a.csv", "c1/b.csv", "c1/c.csv", "c2/d.csv"} {
			f.put(k, data, depot.Permanent, 0)
		}
		res, err := f.m.Verify(f.ctx, maintenance.TriggerCLI)
		if err != nil || res.Verified != 4 || res.Failed != 0 || res.Bytes != 4*int64(len(data)) {
			t.Fatalf("clean pass: %+v %v", res, err)
		}
		// Flip one byte in b, remove c.
		p := filepath.Join(f.root, "c1", "b.csv")
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		raw[12345] ^= 0x01
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(f.root, "c1", "c.csv")); err != nil {
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
		rec, _ := f.db.GetFile(f.ctx, "c1/a.csv")
		if rec.LastVerified == nil || !rec.LastVerified.Equal(f.clk.Now()) {
			t.Fatalf("LastVerified: %v", rec.LastVerified)
		}
		// Resumable: a cursor left by an interrupted run is continued.
		if err := f.db.SetCursor(f.ctx, "verify", "c1/c.csv"); err != nil {
			t.Fatal(err)
		}
		res, err = f.m.Verify(f.ctx, maintenance.TriggerCLI)
		if err != nil || !res.ResumedAfter || res.Files != 1 || res.Verified != 1 {
			t.Fatalf("resumed run: %+v %v", res, err)
		}
		if c, _ := f.db.Cursor(f.ctx, "verify"); c != "" {
			t.Fatalf("cursor kept after a full pass: %q", c)
		}
		// Rate limit: 2 MB at 4 MB/s takes at least ~0.25 s (1 s burst).
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
		if err != nil || r1.Total.Files != 2 || r1.Total.TemporaryFiles != 1 || r1.Total.GrowthFiles != nil {
			t.Fatalf("%+v %v", r1.Total, err)
		}
		f.put("c2/b.csv", []byte("bbbbbb"), depot.Permanent, 0)
		f.clk.Add(time.Hour)
		r2, err := f.m.Report(f.ctx, maintenance.TriggerCLI)
		if err != nil || r2.PreviousID != r1.ID || *r2.Total.GrowthFiles != 1 || *r2.Total.GrowthBytes != 6 {
			t.Fatalf("%+v %v", r2, err)
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

func (d *cancellingDriver) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
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
