package apiclient

import (
	"bytes"
	"encoding/json"
	"errors"
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

	"go.uber.org/goleak"

	"depot"
	"depot/internal/httpx"
	"depot/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeServices keeps upload sessions as the services tier's contract says:
// one chunk per request at the current offset, its CRC-32C checked, the
// last chunk recognised when sent again, and a commit with the final chunk
// (Depot-Complete) or a completion request.
type fakeServices struct {
	mu       sync.Mutex
	data     map[string][]byte
	last     map[string]string // id → "offset/length/crc" of the last chunk
	done     map[string]bool
	inFlight map[string]int
	maxSeen  atomic.Int64 // most requests of one upload at once
	// damage, when set, says whether the chunk at an offset arrives damaged
	// (it is answered transient and not counted).
	damage    func(offset int64) bool
	damaged   atomic.Int64
	completes atomic.Int64 // completions by a request of their own
	// hold, when set, is called inside each append before it is answered.
	hold func(offset int64)
	// arrived, when set, is called as each append request arrives.
	arrived func(offset int64)
	// noTurn answers a chunk ahead of its session with an offset mismatch
	// at once, as a services process that cannot see the chunk before it
	// does after a while, instead of letting it wait for its turn.
	noTurn bool
	resent atomic.Int64 // chunks answered with a mismatch ahead of the session
	// overtook, when set, is called when a chunk ahead of the session is
	// answered with a mismatch.
	overtook func(offset int64)
	sent     []string // "offset/length[/lazy]" of every append that landed, in order
}

func newFakeServices() *fakeServices {
	return &fakeServices{data: map[string][]byte{}, last: map[string]string{}, done: map[string]bool{}, inFlight: map[string]int{}}
}

func (f *fakeServices) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(strings.TrimSuffix(r.URL.Path, "/complete"), wire.UploadPrefix)
	if strings.HasSuffix(r.URL.Path, "/complete") {
		f.completes.Add(1)
		f.mu.Lock()
		f.done[id] = true
		n := int64(len(f.data[id]))
		f.mu.Unlock()
		httpx.WriteJSON(w, http.StatusCreated, depot.Object{Version: id, Size: n})
		return
	}
	f.mu.Lock()
	f.inFlight[id]++
	if n := int64(f.inFlight[id]); n > f.maxSeen.Load() {
		f.maxSeen.Store(n)
	}
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inFlight[id]--; f.mu.Unlock() }()
	off, _ := strconv.ParseInt(r.Header.Get(wire.HeaderOffset), 10, 64)
	if f.arrived != nil {
		f.arrived(off)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		httpx.WriteError(w, depot.Errorf(depot.CodeInvalid, "body: %v", err))
		return
	}
	if f.hold != nil {
		f.hold(off)
	}
	crc := r.Header.Get(wire.HeaderCRC32C)
	if f.damage != nil && f.damage(off) {
		f.damaged.Add(1)
		body = append([]byte{body[0] ^ 1}, body[1:]...)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// A chunk ahead of the session waits for the one before it
	// (storage.Store.AwaitOffset), up to a second.
	for deadline := time.Now().Add(time.Second); !f.noTurn && off > int64(len(f.data[id])) && time.Now().Before(deadline); {
		f.mu.Unlock()
		time.Sleep(time.Millisecond)
		f.mu.Lock()
	}
	cur := int64(len(f.data[id]))
	if off > cur {
		f.resent.Add(1)
		if f.overtook != nil {
			f.overtook(off)
		}
	}
	mark := strconv.FormatInt(off, 10) + "/" + strconv.Itoa(len(body)) + "/" + crc
	switch {
	case off == cur:
	case off+int64(len(body)) == cur && f.last[id] == mark:
		httpx.WriteJSON(w, http.StatusOK, wire.AppendResult{Upload: depot.Upload{ID: id, Offset: cur}})
		return
	default:
		httpx.WriteErrorDetail(w, httpx.ErrorDetail{Code: depot.CodeOffsetMismatch, Message: "expected offset", Offset: &cur})
		return
	}
	if got := hopSum(body); got != crc {
		w.Header().Set(wire.HeaderTransient, "1")
		httpx.WriteError(w, depot.Errorf(depot.CodeUnavailable, "damaged in transit"))
		return
	}
	f.data[id] = append(f.data[id], body...)
	f.last[id] = mark
	rec := strconv.FormatInt(off, 10) + "/" + strconv.Itoa(len(body))
	if r.Header.Get(wire.HeaderLazy) == "1" {
		rec += "/lazy"
	}
	f.sent = append(f.sent, rec)
	res := wire.AppendResult{Upload: depot.Upload{ID: id, Offset: int64(len(f.data[id]))}}
	if r.Header.Get(wire.HeaderComplete) == "1" {
		f.done[id] = true
		res.Version = &depot.Object{Version: id, Size: int64(len(f.data[id]))}
	}
	_ = json.NewEncoder(w).Encode(res) // 200
}

