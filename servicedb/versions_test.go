package servicedb_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
	"depot/storage"
	"depot/storage/storagetest"
)

// TestSessionsConformance runs the storage.Sessions suite on both engines.
func TestSessionsConformance(t *testing.T) {
	eachEngineURL(t, func(t *testing.T, e servicedbtest.EngineURL) {
		storagetest.RunSessionsTests(t, func(t *testing.T) storage.Sessions {
			if e.Engine == servicedbtest.Postgres {
				return openDB(t, servicedbtest.PostgresURL(t))
			}
			return openDB(t, servicedbtest.SQLiteURL(t))
		})
	})
}

func shaOf(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

// commitEvent is the audit record of a commit of key.
func commitEvent(key string) depot.AuditEvent {
	cohort, _, _ := strings.Cut(key, "/")
	return depot.AuditEvent{Action: depot.ActionUploadCompleted, Outcome: depot.OutcomeSuccess, Actor: "alice",
		Cohort: cohort, Key: key, DeclaredSize: -1, StoredSize: -1}
}

// commit records a new version of key with content body.
func commit(t *testing.T, db *servicedb.DB, key, body string, c servicedb.Commit) (servicedb.Version, error) {
	t.Helper()
	cohort, _, _ := strings.Cut(key, "/")
	c.Version = servicedb.Version{ID: storage.NewID(), Key: key, Cohort: cohort, Size: int64(len(body)),
		SHA256: shaOf(body), Class: depot.Permanent, UploadedBy: "alice"}
	if c.Version.Class == "" {
		c.Version.Class = depot.Permanent
	}
	_, err := db.AppendWith(t.Context(), commitEvent(key), servicedb.CommitVersion(c))
	return c.Version, err
}

func mustCommit(t *testing.T, db *servicedb.DB, key, body string) servicedb.Version {
	t.Helper()
	v, err := commit(t, db, key, body, servicedb.Commit{MayChangeClass: true})
	if err != nil {
		t.Fatalf("commit %s: %v", key, err)
	}
	return v
}

func current(t *testing.T, db *servicedb.DB, key string) servicedb.Version {
	t.Helper()
	v, err := db.Current(t.Context(), key)
	if err != nil {
		t.Fatalf("Current(%s): %v", key, err)
	}
	return v
}

func TestVersionsKeepHistory(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := t.Context()
		v1 := mustCommit(t, db, "c1/a.csv", "one")
		v2 := mustCommit(t, db, "c1/a.csv", "two")
		mustCommit(t, db, "c1/b.csv", "bee")
		if got := current(t, db, "c1/a.csv"); got.ID != v2.ID || got.SHA256 != shaOf("two") || got.Created.IsZero() {
			t.Fatalf("current = %+v, want %s", got, v2.ID)
		}
		p, vs, err := db.History(ctx, "c1/a.csv")
		if err != nil || p.Current != v2.ID || len(vs) != 2 || vs[0].ID != v2.ID || vs[1].ID != v1.ID {
			t.Fatalf("History = %+v, %+v, %v; want v2 then v1", p, vs, err)
		}
		list, err := db.ListCurrent(ctx, "c1/", "", 10)
		if err != nil || len(list) != 2 || list[0].Key != "c1/a.csv" || list[0].ID != v2.ID || list[1].Key != "c1/b.csv" {
			t.Fatalf("ListCurrent = %+v, %v", list, err)
		}
		if ok, err := db.Referenced(ctx, v1.ID); err != nil || !ok {
			t.Errorf("Referenced(old version) = %v, %v", ok, err)
		}
		if ok, err := db.Referenced(ctx, storage.NewID()); err != nil || ok {
			t.Errorf("Referenced(unknown) = %v, %v", ok, err)
		}
		evs, err := db.Events(ctx, servicedb.Filter{Action: depot.ActionUploadCompleted})
		if err != nil || len(evs) != 3 {
			t.Errorf("%d commit records, %v; want 3", len(evs), err)
		}
	})
}

func TestCommitConditions(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		v1 := mustCommit(t, db, "c1/a.csv", "one")
		for _, tc := range []struct {
			name string
			c    servicedb.Commit
			ok   bool
		}{
			{"create-only over a file", servicedb.Commit{IfNoneMatch: "*"}, false},
			{"if-match of another tag", servicedb.Commit{IfMatch: `"` + shaOf("other") + `"`}, false},
			{"if-match of the current tag", servicedb.Commit{IfMatch: `"` + v1.SHA256 + `"`}, true},
			{"if-match of the old tag", servicedb.Commit{IfMatch: `"` + v1.SHA256 + `"`}, false},
			{"if-match any", servicedb.Commit{IfMatch: "*"}, true},
		} {
			_, err := commit(t, db, "c1/a.csv", tc.name, tc.c)
			if tc.ok && err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			if !tc.ok && depot.ErrorCode(err) != depot.CodePrecondition {
				t.Errorf("%s: %v, want precondition_failed", tc.name, err)
			}
		}
		if _, err := commit(t, db, "c1/new.csv", "x", servicedb.Commit{IfMatch: "*"}); depot.ErrorCode(err) != depot.CodePrecondition {
			t.Errorf("if-match any on a new path: %v, want precondition_failed", err)
		}
		if _, err := commit(t, db, "c1/new.csv", "x", servicedb.Commit{IfNoneMatch: "*"}); err != nil {
			t.Errorf("create-only of a new path: %v", err)
		}
		evs, err := db.Events(t.Context(), servicedb.Filter{Action: depot.ActionUploadCompleted})
		if err != nil || len(evs) != 4 {
			t.Errorf("%d commit records, %v; want 4 (refused commits leave none)", len(evs), err)
		}
	})
}

