package servicedb_test

import (
	"context"
	"testing"

	"depot"
	"depot/servicedb"
)

// Each case tampers with a trail of 10 records after dropping the triggers,
// and VerifyChain must name the problem and the first bad record.
func TestVerifyChainDetectsTampering(t *testing.T) {
	cases := []struct {
		name    string
		tamper  func(t *testing.T, db *servicedb.DB)
		problem string
		first   int64
	}{
		{"change a field", func(t *testing.T, db *servicedb.DB) {
			mustExec(t, db, "UPDATE audit_events SET bytes_transferred = 999999 WHERE seq = 4")
		}, servicedb.ProblemModified, 4},
		{"change the file name", func(t *testing.T, db *servicedb.DB) {
			mustExec(t, db, "UPDATE audit_events SET file_name = 'innocent.csv' WHERE seq = 1")
		}, servicedb.ProblemModified, 1},
		{"change metadata", func(t *testing.T, db *servicedb.DB) {
			mustExec(t, db, `UPDATE audit_events SET metadata = '{"format":"csv","rows":"0"}' WHERE seq = 10`)
		}, servicedb.ProblemModified, 10},
		{"change a field and re-hash it", func(t *testing.T, db *servicedb.DB) {
			ev := eventAt(t, db, 6)
			ev.Actor = "mallory"
			ev.Hash = servicedb.Hash(ev)
			mustExec(t, db, "DELETE FROM audit_events WHERE seq = 6")
			rawInsert(t, db, ev)
		}, servicedb.ProblemModified, 6},
		{"delete a row", func(t *testing.T, db *servicedb.DB) {
			mustExec(t, db, "DELETE FROM audit_events WHERE seq = 4")
		}, servicedb.ProblemDeleted, 4},
		{"delete a row and renumber the rest", func(t *testing.T, db *servicedb.DB) {
			mustExec(t, db, "DELETE FROM audit_events WHERE seq = 3")
			renumber(t, db, 3, -1)
		}, servicedb.ProblemDeleted, 3},
		{"swap two rows", func(t *testing.T, db *servicedb.DB) {
			swap(t, db, 3, 7)
		}, servicedb.ProblemReordered, 3},
		{"swap two adjacent rows", func(t *testing.T, db *servicedb.DB) {
			swap(t, db, 5, 6)
		}, servicedb.ProblemReordered, 5},
		{"insert a forged row", func(t *testing.T, db *servicedb.DB) {
			// Make room after record 5 and insert a record that links to
			// it and carries a correctly computed hash.
			prev := eventAt(t, db, 5)
			renumber(t, db, 6, +1)
			forged := sampleEvent(99)
			forged.Seq, forged.PrevHash = 6, prev.Hash
			forged.Time = prev.Time
			forged.Hash = servicedb.Hash(forged)
			rawInsert(t, db, forged)
		}, servicedb.ProblemInserted, 6},
		{"append a forged row with a bad link", func(t *testing.T, db *servicedb.DB) {
			forged := sampleEvent(99)
			forged.Seq, forged.PrevHash = 11, eventAt(t, db, 9).Hash
			forged.Hash = servicedb.Hash(forged)
			rawInsert(t, db, forged)
		}, servicedb.ProblemInserted, 11},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			eachEngine(t, func(t *testing.T, db *servicedb.DB) {
				appendN(t, db, 10)
				verifyOK(t, db, 10)
				dropAuditTriggers(t, db)
				tc.tamper(t, db)
				r, err := db.VerifyChain(context.Background())
				if err != nil {
					t.Fatalf("VerifyChain: %v", err)
				}
				if r.OK || r.Problem != tc.problem || r.FirstBad != tc.first {
					t.Fatalf("VerifyChain = %+v, want %s at %d", r, tc.problem, tc.first)
				}
				t.Logf("%s: %s", tc.name, r.Detail)
			})
		})
	}
}

func TestVerifyChainEmpty(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		r := verifyOK(t, db, 0)
		if r.LastHash != servicedb.GenesisHash {
			t.Fatalf("empty chain head = %q", r.LastHash)
		}
	})
}

// eventAt reads the record at seq.
func eventAt(t *testing.T, db *servicedb.DB, seq int64) depot.AuditEvent {
	t.Helper()
	evs, err := db.Events(context.Background(), servicedb.Filter{AfterSeq: seq - 1, Limit: 1})
	if err != nil || len(evs) != 1 || evs[0].Seq != seq {
		t.Fatalf("read record %d: %v %+v", seq, err, evs)
	}
	return evs[0]
}

// renumber adds delta to the seq of every record from seq on, in two steps
// so that no intermediate value collides.
func renumber(t *testing.T, db *servicedb.DB, from, delta int64) {
	t.Helper()
	mustExec(t, db, "UPDATE audit_events SET seq = seq + 1000000 WHERE seq >= $1", from)
	mustExec(t, db, "UPDATE audit_events SET seq = seq - 1000000 + $1 WHERE seq >= 1000000", delta)
}

// swap exchanges the content (everything but seq) of records a and b.
func swap(t *testing.T, db *servicedb.DB, a, b int64) {
	t.Helper()
	ea, eb := eventAt(t, db, a), eventAt(t, db, b)
	mustExec(t, db, "DELETE FROM audit_events WHERE seq IN ($1, $2)", a, b)
	ea.Seq, eb.Seq = b, a
	rawInsert(t, db, eb)
	rawInsert(t, db, ea)
}
