package servicedb_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"depot"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// memTree is an in-memory tlog tree: the reference the stored tree is
// compared with.
type memTree struct {
	n      int64
	hashes []tlog.Hash // by stored hash index
}

func (m *memTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m.hashes[x]
	}
	return out, nil
}

func (m *memTree) add(t testing.TB, chainHash string) {
	t.Helper()
	leaf, err := servicedb.LeafHash(chainHash)
	if err != nil {
		t.Fatal(err)
	}
	hs, err := tlog.StoredHashesForRecordHash(m.n, leaf, m)
	if err != nil {
		t.Fatal(err)
	}
	m.hashes = append(m.hashes, hs...)
	m.n++
}

func (m *memTree) root(t testing.TB, n int64) tlog.Hash {
	t.Helper()
	h, err := tlog.TreeHash(n, m)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// referenceTree builds the tree of every record in db from their hashes.
func referenceTree(t *testing.T, db *servicedb.DB) (*memTree, []depot.AuditEvent) {
	t.Helper()
	evs, err := db.Events(context.Background(), servicedb.Filter{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	m := &memTree{}
	for _, ev := range evs {
		m.add(t, ev.Hash)
	}
	return m, evs
}

// checkTree compares the stored tree of db with the reference: the root at
// every size, the stored leaves, and that record and tree proofs from the
// database check against the reference roots.
func checkTree(t *testing.T, db *servicedb.DB) {
	t.Helper()
	ctx := context.Background()
	ref, evs := referenceTree(t, db)
	n := int64(len(evs))
	head, err := db.TreeHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if head.Size != n || head.Root != ref.root(t, n) {
		t.Fatalf("TreeHead = %d %s, want %d %s", head.Size, head.Root, n, ref.root(t, n))
	}
	leaves, err := db.StoredLeaves(ctx, 0, 100000)
	if err != nil || int64(len(leaves)) != n {
		t.Fatalf("StoredLeaves: %d, %v", len(leaves), err)
	}
	for i, l := range leaves {
		want, _ := servicedb.LeafHash(evs[i].Hash)
		if l.Seq != evs[i].Seq || l.Hash != want {
			t.Fatalf("stored leaf %d = %d %s, want %d %s", i, l.Seq, l.Hash, evs[i].Seq, want)
		}
	}
	for size := int64(1); size <= n; size++ {
		root := ref.root(t, size)
		if got, err := db.TreeHash(ctx, size); err != nil || got != root {
			t.Fatalf("TreeHash(%d) = %s, %v, want %s", size, got, err, root)
		}
		for _, seq := range []int64{1, size, 1 + size/2} {
			p, err := db.ProveRecord(ctx, seq, size)
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := servicedb.LeafHash(evs[seq-1].Hash)
			if err := tlog.CheckRecord(p, size, root, seq-1, leaf); err != nil {
				t.Fatalf("record %d in tree %d: %v", seq, size, err)
			}
		}
		old := 1 + size/3
		p, err := db.ProveTree(ctx, size, old)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(p, size, root, old, ref.root(t, old)); err != nil {
			t.Fatalf("tree %d in tree %d: %v", old, size, err)
		}
	}
}

func TestAuditTree(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		if h, err := db.TreeHead(context.Background()); err != nil || h.Size != 0 || h.HeadHash != servicedb.GenesisHash {
			t.Fatalf("empty TreeHead = %+v, %v", h, err)
		}
		appendN(t, db, 37)
		// Concurrent appends share transactions: the tree follows the
		// batches too.
		appendConcurrently(t, []*servicedb.DB{db}, 40)
		checkTree(t, db)
	})
}

// Two handles stand for two services processes: each one's cached frontier
// goes stale when the other appends.
func TestAuditTreeTwoHandles(t *testing.T) {
	eachEngineURL(t, func(t *testing.T, e servicedbtest.EngineURL) {
		a, b := openDB(t, e.URL), openDB(t, e.URL)
		for i := range 9 {
			for _, db := range []*servicedb.DB{a, b, b} {
				if _, err := db.Append(context.Background(), sampleEvent(i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		appendConcurrently(t, []*servicedb.DB{a, b}, 30)
		checkTree(t, a)
	})
}

// A trail written before the tree existed (here: the tree rows removed) is
// brought up to date by Migrate, and an append catches up by itself.
func TestAuditTreeCatchUp(t *testing.T) {
	eachEngineURL(t, func(t *testing.T, e servicedbtest.EngineURL) {
		db := openDB(t, e.URL)
		appendN(t, db, 25)
		dropTreeTriggers(t, db)
		mustExec(t, db, "DELETE FROM audit_tree WHERE seq > 3")
		if err := db.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		checkTree(t, db)

		mustExec(t, db, "DELETE FROM audit_tree WHERE seq > 11")
		other := openDB(t, e.URL) // no cached frontier: reads the tree back
		if _, err := other.Append(context.Background(), sampleEvent(99)); err != nil {
			t.Fatal(err)
		}
		checkTree(t, db)
	})
}

// Records cut from the end while their tree rows stay: appends refuse to
// build on a trail that lost witnessed records.
func TestAuditTreeAheadOfTrail(t *testing.T) {
	eachEngineURL(t, func(t *testing.T, e servicedbtest.EngineURL) {
		db := openDB(t, e.URL)
		appendN(t, db, 6)
		dropAuditTriggers(t, db)
		mustExec(t, db, "DELETE FROM audit_events WHERE seq > 4")
		fresh := openDB(t, e.URL)
		_, err := fresh.Append(context.Background(), sampleEvent(1))
		wantCode(t, err, depot.CodeUnavailable)
		if !strings.Contains(err.Error(), "removed from the end") {
			t.Fatalf("error %v does not say records were removed", err)
		}
	})
}

func TestAuditTreeIsAppendOnly(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		appendN(t, db, 2)
		for _, stmt := range []string{"UPDATE audit_tree SET hashes = hashes WHERE seq = 1", "DELETE FROM audit_tree WHERE seq = 2"} {
			if _, err := db.SQL().ExecContext(context.Background(), stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: %v, want the append-only trigger to refuse it", stmt, err)
			}
		}
	})
}

// A fuzz-like check of the frontier bookkeeping over many sizes: appends in
// batches of random size from one handle, compared with the reference after
// each batch.
func TestAuditTreeRandomBatches(t *testing.T) {
	eachEngineURL(t, func(t *testing.T, e servicedbtest.EngineURL) {
		if e.Engine == servicedbtest.Postgres && testing.Short() {
			t.Skip("short")
		}
		db := openDB(t, e.URL)
		r := rand.New(rand.NewPCG(1, 2))
		for range 6 {
			appendConcurrently(t, []*servicedb.DB{db}, 1+r.IntN(24))
			ref, evs := referenceTree(t, db)
			head, err := db.TreeHead(context.Background())
			if err != nil || head.Root != ref.root(t, int64(len(evs))) {
				t.Fatalf("after %d records: root %s, %v, want %s", len(evs), head.Root, err, ref.root(t, int64(len(evs))))
			}
		}
	})
}

// dropTreeTriggers removes audit_tree's append-only triggers.
func dropTreeTriggers(t *testing.T, db *servicedb.DB) {
	t.Helper()
	stmts := []string{"DROP TRIGGER audit_tree_no_update", "DROP TRIGGER audit_tree_no_delete"}
	if db.Engine() == servicedb.EnginePostgres {
		stmts = []string{"DROP TRIGGER audit_tree_append_only ON audit_tree", "DROP TRIGGER audit_tree_no_truncate ON audit_tree"}
	}
	for _, s := range stmts {
		mustExec(t, db, s)
	}
}

// TestSyncTreeBesideAppends: another process appending while SyncTree runs
// (as `depot audit show` migrating beside a running services process) is
// never mistaken for a tree longer than the trail. SyncTree once read the
// trail's length before taking the append lock, and an append that
// committed in between made it report the trail as cut.
func TestSyncTreeBesideAppends(t *testing.T) {
	eachEngineURL(t, func(t *testing.T, e servicedbtest.EngineURL) {
		writer, syncer := openDB(t, e.URL), openDB(t, e.URL)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 300 {
				if _, err := writer.Append(t.Context(), sampleEvent(i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
		for n := 0; ; n++ {
			select {
			case <-done:
				if n == 0 {
					t.Log("the appends ended before the first sync")
				}
				verifyOK(t, syncer, 300)
				return
			default:
			}
			if err := syncer.SyncTree(t.Context()); err != nil {
				t.Errorf("SyncTree beside appends (pass %d): %v", n, err)
				<-done
				return
			}
		}
	})
}