// TestClassChangeNeedsManager: an uploader's upload of another class than
// the path's is refused in the commit's transaction, also over a deleted
// path (issue 21, the uploader case).
func TestClassChangeNeedsManager(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := t.Context()
		mustCommit(t, db, "c1/perm.csv", "keep")
		temp := servicedb.Commit{Version: servicedb.Version{ID: storage.NewID(), Key: "c1/perm.csv", Cohort: "c1",
			SHA256: shaOf(""), Class: depot.Temporary}}
		_, err := db.AppendWith(ctx, commitEvent("c1/perm.csv"), servicedb.CommitVersion(temp))
		wantCode(t, err, depot.CodeForbidden)
		if _, err := db.AppendWith(ctx, depot.AuditEvent{Action: depot.ActionDelete, Outcome: depot.OutcomeSuccess, DeclaredSize: -1},
			servicedb.MarkDeleted("c1/perm.csv", "manager")); err != nil {
			t.Fatal(err)
		}
		temp.Version.ID = storage.NewID()
		_, err = db.AppendWith(ctx, commitEvent("c1/perm.csv"), servicedb.CommitVersion(temp))
		wantCode(t, err, depot.CodeForbidden)
		temp.MayChangeClass = true
		if _, err := db.AppendWith(ctx, commitEvent("c1/perm.csv"), servicedb.CommitVersion(temp)); err != nil {
			t.Fatalf("a manager's class change: %v", err)
		}
	})
}

func event(action depot.Action) depot.AuditEvent {
	return depot.AuditEvent{Action: action, Outcome: depot.OutcomeSuccess, DeclaredSize: -1, StoredSize: -1}
}

func TestDeleteUndeleteRestorePurge(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := t.Context()
		v1 := mustCommit(t, db, "c1/a.csv", "one")
		v2 := mustCommit(t, db, "c1/a.csv", "two")
		if _, err := db.AppendWith(ctx, event(depot.ActionDelete), servicedb.MarkDeleted("c1/a.csv", "bob")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Current(ctx, "c1/a.csv"); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("Current after delete: %v, want not_found", err)
		}
		if list, _ := db.ListCurrent(ctx, "", "", 10); len(list) != 0 {
			t.Errorf("ListCurrent after delete = %+v", list)
		}
		_, err := db.AppendWith(ctx, event(depot.ActionDelete), servicedb.MarkDeleted("c1/a.csv", "bob"))
		wantCode(t, err, depot.CodeNotFound)
		p, vs, err := db.History(ctx, "c1/a.csv")
		if err != nil || p.Deleted == nil || p.DeletedBy != "bob" || len(vs) != 2 {
			t.Fatalf("History of a deleted path = %+v, %d versions, %v", p, len(vs), err)
		}
		if _, err := db.AppendWith(ctx, event(depot.ActionUndelete), servicedb.Undelete("c1/a.csv")); err != nil {
			t.Fatal(err)
		}
		if got := current(t, db, "c1/a.csv"); got.ID != v2.ID {
			t.Errorf("current after undelete = %s, want %s", got.ID, v2.ID)
		}
		_, err = db.AppendWith(ctx, event(depot.ActionUndelete), servicedb.Undelete("c1/a.csv"))
		wantCode(t, err, depot.CodeConflict)
		if _, err := db.AppendWith(ctx, event(depot.ActionRestoreVersion), servicedb.RestoreVersion("c1/a.csv", v1.ID)); err != nil {
			t.Fatal(err)
		}
		if got := current(t, db, "c1/a.csv"); got.ID != v1.ID {
			t.Errorf("current after restore = %s, want %s", got.ID, v1.ID)
		}
		_, err = db.AppendWith(ctx, event(depot.ActionRestoreVersion), servicedb.RestoreVersion("c1/other.csv", v1.ID))
		wantCode(t, err, depot.CodeNotFound)

		// A hold refuses purges; released, it does not.
		h := &servicedb.Hold{Cohort: "c1", Path: "c1/", Reason: "study", CreatedBy: "bob"}
		if _, err := db.AppendWith(ctx, event(depot.ActionHoldPlaced), servicedb.PlaceHold(h)); err != nil || h.ID == 0 {
			t.Fatalf("PlaceHold: %v (id %d)", err, h.ID)
		}
		var purged []servicedb.Version
		_, err = db.AppendWith(ctx, event(depot.ActionPurge), servicedb.Purge("c1/a.csv", v2.ID, &purged))
		wantCode(t, err, depot.CodeConflict)
		if held, err := db.Held(ctx, "c1/a.csv"); err != nil || !held {
			t.Errorf("Held = %v, %v", held, err)
		}
		if _, err := db.AppendWith(ctx, event(depot.ActionHoldReleased), servicedb.ReleaseHold("c1", h.ID, "bob")); err != nil {
			t.Fatal(err)
		}
		if _, err := db.AppendWith(ctx, event(depot.ActionPurge), servicedb.Purge("c1/a.csv", v1.ID, &purged)); err != nil {
			t.Fatal(err)
		}
		if len(purged) != 1 || purged[0].ID != v1.ID {
			t.Errorf("purged = %+v, want v1", purged)
		}
		if _, err := db.Current(ctx, "c1/a.csv"); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("Current after purging the current version: %v, want not_found", err)
		}
		if ok, _ := db.Referenced(ctx, v1.ID); ok {
			t.Error("a purged version is still referenced")
		}
		if _, err := db.AppendWith(ctx, event(depot.ActionPurge), servicedb.Purge("c1/a.csv", "", &purged)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Path(ctx, "c1/a.csv"); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("path left after purging every version: %v", err)
		}
		if v, err := db.Version(ctx, v2.ID); err != nil || v.Purged == nil {
			t.Errorf("purged version row = %+v, %v; want kept with a purge time", v, err)
		}
	})
}

