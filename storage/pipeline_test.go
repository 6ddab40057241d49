package storage_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/storage"
	"depot/storage/memstore"
)

// gatedSync is a memory driver whose SyncStaging announces itself on
// entered with a channel of its own and returns what the test sends there:
// a test decides when, and whether, written bytes become durable.
type gatedSync struct {
	*memstore.Driver
	entered chan chan error
}

func (g *gatedSync) SyncStaging(ctx context.Context, st *storage.Staging) error {
	gate := make(chan error)
	g.entered <- gate
	if err := <-gate; err != nil {
		return err
	}
	return g.Driver.SyncStaging(ctx, st)
}

// next returns the gate of the next SyncStaging to begin.
func (g *gatedSync) next(t *testing.T) chan<- error {
	t.Helper()
	select {
	case gate := <-g.entered:
		return gate
	case <-time.After(10 * time.Second):
		t.Fatal("no SyncStaging began: the bytes were made durable before Append returned")
		return nil
	}
}

// release lets the next SyncStaging to begin return err.
func (g *gatedSync) release(t *testing.T, err error) {
	t.Helper()
	g.next(t) <- err
}

func newGated(t *testing.T) (*storage.Store, *gatedSync, string) {
	t.Helper()
	g := &gatedSync{Driver: memstore.New(), entered: make(chan chan error)}
	s := storage.New(g, storage.Options{})
	u, err := s.CreateUpload(t.Context(), "c/pipelined.csv", storage.UploadOptions{Size: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s, g, u.ID
}

func durableOffset(t *testing.T, s *storage.Store, id string) int64 {
	t.Helper()
	u, err := s.Upload(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u.Offset
}

// startTwo starts appending a and then b to session id, the second while
// the first is not yet durable (no sync is released yet).
func startTwo(s *storage.Store, id string, a, b []byte) (waitA, waitB func() (depot.Upload, error)) {
	ctx := context.Background()
	waitA = s.StartAppend(ctx, id, 0, bytes.NewReader(a))
	waitB = s.StartAppend(ctx, id, int64(len(a)), bytes.NewReader(b))
	return waitA, waitB
}

// TestStartAppendWritesWhileEarlierSyncs checks the point of StartAppend:
// the next segment is written while the one before it is still being made
// durable, offsets become durable in order, and the object is whole.
func TestStartAppendWritesWhileEarlierSyncs(t *testing.T) {
	s, g, id := newGated(t)
	ctx := t.Context()
	a, b := bytes.Repeat([]byte("a"), 5000), bytes.Repeat([]byte("b"), 3000)
	// The first segment's sync is blocked, yet the second is written.
	waitA, waitB := startTwo(s, id, a, b)
	if got := durableOffset(t, s, id); got != 0 {
		t.Fatalf("durable offset %d before any sync, want 0", got)
	}
	g.release(t, nil) // the sync of one of the two (they may run in any order)
	g.release(t, nil)
	ua, err := waitA()
	if err != nil || ua.Offset != int64(len(a)) {
		t.Fatalf("first segment: offset %d, %v", ua.Offset, err)
	}
	ub, err := waitB()
	if err != nil || ub.Offset != int64(len(a)+len(b)) {
		t.Fatalf("second segment: offset %d, %v", ub.Offset, err)
	}
	obj, err := s.Complete(ctx, id, -1, "")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append(a, b...))
	if obj.Size != int64(len(a)+len(b)) || obj.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("object %d bytes, sha256 %s", obj.Size, obj.SHA256)
	}
}

// TestFailedSyncFailsLaterSegments checks that a segment written on top of
// one that could not be made durable fails too, that the durable offset
// stays where it was, and that the upload continues from there.
func TestFailedSyncFailsLaterSegments(t *testing.T) {
	s, g, id := newGated(t)
	ctx := t.Context()
	a, b := bytes.Repeat([]byte("x"), 4096), bytes.Repeat([]byte("y"), 4096)
	waitA := s.StartAppend(ctx, id, 0, bytes.NewReader(a))
	gateA := g.next(t) // the first segment's sync has begun and waits
	waitB := s.StartAppend(ctx, id, int64(len(a)), bytes.NewReader(b))
	gateB := g.next(t)
	gateA <- errors.New("injected: device gone")
	gateB <- nil // the second segment's own bytes would be durable
	_, errA := waitA()
	_, errB := waitB()
	if errA == nil || errB == nil {
		t.Fatalf("both segments must fail when one sync fails: %v, %v", errA, errB)
	}
	if depot.ErrorCode(errB) != depot.CodeUnavailable {
		t.Fatalf("second segment: %v, want unavailable", errB)
	}
	if got := durableOffset(t, s, id); got != 0 {
		t.Fatalf("durable offset %d after the failure, want 0", got)
	}
	// The client starts again at the durable offset.
	go func() { (<-g.entered) <- nil }()
	if u, err := s.Append(ctx, id, 0, bytes.NewReader(append(a, b...))); err != nil || u.Offset != int64(len(a)+len(b)) {
		t.Fatalf("append after failure: offset %d, %v", u.Offset, err)
	}
	sum := sha256.Sum256(append(a, b...))
	if obj, err := s.Complete(ctx, id, -1, hex.EncodeToString(sum[:])); err != nil || obj.Size != int64(len(a)+len(b)) {
		t.Fatalf("complete: %+v, %v", obj, err)
	}
}

// TestCompleteWaitsForPendingSegments checks that Complete does not look
// at the session while a written segment is still being made durable.
func TestCompleteWaitsForPendingSegments(t *testing.T) {
	s, g, id := newGated(t)
	ctx := t.Context()
	data := bytes.Repeat([]byte("z"), 10000)
	wait := s.StartAppend(ctx, id, 0, bytes.NewReader(data))
	completed := make(chan error, 1)
	go func() {
		obj, err := s.Complete(ctx, id, int64(len(data)), "")
		if err == nil && obj.Size != int64(len(data)) {
			err = errors.New("wrong size")
		}
		completed <- err
	}()
	select {
	case err := <-completed:
		t.Fatalf("Complete returned (%v) while the only segment was not durable", err)
	case <-time.After(100 * time.Millisecond):
	}
	g.release(t, nil)
	if _, err := wait(); err != nil {
		t.Fatal(err)
	}
	if err := <-completed; err != nil {
		t.Fatalf("complete: %v", err)
	}
}

// TestSharedLockHeldUntilDurable checks that with locks shared between
// processes, the shared lock of a session stays taken while an append's
// bytes are being made durable (another process must not see the session
// before), that the next append of this process does not wait for it, and
// that it is released at the end.
func TestSharedLockHeldUntilDurable(t *testing.T) {
	s, g, id := newGated(t)
	ctx := t.Context()
	var mu sync.Mutex
	held, taken := 0, 0
	s.ShareSessionLocks(func(ctx context.Context, name string) (func(), error) {
		mu.Lock()
		defer mu.Unlock()
		if held != 0 {
			t.Errorf("shared lock of %s taken twice", name)
		}
		held++
		taken++
		return func() { mu.Lock(); held--; mu.Unlock() }, nil
	})
	state := func() (int, int) { mu.Lock(); defer mu.Unlock(); return held, taken }
	waitA := s.StartAppend(ctx, id, 0, bytes.NewReader([]byte("first")))
	if h, _ := state(); h != 1 {
		t.Fatalf("shared lock released while the first append is not durable (held %d)", h)
	}
	waitB := s.StartAppend(ctx, id, 5, bytes.NewReader([]byte("second")))
	if h, n := state(); h != 1 || n != 1 {
		t.Fatalf("second append: held %d, taken %d times; want the first lock inherited", h, n)
	}
	g.release(t, nil)
	g.release(t, nil)
	if _, err := waitA(); err != nil {
		t.Fatal(err)
	}
	u, err := waitB()
	if err != nil || u.Offset != 11 {
		t.Fatalf("offset %d, %v", u.Offset, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for h, _ := state(); h != 0; h, _ = state() {
		if time.Now().After(deadline) {
			t.Fatal("shared lock still held after every append is durable")
		}
		time.Sleep(time.Millisecond)
	}
	// The next operation takes it again.
	if _, err := s.Complete(ctx, id, 11, ""); err != nil {
		t.Fatal(err)
	}
	if h, n := state(); h != 0 || n != 2 {
		t.Fatalf("after Complete: held %d, taken %d times", h, n)
	}
}