func (f *fakeServices) bytes(id string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.data[id]
}

func newTestClient(t *testing.T, f *fakeServices, chunk, buffers int) *Client {
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c := New(Config{BaseURL: srv.URL, Key: "0123456789abcdef0123456789abcdef", ChunkSize: chunk, MaxBuffers: buffers, Backoff: time.Millisecond})
	t.Cleanup(c.Close)
	return c
}

func testData(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// TestStreamResendsDamagedChunks: a chunk damaged on the way is sent again
// at its offset; the upload arrives intact.
func TestStreamResendsDamagedChunks(t *testing.T) {
	f := newFakeServices()
	var once sync.Map
	f.damage = func(off int64) bool { _, seen := once.LoadOrStore(off, true); return !seen && off%2000 == 0 }
	c := newTestClient(t, f, 1000, 4)
	data := testData(10_500)
	n, obj, err := c.AppendStream(t.Context(), depot.Caller{}, "u", 0, bytes.NewReader(data), -1, true)
	if err != nil || n != int64(len(data)) || obj == nil {
		t.Fatalf("AppendStream = %d, %v, %v", n, obj, err)
	}
	if !bytes.Equal(f.bytes("u"), data) {
		t.Fatal("the services tier holds other bytes")
	}
	if f.damaged.Load() != 6 {
		t.Fatalf("%d chunks damaged, want 6", f.damaged.Load())
	}
}

// TestStreamTwoOnTheWire: a chunk is sent while the answer to the one
// before it is still awaited (services holds the first answer until the
// second request has arrived, which was read from the client meanwhile),
// never more than two at once; the bytes land in order.
func TestStreamTwoOnTheWire(t *testing.T) {
	f := newFakeServices()
	second := make(chan struct{})
	var once sync.Once
	f.arrived = func(off int64) {
		if off == 1000 {
			once.Do(func() { close(second) })
		}
	}
	data := testData(5 * 1000)
	src := iotest.HalfReader(bytes.NewReader(data))
	f.hold = func(off int64) {
		if off != 0 {
			return
		}
		select {
		case <-second:
		case <-time.After(10 * time.Second):
			t.Error("the second chunk was not read and sent while the first awaited its answer")
		}
	}
	c := newTestClient(t, f, 1000, 16)
	n, _, err := c.AppendStream(t.Context(), depot.Caller{}, "u", 0, src, -1, false)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("AppendStream = %d, %v", n, err)
	}
	if !bytes.Equal(f.bytes("u"), data) {
		t.Fatal("bytes differ")
	}
	if m := f.maxSeen.Load(); m != 2 {
		t.Fatalf("%d requests of one upload at once, want 2", m)
	}
	if r := f.resent.Load(); r != 0 {
		t.Fatalf("%d chunks found the session behind them, want 0 (they wait for their turn)", r)
	}
}

// TestStreamResendsChunkAheadOfSession: a chunk answered with an offset
// mismatch because the one before it had not landed yet (a services
// process that could not wait for it) is sent again once it has.
func TestStreamResendsChunkAheadOfSession(t *testing.T) {
	f := newFakeServices()
	f.noTurn = true
	overtaken := make(chan struct{})
	var once sync.Once
	f.overtook = func(int64) { once.Do(func() { close(overtaken) }) }
	f.hold = func(off int64) {
		if off == 0 { // the first chunk's answer waits until the second has overtaken it
			select {
			case <-overtaken:
			case <-time.After(10 * time.Second):
				t.Error("the second chunk was not sent while the first awaited its answer")
			}
		}
	}
	c := newTestClient(t, f, 1000, 16)
	data := testData(4_321)
	n, obj, err := c.AppendStream(t.Context(), depot.Caller{}, "u", 0, bytes.NewReader(data), int64(len(data)), true)
	if err != nil || n != int64(len(data)) || obj == nil {
		t.Fatalf("AppendStream = %d, %v, %v", n, obj, err)
	}
	if !bytes.Equal(f.bytes("u"), data) {
		t.Fatal("bytes differ")
	}
	if f.resent.Load() == 0 {
		t.Fatal("no chunk overtook the one before it: the test did not test the resend")
	}
}