// TestAuditFailureCommitsNothing injects a failure of the audit insert of
// upload.completed (a trigger, as the outside review did): the commit
// fails and the previous version stays current (issue 21, item 2).
func TestAuditFailureCommitsNothing(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := t.Context()
		v1 := mustCommit(t, db, "c1/a.csv", "one")
		refuseCommits(t, db)
		_, err := commit(t, db, "c1/a.csv", "two", servicedb.Commit{})
		wantCode(t, err, depot.CodeUnavailable)
		if got := current(t, db, "c1/a.csv"); got.ID != v1.ID {
			t.Errorf("current after a failed audit write = %s, want %s", got.ID, v1.ID)
		}
		_, vs, _ := db.History(ctx, "c1/a.csv")
		if len(vs) != 1 {
			t.Errorf("%d versions after a failed audit write, want 1", len(vs))
		}
	})
}

// refuseCommits makes the database refuse every upload.completed record.
func refuseCommits(t *testing.T, db *servicedb.DB) {
	t.Helper()
	var stmts []string
	if db.Engine() == servicedb.EnginePostgres {
		stmts = []string{
			`CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.action = 'upload.completed' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$`,
			`CREATE TRIGGER refuse_commit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_commit()`,
		}
	} else {
		stmts = []string{`CREATE TRIGGER refuse_commit BEFORE INSERT ON audit_events
			WHEN NEW.action = 'upload.completed' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`}
	}
	for _, s := range stmts {
		if _, err := db.SQL().ExecContext(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCommitRemovesTheSession(t *testing.T) {
	eachEngine(t, func(t *testing.T, db *servicedb.DB) {
		ctx := t.Context()
		now := time.Now().UTC().Truncate(time.Millisecond)
		s := storage.Session{Upload: depot.Upload{ID: storage.NewID(), Key: "c1/up.csv", Owner: "alice",
			DeclaredSize: 3, Class: depot.Permanent, Created: now, Updated: now, Resumable: true}}
		if err := db.CreateSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		if n, err := db.OpenUploads(ctx, "alice"); err != nil || n != 1 {
			t.Fatalf("OpenUploads = %d, %v", n, err)
		}
		c := servicedb.Commit{UploadID: s.ID, Version: servicedb.Version{ID: s.ID, Key: s.Key, Cohort: "c1", Size: 3,
			SHA256: shaOf("abc"), Class: depot.Permanent}}
		if _, err := db.AppendWith(ctx, commitEvent(s.Key), servicedb.CommitVersion(c)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Session(ctx, s.ID); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("session after commit: %v, want not_found", err)
		}
		// A session gone (expired) commits nothing.
		c.UploadID, c.Version.ID = storage.NewID(), storage.NewID()
		_, err := db.AppendWith(ctx, commitEvent(s.Key), servicedb.CommitVersion(c))
		wantCode(t, err, depot.CodeNotFound)
		if got := current(t, db, s.Key); got.ID != s.ID {
			t.Errorf("current = %s, want the committed session %s", got.ID, s.ID)
		}
	})
}
