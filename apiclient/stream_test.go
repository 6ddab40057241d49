package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"depot"
	"depot/internal/httpx"
	"depot/internal/wire"
)

// fakeSession is a services tier for one upload session: appends are taken
// under a lock in offset order, an offset past the current one is refused
// with the current offset (409), and bytes sent again are compared.
type fakeSession struct {
	mu       sync.Mutex
	data     []byte
	stall    func(offset int64) time.Duration // delay before taking the lock
	refused  atomic.Int64                     // offset mismatches answered
	inFlight atomic.Int64
	maxSeen  atomic.Int64
	// damage, when set, says whether the chunk at an offset arrives
	// damaged (its bytes no longer match its CRC-32C header).
	damage  func(offset int64) bool
	damaged atomic.Int64 // chunks answered as damaged in transit
}

func (f *fakeSession) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.inFlight.Add(1)
	defer f.inFlight.Add(-1)
	for m := f.maxSeen.Load(); n > m && !f.maxSeen.CompareAndSwap(m, n); m = f.maxSeen.Load() {
	}
	off, _ := strconv.ParseInt(r.Header.Get(wire.HeaderOffset), 10, 64)
	time.Sleep(f.stall(off))
	f.mu.Lock()
	defer f.mu.Unlock()
	cur := int64(len(f.data))
	if off > cur {
		f.refused.Add(1)
		httpx.WriteErrorDetail(w, httpx.ErrorDetail{Code: depot.CodeOffsetMismatch, Message: "expected offset", Offset: &cur})
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		httpx.WriteError(w, depot.Errorf(depot.CodeInvalid, "body: %v", err))
		return
	}
	sum := fmt.Sprintf("%08x", crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
	if want := r.Header.Get(wire.HeaderCRC32C); want != sum || f.damage != nil && f.damage(off) {
		if want == "" {
			httpx.WriteError(w, depot.Errorf(depot.CodeInvalid, "chunk without %s", wire.HeaderCRC32C))
			return
		}
		f.damaged.Add(1)
		w.Header().Set(wire.HeaderTransient, "1")
		httpx.WriteError(w, depot.Errorf(depot.CodeUnavailable, "damaged in transit"))
		return
	}
	if have := f.data[off:min(cur, off+int64(len(body)))]; !bytes.Equal(have, body[:len(have)]) {
		httpx.WriteError(w, depot.Errorf(depot.CodeConflict, "bytes differ"))
		return
	}
	f.data = append(f.data, body[cur-off:]...)
	w.Header().Set(wire.HeaderOffset, strconv.FormatInt(int64(len(f.data)), 10))
	json.NewEncoder(w).Encode(depot.Upload{ID: "u", Offset: int64(len(f.data))})
}

// clientOf returns a client of a test server that serves f.
func clientOf(t *testing.T, f *fakeSession, chunkSize int) *Client {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := New(Config{BaseURL: srv.URL, Key: "0123456789abcdef0123456789abcdef", ChunkSize: chunkSize})
	t.Cleanup(c.Close)
	return c
}

// pattern returns n bytes that vary with their position.
func pattern(n, mul, div int) []byte {
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i * mul / div)
	}
	return data
}

// TestStreamResendsDamagedChunks: every chunk carries its CRC-32C (the fake
// refuses one without); a chunk that services finds damaged is sent again,
// and the session ends up with exactly the stream.
func TestStreamResendsDamagedChunks(t *testing.T) {
	const chunkSize = 64 << 10
	var mu sync.Mutex
	seen := map[int64]bool{}
	f := &fakeSession{stall: func(int64) time.Duration { return 0 }, damage: func(off int64) bool {
		mu.Lock()
		defer mu.Unlock()
		first := !seen[off]
		seen[off] = true
		return first // every chunk arrives damaged the first time
	}}
	c := clientOf(t, f, chunkSize)
	data := pattern(5*chunkSize+17, 13, 5)
	n, err := c.stream(t.Context(), "u", 0, bytes.NewReader(data), false)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("stream: %d bytes, %v", n, err)
	}
	if !bytes.Equal(f.data, data) {
		t.Fatal("the session holds other bytes than the stream")
	}
	if got := f.damaged.Load(); got < 6 {
		t.Fatalf("%d chunks answered damaged, want every one of the 6", got)
	}
}

