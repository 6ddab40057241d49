package storagetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/storage"
)

func (s *suite) storeTests() []test {
	return []test{
		{"AppendAndComplete", s.testAppendComplete},
		{"RetryOfLastChunk", s.testRetryLastChunk},
		{"DamagedChunk", s.testDamagedChunk},
		{"SizeChecks", s.testSizeChecks},
		{"HashMismatchDiscards", s.testHashMismatch},
		{"CommitFailsThenRetried", s.testCommitRetried},
		{"AbortAfterFailedCommit", s.testAbortAfterFailedCommit},
		{"Expire", s.testExpire},
		{"Put", s.testPut},
		{"ConcurrentAppends", s.testConcurrentAppends},
		{"ChunkAheadAwaitsItsTurn", s.testAwaitOffset},
		{"LazyChunksThenSync", s.testLazyThenSync},
		{"Concat", s.testConcat},
	}
}

// store returns a Store over a fresh driver with in-memory sessions.
func (s *suite) store(t *testing.T, opts storage.Options) (*storage.Store, *Sessions) {
	t.Helper()
	ss := NewSessions()
	return storage.New(s.driver(t), ss, opts), ss
}

func sum(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

func chunk(off int64, b []byte) storage.Chunk {
	return storage.Chunk{Offset: off, Length: int64(len(b)), CRC32C: storage.CRC32C(b), Body: bytes.NewReader(b)}
}

func newUpload(t *testing.T, st *storage.Store, size int64) depot.Upload {
	t.Helper()
	u, err := st.CreateUpload(t.Context(), depot.Upload{Key: "c1/file.csv", Owner: "alice", DeclaredSize: size, Resumable: true})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func appendOK(t *testing.T, st *storage.Store, id string, off int64, b []byte) depot.Upload {
	t.Helper()
	u, err := st.Append(t.Context(), id, chunk(off, b))
	if err != nil {
		t.Fatalf("Append at %d: %v", off, err)
	}
	if u.Offset != off+int64(len(b)) {
		t.Fatalf("Append at %d: offset %d, want %d", off, u.Offset, off+int64(len(b)))
	}
	return u
}

func readObject(t *testing.T, st *storage.Store, id string) []byte {
	t.Helper()
	rc, err := st.Open(t.Context(), id, 0, -1)
	if err != nil {
		t.Fatalf("Open %s: %v", id, err)
	}
	return readAll(t, rc)
}

func noCommit(context.Context, storage.Stored) error { return nil }

func (s *suite) testAppendComplete(t *testing.T) {
	st, ss := s.store(t, storage.Options{})
	data := RandData(3<<20+11, 5)
	u := newUpload(t, st, int64(len(data)))
	for off := 0; off < len(data); off += 1 << 20 {
		appendOK(t, st, u.ID, int64(off), data[off:min(off+1<<20, len(data))])
	}
	var committed storage.Stored
	obj, err := st.Complete(t.Context(), u.ID, storage.Want{Size: int64(len(data)), SHA256: sum(data)}, func(_ context.Context, o storage.Stored) error {
		committed = o
		return ss.DeleteSession(context.Background(), u.ID) // as the services commit does
	})
	if err != nil {
		t.Fatal(err)
	}
	if obj != committed || obj.ID != u.ID || obj.Size != int64(len(data)) || obj.SHA256 != sum(data) {
		t.Fatalf("Complete = %+v (committed %+v), want ID %s, size %d, sha %s", obj, committed, u.ID, len(data), sum(data))
	}
	equalBytes(t, "object", readObject(t, st, obj.ID), data)
	if _, err := st.Upload(t.Context(), u.ID); depot.ErrorCode(err) != depot.CodeNotFound {
		t.Errorf("Upload after commit: %v, want not_found", err)
	}
}

func (s *suite) testRetryLastChunk(t *testing.T) {
	st, _ := s.store(t, storage.Options{})
	a, b := RandData(1000, 1), RandData(500, 2)
	u := newUpload(t, st, -1)
	appendOK(t, st, u.ID, 0, a)
	appendOK(t, st, u.ID, 1000, b)
	got, err := st.Append(t.Context(), u.ID, chunk(1000, b)) // its answer was lost
	if err != nil || got.Offset != 1500 {
		t.Fatalf("retry of the last chunk = %+v, %v; want offset 1500", got, err)
	}
	for _, c := range []storage.Chunk{chunk(0, a), chunk(1000, b[:100]), chunk(1200, b[:300]), chunk(1501, []byte("x"))} {
		_, err := st.Append(t.Context(), u.ID, c)
		if cur, ok := depot.CurrentOffset(err); depot.ErrorCode(err) != depot.CodeOffsetMismatch || !ok || cur != 1500 {
			t.Errorf("Append at %d (length %d): %v, want offset_mismatch at 1500", c.Offset, c.Length, err)
		}
	}
	changed := bytes.Clone(b)
	changed[0] ^= 1
	if _, err := st.Append(t.Context(), u.ID, chunk(1000, changed)); depot.ErrorCode(err) != depot.CodeOffsetMismatch {
		t.Errorf("a different chunk at the last chunk's offset: %v, want offset_mismatch", err)
	}
	obj, err := st.Complete(t.Context(), u.ID, storage.Want{Size: -1}, noCommit)
	if err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "object", readObject(t, st, obj.ID), append(a, b...))
}

func (s *suite) testDamagedChunk(t *testing.T) {
	st, _ := s.store(t, storage.Options{})
	data := RandData(100_000, 3)
	u := newUpload(t, st, int64(len(data)))
	appendOK(t, st, u.ID, 0, data[:50_000])
	bad := chunk(50_000, data[50_000:])
	bad.CRC32C ^= 1
	_, err := st.Append(t.Context(), u.ID, bad)
	if !errors.Is(err, storage.ErrDamaged) || depot.ErrorCode(err) != depot.CodeUnavailable {
		t.Fatalf("Append with a wrong CRC-32C: %v, want ErrDamaged (unavailable)", err)
	}
	short := chunk(50_000, data[50_000:])
	short.Body = io.MultiReader(bytes.NewReader(data[50_000:60_000]), &failingReader{err: errors.New("cut")})
	if _, err := st.Append(t.Context(), u.ID, short); !errors.Is(err, storage.ErrDamaged) {
		t.Fatalf("Append whose body is cut: %v, want ErrDamaged", err)
	}
	ended := chunk(50_000, data[50_000:])
	ended.Body = bytes.NewReader(data[50_000:60_000])
	if _, err := st.Append(t.Context(), u.ID, ended); !errors.Is(err, storage.ErrDamaged) {
		t.Fatalf("Append whose body ends early: %v, want ErrDamaged", err)
	}
	if cur, err := st.Upload(t.Context(), u.ID); err != nil || cur.Offset != 50_000 {
		t.Fatalf("offset after damaged chunks = %d, %v; want 50000", cur.Offset, err)
	}
	appendOK(t, st, u.ID, 50_000, data[50_000:])
	obj, err := st.Complete(t.Context(), u.ID, storage.Want{Size: -1, SHA256: sum(data)}, noCommit)
	if err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "object", readObject(t, st, obj.ID), data)
}

