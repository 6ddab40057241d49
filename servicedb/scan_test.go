package servicedb_test

import (
	"testing"

	"depot"
	"depot/servicedb"
	"depot/storage"
)

// A version's scan status is stored at commit; unscanned versions are listed
// for the rescan, which changes their status once, in the transaction of
// its file.scanned record (a second rescan of the same version refuses and
// writes no record).
func TestScanStatus(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := t.Context()
		for i, st := range []depot.ScanStatus{depot.ScanClean, depot.ScanUnscanned, "", depot.ScanUnscanned} {
			key := "c1/f" + string(rune('a'+i))
			v := servicedb.Version{ID: storage.NewID(), Key: key, Cohort: "c1", Size: 4, SHA256: shaOf("body"),
				Class: depot.Permanent, UploadedBy: "alice", Scan: st}
			if _, err := db.AppendWith(ctx, commitEvent(key), servicedb.CommitVersion(servicedb.Commit{Version: v})); err != nil {
				t.Fatal(err)
			}
		}
		vs, err := db.Unscanned(ctx, "", 10)
		if err != nil || len(vs) != 2 {
			t.Fatalf("unscanned: %d versions, %v; want 2", len(vs), err)
		}
		for _, v := range vs {
			if v.Scan != depot.ScanUnscanned || v.Object().Scan != depot.ScanUnscanned {
				t.Fatalf("listed %+v", v)
			}
		}
		ev := depot.AuditEvent{Action: depot.ActionFileScanned, Outcome: depot.OutcomeSuccess, Actor: "system", DeclaredSize: -1, StoredSize: -1}
		if _, err := db.AppendWith(ctx, ev, servicedb.SetScan(vs[0].ID, depot.ScanInfected)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AppendWith(ctx, ev, servicedb.SetScan(vs[0].ID, depot.ScanClean)); depot.ErrorCode(err) != depot.CodeConflict {
			t.Fatalf("second rescan: %v, want conflict", err)
		}
		got, err := db.Version(ctx, vs[0].ID)
		if err != nil || got.Scan != depot.ScanInfected {
			t.Fatalf("after the rescan: %+v %v", got, err)
		}
		recs, err := db.Events(ctx, servicedb.Filter{Action: depot.ActionFileScanned})
		if err != nil || len(recs) != 1 {
			t.Fatalf("%d file.scanned records, %v; want 1", len(recs), err)
		}
		if vs, _ := db.Unscanned(ctx, "", 10); len(vs) != 1 {
			t.Fatalf("still unscanned: %d, want 1", len(vs))
		}
	})
}
