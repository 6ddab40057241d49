package sealed_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"depot"
	"depot/storage"
	"depot/storage/memstore"
	"depot/storage/sealed"
	"depot/storage/storagetest"
)

// TestStoreSessions runs uploads through a Store over a sealed driver:
// the session records (tail, hash state) never hold plaintext; a chunk
// damaged in transit is retried successfully; after a backend failure a
// retry with the same bytes succeeds and one with other bytes is refused
// with CodeConflict, before anything is written.
func TestStoreSessions(t *testing.T) {
	k, _ := testKeys(t)
	inner := &breakingDriver{Driver: memstore.New()}
	ss := storagetest.NewSessions()
	s := storage.New(wrapDriver(t, inner, k), ss, storage.Options{})
	defer s.Close()
	ctx := t.Context()
	data := markerBytes(3*seg + 777)
	u, err := s.CreateUpload(ctx, depot.Upload{Key: "c/x.txt", DeclaredSize: -1, Resumable: true})
	if err != nil {
		t.Fatal(err)
	}
	appendChunk := func(off, end int, body []byte) error {
		_, err := s.Append(ctx, u.ID, storage.Chunk{Offset: int64(off), Length: int64(end - off),
			CRC32C: storage.CRC32C(data[off:end]), Body: bytes.NewReader(body)})
		return err
	}
	// Damaged in transit: refused, and its correct retry succeeds.
	damaged := bytes.Clone(data[:seg+100])
	damaged[5] ^= 1
	if err := appendChunk(0, seg+100, damaged); err == nil {
		t.Fatal("a damaged chunk was accepted")
	}
	if err := appendChunk(0, seg+100, data[:seg+100]); err != nil {
		t.Fatalf("retry of a damaged chunk: %v", err)
	}
	noMarker(t, ss, u.ID)
	// The backend fails after taking the chunk's segments.
	inner.broken = true
	if err := appendChunk(seg+100, 3*seg+10, data[seg+100:3*seg+10]); err == nil {
		t.Fatal("a failed write succeeded")
	}
	inner.broken = false
	other := bytes.Clone(data[seg+100 : 3*seg+10])
	other[len(other)-seg-200] ^= 1 // in segment 1, which the failed write stored
	_, err = s.Append(ctx, u.ID, storage.Chunk{Offset: seg + 100, Length: int64(len(other)), CRC32C: storage.CRC32C(other), Body: bytes.NewReader(other)})
	if depot.ErrorCode(err) != depot.CodeConflict {
		t.Fatalf("retry with other bytes: %v, want conflict", err)
	}
	if err := appendChunk(seg+100, 3*seg+10, data[seg+100:3*seg+10]); err != nil {
		t.Fatalf("retry with the same bytes: %v", err)
	}
	if err := appendChunk(3*seg+10, len(data), data[3*seg+10:]); err != nil {
		t.Fatal(err)
	}
	noMarker(t, ss, u.ID)
	obj, err := s.Complete(ctx, u.ID, storage.Want{Size: -1}, func(context.Context, storage.Stored) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	got, err := readStore(s, obj.ID)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
}

func markerBytes(n int) []byte {
	return bytes.Repeat([]byte("PHI-MARKER|"), n/11+1)[:n]
}

func noMarker(t *testing.T, ss *storagetest.Sessions, id string) {
	t.Helper()
	sess, err := ss.Session(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"hash state": sess.HashState, "driver state": sess.DriverState} {
		if bytes.Contains(b, []byte("PHI-MARKER")) {
			t.Errorf("the session's %s holds plaintext", name)
		}
	}
}

func readStore(s *storage.Store, id string) ([]byte, error) {
	rc, err := s.Open(context.Background(), id, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var b bytes.Buffer
	_, err = b.ReadFrom(rc)
	return b.Bytes(), err
}

// TestStoreHashesWhileWriting appends chunks larger than a batch, and ones
// that end mid-segment, through a Store that hands its SHA-256 to the
// driver (Staging.TakeHash): the upload's SHA-256 covers every byte once,
// in order, and a damaged chunk's bytes not at all.
func TestStoreHashesWhileWriting(t *testing.T) {
	k, _ := testKeys(t)
	s := storage.New(wrapDriver(t, memstore.New(), k), storagetest.NewSessions(), storage.Options{})
	defer s.Close()
	ctx := t.Context()
	data := storagetest.RandData(2*sealed.MaxBatch+3*seg+5, 7)
	u, err := s.CreateUpload(ctx, depot.Upload{Key: "c/x.txt", DeclaredSize: -1, Resumable: true})
	if err != nil {
		t.Fatal(err)
	}
	bounds := []int{0, 100, sealed.MaxBatch + seg + 3, sealed.MaxBatch + 2*seg, len(data)}
	for i, lazy := range []bool{true, false, true, false} {
		off, end := bounds[i], bounds[i+1]
		if i == 1 { // a damaged copy first, which must leave no trace in the hash
			bad := bytes.Clone(data[off:end])
			bad[len(bad)/2] ^= 1
			if _, err := s.Append(ctx, u.ID, storage.Chunk{Offset: int64(off), Length: int64(end - off),
				CRC32C: storage.CRC32C(data[off:end]), Body: bytes.NewReader(bad), Lazy: lazy}); err == nil {
				t.Fatal("a damaged chunk was accepted")
			}
		}
		if _, err := s.Append(ctx, u.ID, storage.Chunk{Offset: int64(off), Length: int64(end - off),
			CRC32C: storage.CRC32C(data[off:end]), Body: bytes.NewReader(data[off:end]), Lazy: lazy}); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
	}
	want := sha256.Sum256(data)
	obj, err := s.Complete(ctx, u.ID, storage.Want{Size: int64(len(data)), SHA256: hex.EncodeToString(want[:])},
		func(context.Context, storage.Stored) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readStore(s, obj.ID); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
}