func (s *suite) testSizeChecks(t *testing.T) {
	st, _ := s.store(t, storage.Options{MaxObjectSize: 1000})
	if _, err := st.CreateUpload(t.Context(), depot.Upload{Key: "c1/big", DeclaredSize: 1001}); depot.ErrorCode(err) != depot.CodeTooLarge {
		t.Errorf("CreateUpload over the limit: %v, want too_large", err)
	}
	u := newUpload(t, st, 100)
	if _, err := st.Append(t.Context(), u.ID, chunk(0, make([]byte, 101))); depot.ErrorCode(err) != depot.CodeSizeMismatch {
		t.Errorf("Append past the declared size: %v, want size_mismatch", err)
	}
	appendOK(t, st, u.ID, 0, make([]byte, 60))
	if _, err := st.Complete(t.Context(), u.ID, storage.Want{Size: -1}, noCommit); depot.ErrorCode(err) != depot.CodeSizeMismatch {
		t.Errorf("Complete short of the declared size: %v, want size_mismatch", err)
	}
	appendOK(t, st, u.ID, 60, make([]byte, 40)) // the session was kept
	unsized := newUpload(t, st, -1)
	appendOK(t, st, unsized.ID, 0, make([]byte, 1000))
	if _, err := st.Append(t.Context(), unsized.ID, chunk(1000, []byte("x"))); depot.ErrorCode(err) != depot.CodeTooLarge {
		t.Errorf("Append past the size limit: %v, want too_large", err)
	}
}

