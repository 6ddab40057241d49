package servicedb_test

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
)

func TestFileRecords(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		now := time.Date(2025, 5, 5, 5, 5, 5, 555_000_000, time.UTC)
		db.Now = func() time.Time { return now }
		due := now.Add(48 * time.Hour)
		rec := servicedb.FileRecord{Key: "c1/raw/a.csv", Cohort: "c1", Size: 42, SHA256: "ab12",
			Class: depot.Temporary, CleanupScheduledFor: &due, UploadedBy: "alice"}
		if err := db.PutFile(ctx, rec); err != nil {
			t.Fatalf("PutFile: %v", err)
		}
		got, err := db.GetFile(ctx, rec.Key)
		rec.Created, rec.Updated = now, now
		if err != nil || !reflect.DeepEqual(got, rec) {
			t.Fatalf("GetFile = %+v, %v\nwant %+v", got, err, rec)
		}

		// Upsert: new state, Created kept.
		later := now.Add(time.Hour)
		db.Now = func() time.Time { return later }
		rec2 := servicedb.FileRecord{Key: rec.Key, Cohort: "c1", Size: 43, SHA256: "cd34", Class: depot.Permanent,
			LastVerified: &later, UploadedBy: "bob"}
		if err := db.PutFile(ctx, rec2); err != nil {
			t.Fatalf("PutFile update: %v", err)
		}
		got, err = db.GetFile(ctx, rec.Key)
		rec2.Created, rec2.Updated = now, later
		if err != nil || !reflect.DeepEqual(got, rec2) {
			t.Fatalf("GetFile after update = %+v, %v\nwant %+v", got, err, rec2)
		}

		// Refusals.
		wantCode(t, db.PutFile(ctx, servicedb.FileRecord{Key: "../x", Cohort: "c1"}), depot.CodeInvalidPath)
		wantCode(t, db.PutFile(ctx, servicedb.FileRecord{Key: "c1/x", Class: "forever"}), depot.CodeInvalid)
		wantCode(t, db.PutFile(ctx, servicedb.FileRecord{Key: "c1/x", Size: -1}), depot.CodeInvalid)
		wantCode(t, db.PutFile(ctx, servicedb.FileRecord{Key: "c1/x", Class: depot.Permanent, CleanupScheduledFor: &due}), depot.CodeInvalid)

		if err := db.DeleteFile(ctx, rec.Key); err != nil {
			t.Fatalf("DeleteFile: %v", err)
		}
		_, err = db.GetFile(ctx, rec.Key)
		wantCode(t, err, depot.CodeNotFound)
		wantCode(t, db.DeleteFile(ctx, rec.Key), depot.CodeNotFound)
	})
}

func TestListFiles(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		put := func(key, cohort string, temp bool, dueHours int) {
			t.Helper()
			rec := servicedb.FileRecord{Key: key, Cohort: cohort, Size: 1, Class: depot.Permanent}
			if temp {
				rec.Class = depot.Temporary
				if dueHours >= 0 {
					due := base.Add(time.Duration(dueHours) * time.Hour)
					rec.CleanupScheduledFor = &due
				}
			}
			if err := db.PutFile(ctx, rec); err != nil {
				t.Fatalf("PutFile(%s): %v", key, err)
			}
		}
		put("c1/b.csv", "c1", false, 0)
		put("c1/a.csv", "c1", true, 1)
		put("c1/a_/z.csv", "c1", true, 5)
		put("c1/tmp/t.csv", "c1", true, -1) // temporary, no cleanup time
		put("c2/a.csv", "c2", true, 2)
		put("C1/a.csv", "C1", false, 0)
		keys := func(f servicedb.FileFilter) string {
			t.Helper()
			recs, err := db.ListFiles(ctx, f)
			if err != nil {
				t.Fatalf("ListFiles(%+v): %v", f, err)
			}
			s := ""
			for _, r := range recs {
				s += r.Key + " "
			}
			return s
		}
		for _, tc := range []struct {
			f    servicedb.FileFilter
			want string
		}{
			{servicedb.FileFilter{}, "C1/a.csv c1/a.csv c1/a_/z.csv c1/b.csv c1/tmp/t.csv c2/a.csv "},
			{servicedb.FileFilter{Cohort: "c1"}, "c1/a.csv c1/a_/z.csv c1/b.csv c1/tmp/t.csv "},
			{servicedb.FileFilter{KeyPrefix: "c1/a"}, "c1/a.csv c1/a_/z.csv "},
			{servicedb.FileFilter{Class: depot.Permanent}, "C1/a.csv c1/b.csv "},
			{servicedb.FileFilter{DueBefore: base.Add(2 * time.Hour)}, "c1/a.csv c2/a.csv "},
			{servicedb.FileFilter{DueBefore: base.Add(100 * time.Hour), Cohort: "c1"}, "c1/a.csv c1/a_/z.csv "},
			{servicedb.FileFilter{Limit: 2}, "C1/a.csv c1/a.csv "},
			{servicedb.FileFilter{After: "c1/a.csv", Limit: 2}, "c1/a_/z.csv c1/b.csv "},
		} {
			if got := keys(tc.f); got != tc.want {
				t.Errorf("ListFiles(%+v) = %q, want %q", tc.f, got, tc.want)
			}
		}
		// Paging visits every record once.
		var seen []string
		f := servicedb.FileFilter{Limit: 4}
		for {
			recs, err := db.ListFiles(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				seen = append(seen, r.Key)
			}
			if len(recs) < f.Limit {
				break
			}
			f.After = recs[len(recs)-1].Key
		}
		if fmt.Sprint(seen) != "[C1/a.csv c1/a.csv c1/a_/z.csv c1/b.csv c1/tmp/t.csv c2/a.csv]" {
			t.Fatalf("paged = %v", seen)
		}
	})
}