// TestStreamTwoChunksInFlight: chunks go out while the one before is still
// being taken; a chunk that reaches services first is refused and sent
// again after its predecessor, and the session ends up with exactly the
// stream, hashed in order, with never more than two requests at once.
func TestStreamTwoChunksInFlight(t *testing.T) {
	const chunkSize = 64 << 10
	for name, stall := range map[string]func(int64) time.Duration{
		"in order": func(int64) time.Duration { return 0 },
		// every other chunk is slow to arrive, so the next overtakes it
		"overtaken": func(off int64) time.Duration {
			if off/chunkSize%2 == 0 {
				return 20 * time.Millisecond
			}
			return 0
		},
		"mixed": func(off int64) time.Duration { return time.Duration(off/chunkSize*7%3) * 5 * time.Millisecond },
	} {
		t.Run(name, func(t *testing.T) {
			f := &fakeSession{stall: stall}
			c := clientOf(t, f, chunkSize)
			data := pattern(20*chunkSize+123, 31, 7)
			n, err := c.stream(t.Context(), "u", 0, iotest.HalfReader(bytes.NewReader(data)), false)
			if err != nil || n != int64(len(data)) {
				t.Fatalf("stream: %d bytes, %v", n, err)
			}
			if !bytes.Equal(f.data, data) {
				t.Fatalf("the session holds %d bytes that differ from the %d sent", len(f.data), len(data))
			}
			if m := f.maxSeen.Load(); m > inFlight {
				t.Fatalf("%d requests at once, want at most %d", m, inFlight)
			}
			t.Logf("requests refused as early: %d, most at once: %d", f.refused.Load(), f.maxSeen.Load())
			if name == "overtaken" && f.refused.Load() == 0 {
				t.Fatal("no chunk overtook the one before it: the test did not exercise the resend")
			}
		})
	}
}

// TestStreamsShareFewBuffers: more uploads than the pool has buffers for
// two chunks each all finish: a stream gives a chunk's buffer back as soon
// as services has it, instead of holding it while it waits for another.
func TestStreamsShareFewBuffers(t *testing.T) {
	const chunkSize, uploads = 64 << 10, 8
	sessions := make(map[string]*fakeSession)
	for i := range uploads {
		sessions[strconv.Itoa(i)] = &fakeSession{stall: func(off int64) time.Duration { return time.Duration(off/chunkSize%3) * time.Millisecond }}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sessions[strings.TrimPrefix(r.URL.Path, wire.UploadPrefix)].ServeHTTP(w, r)
	}))
	defer srv.Close()
	c := New(Config{BaseURL: srv.URL, Key: "0123456789abcdef0123456789abcdef", ChunkSize: chunkSize, MaxBuffers: uploads})
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	data := bytes.Repeat([]byte("0123456789"), 10*chunkSize/10+7)
	var wg sync.WaitGroup
	for id := range sessions {
		wg.Go(func() {
			if n, err := c.stream(ctx, id, 0, iotest.HalfReader(bytes.NewReader(data)), false); err != nil || n != int64(len(data)) {
				t.Errorf("upload %s: %d bytes, %v", id, n, err)
			}
		})
	}
	wg.Wait()
	for id, f := range sessions {
		if !bytes.Equal(f.data, data) {
			t.Errorf("upload %s: the session holds other bytes", id)
		}
	}
}

// TestStreamReadErrorKeepsBytes: when the body fails part-way, what was read
// before is appended and counted, and the read error is returned.
func TestStreamReadErrorKeepsBytes(t *testing.T) {
	const chunkSize = 64 << 10
	f := &fakeSession{stall: func(int64) time.Duration { return 0 }}
	c := clientOf(t, f, chunkSize)
	data := bytes.Repeat([]byte{7}, 3*chunkSize+100)
	cut := errors.New("client went away")
	n, err := c.stream(t.Context(), "u", 0, io.MultiReader(bytes.NewReader(data), iotest.ErrReader(cut)), false)
	if !errors.Is(err, cut) || n != int64(len(data)) || !bytes.Equal(f.data, data) {
		t.Fatalf("stream: %d bytes counted, %d stored, %v; want %d, %d and the read error", n, len(f.data), err, len(data), len(data))
	}
}