func (s *suite) testHashMismatch(t *testing.T) {
	st, ss := s.store(t, storage.Options{})
	data := RandData(10_000, 4)
	u := newUpload(t, st, -1)
	appendOK(t, st, u.ID, 0, data)
	_, err := st.Complete(t.Context(), u.ID, storage.Want{Size: -1, SHA256: sum([]byte("other"))}, func(context.Context, storage.Stored) error {
		t.Error("commit called for a mismatching upload")
		return nil
	})
	if depot.ErrorCode(err) != depot.CodeHashMismatch {
		t.Fatalf("Complete with a wrong SHA-256: %v, want checksum_mismatch", err)
	}
	if ss.Len() != 0 {
		t.Error("the session was kept")
	}
	if _, err := st.Stat(t.Context(), u.ID); depot.ErrorCode(err) != depot.CodeNotFound {
		t.Errorf("object after a mismatch: %v, want not_found", err)
	}
	if strays, err := st.Strays(t.Context()); err != nil || len(strays) != 0 {
		t.Errorf("Strays after a mismatch = %+v, %v", strays, err)
	}
}

// testCommitRetried checks the crash-safety contract: a commit that fails
// leaves the session and the published object, and a retried Complete
// commits the same object.
func (s *suite) testCommitRetried(t *testing.T) {
	st, _ := s.store(t, storage.Options{})
	data := RandData(20_000, 6)
	u := newUpload(t, st, int64(len(data)))
	appendOK(t, st, u.ID, 0, data)
	refused := depot.Errorf(depot.CodeUnavailable, "audit trail down")
	if _, err := st.Complete(t.Context(), u.ID, storage.Want{Size: -1}, func(context.Context, storage.Stored) error { return refused }); err != refused {
		t.Fatalf("Complete with a failing commit: %v, want the commit's error", err)
	}
	if cur, err := st.Upload(t.Context(), u.ID); err != nil || cur.Offset != int64(len(data)) {
		t.Fatalf("session after a failed commit = %+v, %v", cur, err)
	}
	obj, err := st.Complete(t.Context(), u.ID, storage.Want{Size: -1, SHA256: sum(data)}, noCommit)
	if err != nil {
		t.Fatalf("retried Complete: %v", err)
	}
	equalBytes(t, "object", readObject(t, st, obj.ID), data)
}

func (s *suite) testAbortAfterFailedCommit(t *testing.T) {
	st, ss := s.store(t, storage.Options{})
	u := newUpload(t, st, 3)
	appendOK(t, st, u.ID, 0, []byte("abc"))
	fail := func(context.Context, storage.Stored) error { return depot.Errorf(depot.CodeUnavailable, "down") }
	if _, err := st.Complete(t.Context(), u.ID, storage.Want{Size: -1}, fail); err == nil {
		t.Fatal("Complete succeeded")
	}
	if err := st.Abort(t.Context(), u.ID); err != nil {
		t.Fatal(err)
	}
	if ss.Len() != 0 {
		t.Error("the session was kept")
	}
	if _, err := st.Stat(t.Context(), u.ID); depot.ErrorCode(err) != depot.CodeNotFound {
		t.Errorf("published object after Abort: %v, want not_found", err)
	}
	if err := st.Abort(t.Context(), u.ID); depot.ErrorCode(err) != depot.CodeNotFound {
		t.Errorf("second Abort: %v, want not_found", err)
	}
}

