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
		{"PublishTruncates", s.testPublishTruncates},
		{"PublishTooLarge", s.testPublishTooLarge},
		{"PublishTwice", s.testPublishTwice},
		{"PublishReplaces", s.testPublishReplaces},
		{"InvisibleBeforePublish", s.testInvisibleBeforePublish},
		{"Discard", s.testDiscard},
	}
}

// testRoundTrip stages objects in several writes and checks that they read
// back byte-exact once published.
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
		{"past a part", 9<<20 + 5, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := s.driver(t)
			data := RandData(tc.size, uint64(tc.size))
			st := &storage.Staging{ID: storage.NewID()}
			if err := d.CreateStaging(t.Context(), st); err != nil {
				t.Fatal(err)
			}
			step := tc.size/tc.chunks + 1
			write(t, d, st, 0, nil)
			for off := 0; off < tc.size; off += step {
				write(t, d, st, int64(off), data[off:min(off+step, tc.size)])
			}
			if err := d.Publish(t.Context(), st, int64(tc.size)); err != nil {
				t.Fatal(err)
			}
			equalBytes(t, "object", object(t, d, st.ID, 0, -1), data)
			info, err := d.Stat(t.Context(), st.ID)
			if err != nil {
				t.Fatal(err)
			}
			if info.ID != st.ID || info.Size != int64(tc.size) || info.ModTime.IsZero() {
				t.Errorf("Stat = %+v, want ID %s, size %d, a mod time", info, st.ID, tc.size)
			}
		})
	}
}

// testRewriteAtOffset checks that a write at an offset discards what was
// staged past it.
func (s *suite) testRewriteAtOffset(t *testing.T) {
	d := s.driver(t)
	st := stage(t, d, []byte("0123456789"))
	write(t, d, st, 4, []byte("ab"))
	write(t, d, st, 6, nil)
	write(t, d, st, 2, []byte("cd"))
	if err := d.Publish(t.Context(), st, 4); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "object", object(t, d, st.ID, 0, -1), []byte("01cd"))
}

// testOffsetPastEnd checks that a write cannot leave a hole.
func (s *suite) testOffsetPastEnd(t *testing.T) {
	d := s.driver(t)
	st := stage(t, d, []byte("0123456789"))
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
	data := RandData(300_000, 7)
	st := stage(t, d, data[:100_000])
	broken := errors.New("connection cut")
	_, err := d.WriteStaging(t.Context(), st, 100_000, &failingReader{data: data[100_000:150_000], err: broken})
	if !errors.Is(err, broken) {
		t.Fatalf("WriteStaging with a failing reader: got %v, want %v", err, broken)
	}
	write(t, d, st, 100_000, data[100_000:])
	if err := d.Publish(t.Context(), st, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "object", object(t, d, st.ID, 0, -1), data)
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
	st := stage(t, d, nil)
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

// testPublishTruncates publishes fewer bytes than were staged.
func (s *suite) testPublishTruncates(t *testing.T) {
	d := s.driver(t)
	data := RandData(100, 1)
	st := stage(t, d, data)
	if err := d.Publish(t.Context(), st, 40); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "object", object(t, d, st.ID, 0, -1), data[:40])
	if info, err := d.Stat(t.Context(), st.ID); err != nil || info.Size != 40 {
		t.Errorf("Stat = %+v, %v; want size 40", info, err)
	}
}

// testPublishTooLarge publishes more bytes than were staged.
func (s *suite) testPublishTooLarge(t *testing.T) {
	d := s.driver(t)
	st := stage(t, d, []byte("0123456789"))
	if err := d.Publish(t.Context(), st, 11); err == nil {
		t.Fatal("Publish of more bytes than staged succeeded")
	}
	absent(t, d, st.ID)
}

// testPublishTwice checks that Publish of a published staging area (a retry
// after a crash) succeeds and changes nothing, and that one with neither a
// staging area nor an object is ErrNotExist.
func (s *suite) testPublishTwice(t *testing.T) {
	d := s.driver(t)
	data := RandData(5000, 9)
	st := stage(t, d, data)
	for i := range 2 {
		if err := d.Publish(t.Context(), st, int64(len(data))); err != nil {
			t.Fatalf("Publish #%d: %v", i+1, err)
		}
	}
	equalBytes(t, "object", object(t, d, st.ID, 0, -1), data)
	never := &storage.Staging{ID: storage.NewID()}
	wantNotExist(t, "Publish without a staging area", d.Publish(t.Context(), never, 0))
	absent(t, d, never.ID)
}

// testInvisibleBeforePublish checks that staged data is not an object.
func (s *suite) testInvisibleBeforePublish(t *testing.T) {
	d := s.driver(t)
	st := stage(t, d, RandData(1000, 2))
	absent(t, d, st.ID)
	if ids := listIDs(t, d, 100); len(ids) != 0 {
		t.Errorf("List = %q before Publish, want nothing", ids)
	}
}

// testDiscard checks that a discarded staging area is gone and that
// discarding is idempotent.
func (s *suite) testDiscard(t *testing.T) {
	d := s.driver(t)
	st := stage(t, d, RandData(1000, 4))
	for i := range 2 {
		if err := d.DiscardStaging(t.Context(), st); err != nil {
			t.Fatalf("DiscardStaging #%d: %v", i+1, err)
		}
	}
	_, err := d.WriteStaging(t.Context(), st, 0, bytes.NewReader(nil))
	wantNotExist(t, "WriteStaging after discard", err)
	if err := d.Publish(t.Context(), st, 0); err == nil {
		t.Error("Publish after discard succeeded")
	}
	absent(t, d, st.ID)
	never := &storage.Staging{ID: storage.NewID()}
	if err := d.DiscardStaging(t.Context(), never); err != nil {
		t.Errorf("DiscardStaging of a staging area never created: %v", err)
	}
	if strays, err := d.Strays(t.Context()); err != nil || len(strays) != 0 {
		t.Errorf("Strays after discard = %+v, %v; want none", strays, err)
	}
}

// testPublishReplaces checks that publishing a staging area created anew
// for the ID of an existing object replaces that object.
func (s *suite) testPublishReplaces(t *testing.T) {
	d := s.driver(t)
	id := publish(t, d, []byte("old bytes"))
	st := &storage.Staging{ID: id}
	if err := d.CreateStaging(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	write(t, d, st, 0, []byte("new bytes!"))
	if err := d.Publish(t.Context(), st, 10); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "object", object(t, d, id, 0, -1), []byte("new bytes!"))
}
