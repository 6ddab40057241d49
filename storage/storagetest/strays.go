package storagetest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"depot/storage"
)

func (s *suite) strayTests() []test {
	return []test{{"StagingAreas", s.testStrays}}
}

// testStrays checks that every staging area is listed with its ID, that a
// published one is not, and that RemoveStray removes one (idempotently).
func (s *suite) testStrays(t *testing.T) {
	d := s.driver(t)
	a := stage(t, d, RandData(1000, 1))
	b := stage(t, d, RandData(10, 2))
	publish(t, d, []byte("published"))
	strays, err := d.Strays(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	bySession := map[string]storage.Stray{}
	for _, st := range strays {
		if st.SessionID == "" {
			t.Errorf("unexpected stray without a session: %+v", st)
			continue
		}
		bySession[st.SessionID] = st
	}
	if len(bySession) != 2 || bySession[a.ID].ModTime.IsZero() || bySession[b.ID].Name == "" {
		t.Fatalf("Strays = %+v, want the two staging areas %s and %s", strays, a.ID, b.ID)
	}
	for range 2 {
		if err := d.RemoveStray(t.Context(), bySession[a.ID]); err != nil {
			t.Fatalf("RemoveStray: %v", err)
		}
	}
	if err := d.Publish(t.Context(), a, 0); err == nil {
		t.Error("Publish of a removed staging area succeeded")
	}
	strays, err = d.Strays(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(strays) != 1 || strays[0].SessionID != b.ID {
		t.Errorf("Strays after removal = %+v, want only %s", strays, b.ID)
	}
}

func (s *suite) concurrencyTests() []test {
	return []test{{"ParallelStagings", s.testParallel}}
}

// testParallel runs several uploads at once, each in several writes, with
// listings going on; run it with -race.
func (s *suite) testParallel(t *testing.T) {
	d := s.driver(t)
	ctx := t.Context()
	const workers, chunks, chunkSize = 8, 4, 64 << 10
	data := make([][]byte, workers)
	ids := make([]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		data[w] = RandData(chunks*chunkSize, uint64(100+w))
		wg.Go(func() {
			st := &storage.Staging{ID: storage.NewID()}
			if err := d.CreateStaging(ctx, st); err != nil {
				t.Errorf("CreateStaging: %v", err)
				return
			}
			for c := range chunks {
				p := data[w][c*chunkSize : (c+1)*chunkSize]
				if n, err := d.WriteStaging(ctx, st, int64(c*chunkSize), bytes.NewReader(p)); err != nil || n != int64(len(p)) {
					t.Errorf("WriteStaging: %d, %v", n, err)
					return
				}
				if _, err := d.List(ctx, "", 100); err != nil {
					t.Errorf("List: %v", err)
				}
			}
			if err := d.Publish(ctx, st, int64(len(data[w]))); err != nil {
				t.Errorf("Publish: %v", err)
			}
			ids[w] = st.ID
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for w := range workers {
		equalBytes(t, fmt.Sprint("object ", w), object(t, d, ids[w], 0, -1), data[w])
	}
	if got := listIDs(t, d, 3); len(got) != workers {
		t.Errorf("List = %q, want %d objects", got, workers)
	}
}

func (s *suite) reopenTests() []test {
	return []test{{"StagingSurvives", s.testReopen}}
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
	data := RandData(2<<20+5, 42)
	half := len(data) / 2
	kept := publish(t, d, []byte("kept"))
	st := stage(t, d, data[:half])
	closed = true
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	d2 := s.h.Reopen(t, d)
	t.Cleanup(func() { d2.Close() })
	strays, err := d2.Strays(ctx)
	if err != nil || len(strays) != 1 || strays[0].SessionID != st.ID {
		t.Errorf("Strays after reopen = %+v, %v; want the staging area %s", strays, err, st.ID)
	}
	write(t, d2, st, int64(half), data[half:])
	if err := d2.Publish(ctx, st, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "object", object(t, d2, st.ID, 0, -1), data)
	equalBytes(t, "object published before reopen", object(t, d2, kept, 0, -1), []byte("kept"))
}
