package storagetest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"depot/storage"
)

func (s *suite) stagingTests() []test {
	return []test{
		{"RoundTrip", s.testRoundTrip},
		{"RewriteAtOffset", s.testRewriteAtOffset},
		{"OffsetPastEnd", s.testOffsetPastEnd},
		{"RetryAfterReaderError", s.testRetryAfterReaderError},
		{"WriteCanceled", s.testWriteCanceled},
		{"ReadStagingRange", s.testReadStagingRange},
		{"CommitTruncates", s.testCommitTruncates},
		{"CommitTooLarge", s.testCommitTooLarge},
		{"InvisibleBeforeCommit", s.testInvisibleBeforeCommit},
		{"Discard", s.testDiscard},
	}
}

// testRoundTrip stages objects in several writes and checks they read back
// byte-exact, staged and committed, with their attributes.
func (s *suite) testRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int
		chunks int
	}{
		{"empty", 0, 1},
		{"one byte", 1, 1},
		{"small", 1000, 3},
		{"multi-MiB", 3<<20 + 17, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := s.driver(t)
			data := randData(tc.size, uint64(tc.size))
			st := &storage.Staging{ID: newID(t), Key: "round/trip.bin"}
			if err := d.CreateStaging(t.Context(), st); err != nil {
				t.Fatal(err)
			}
			step := tc.size/tc.chunks + 1
			write(t, d, st, 0, nil)
			for off := 0; off < tc.size; off += step {
				write(t, d, st, int64(off), data[off:min(off+step, tc.size)])
			}
			equalBytes(t, "staged", staged(t, d, st), data)
			attrs := storage.Attrs{SHA256: "ab12" + newID(t), Class: "temporary"}
			if err := d.Commit(t.Context(), st, int64(tc.size), attrs); err != nil {
				t.Fatal(err)
			}
			equalBytes(t, "object", object(t, d, st.Key, 0, -1), data)
			info, err := d.Stat(t.Context(), st.Key)
			if err != nil {
				t.Fatal(err)
			}
			if info.Key != st.Key || info.Size != int64(tc.size) || info.Attrs != attrs || info.ModTime.IsZero() {
				t.Errorf("Stat = %+v, want key %q, size %d, attrs %+v, a mod time", info, st.Key, tc.size, attrs)
			}
			_, err = d.ReadStaging(t.Context(), st, 0, -1)
			wantNotExist(t, "ReadStaging after Commit", err)
		})
	}
}

// testRewriteAtOffset checks that a write at an offset discards what was
// staged past it.
func (s *suite) testRewriteAtOffset(t *testing.T) {
	d := s.driver(t)
	st := stage(t, d, "rewrite.txt", []byte("0123456789"))
	write(t, d, st, 4, []byte("ab"))
	equalBytes(t, "after rewrite at 4", staged(t, d, st), []byte("0123ab"))
	write(t, d, st, 6, nil)
	equalBytes(t, "after empty write at end", staged(t, d, st), []byte("0123ab"))
	write(t, d, st, 2, nil)
	equalBytes(t, "after empty write at 2", staged(t, d, st), []byte("01"))
	write(t, d, st, 0, []byte("xyz"))
	equalBytes(t, "after rewrite at 0", staged(t, d, st), []byte("xyz"))
}

// testOffsetPastEnd checks that a write cannot leave a hole.
func (s *suite) testOffsetPastEnd(t *testing.T) {
	d := s.driver(t)
	st := stage(t, d, "hole.txt", []byte("0123456789"))
	if _, err := d.WriteStaging(t.Context(), st, 11, bytes.NewReader([]byte("x"))); err == nil {
		t.Error("WriteStaging past the staged data succeeded")
	}
	if _, err := d.WriteStaging(t.Context(), st, -1, bytes.NewReader([]byte("x"))); err == nil {
		t.Error("WriteStaging at a negative offset succeeded")
	}
}

// failingReader returns data, then err.
type failingReader struct {
	data []byte
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// testRetryAfterReaderError checks that a failed write returns the reader's
// error and that a retry from the last good offset gives the right bytes.
func (s *suite) testRetryAfterReaderError(t *testing.T) {
	d := s.driver(t)
	data := randData(300_000, 7)
	st := stage(t, d, "retry.bin", data[:100_000])
	broken := errors.New("connection cut")
	_, err := d.WriteStaging(t.Context(), st, 100_000, &failingReader{data: data[100_000:150_000], err: broken})
	if !errors.Is(err, broken) {
		t.Fatalf("WriteStaging with a failing reader: got %v, want %v", err, broken)
	}
	write(t, d, st, 100_000, data[100_000:])
	if err := d.Commit(t.Context(), st, int64(len(data)), storage.Attrs{}); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "object", object(t, d, st.Key, 0, -1), data)
}

