package services

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"depot"
	"depot/storage"
)

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// TestVersionsAndHistory: every upload is a new version; old versions stay
// readable; a read of a given version is that version's bytes.
func TestVersionsAndHistory(t *testing.T) {
	eachEngine(t, func(t *testing.T, fx *fixture) {
		ctx := t.Context()
		v1, err := fx.put(ctx, "up", "c/a.csv", []byte("one"), "")
		if err != nil {
			t.Fatal(err)
		}
		v2, err := fx.put(ctx, "man", "c/a.csv", []byte("two!"), "")
		if err != nil {
			t.Fatal(err)
		}
		if v1.Version == v2.Version || v2.SHA256 != sum([]byte("two!")) || v2.UploadedBy != "man" {
			t.Fatalf("versions %+v, %+v", v1, v2)
		}
		if got := fx.read(t, "rd", "c/a.csv", ""); string(got) != "two!" {
			t.Errorf("current = %q", got)
		}
		if got := fx.read(t, "rd", "c/a.csv", v1.Version); string(got) != "one" {
			t.Errorf("version 1 = %q", got)
		}
		h, err := fx.core.History(ctx, fx.as("rd"), "c/a.csv")
		if err != nil || len(h.Versions) != 2 || h.Versions[0].Version != v2.Version || !h.Versions[0].Current || h.Versions[1].Current {
			t.Fatalf("History = %+v, %v", h, err)
		}
		if n := len(fx.records(t, depot.ActionUploadCompleted, "c/a.csv")); n != 2 {
			t.Errorf("%d upload.completed records, want 2", n)
		}
	})
}

