package apiclient

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"depot"
	"depot/internal/wire"
)

// TestChunkSentWhole: a chunk reaches the server intact and leaves through
// hopConn's path straight from its buffer, not net/http's 32 KiB copy loop. If a Go
// release changes how the transport copies bodies, this fails and the fast
// path needs another look (the bytes would still arrive).
func TestChunkSentWhole(t *testing.T) {
	var got [][32]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got = append(got, sha256.Sum256(b))
		off, _ := strconv.ParseInt(r.Header.Get(wire.HeaderOffset), 10, 64)
		w.Header().Set(wire.HeaderOffset, strconv.FormatInt(off+int64(len(b)), 10))
		json.NewEncoder(w).Encode(depot.Upload{ID: "u", Offset: off + int64(len(b))})
	}))
	defer srv.Close()
	c := New(Config{BaseURL: srv.URL, Key: "0123456789abcdef0123456789abcdef"})
	defer c.Close()

	var want [][32]byte
	for i, size := range []int{1, 100 << 10, 8 << 20} {
		chunk := bytes.Repeat([]byte{byte(i + 1), 2, 3}, size/3+1)[:size]
		want = append(want, sha256.Sum256(chunk))
		next, err := c.Append(t.Context(), "u", 10, chunk, false)
		if err != nil || next != 10+int64(size) {
			t.Fatalf("chunk of %d bytes: next %d, %v", size, next, err)
		}
	}
	if len(got) != len(want) {
		t.Fatalf("server saw %d bodies, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("body %d arrived changed", i)
		}
	}
	if n := c.wholeBodies.Load(); n != int64(len(want)) {
		t.Fatalf("%d of %d bodies were sent in one call", n, len(want))
	}
}
