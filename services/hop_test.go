package services

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"depot"
	"depot/apiclient"
	"depot/internal/wire"
	"depot/servicedb/servicedbtest"
)

// TestOneShotPutDamagedInTransitIsSentAgain: web sends a body that fits in
// one chunk as a one-shot PUT with its CRC-32C; services refuses bytes that
// no longer match it (damaged between the tiers) as transient, storing
// nothing, and web sends the body again from memory. A SHA-256 the user
// declared is checked by services. Runs the real services handler (local
// storage, SQLite) behind a hop that flips one byte of the first PUT.
func TestOneShotPutDamagedInTransitIsSentAgain(t *testing.T) {
	ctx := t.Context()
	fx := newFixture(t, servicedbtest.SQLiteURL(t))
	svc := fx.handler

	var puts, damaged, refused atomic.Int64
	hop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut || r.URL.Path != wire.PathObject {
			svc.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		if puts.Add(1) == 1 {
			body[len(body)/2] ^= 0x20
			damaged.Add(1)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		svc.ServeHTTP(rec, r)
		if rec.Code == http.StatusServiceUnavailable && rec.Header().Get(wire.HeaderTransient) != "" {
			refused.Add(1)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	defer hop.Close()
	client := apiclient.New(apiclient.Config{BaseURL: hop.URL, Key: fixtureKey, Backoff: 1})
	defer client.Close()
	caller := fx.as("up")

	data := bytes.Repeat([]byte("id,value\n17,0.25\n"), 4000)
	obj, err := client.Put(ctx, caller, "c/small.csv", bytes.NewReader(data), depot.PutOptions{Size: int64(len(data))}, "small.csv")
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if damaged.Load() != 1 || refused.Load() != 1 || puts.Load() != 2 {
		t.Fatalf("%d PUTs, %d damaged, %d refused as transient; want 2, 1, 1", puts.Load(), damaged.Load(), refused.Load())
	}
	rc, err := fx.store.Open(ctx, obj.Version, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(stored, data) || obj.Size != int64(len(data)) {
		t.Fatalf("stored %d bytes (object says %d), want the %d sent", len(stored), obj.Size, len(data))
	}

	// Web no longer hashes; a wrong SHA-256 the user declared is refused
	// by services and nothing is stored.
	_, err = client.Put(ctx, caller, "c/declared.csv", bytes.NewReader(data), depot.PutOptions{Size: int64(len(data)), SHA256: obj.SHA256[:63] + "0"}, "declared.csv")
	if depot.ErrorCode(err) != depot.CodeHashMismatch {
		t.Fatalf("Put with a wrong declared SHA-256: %v, want %s", err, depot.CodeHashMismatch)
	}
	if _, err := fx.db.Current(ctx, "c/declared.csv"); depot.ErrorCode(err) != depot.CodeNotFound {
		t.Fatalf("a file with a wrong declared SHA-256 was stored: %v", err)
	}
	if objs, err := fx.store.Objects(ctx, "", 10); err != nil || len(objs) != 1 {
		t.Fatalf("objects after a refused upload: %d, %v; want only the first", len(objs), err)
	}
}
