package storage_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/storage"
	"depot/storage/localstore"
	"depot/storage/memstore"
)

// drivers returns a fresh driver of each kind and a way to reopen it (nil
// where the driver cannot outlive its process).
func drivers(t *testing.T) map[string]func(t *testing.T) (storage.Driver, func() storage.Driver) {
	return map[string]func(t *testing.T) (storage.Driver, func() storage.Driver){
		"local": func(t *testing.T) (storage.Driver, func() storage.Driver) {
			dir := t.TempDir()
			d, err := localstore.New(dir)
			if err != nil {
				t.Fatal(err)
			}
			return d, func() storage.Driver {
				d2, err := localstore.New(dir)
				if err != nil {
					t.Fatal(err)
				}
				return d2
			}
		},
		"mem": func(t *testing.T) (storage.Driver, func() storage.Driver) { return memstore.New(), nil },
	}
}

func forEachDriver(t *testing.T, fn func(t *testing.T, s *storage.Store, reopen func() *storage.Store, clock *fakeClock)) {
	for name, mk := range drivers(t) {
		t.Run(name, func(t *testing.T) {
			d, re := mk(t)
			clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
			opts := storage.Options{UploadExpiry: time.Hour, Now: clock.Now}
			var reopen func() *storage.Store
			if re != nil {
				reopen = func() *storage.Store { return storage.New(re(), opts) }
			}
			fn(t, storage.New(d, opts), reopen, clock)
		})
	}
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func random(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestPutOpenStatDelete(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *storage.Store, _ func() *storage.Store, _ *fakeClock) {
		ctx := t.Context()
		data := random(1, 3<<20+17)
		obj, err := s.Put(ctx, "c/a/b.csv", bytes.NewReader(data), depot.PutOptions{Size: int64(len(data)), SHA256: sum(data)})
		if err != nil {
			t.Fatal(err)
		}
		if obj.SHA256 != sum(data) || obj.Size != int64(len(data)) || obj.Class != depot.Permanent {
			t.Fatalf("Put returned %+v", obj)
		}
		st, err := s.Stat(ctx, "c/a/b.csv")
		if err != nil || st.SHA256 != obj.SHA256 || st.Size != obj.Size {
			t.Fatalf("Stat: %+v %v", st, err)
		}
		_, rc, err := s.Open(ctx, "c/a/b.csv", &depot.Range{Offset: 100, Length: 50})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, data[100:150]) {
			t.Fatal("range read differs")
		}
		if _, _, err := s.Open(ctx, "c/a/b.csv", &depot.Range{Offset: int64(len(data)) + 1, Length: -1}); depot.ErrorCode(err) != depot.CodeRangeNotSatisf {
			t.Fatalf("range past end: %v", err)
		}
		if err := s.Delete(ctx, "c/a/b.csv"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stat(ctx, "c/a/b.csv"); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("after delete: %v", err)
		}
	})
}

func TestPutRejectsWrongSizeAndHash(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *storage.Store, _ func() *storage.Store, _ *fakeClock) {
		ctx := t.Context()
		data := random(2, 1000)
		cases := []struct {
			name string
			opts depot.PutOptions
			code depot.Code
		}{
			{"longer than declared", depot.PutOptions{Size: 999}, depot.CodeSizeMismatch},
			{"shorter than declared", depot.PutOptions{Size: 1001}, depot.CodeSizeMismatch},
			{"wrong sha256", depot.PutOptions{Size: 1000, SHA256: strings.Repeat("ab", 32)}, depot.CodeHashMismatch},
			{"malformed sha256", depot.PutOptions{Size: 1000, SHA256: "xyz"}, depot.CodeInvalid},
		}
		for _, tc := range cases {
			_, err := s.Put(ctx, "c/x.bin", bytes.NewReader(data), tc.opts)
			if depot.ErrorCode(err) != tc.code {
				t.Fatalf("%s: got %v, want %s", tc.name, err, tc.code)
			}
			if _, err := s.Stat(ctx, "c/x.bin"); depot.ErrorCode(err) != depot.CodeNotFound {
				t.Fatalf("%s: something was committed: %v", tc.name, err)
			}
		}
		ups, err := s.Uploads(ctx)
		if err != nil || len(ups) != 0 {
			t.Fatalf("sessions left behind: %v %v", ups, err)
		}
	})
}