// TestAppendWithFile checks that the record of a committed upload and the
// file's state are written together, and neither when the state cannot be:
// refused before the transaction (an invalid record) or failing inside it
// (a trigger raises for one key). Concurrent neighbours in the same batch
// are written all the same.
func TestAppendWithFile(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		if db.Engine() == servicedb.EnginePostgres {
			mustExec(t, db, `CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN
					IF NEW.storage_key = 'c1/boom.csv' THEN RAISE EXCEPTION 'boom'; END IF;
					RETURN NEW;
				END $$`)
			mustExec(t, db, `CREATE TRIGGER refuse_boom BEFORE INSERT ON files
				FOR EACH ROW EXECUTE FUNCTION refuse_boom()`)
		} else {
			mustExec(t, db, `CREATE TRIGGER refuse_boom BEFORE INSERT ON files
				WHEN NEW.storage_key = 'c1/boom.csv' BEGIN SELECT RAISE(ABORT, 'boom'); END`)
		}
		completed := func(key string) depot.AuditEvent {
			ev := sampleEvent(1)
			ev.Action, ev.Outcome, ev.Key = depot.ActionUploadCompleted, depot.OutcomeSuccess, key
			return ev
		}
		file := func(key string) servicedb.FileRecord {
			return servicedb.FileRecord{Key: key, Cohort: "c1", Size: 7, SHA256: "ab", UploadedBy: "alice"}
		}

		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			key := fmt.Sprintf("c1/ok-%d.csv", i)
			if i == 3 {
				key = "c1/boom.csv"
			}
			wg.Go(func() {
				ev, err := db.AppendWithFile(ctx, completed(key), file(key))
				if err == nil && (ev.Seq == 0 || ev.Key != key) {
					err = fmt.Errorf("stored record %+v", ev)
				}
				errs[i] = err
			})
		}
		wg.Wait()
		for i, err := range errs {
			if i == 3 {
				wantCode(t, err, depot.CodeUnavailable)
				continue
			}
			if err != nil {
				t.Fatalf("AppendWithFile %d: %v", i, err)
			}
			if _, err := db.GetFile(ctx, fmt.Sprintf("c1/ok-%d.csv", i)); err != nil {
				t.Fatalf("GetFile %d: %v", i, err)
			}
		}
		_, err := db.AppendWithFile(ctx, completed("c1/bad.csv"), servicedb.FileRecord{Key: "c1/bad.csv", Size: -1})
		wantCode(t, err, depot.CodeInvalid)

		_, err = db.GetFile(ctx, "c1/boom.csv")
		wantCode(t, err, depot.CodeNotFound)
		evs, err := db.Events(ctx, servicedb.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			if ev.Key == "c1/boom.csv" || ev.Key == "c1/bad.csv" {
				t.Errorf("record of %s written although its file state was not", ev.Key)
			}
		}
		verifyOK(t, db, 7)
	})
}
