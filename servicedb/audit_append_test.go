package servicedb_test

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
)

func TestAppendAndEvents(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		stored := appendN(t, db, 5)
		for i, ev := range stored {
			if ev.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d", i, ev.Seq)
			}
			if i == 0 && ev.PrevHash != servicedb.GenesisHash {
				t.Fatalf("first prev_hash = %q", ev.PrevHash)
			}
			if i > 0 && ev.PrevHash != stored[i-1].Hash {
				t.Fatalf("event %d prev_hash does not link", i)
			}
			if ev.Hash != servicedb.Hash(ev) || len(ev.Hash) != 64 {
				t.Fatalf("event %d hash %q", i, ev.Hash)
			}
		}
		got, err := db.Events(ctx, servicedb.Filter{})
		if err != nil {
			t.Fatalf("Events: %v", err)
		}
		if !reflect.DeepEqual(got, stored) {
			t.Fatalf("Events round trip:\n got %+v\nwant %+v", got[0], stored[0])
		}
		// A minimal event: zero time becomes now, nil pointers stay nil.
		now := time.Date(2025, 6, 1, 8, 0, 0, 987_654_321, time.FixedZone("x", 3600))
		db.Now = func() time.Time { return now }
		ev, err := db.Append(ctx, depot.AuditEvent{Action: depot.ActionAuthFailed, Outcome: depot.OutcomeDenied,
			ClientIP: "198.51.100.1", DeclaredSize: -1, StoredSize: -1, Metadata: map[string]string{}})
		if err != nil {
			t.Fatalf("Append minimal: %v", err)
		}
		if want := time.UnixMilli(now.UnixMilli()).UTC(); !ev.Time.Equal(want) || ev.Time.Location() != time.UTC {
			t.Fatalf("time = %v, want %v in UTC", ev.Time, want)
		}
		last, err := db.Events(ctx, servicedb.Filter{AfterSeq: 5})
		if err != nil || len(last) != 1 || !reflect.DeepEqual(last[0], ev) {
			t.Fatalf("Events after 5 = %+v, %v; want %+v", last, err, ev)
		}
		verifyOK(t, db, 6)
		if seq, hash, err := db.Head(ctx); err != nil || seq != 6 || hash != ev.Hash {
			t.Fatalf("Head = %d %q %v", seq, hash, err)
		}
	})
}

func TestEventsFilter(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		add := func(i int, action depot.Action, actor, cohort, key string) {
			_, err := db.Append(ctx, depot.AuditEvent{Time: base.Add(time.Duration(i) * time.Hour),
				Action: action, Outcome: depot.OutcomeSuccess, Actor: actor, Cohort: cohort, Key: key,
				CorrelationID: "corr-" + key, UploadID: "up-" + key})
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
		}
		add(0, depot.ActionUploadCompleted, "alice", "c1", "c1/a/x.csv")
		add(1, depot.ActionDownload, "bob", "c1", "c1/a/y.csv")
		add(2, depot.ActionDownload, "alice", "c2", "c2/a/x.csv")
		add(3, depot.ActionDelete, "alice", "c1", "c1/b/z.csv")
		add(4, depot.ActionList, "bob", "c1", "c1/a_/w.csv") // '_' is not a wildcard
		add(5, depot.ActionList, "bob", "c1", "C1/a/upper.csv")
		seqs := func(f servicedb.Filter) string {
			t.Helper()
			evs, err := db.Events(ctx, f)
			if err != nil {
				t.Fatalf("Events(%+v): %v", f, err)
			}
			var b strings.Builder
			for _, ev := range evs {
				b.WriteByte(byte('0' + ev.Seq))
			}
			return b.String()
		}
		for _, tc := range []struct {
			f    servicedb.Filter
			want string
		}{
			{servicedb.Filter{}, "123456"},
			{servicedb.Filter{Cohort: "c1"}, "12456"},
			{servicedb.Filter{Actor: "alice"}, "134"},
			{servicedb.Filter{Action: depot.ActionDownload}, "23"},
			{servicedb.Filter{KeyPrefix: "c1/a/"}, "12"},
			{servicedb.Filter{KeyPrefix: "c1/a"}, "125"},
			{servicedb.Filter{KeyPrefix: "c1/"}, "1245"},
			{servicedb.Filter{UploadID: "up-c1/b/z.csv"}, "4"},
			{servicedb.Filter{CorrelationID: "corr-c2/a/x.csv"}, "3"},
			{servicedb.Filter{Since: base.Add(2 * time.Hour)}, "3456"},
			{servicedb.Filter{Until: base.Add(2 * time.Hour)}, "12"},
			{servicedb.Filter{Since: base.Add(time.Hour), Until: base.Add(4 * time.Hour), Actor: "alice"}, "34"},
			{servicedb.Filter{AfterSeq: 2, Limit: 2}, "34"},
			{servicedb.Filter{Cohort: "c1", AfterSeq: 4}, "56"},
		} {
			if got := seqs(tc.f); got != tc.want {
				t.Errorf("Events(%+v) = %s, want %s", tc.f, got, tc.want)
			}
		}
	})
}