func TestSessionAppendRetryAndResume(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *storage.Store, reopen func() *storage.Store, _ *fakeClock) {
		ctx := t.Context()
		data := random(3, 5<<20)
		u, err := s.CreateUpload(ctx, "c/resumed.tsv", storage.UploadOptions{Size: int64(len(data)), SHA256: sum(data), Meta: map[string]string{"owner": "alice"}})
		if err != nil {
			t.Fatal(err)
		}
		chunk := 1 << 20
		if _, err := s.Append(ctx, u.ID, 0, bytes.NewReader(data[:chunk])); err != nil {
			t.Fatal(err)
		}
		// The same chunk again at the same offset is harmless.
		got, err := s.Append(ctx, u.ID, 0, bytes.NewReader(data[:chunk]))
		if err != nil || got.Offset != int64(chunk) {
			t.Fatalf("duplicate chunk: %+v %v", got, err)
		}
		// Different bytes at an old offset are a conflict.
		bad := bytes.Clone(data[:chunk])
		bad[10]++
		if _, err := s.Append(ctx, u.ID, 0, bytes.NewReader(bad)); depot.ErrorCode(err) != depot.CodeConflict {
			t.Fatalf("conflicting chunk: %v", err)
		}
		// An overlapping retry appends only the new tail.
		got, err = s.Append(ctx, u.ID, int64(chunk/2), bytes.NewReader(data[chunk/2:2*chunk]))
		if err != nil || got.Offset != int64(2*chunk) {
			t.Fatalf("overlapping chunk: %+v %v", got, err)
		}
		// A gap is an offset mismatch carrying the current offset.
		_, err = s.Append(ctx, u.ID, int64(3*chunk), bytes.NewReader(data[3*chunk:4*chunk]))
		if cur, ok := storage.CurrentOffset(err); depot.ErrorCode(err) != depot.CodeOffsetMismatch || !ok || cur != int64(2*chunk) {
			t.Fatalf("gap: %v (current %d)", err, cur)
		}
		// Nothing is visible before completion.
		if page, _ := s.List(ctx, "c/", "", 10); len(page.Objects) != 0 {
			t.Fatalf("partial upload visible: %+v", page)
		}
		if _, err := s.Complete(ctx, u.ID, -1, ""); depot.ErrorCode(err) != depot.CodeSizeMismatch {
			t.Fatalf("early complete: %v", err)
		}
		if reopen != nil { // a restart of the process keeps the session and its hash state
			s = reopen()
		}
		up, err := s.Upload(ctx, u.ID)
		if err != nil || up.Offset != int64(2*chunk) || up.Meta["owner"] != "alice" {
			t.Fatalf("after reopen: %+v %v", up, err)
		}
		if _, err := s.Append(ctx, u.ID, up.Offset, bytes.NewReader(data[2*chunk:])); err != nil {
			t.Fatal(err)
		}
		// More bytes than declared are refused and advance nothing.
		if _, err := s.Append(ctx, u.ID, int64(len(data)), bytes.NewReader([]byte("x"))); depot.ErrorCode(err) != depot.CodeSizeMismatch {
			t.Fatalf("overflow: %v", err)
		}
		obj, err := s.Complete(ctx, u.ID, int64(len(data)), sum(data))
		if err != nil || obj.SHA256 != sum(data) {
			t.Fatalf("complete: %+v %v", obj, err)
		}
		_, rc, err := s.Open(ctx, "c/resumed.tsv", nil)
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(stored, data) {
			t.Fatal("stored bytes differ")
		}
		// The session is kept, completed, so that a client that lost the
		// answer can learn the outcome; completing again is idempotent.
		if up, err := s.Upload(ctx, u.ID); err != nil || !up.Completed || up.SHA256 != sum(data) {
			t.Fatalf("completed session: %+v %v", up, err)
		}
		again, err := s.Complete(ctx, u.ID, int64(len(data)), "")
		var ac *storage.AlreadyCompleted
		if !errors.As(err, &ac) || again.SHA256 != sum(data) {
			t.Fatalf("second complete: %+v %v", again, err)
		}
		if _, err := s.Append(ctx, u.ID, 0, bytes.NewReader(data[:10])); depot.ErrorCode(err) != depot.CodeConflict {
			t.Fatalf("append after completion: %v", err)
		}
		if ups, _ := s.Uploads(ctx); len(ups) != 0 {
			t.Fatalf("completed session listed as open: %+v", ups)
		}
	})
}

func TestCompleteWithWrongHashDiscards(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *storage.Store, _ func() *storage.Store, _ *fakeClock) {
		ctx := t.Context()
		u, _ := s.CreateUpload(ctx, "c/f.csv", storage.UploadOptions{Size: -1})
		if _, err := s.Append(ctx, u.ID, 0, strings.NewReader("hello")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Complete(ctx, u.ID, 5, sum([]byte("hellO"))); depot.ErrorCode(err) != depot.CodeHashMismatch {
			t.Fatalf("complete: %v", err)
		}
		if _, err := s.Stat(ctx, "c/f.csv"); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("committed despite mismatch: %v", err)
		}
		if _, err := s.Upload(ctx, u.ID); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("session kept after mismatch: %v", err)
		}
	})
}

func TestAbortAndExpiry(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *storage.Store, _ func() *storage.Store, clock *fakeClock) {
		ctx := t.Context()
		a, _ := s.CreateUpload(ctx, "c/a", storage.UploadOptions{Size: -1})
		if err := s.Abort(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Upload(ctx, a.ID); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("aborted session: %v", err)
		}
		idle, _ := s.CreateUpload(ctx, "c/idle", storage.UploadOptions{Size: -1})
		clock.Add(50 * time.Minute)
		active, _ := s.CreateUpload(ctx, "c/active", storage.UploadOptions{Size: -1})
		clock.Add(20 * time.Minute) // idle is past its hour, active is not
		if _, err := s.Append(ctx, active.ID, 0, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		expired, err := s.ExpireUploads(ctx)
		if err != nil || len(expired) != 1 || expired[0].ID != idle.ID {
			t.Fatalf("expired %+v %v", expired, err)
		}
		if _, err := s.Upload(ctx, active.ID); err != nil {
			t.Fatalf("active upload touched: %v", err)
		}
	})
}

func TestKeyPolicyEnforced(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *storage.Store, _ func() *storage.Store, _ *fakeClock) {
		for _, key := range []string{"", "/abs", "a/../b", "a//b", "a/", "..", "a/.depot-part-x", "a\\b", "a\x00b", "\xff"} {
			if _, err := s.PutBytes(t.Context(), key, []byte("x"), ""); depot.ErrorCode(err) != depot.CodeInvalidPath {
				t.Fatalf("key %q: %v", key, err)
			}
		}
	})
}

func TestConcurrentSessions(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *storage.Store, _ func() *storage.Store, _ *fakeClock) {
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				data := random(uint64(i), 300_000+i)
				key := "c/concurrent/" + strings.Repeat("f", i+1)
				obj, err := s.Put(t.Context(), key, bytes.NewReader(data), depot.PutOptions{Size: -1})
				if err == nil && obj.SHA256 != sum(data) {
					err = io.ErrShortWrite
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}
