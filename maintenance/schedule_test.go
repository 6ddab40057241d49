package maintenance

import (
	"context"
	"testing"
	"time"

	"depot/servicedb"
	"depot/servicedb/servicedbtest"
	"depot/storage"
	"depot/storage/memstore"
)

// TestCatchUpSchedule: after a restart a job runs a period after its last
// success, or after the start delay when that is past or it never ran.
func TestCatchUpSchedule(t *testing.T) {
	ctx := context.Background()
	db, err := servicedb.Open(ctx, servicedbtest.SQLiteURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	m := New(Config{DB: db, Store: storage.New(memstore.New(), db, storage.Options{})})
	now := time.Now().UTC().Truncate(time.Millisecond)
	c := func() *catchUp { return &catchUp{m: m, job: JobVerify, iv: 24 * time.Hour, delay: time.Minute} }
	if got := c().Next(now); !got.Equal(now.Add(time.Minute)) {
		t.Fatalf("never ran: next %v, want start delay", got.Sub(now))
	}
	db.Now = func() time.Time { return now.Add(-2 * time.Hour) }
	id, _ := db.StartJobRun(ctx, JobVerify, TriggerSchedule, "")
	if err := db.FinishJobRun(ctx, id, servicedb.RunSuccess, "", "{}"); err != nil {
		t.Fatal(err)
	}
	s := c()
	if got := s.Next(now); !got.Equal(now.Add(22 * time.Hour)) {
		t.Fatalf("ran 2h ago: next in %v, want 22h", got.Sub(now))
	}
	if got := s.Next(now); !got.Equal(now.Add(24 * time.Hour)) {
		t.Fatalf("later runs: next in %v, want the period", got.Sub(now))
	}
	db.Now = func() time.Time { return now.Add(-30 * time.Hour) }
	id, _ = db.StartJobRun(ctx, JobCleanup, TriggerSchedule, "")
	_ = db.FinishJobRun(ctx, id, servicedb.RunSuccess, "", "{}")
	late := &catchUp{m: m, job: JobCleanup, iv: 24 * time.Hour, delay: time.Minute}
	if got := late.Next(now); !got.Equal(now.Add(time.Minute)) {
		t.Fatalf("overdue: next in %v, want the start delay", got.Sub(now))
	}
}
