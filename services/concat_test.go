package services

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/internal/wire"
	"depot/storage"
)

// partial creates a partial upload of data as user and appends all of it,
// the last chunk asking for a commit (which a partial never does).
func (fx *fixture) partial(t *testing.T, user, key string, data []byte) string {
	t.Helper()
	ctx := t.Context()
	u, err := fx.core.CreateUpload(ctx, fx.as(user), UploadRequest{Key: key, Size: int64(len(data)), Resumable: true,
		Meta: map[string]string{wire.MetaConcat: wire.ConcatPartial}})
	if err != nil {
		t.Fatal(err)
	}
	_, obj, err := fx.core.Append(ctx, fx.as(user), u.ID, AppendRequest{Chunk: chunkOf(0, data), Complete: true, Size: int64(len(data))})
	if err != nil || obj != nil {
		t.Fatalf("last Append of a partial = %+v, %v; want no version", obj, err)
	}
	return u.ID
}

// TestConcat: partial uploads are never committed, even asked to; a final
// upload joins the caller's complete partials into one version with one
// upload.completed record naming them, and removes them; an administrator
// cannot join another user's partial; two finals racing for the same
// partials make one version.
func TestConcat(t *testing.T) {
	eachEngine(t, func(t *testing.T, fx *fixture) {
		ctx := t.Context()
		if err := fx.db.CreateUser(ctx, "adm", true); err != nil {
			t.Fatal(err)
		}
		var err error
		if fx.tokens["adm"], _, err = fx.db.CreateToken(ctx, "adm", "test", time.Hour); err != nil {
			t.Fatal(err)
		}
		data := bytes.Repeat([]byte("concatenation "), 20_000)
		p1 := fx.partial(t, "up", "c/part", data[:100_000])
		p2 := fx.partial(t, "up", "c/part", data[100_000:])
		if _, err := fx.core.Complete(ctx, fx.as("up"), p1, storage.Want{Size: -1}); depot.ErrorCode(err) != depot.CodeConflict {
			t.Fatalf("Complete of a partial: %v, want conflict", err)
		}
		if _, err := fx.core.Stat(ctx, fx.as("rd"), "c/part", ""); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("a partial became a file: %v", err)
		}
		if _, err := fx.core.CreateUpload(ctx, fx.as("up"), UploadRequest{Key: "c/part", Size: -1, Resumable: true,
			Meta: map[string]string{wire.MetaConcat: wire.ConcatPartial}}); depot.ErrorCode(err) != depot.CodeInvalid {
			t.Fatalf("a partial without a length: %v, want invalid", err)
		}
		if _, _, err := fx.core.Concat(ctx, fx.as("adm"), ConcatRequest{Key: "c/whole.txt", Parts: []string{p1, p2}}); depot.ErrorCode(err) != depot.CodeInvalid {
			t.Fatalf("an administrator joining another user's partials: %v, want invalid", err)
		}
		if n := len(fx.records(t, depot.ActionAccessDenied, "c/part")); n != 1 {
			t.Errorf("%d access.denied records for the foreign partial, want 1", n)
		}
		u, obj, err := fx.core.Concat(ctx, fx.as("up"), ConcatRequest{Key: "c/whole.txt", FileName: "whole.txt", Parts: []string{p1, p2}})
		if err != nil || obj.Version != u.ID || obj.Size != int64(len(data)) || obj.SHA256 != sum(data) {
			t.Fatalf("Concat = %+v, %+v, %v", u, obj, err)
		}
		if got := fx.read(t, "rd", "c/whole.txt", ""); !bytes.Equal(got, data) {
			t.Fatalf("the version differs from the concatenation")
		}
		recs := fx.records(t, depot.ActionUploadCompleted, "c/whole.txt")
		if len(recs) != 1 || recs[0].UploadID != u.ID || recs[0].Metadata["concat_parts"] != p1+" "+p2 {
			t.Fatalf("upload.completed records: %+v", recs)
		}
		for _, p := range []string{p1, p2} {
			if _, err := fx.store.Upload(ctx, p); depot.ErrorCode(err) != depot.CodeNotFound {
				t.Errorf("partial %s kept its session: %v", p, err)
			}
			if _, err := fx.store.Stat(ctx, p); depot.ErrorCode(err) != depot.CodeNotFound {
				t.Errorf("partial %s kept its object: %v", p, err)
			}
		}
		done, err := fx.core.Upload(ctx, fx.as("up"), u.ID, false)
		if err != nil || done.Meta[wire.MetaConcat] != wire.ConcatFinal || done.Meta[wire.MetaConcatParts] != p1+" "+p2 {
			t.Fatalf("Upload of the final = %+v, %v", done, err)
		}

		// Two finals racing for the same partials.
		q1 := fx.partial(t, "up", "c/part", data[:7])
		q2 := fx.partial(t, "up", "c/part", data[7:20])
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, errs[i] = fx.core.Concat(ctx, fx.as("up"), ConcatRequest{Key: "c/race.txt", Parts: []string{q1, q2}})
			}()
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) {
			t.Fatalf("racing finals: %v and %v; want exactly one to succeed", errs[0], errs[1])
		}
		if n := len(fx.records(t, depot.ActionUploadCompleted, "c/race.txt")); n != 1 {
			t.Fatalf("%d upload.completed records of racing finals, want 1", n)
		}
		h, err := fx.core.History(ctx, fx.as("rd"), "c/race.txt")
		if err != nil || len(h.Versions) != 1 {
			t.Fatalf("History of racing finals = %+v, %v; want one version", h, err)
		}
		if !strings.Contains(depot.ErrorMessage(errs[0])+depot.ErrorMessage(errs[1]), "partial upload") {
			t.Errorf("the losing final's error does not name the partial: %v %v", errs[0], errs[1])
		}
	})
}