// TestSessionUploadCommitsInLastChunk: an upload session's final chunk
// commits it in the same call; a retry of that chunk after a lost answer
// returns the same version.
func TestSessionUploadCommitsInLastChunk(t *testing.T) {
	eachEngine(t, func(t *testing.T, fx *fixture) {
		ctx := t.Context()
		data := bytes.Repeat([]byte("0123456789"), 30_000)
		u, err := fx.core.CreateUpload(ctx, fx.as("up"), UploadRequest{Key: "c/big.csv", Size: int64(len(data)), Resumable: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := fx.core.Append(ctx, fx.as("up"), u.ID, AppendRequest{Chunk: chunkOf(0, data[:100_000]), Size: -1}); err != nil {
			t.Fatal(err)
		}
		last := AppendRequest{Chunk: chunkOf(100_000, data[100_000:]), Complete: true, Size: int64(len(data))}
		_, obj, err := fx.core.Append(ctx, fx.as("up"), u.ID, last)
		if err != nil || obj == nil || obj.Version != u.ID || obj.SHA256 != sum(data) {
			t.Fatalf("final Append = %+v, %v", obj, err)
		}
		last.Chunk = chunkOf(100_000, data[100_000:])
		_, again, err := fx.core.Append(ctx, fx.as("up"), u.ID, last)
		if err != nil || again == nil || again.Version != obj.Version {
			t.Fatalf("retried final Append = %+v, %v; want the same version", again, err)
		}
		if got, err := fx.core.Upload(ctx, fx.as("up"), u.ID, true); err != nil || !got.Completed || got.Offset != int64(len(data)) {
			t.Fatalf("Upload after commit = %+v, %v", got, err)
		}
		if _, err := fx.core.Upload(ctx, fx.as("man"), u.ID, false); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("another user's upload: %v, want not_found", err)
		}
		if n := len(fx.records(t, depot.ActionUploadCompleted, "c/big.csv")); n != 1 {
			t.Errorf("%d upload.completed records, want 1", n)
		}
	})
}

// TestUploaderCannotDestroyPermanentVersions: an uploader cannot turn a
// manager's permanent file temporary (issue 21, item 3), before or after
// it is deleted; a manager can, and cleanup then removes only the
// temporary version: the permanent one stays.
func TestUploaderCannotDestroyPermanentVersions(t *testing.T) {
	eachEngine(t, func(t *testing.T, fx *fixture) {
		ctx := t.Context()
		perm, err := fx.put(ctx, "man", "c/perm.csv", []byte("precious"), depot.Permanent)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fx.put(ctx, "up", "c/perm.csv", nil, depot.Temporary); depot.ErrorCode(err) != depot.CodeForbidden {
			t.Fatalf("an uploader's temporary upload over a permanent file: %v, want forbidden", err)
		}
		if _, err := fx.core.CreateUpload(ctx, fx.as("up"), UploadRequest{Key: "c/perm.csv", Size: -1, Class: depot.Temporary}); depot.ErrorCode(err) != depot.CodeForbidden {
			t.Fatalf("an uploader's temporary session over a permanent file: %v, want forbidden", err)
		}
		if err := fx.core.Delete(ctx, fx.as("up"), "c/perm.csv"); depot.ErrorCode(err) != depot.CodeForbidden {
			t.Fatalf("an uploader's delete: %v, want forbidden", err)
		}
		if err := fx.core.Purge(ctx, fx.as("up"), "c/perm.csv", ""); depot.ErrorCode(err) != depot.CodeForbidden {
			t.Fatalf("an uploader's purge: %v, want forbidden", err)
		}
		if len(fx.records(t, depot.ActionAccessDenied, "c/perm.csv")) < 3 {
			t.Error("the refusals were not audited")
		}
		// An uploader may add permanent versions.
		if _, err := fx.put(ctx, "up", "c/perm.csv", []byte("newer"), depot.Permanent); err != nil {
			t.Fatal(err)
		}
		if _, err := fx.put(ctx, "man", "c/perm.csv", []byte("scratch"), depot.Temporary); err != nil {
			t.Fatalf("a manager's class change: %v", err)
		}
		if got := fx.read(t, "rd", "c/perm.csv", perm.Version); string(got) != "precious" {
			t.Fatalf("the first permanent version reads %q", got)
		}
	})
}

// TestConditionalUploads: If-None-Match: * creates only; If-Match updates
// only the version it names.
func TestConditionalUploads(t *testing.T) {
	eachEngine(t, func(t *testing.T, fx *fixture) {
		ctx := t.Context()
		put := func(body, ifMatch, ifNoneMatch string) error {
			_, err := fx.core.Put(ctx, fx.as("up"), PutRequest{Key: "c/x.csv", Chunk: chunkOf(0, []byte(body)), IfMatch: ifMatch, IfNoneMatch: ifNoneMatch})
			return err
		}
		if err := put("a", "", "*"); err != nil {
			t.Fatal(err)
		}
		if err := put("b", "", "*"); depot.ErrorCode(err) != depot.CodePrecondition {
			t.Errorf("create-only over a file: %v", err)
		}
		if err := put("c", `"`+sum([]byte("zzz"))+`"`, ""); depot.ErrorCode(err) != depot.CodePrecondition {
			t.Errorf("If-Match of another version: %v", err)
		}
		if err := put("d", `"`+sum([]byte("a"))+`"`, ""); err != nil {
			t.Errorf("If-Match of the current version: %v", err)
		}
		if got := fx.read(t, "rd", "c/x.csv", ""); string(got) != "d" {
			t.Errorf("current = %q", got)
		}
		if failed := fx.records(t, depot.ActionUploadFailed, "c/x.csv"); len(failed) != 2 || failed[0].ErrorCode != string(depot.CodePrecondition) {
			t.Errorf("failed uploads recorded: %+v", failed)
		}
	})
}

// TestAuditDownAtCommitKeepsPreviousVersion injects a failure of the
// audit insert of upload.completed: one-shot and session uploads get 503,
// the previous version stays current and readable, and a resumable
// session is never reported complete; once the audit trail is back, the
// session commits (issue 21, item 2).
func TestAuditDownAtCommitKeepsPreviousVersion(t *testing.T) {
	eachEngine(t, func(t *testing.T, fx *fixture) {
		ctx := t.Context()
		if _, err := fx.put(ctx, "up", "c/a.csv", []byte("acknowledged"), ""); err != nil {
			t.Fatal(err)
		}
		undo := refuseCommits(t, fx)
		if _, err := fx.put(ctx, "up", "c/a.csv", []byte("lost?"), ""); depot.ErrorCode(err) != depot.CodeUnavailable {
			t.Fatalf("one-shot upload with the audit trail down: %v, want unavailable", err)
		}
		data := bytes.Repeat([]byte("z"), 1000)
		u, err := fx.core.CreateUpload(ctx, fx.as("up"), UploadRequest{Key: "c/a.csv", Size: 1000, Resumable: true})
		if err != nil {
			t.Fatal(err)
		}
		_, obj, err := fx.core.Append(ctx, fx.as("up"), u.ID, AppendRequest{Chunk: chunkOf(0, data), Complete: true, Size: 1000})
		if depot.ErrorCode(err) != depot.CodeUnavailable || obj != nil {
			t.Fatalf("final chunk with the audit trail down: %+v, %v", obj, err)
		}
		if got := fx.read(t, "rd", "c/a.csv", ""); string(got) != "acknowledged" {
			t.Fatalf("current after failed commits = %q", got)
		}
		if st, err := fx.core.Upload(ctx, fx.as("up"), u.ID, false); err != nil || st.Completed {
			t.Fatalf("session after a failed commit = %+v, %v; want open, not completed", st, err)
		}
		if _, err := fx.core.Complete(ctx, fx.as("up"), u.ID, storage.Want{Size: 1000}); depot.ErrorCode(err) != depot.CodeUnavailable {
			t.Fatalf("completion with the audit trail still down: %v", err)
		}
		undo()
		got, err := fx.core.Complete(ctx, fx.as("up"), u.ID, storage.Want{Size: 1000})
		if err != nil || got.SHA256 != sum(data) {
			t.Fatalf("completion once the audit trail is back: %+v, %v", got, err)
		}
		if string(fx.read(t, "rd", "c/a.csv", "")) != string(data) {
			t.Fatal("the committed session is not current")
		}
		// The one-shot upload refused left no object behind.
		objs, err := fx.store.Objects(ctx, "", 10)
		if err != nil || len(objs) != 2 {
			t.Errorf("%d objects, %v; want the two committed versions", len(objs), err)
		}
	})
}

// refuseCommits makes the database refuse every upload.completed record
// until the returned function is called.
func refuseCommits(t *testing.T, fx *fixture) func() {
	t.Helper()
	ctx := context.Background()
	create := []string{`CREATE TRIGGER refuse_commit BEFORE INSERT ON audit_events
		WHEN NEW.action = 'upload.completed' BEGIN SELECT RAISE(ABORT, 'injected failure'); END`}
	drop := []string{`DROP TRIGGER refuse_commit`}
	if fx.db.Engine() == "postgres" {
		create = []string{`CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN IF NEW.action = 'upload.completed' THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $$`,
			`CREATE TRIGGER refuse_commit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_commit()`}
		drop = []string{`DROP TRIGGER refuse_commit ON audit_events`, `DROP FUNCTION refuse_commit()`}
	}
	for _, s := range create {
		if _, err := fx.db.SQL().ExecContext(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	return func() {
		for _, s := range drop {
			if _, err := fx.db.SQL().ExecContext(ctx, s); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestDeleteUndeletePurge: a delete hides the file and keeps its versions
// for a manager; undelete brings it back; a purge under a hold is refused.
func TestDeleteUndeletePurge(t *testing.T) {
	eachEngine(t, func(t *testing.T, fx *fixture) {
		ctx := t.Context()
		v, err := fx.put(ctx, "up", "c/d.csv", []byte("data"), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := fx.core.Delete(ctx, fx.as("man"), "c/d.csv"); err != nil {
			t.Fatal(err)
		}
		if _, err := fx.core.Stat(ctx, fx.as("rd"), "c/d.csv", ""); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("Stat after delete: %v", err)
		}
		if _, err := fx.core.History(ctx, fx.as("rd"), "c/d.csv"); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("a reader's history of a deleted file: %v, want not_found", err)
		}
		if h, err := fx.core.History(ctx, fx.as("man"), "c/d.csv"); err != nil || h.Deleted == nil || len(h.Versions) != 1 {
			t.Errorf("a manager's history of a deleted file = %+v, %v", h, err)
		}
		if _, err := fx.core.Undelete(ctx, fx.as("up"), "c/d.csv"); depot.ErrorCode(err) != depot.CodeForbidden {
			t.Errorf("an uploader's undelete: %v", err)
		}
		if obj, err := fx.core.Undelete(ctx, fx.as("man"), "c/d.csv"); err != nil || obj.Version != v.Version {
			t.Fatalf("undelete = %+v, %v", obj, err)
		}
		h, err := fx.core.PlaceHold(ctx, fx.as("man"), "c", "", "study")
		if err != nil {
			t.Fatal(err)
		}
		if err := fx.core.Purge(ctx, fx.as("man"), "c/d.csv", ""); depot.ErrorCode(err) != depot.CodeConflict {
			t.Fatalf("purge under a hold: %v, want conflict", err)
		}
		if err := fx.core.ReleaseHold(ctx, fx.as("man"), "c", h.ID); err != nil {
			t.Fatal(err)
		}
		if err := fx.core.Purge(ctx, fx.as("man"), "c/d.csv", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := fx.store.Stat(ctx, v.Version); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("the purged version's object: %v, want gone", err)
		}
		for _, a := range []depot.Action{depot.ActionDelete, depot.ActionUndelete, depot.ActionPurge} {
			ok := 0
			for _, ev := range fx.records(t, a, "c/d.csv") {
				if ev.Outcome == depot.OutcomeSuccess {
					ok++
				}
			}
			if ok != 1 {
				t.Errorf("%d successful %s records, want 1", ok, a)
			}
		}
		if refused := fx.records(t, depot.ActionPurge, "c/d.csv"); refused[0].ErrorCode != string(depot.CodeConflict) {
			t.Errorf("the purge refused under a hold was recorded as %+v", refused[0])
		}
	})
}

// TestPlainUploadEndsOnFatalFailure: a plain session whose chunk goes past
// its declared size is discarded at once and its failure recorded, so no
// staging is left behind (issue 20, item 6).
func TestPlainUploadEndsOnFatalFailure(t *testing.T) {
	eachEngine(t, func(t *testing.T, fx *fixture) {
		ctx := t.Context()
		u, err := fx.core.CreateUpload(ctx, fx.as("up"), UploadRequest{Key: "c/p.csv", Size: 10})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := fx.core.Append(ctx, fx.as("up"), u.ID, AppendRequest{Chunk: chunkOf(0, make([]byte, 11))}); depot.ErrorCode(err) != depot.CodeSizeMismatch {
			t.Fatalf("append past the declared size: %v", err)
		}
		if _, err := fx.db.Session(ctx, u.ID); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("session after a fatal failure: %v, want gone", err)
		}
		if strays, err := fx.store.Strays(ctx); err != nil || len(strays) != 0 {
			t.Errorf("staging left: %+v, %v", strays, err)
		}
		if failed := fx.records(t, depot.ActionUploadFailed, "c/p.csv"); len(failed) != 1 || failed[0].ErrorCode != string(depot.CodeSizeMismatch) {
			t.Errorf("failure records: %+v", failed)
		}
	})
}

// TestOpenUploadsCapped: one user's open sessions are bounded; a refusal is
// audited.
func TestOpenUploadsCapped(t *testing.T) {
	eachEngine(t, func(t *testing.T, fx *fixture) {
		ctx := t.Context()
		fx.core.cfg.MaxOpenUploadsPerUser = 2
		for i := range 3 {
			_, err := fx.core.CreateUpload(ctx, fx.as("up"), UploadRequest{Key: "c/s.csv", Size: 1 << 40, Resumable: true})
			if i < 2 && err != nil || i == 2 && depot.ErrorCode(err) != depot.CodeTooMany {
				t.Fatalf("session %d: %v", i+1, err)
			}
		}
		if _, err := fx.core.CreateUpload(ctx, fx.as("man"), UploadRequest{Key: "c/s.csv", Size: 1, Resumable: true}); err != nil {
			t.Errorf("another user's session: %v", err)
		}
		failed := fx.records(t, depot.ActionUploadFailed, "c/s.csv")
		if len(failed) != 1 || failed[0].ErrorCode != string(depot.CodeTooMany) || failed[0].Actor != "up" {
			t.Errorf("the refusal is not audited once: %+v", failed)
		}
	})
}

// revokingReader revokes a grant when it is first read: the revocation
// lands while a chunk streams, after the chunk's request was authorised.
type revokingReader struct {
	r      *bytes.Reader
	revoke func()
}

func (r *revokingReader) Read(p []byte) (int, error) {
	if r.revoke != nil {
		r.revoke()
		r.revoke = nil
	}
	return r.r.Read(p)
}

// TestGrantRevokedDuringFinalChunkRefusesCommit: a grant revoked while the
// final chunk (or a one-shot body) streams is seen at the commit, which is
// refused and recorded (access.denied; a session also gets its closing
// upload.failed); nothing becomes visible.
func TestGrantRevokedDuringFinalChunkRefusesCommit(t *testing.T) {
	eachEngine(t, func(t *testing.T, fx *fixture) {
		ctx := t.Context()
		revoke := func() {
			if err := fx.db.Revoke(ctx, "up", "c"); err != nil {
				t.Error(err)
			}
		}
		data := []byte("id,value\n1,2\n")
		u, err := fx.core.CreateUpload(ctx, fx.as("up"), UploadRequest{Key: "c/session.csv", Size: int64(len(data)), Resumable: true})
		if err != nil {
			t.Fatal(err)
		}
		chunk := chunkOf(0, data)
		chunk.Body = &revokingReader{r: bytes.NewReader(data), revoke: revoke}
		_, obj, err := fx.core.Append(ctx, fx.as("up"), u.ID, AppendRequest{Chunk: chunk, Complete: true, Size: -1})
		if depot.ErrorCode(err) != depot.CodeForbidden || obj != nil {
			t.Fatalf("final chunk after the revocation: %+v, %v; want forbidden", obj, err)
		}
		if err := fx.db.Grant(ctx, "up", "c", depot.RoleUploader); err != nil {
			t.Fatal(err)
		}
		chunk = chunkOf(0, data)
		chunk.Body = &revokingReader{r: bytes.NewReader(data), revoke: revoke}
		if _, err := fx.core.Put(ctx, fx.as("up"), PutRequest{Key: "c/oneshot.csv", Chunk: chunk}); depot.ErrorCode(err) != depot.CodeForbidden {
			t.Fatalf("one-shot body after the revocation: %v; want forbidden", err)
		}
		for _, key := range []string{"c/session.csv", "c/oneshot.csv"} {
			if _, err := fx.db.Current(ctx, key); depot.ErrorCode(err) != depot.CodeNotFound {
				t.Errorf("%s is visible after a refused commit: %v", key, err)
			}
			if denied := fx.records(t, depot.ActionAccessDenied, key); len(denied) != 1 {
				t.Errorf("%s: %d access.denied records, want 1", key, len(denied))
			}
		}
		// The session was started: it is closed by one record.
		if failed := fx.records(t, depot.ActionUploadFailed, "c/session.csv"); len(failed) != 1 || failed[0].ErrorCode != string(depot.CodeForbidden) {
			t.Errorf("upload.failed records of the session: %+v", failed)
		}
		if _, err := fx.db.Session(ctx, u.ID); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("the refused session is still open: %v", err)
		}
	})
}