func (s *suite) testExpire(t *testing.T) {
	now := time.Now().UTC()
	clock := func() time.Time { return now }
	st, ss := s.store(t, storage.Options{Now: clock, UploadExpiry: time.Hour, PlainExpiry: time.Minute})
	idle := newUpload(t, st, -1)
	appendOK(t, st, idle.ID, 0, []byte("abc"))
	plain, err := st.CreateUpload(t.Context(), depot.Upload{Key: "c1/plain", DeclaredSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(time.Minute); !st.Expiry(plain).Equal(want) || !plain.Expires.Equal(want) {
		t.Errorf("plain session expires %v, want %v", plain.Expires, want)
	}
	now = now.Add(10 * time.Minute)
	active := newUpload(t, st, -1)
	for _, id := range []string{idle.ID, plain.ID, active.ID} {
		if _, ok, err := st.Expire(t.Context(), id, now.Add(-time.Hour)); err != nil || ok {
			t.Errorf("Expire(%s) of a session active within the hour = %v, %v", id, ok, err)
		}
	}
	if _, ok, err := st.Expire(t.Context(), plain.ID, now.Add(-time.Minute)); err != nil || !ok {
		t.Errorf("Expire of an idle plain session = %v, %v; want expired", ok, err)
	}
	if _, ok, err := st.Expire(t.Context(), idle.ID, now.Add(-time.Minute)); err != nil || !ok {
		t.Errorf("Expire of an idle session = %v, %v; want expired", ok, err)
	}
	if ss.Len() != 1 {
		t.Errorf("%d sessions left, want the active one", ss.Len())
	}
	if strays, err := st.Strays(t.Context()); err != nil || len(strays) != 1 || strays[0].SessionID != active.ID {
		t.Errorf("Strays after expiry = %+v, %v; want the active session's staging only", strays, err)
	}
}

func (s *suite) testPut(t *testing.T) {
	st, _ := s.store(t, storage.Options{MaxObjectSize: 4 << 20})
	data := RandData(3<<20, 8)
	obj, err := st.Put(t.Context(), chunk(0, data), sum(data))
	if err != nil {
		t.Fatal(err)
	}
	if obj.Size != int64(len(data)) || obj.SHA256 != sum(data) || !storage.ValidID(obj.ID) {
		t.Fatalf("Put = %+v", obj)
	}
	equalBytes(t, "object", readObject(t, st, obj.ID), data)
	empty, err := st.Put(t.Context(), chunk(0, nil), "")
	if err != nil || empty.Size != 0 {
		t.Fatalf("Put of nothing = %+v, %v", empty, err)
	}
	bad := chunk(0, data)
	bad.CRC32C ^= 1
	if _, err := st.Put(t.Context(), bad, ""); !errors.Is(err, storage.ErrDamaged) {
		t.Errorf("Put with a wrong CRC-32C: %v, want ErrDamaged", err)
	}
	if _, err := st.Put(t.Context(), chunk(0, data), sum([]byte("x"))); depot.ErrorCode(err) != depot.CodeHashMismatch {
		t.Errorf("Put with a wrong SHA-256: %v, want checksum_mismatch", err)
	}
	if _, err := st.Put(t.Context(), chunk(0, make([]byte, 4<<20+1)), ""); depot.ErrorCode(err) != depot.CodeTooLarge {
		t.Errorf("Put over the limit: %v, want too_large", err)
	}
	objs, err := st.Objects(t.Context(), "", 100)
	if err != nil || len(objs) != 2 {
		t.Errorf("objects after failed puts = %+v, %v; want the two good ones", objs, err)
	}
	if strays, err := st.Strays(t.Context()); err != nil || len(strays) != 0 {
		t.Errorf("Strays after failed puts = %+v, %v", strays, err)
	}
}

// testConcurrentAppends sends the same chunk of one session from several
// goroutines: exactly one lands, the others see its offset.
func (s *suite) testConcurrentAppends(t *testing.T) {
	st, _ := s.store(t, storage.Options{})
	data := RandData(256<<10, 9)
	u := newUpload(t, st, -1)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		other := bytes.Clone(data)
		other[i] ^= byte(i) // all but the first differ
		wg.Go(func() {
			_, errs[i] = st.Append(t.Context(), u.ID, chunk(0, other))
		})
	}
	wg.Wait()
	landed := 0
	for _, err := range errs {
		switch {
		case err == nil:
			landed++
		case depot.ErrorCode(err) != depot.CodeOffsetMismatch:
			t.Errorf("concurrent Append: %v", err)
		}
	}
	if landed != 1 {
		t.Errorf("%d concurrent appends at offset 0 landed, want 1", landed)
	}
	if cur, err := st.Upload(t.Context(), u.ID); err != nil || cur.Offset != int64(len(data)) {
		t.Errorf("offset = %d, %v", cur.Offset, err)
	}
}

// testAwaitOffset: AwaitOffset for the offset a chunk ahead of the session
// starts at waits until the chunk before it has landed, then reports true;
// a cancelled wait reports false at once.
func (s *suite) testAwaitOffset(t *testing.T) {
	st, _ := s.store(t, storage.Options{AheadWait: time.Minute}) // not a bound this test measures
	data := RandData(64<<10, 4)
	u := newUpload(t, st, -1)
	half := int64(len(data) / 2)
	reached := make(chan bool, 1)
	go func() { reached <- st.AwaitOffset(t.Context(), u.ID, half) }()
	select {
	case ok := <-reached:
		t.Fatalf("AwaitOffset returned %v before the session reached the offset", ok)
	case <-time.After(50 * time.Millisecond):
	}
	appendOK(t, st, u.ID, 0, data[:half])
	select {
	case ok := <-reached:
		if !ok {
			t.Fatal("AwaitOffset = false after the session reached the offset")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AwaitOffset still waits after the session reached the offset")
	}
	appendOK(t, st, u.ID, half, data[half:])
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if st.AwaitOffset(ctx, u.ID, 2*int64(len(data))) {
		t.Fatal("a cancelled AwaitOffset for an offset never reached = true")
	}
}

// testLazyThenSync: lazy chunks (more of the same request follow) land
// like others; Sync leaves the offset where it is and the last chunk's
// retry still recognised; the upload commits with every byte.
func (s *suite) testLazyThenSync(t *testing.T) {
	st, _ := s.store(t, storage.Options{})
	data := RandData(3*64<<10+123, 5)
	u := newUpload(t, st, int64(len(data)))
	third := int64(64 << 10)
	for off := int64(0); off < 2*third; off += third {
		c := chunk(off, data[off:off+third])
		c.Lazy = true
		if got, err := st.Append(t.Context(), u.ID, c); err != nil || got.Offset != off+third {
			t.Fatalf("lazy Append at %d = %d, %v", off, got.Offset, err)
		}
	}
	if got, err := st.Sync(t.Context(), u.ID); err != nil || got.Offset != 2*third {
		t.Fatalf("Sync = %d, %v; want offset %d", got.Offset, err, 2*third)
	}
	retry := chunk(third, data[third:2*third])
	if got, err := st.Append(t.Context(), u.ID, retry); err != nil || got.Offset != 2*third {
		t.Fatalf("retry of the last chunk after Sync = %d, %v", got.Offset, err)
	}
	appendOK(t, st, u.ID, 2*third, data[2*third:])
	obj, err := st.Complete(t.Context(), u.ID, storage.Want{Size: int64(len(data)), SHA256: sum(data)}, noCommit)
	if err != nil {
		t.Fatalf("Complete: %v", err)
	}
	if got := readObject(t, st, obj.ID); !bytes.Equal(got, data) {
		t.Fatal("the object differs from the bytes appended")
	}
}