func TestAppendEveryActionAndRefuseOthers(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		for _, a := range depot.Actions {
			if _, err := db.Append(ctx, depot.AuditEvent{Action: a, Outcome: depot.OutcomeSuccess}); err != nil {
				t.Fatalf("Append(%s): %v", a, err)
			}
		}
		_, err := db.Append(ctx, depot.AuditEvent{Action: "file.shred", Outcome: depot.OutcomeSuccess})
		wantCode(t, err, depot.CodeInvalid)
		_, err = db.Append(ctx, depot.AuditEvent{Action: depot.ActionList, Outcome: "maybe"})
		wantCode(t, err, depot.CodeInvalid)
		_, err = db.Append(ctx, depot.AuditEvent{Action: depot.ActionList, Outcome: depot.OutcomeSuccess, FileClass: "forever"})
		wantCode(t, err, depot.CodeInvalid)

		// The database itself refuses an action outside the closed set.
		n := int64(len(depot.Actions))
		_, err = db.SQL().ExecContext(ctx, `INSERT INTO audit_events (seq, time_ms, action, outcome, prev_hash, hash)
			VALUES ($1, 0, 'file.shred', 'success', $2, $3)`, n+1, servicedb.GenesisHash, strings.Repeat("a", 64))
		if err == nil {
			t.Fatal("database accepted an action outside depot.Actions")
		}
		verifyOK(t, db, n)
	})
}

func TestAppendSanitisesStrings(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		ev, err := db.Append(ctx, depot.AuditEvent{Action: depot.ActionUploadFailed, Outcome: depot.OutcomeFailure,
			FileName: "bad\xffname\x00.csv", UserAgent: strings.Repeat("é", 5000),
			Metadata: map[string]string{"k\x00": "v\xfe"}})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if ev.FileName != "bad\uFFFDname\uFFFD.csv" || len(ev.UserAgent) > 4096 || !strings.HasPrefix(ev.UserAgent, "éé") {
			t.Fatalf("not sanitised: %q, %d bytes of user agent", ev.FileName, len(ev.UserAgent))
		}
		got, err := db.Events(ctx, servicedb.Filter{})
		if err != nil || len(got) != 1 || !reflect.DeepEqual(got[0], ev) {
			t.Fatalf("Events = %+v, %v", got, err)
		}
		verifyOK(t, db, 1)
	})
}

func TestAuditTableIsAppendOnly(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := context.Background()
		appendN(t, db, 3)
		refused := []string{
			"UPDATE audit_events SET actor = 'mallory' WHERE seq = 2",
			"UPDATE audit_events SET actor = 'mallory'",
			"DELETE FROM audit_events WHERE seq = 3",
			"DELETE FROM audit_events",
		}
		if db.Engine() == servicedb.EnginePostgres {
			refused = append(refused, "TRUNCATE audit_events")
		}
		for _, q := range refused {
			if _, err := db.SQL().ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: err = %v, want refusal by trigger", q, err)
			}
		}
		verifyOK(t, db, 3)
	})
}