// TestStreamCommitsWithLastChunk: with the size known, the last chunk
// commits the upload in its own request; with it unknown, a stream that
// ends exactly on a chunk boundary needs one completion request.
func TestStreamCommitsWithLastChunk(t *testing.T) {
	for _, tc := range []struct {
		name      string
		size, end int
		completes int64
	}{
		{"known size", 2500, 2500, 0},
		{"unknown size, partial last chunk", 2500, -1, 0},
		{"unknown size, whole last chunk", 3000, -1, 1},
		{"empty", 0, -1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServices()
			c := newTestClient(t, f, 1000, 4)
			data := testData(tc.size)
			_, obj, err := c.AppendStream(t.Context(), depot.Caller{}, "u", 0, bytes.NewReader(data), int64(tc.end), true)
			if err != nil || obj == nil || obj.Size != int64(tc.size) {
				t.Fatalf("AppendStream: %+v, %v", obj, err)
			}
			if got := f.completes.Load(); got != tc.completes {
				t.Errorf("%d completion requests, want %d", got, tc.completes)
			}
		})
	}
}

// TestStreamsShareFewBuffers: many uploads at once through a pool of two
// buffers all finish (a finished chunk gives its buffer back at once).
func TestStreamsShareFewBuffers(t *testing.T) {
	f := newFakeServices()
	c := newTestClient(t, f, 1000, 2)
	data := testData(7_777)
	var wg sync.WaitGroup
	for i := range 8 {
		id := strconv.Itoa(i)
		wg.Go(func() {
			if n, _, err := c.AppendStream(t.Context(), depot.Caller{}, id, 0, iotest.HalfReader(bytes.NewReader(data)), -1, false); err != nil || n != int64(len(data)) {
				t.Errorf("upload %s: %d, %v", id, n, err)
			}
		})
	}
	wg.Wait()
}

// TestStreamReadErrorKeepsBytes: when the client's body fails, the bytes
// read before are still appended and the read error is returned.
func TestStreamReadErrorKeepsBytes(t *testing.T) {
	f := newFakeServices()
	c := newTestClient(t, f, 1000, 4)
	data := testData(2_500)
	cut := errors.New("connection reset")
	n, obj, err := c.AppendStream(t.Context(), depot.Caller{}, "u", 0, io.MultiReader(bytes.NewReader(data), iotest.ErrReader(cut)), -1, true)
	if !errors.Is(err, cut) || n != int64(len(data)) || obj != nil {
		t.Fatalf("AppendStream = %d, %v, %v; want %d bytes and the read error", n, obj, err, len(data))
	}
	if !bytes.Equal(f.bytes("u"), data) {
		t.Fatal("the bytes before the error were not appended")
	}
	if f.done["u"] {
		t.Fatal("an interrupted stream was committed")
	}
}

// TestStreamLazyUntilItsLastChunk: every chunk of a stream but its last
// goes lazy (services may answer before it is durable); a stream that ends
// at a chunk boundary without a commit ends with an empty durable chunk.
func TestStreamLazyUntilItsLastChunk(t *testing.T) {
	for _, tc := range []struct {
		name     string
		size     int
		end      int64
		complete bool
		want     string
	}{
		{"partial last chunk", 3500, -1, false, "0/1000/lazy 1000/1000/lazy 2000/1000/lazy 3000/500"},
		{"at a chunk boundary", 3000, -1, false, "0/1000/lazy 1000/1000/lazy 2000/1000/lazy 3000/0"},
		{"committed with its last chunk", 3000, 3000, true, "0/1000/lazy 1000/1000/lazy 2000/1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeServices()
			c := newTestClient(t, f, 1000, 4)
			data := testData(tc.size)
			n, _, err := c.AppendStream(t.Context(), depot.Caller{}, "u", 0, bytes.NewReader(data), tc.end, tc.complete)
			if err != nil || n != int64(len(data)) {
				t.Fatalf("AppendStream = %d, %v", n, err)
			}
			f.mu.Lock()
			got := strings.Join(f.sent, " ")
			f.mu.Unlock()
			if got != tc.want {
				t.Fatalf("appends %q, want %q", got, tc.want)
			}
		})
	}
}