// endlessReader calls onRead before each read and never ends.
type endlessReader struct {
	reads  int
	onRead func(n int)
}

func (r *endlessReader) Read(p []byte) (int, error) {
	r.reads++
	if r.reads > 10_000 {
		return 0, errors.New("the driver ignored the canceled context")
	}
	r.onRead(r.reads)
	return len(p), nil
}

// testWriteCanceled checks that WriteStaging stops when its context is
// canceled while it copies.
func (s *suite) testWriteCanceled(t *testing.T) {
	d := s.driver(t)
	st := stage(t, d, "cancel.bin", nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := &endlessReader{onRead: func(n int) {
		if n == 2 {
			cancel()
		}
	}}
	_, err := d.WriteStaging(ctx, st, 0, r)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteStaging with a canceled context: got %v, want context.Canceled", err)
	}
}

// testReadStagingRange reads parts of the staged data.
func (s *suite) testReadStagingRange(t *testing.T) {
	d := s.driver(t)
	data := randData(5000, 3)
	st := stage(t, d, "range/staged.bin", data)
	for _, r := range []struct{ off, n int64 }{{0, 10}, {100, 1000}, {4990, 10}, {4000, -1}, {5000, -1}, {10, 0}} {
		rc, err := d.ReadStaging(t.Context(), st, r.off, r.n)
		if err != nil {
			t.Fatalf("ReadStaging(%d, %d): %v", r.off, r.n, err)
		}
		end := int64(len(data))
		if r.n >= 0 {
			end = r.off + r.n
		}
		equalBytes(t, "staged range", readAll(t, rc), data[r.off:end])
	}
}

// testCommitTruncates commits fewer bytes than were staged.
func (s *suite) testCommitTruncates(t *testing.T) {
	d := s.driver(t)
	data := randData(100, 1)
	st := stage(t, d, "short.bin", data)
	if err := d.Commit(t.Context(), st, 40, storage.Attrs{}); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "object", object(t, d, st.Key, 0, -1), data[:40])
	if info, err := d.Stat(t.Context(), st.Key); err != nil || info.Size != 40 {
		t.Errorf("Stat = %+v, %v; want size 40", info, err)
	}
}

// testCommitTooLarge commits more bytes than were staged.
func (s *suite) testCommitTooLarge(t *testing.T) {
	d := s.driver(t)
	st := stage(t, d, "long.bin", []byte("0123456789"))
	if err := d.Commit(t.Context(), st, 11, storage.Attrs{}); err == nil {
		t.Fatal("Commit of more bytes than staged succeeded")
	}
	invisible(t, d, st.Key)
}

// testInvisibleBeforeCommit checks that staged data cannot be seen as an
// object.
func (s *suite) testInvisibleBeforeCommit(t *testing.T) {
	d := s.driver(t)
	st := stage(t, d, "dir/file.csv", randData(1000, 2))
	if err := d.PutSession(t.Context(), st.ID, []byte(`{"state":"open"}`)); err != nil {
		t.Fatal(err)
	}
	invisible(t, d, st.Key)
	for _, prefix := range []string{"", "dir", "dir/", "dir/file.csv"} {
		if keys := listKeys(t, d, prefix); len(keys) != 0 {
			t.Errorf("List(%q) = %q before Commit, want nothing", prefix, keys)
		}
	}
}

// testDiscard checks that a discarded staging area is gone and that
// discarding is idempotent.
func (s *suite) testDiscard(t *testing.T) {
	d := s.driver(t)
	st := stage(t, d, "discard/me.bin", randData(1000, 4))
	for i := range 2 {
		if err := d.DiscardStaging(t.Context(), st); err != nil {
			t.Fatalf("DiscardStaging #%d: %v", i+1, err)
		}
	}
	_, err := d.ReadStaging(t.Context(), st, 0, -1)
	wantNotExist(t, "ReadStaging after discard", err)
	_, err = d.WriteStaging(t.Context(), st, 0, bytes.NewReader(nil))
	wantNotExist(t, "WriteStaging after discard", err)
	if err := d.Commit(t.Context(), st, 0, storage.Attrs{}); err == nil {
		t.Error("Commit after discard succeeded")
	}
	invisible(t, d, st.Key)
	never := &storage.Staging{ID: newID(t), Key: "never/created.bin"}
	if err := d.DiscardStaging(t.Context(), never); err != nil {
		t.Errorf("DiscardStaging of a staging area never created: %v", err)
	}
	if keys := listKeys(t, d, ""); len(keys) != 0 {
		t.Errorf("List = %q after discard, want nothing", keys)
	}
	// The key remains usable.
	put(t, d, st.Key, []byte("x"), storage.Attrs{})
	equalBytes(t, "object", object(t, d, st.Key, 0, -1), []byte("x"))
}
