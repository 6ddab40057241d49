package servicedb_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"depot"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// appendConcurrently appends n events spread over the handles, one goroutine
// per event, and returns what Append returned.
func appendConcurrently(t *testing.T, dbs []*servicedb.DB, n int) []depot.AuditEvent {
	t.Helper()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		out []depot.AuditEvent
	)
	for i := range n {
		db := dbs[i%len(dbs)]
		wg.Go(func() {
			ev, err := db.Append(context.Background(), sampleEvent(i))
			if err != nil {
				t.Errorf("Append %d: %v", i, err)
				return
			}
			mu.Lock()
			out = append(out, ev)
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// checkNoForkNoGap asserts that evs are seq 1..n, each linking to the one
// before.
func checkNoForkNoGap(t *testing.T, evs []depot.AuditEvent, n int) {
	t.Helper()
	slices.SortFunc(evs, func(a, b depot.AuditEvent) int { return int(a.Seq - b.Seq) })
	if len(evs) != n {
		t.Fatalf("%d events, want %d", len(evs), n)
	}
	prev := servicedb.GenesisHash
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("seq %d at position %d: gap or duplicate", ev.Seq, i)
		}
		if ev.PrevHash != prev {
			t.Fatalf("record %d does not link to record %d: fork", ev.Seq, ev.Seq-1)
		}
		prev = ev.Hash
	}
}

func TestConcurrentAppends(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		evs := appendConcurrently(t, []*servicedb.DB{db}, 50)
		checkNoForkNoGap(t, evs, 50)
		verifyOK(t, db, 50)
	})
}

// Two handles stand for two services processes sharing one database.
func TestConcurrentAppendsTwoHandles(t *testing.T) {
	eachEngineURL(t, func(t *testing.T, e servicedbtest.EngineURL) {
		a, b := openDB(t, e.URL), openDB(t, e.URL)
		evs := appendConcurrently(t, []*servicedb.DB{a, b}, 50)
		checkNoForkNoGap(t, evs, 50)
		verifyOK(t, a, 50)
		verifyOK(t, b, 50)
	})
}
