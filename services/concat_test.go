package services

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/internal/wire"
	"depot/metrics"
	"depot/scan"
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
		if n := len(fx.records(t, depot.ActionUploadFailed, "c/race.txt")); n != 1 {
			t.Fatalf("%d upload.failed records of the losing final, want 1", n)
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

// TestConcatFailureAtCommitRecorded: a final upload whose commit fails for
// a reason a plain resumable upload would retry (here the malware scanner
// is down, fail closed) has its session discarded, so it must be closed
// by one upload.failed record; its partials are kept for a retry.
func TestConcatFailureAtCommitRecorded(t *testing.T) {
	eachEngine(t, func(t *testing.T, fx *fixture) {
		ctx := t.Context()
		data := bytes.Repeat([]byte("scanner down "), 1000)
		p1 := fx.partial(t, "up", "c/part", data[:500])
		p2 := fx.partial(t, "up", "c/part", data[500:])
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close() // nothing listens: the scanner is unavailable
		client, err := scan.NewClient("tcp:"+addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		core := NewCore(Config{Store: fx.store, DB: fx.db, Metrics: metrics.New("services"), TempTTL: time.Hour,
			Scan: scan.NewGate(client, scan.Policy{}, nil)})
		_, _, err = core.Concat(ctx, fx.as("up"), ConcatRequest{Key: "c/whole.txt", FileName: "whole.txt", Parts: []string{p1, p2}})
		if depot.ErrorCode(err) != depot.CodeUnavailable {
			t.Fatalf("Concat with the scanner down: %v, want unavailable", err)
		}
		recs := fx.records(t, depot.ActionUploadFailed, "c/whole.txt")
		if len(recs) != 1 || recs[0].UploadID == "" || recs[0].ErrorCode != string(depot.CodeUnavailable) {
			t.Fatalf("upload.failed records of the final: %+v, want one with its upload ID", recs)
		}
		if _, err := fx.store.Upload(ctx, recs[0].UploadID); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Errorf("the failed final's session was kept: %v", err)
		}
		for _, p := range []string{p1, p2} {
			if _, err := fx.store.Upload(ctx, p); err != nil {
				t.Errorf("partial %s was not kept for a retry: %v", p, err)
			}
		}
	})
}

// TestConcatPartialsNotStreamedToScanner: a partial upload's bytes are
// never scanned as a file (the final upload is scanned whole, from
// storage), so its PATCHes open no clamd stream: parallel uploads would
// otherwise hold the Gate's few streams and clamd connections for nothing
// until they idle out.
func TestConcatPartialsNotStreamedToScanner(t *testing.T) {
	fx := newFixture(t, "sqlite://"+t.TempDir()+"/db.sqlite")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.Close()
	wg.Add(1)
	go func() { // a clamd that takes streams and says nothing
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				_, _ = io.Copy(io.Discard, conn)
			}()
		}
	}()
	client, err := scan.NewClient("tcp:"+l.Addr().String(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	gate := scan.NewGate(client, scan.Policy{}, nil)
	fx.core = NewCore(Config{Store: fx.store, DB: fx.db, Metrics: metrics.New("services"), TempTTL: time.Hour, Scan: gate})
	p := fx.partial(t, "up", "c/part", []byte("a partial upload's bytes"))
	if n := gate.Streams(); n != 0 {
		gate.Drop(p)
		t.Fatalf("%d scan streams open after a partial upload's PATCH, want 0", n)
	}
}

// TestAdminCannotWriteOthersUpload: an administrator may inspect and end
// another user's upload session, but not append to or commit it (its
// version would carry the owner's name and the administrator's bytes):
// that is refused as if the upload did not exist, and audited.
func TestAdminCannotWriteOthersUpload(t *testing.T) {
	fx := newFixture(t, "sqlite://"+t.TempDir()+"/db.sqlite")
	ctx := t.Context()
	if err := fx.db.CreateUser(ctx, "adm", true); err != nil {
		t.Fatal(err)
	}
	var err error
	if fx.tokens["adm"], _, err = fx.db.CreateToken(ctx, "adm", "test", time.Hour); err != nil {
		t.Fatal(err)
	}
	data := []byte("the owner's bytes")
	u, err := fx.core.CreateUpload(ctx, fx.as("up"), UploadRequest{Key: "c/owned.txt", Size: int64(len(data)), Resumable: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := fx.core.Append(ctx, fx.as("adm"), u.ID, AppendRequest{Chunk: chunkOf(0, data), Complete: true, Size: -1}); depot.ErrorCode(err) != depot.CodeNotFound {
		t.Fatalf("an administrator's Append to another user's upload: %v, want not found", err)
	}
	if _, _, err := fx.core.Append(ctx, fx.as("up"), u.ID, AppendRequest{Chunk: chunkOf(0, data)}); err != nil {
		t.Fatal(err)
	}
	if _, err := fx.core.Complete(ctx, fx.as("adm"), u.ID, storage.Want{Size: -1}); depot.ErrorCode(err) != depot.CodeNotFound {
		t.Fatalf("an administrator's Complete of another user's upload: %v, want not found", err)
	}
	if n := len(fx.records(t, depot.ActionAccessDenied, "c/owned.txt")); n != 2 {
		t.Errorf("%d access.denied records, want 2", n)
	}
	if _, err := fx.core.Upload(ctx, fx.as("adm"), u.ID, false); err != nil {
		t.Errorf("an administrator inspecting another user's upload: %v", err)
	}
	if err := fx.core.Abort(ctx, fx.as("adm"), u.ID, ""); err != nil {
		t.Errorf("an administrator ending another user's upload: %v", err)
	}
}
