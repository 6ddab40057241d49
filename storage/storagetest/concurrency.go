package storagetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"depot/storage"
)

func (s *suite) concurrencyTests() []test {
	return []test{{"ParallelSessions", s.testParallelSessions}}
}

// testParallelSessions runs several uploads at once, each in several
// writes, with listings going on; run it with -race.
func (s *suite) testParallelSessions(t *testing.T) {
	d := s.driver(t)
	ctx := t.Context()
	const workers, chunks, chunkSize = 8, 4, 64 << 10
	data := make([][]byte, workers)
	var wg sync.WaitGroup
	for w := range workers {
		data[w] = randData(chunks*chunkSize, uint64(100+w))
		wg.Go(func() {
			key := fmt.Sprintf("parallel/%d/file.bin", w%3)
			if w >= 3 {
				key = fmt.Sprintf("parallel/%d.bin", w)
			}
			st := &storage.Staging{ID: newID(t), Key: key}
			if err := d.CreateStaging(ctx, st); err != nil {
				t.Errorf("CreateStaging: %v", err)
				return
			}
			if err := d.PutSession(ctx, st.ID, []byte(key)); err != nil {
				t.Errorf("PutSession: %v", err)
				return
			}
			for c := range chunks {
				p := data[w][c*chunkSize : (c+1)*chunkSize]
				if n, err := d.WriteStaging(ctx, st, int64(c*chunkSize), bytes.NewReader(p)); err != nil || n != int64(len(p)) {
					t.Errorf("WriteStaging: %d, %v", n, err)
					return
				}
				if _, err := d.List(ctx, "parallel/", "", 100); err != nil {
					t.Errorf("List: %v", err)
				}
			}
			if err := d.Commit(ctx, st, int64(len(data[w])), storage.Attrs{Class: "temporary"}); err != nil {
				t.Errorf("Commit: %v", err)
			}
			if err := d.DeleteSession(ctx, st.ID); err != nil {
				t.Errorf("DeleteSession: %v", err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for w := range workers {
		key := fmt.Sprintf("parallel/%d/file.bin", w%3)
		if w >= 3 {
			key = fmt.Sprintf("parallel/%d.bin", w)
		}
		equalBytes(t, key, object(t, d, key, 0, -1), data[w])
	}
	if keys := listKeys(t, d, ""); len(keys) != workers {
		t.Errorf("List = %q, want %d keys", keys, workers)
	}
}

func (s *suite) reopenTests() []test {
	return []test{{"SessionSurvives", s.testReopen}}
}

// testReopen stages half an upload, restarts the driver and finishes it.
func (s *suite) testReopen(t *testing.T) {
	if s.h.Reopen == nil {
		t.Skip("driver cannot be reopened")
	}
	ctx := t.Context()
	d := s.h.New(t)
	closed := false
	t.Cleanup(func() {
		if !closed {
			d.Close()
		}
	})
	data := randData(2<<20+5, 42)
	half := len(data) / 2
	put(t, d, "before/restart.csv", []byte("kept"), storage.Attrs{SHA256: "abc", Class: "permanent"})
	st := stage(t, d, "resumed/upload.csv", data[:half])
	rec := []byte(`{"offset":1048578}`)
	if err := d.PutSession(ctx, st.ID, rec); err != nil {
		t.Fatal(err)
	}
	closed = true
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	d2 := s.h.Reopen(t, d)
	t.Cleanup(func() { d2.Close() })
	got, err := d2.GetSession(ctx, st.ID)
	if err != nil || !bytes.Equal(got, rec) {
		t.Fatalf("GetSession after reopen = %q, %v", got, err)
	}
	if ids, err := d2.ListSessions(ctx); err != nil || len(ids) != 1 || ids[0] != st.ID {
		t.Errorf("ListSessions after reopen = %q, %v", ids, err)
	}
	if strays, err := d2.Strays(ctx); err != nil || len(strays) != 0 {
		t.Errorf("Strays after reopen = %+v, %v", strays, err)
	}
	equalBytes(t, "staged after reopen", staged(t, d2, st), data[:half])
	write(t, d2, st, int64(half), data[half:])
	if err := d2.Commit(ctx, st, int64(len(data)), storage.Attrs{Class: "temporary"}); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "object", object(t, d2, st.Key, 0, -1), data)
	info, err := d2.Stat(ctx, "before/restart.csv")
	if want := (storage.Attrs{SHA256: "abc", Class: "permanent"}); err != nil || info.Attrs != want {
		t.Errorf("Stat of an object committed before reopen = %+v, %v", info, err)
	}
	equalBytes(t, "object committed before reopen", object(t, d2, "before/restart.csv", 0, -1), []byte("kept"))
}
