package storagetest

import (
	"bytes"
	"slices"
	"sync"
	"testing"

	"depot/storage"
)

func (s *suite) sessionTests() []test {
	return []test{
		{"PutGetDeleteList", s.testSessions},
		{"RecordsAreCopied", s.testSessionCopies},
		{"PutReplacesAtomically", s.testSessionAtomic},
	}
}

func (s *suite) testSessions(t *testing.T) {
	d := s.driver(t)
	ctx := t.Context()
	id1, id2 := newID(t), newID(t)
	_, err := d.GetSession(ctx, id1)
	wantNotExist(t, "GetSession of a missing record", err)
	if ids, err := d.ListSessions(ctx); err != nil || len(ids) != 0 {
		t.Errorf("ListSessions of an empty store = %q, %v", ids, err)
	}
	for _, p := range []struct {
		id  string
		rec string
	}{{id1, `{"v":1}`}, {id1, `{"v":2,"longer":true}`}, {id2, ``}} {
		if err := d.PutSession(ctx, p.id, []byte(p.rec)); err != nil {
			t.Fatalf("PutSession: %v", err)
		}
		got, err := d.GetSession(ctx, p.id)
		if err != nil || string(got) != p.rec {
			t.Errorf("GetSession = %q, %v; want %q", got, err, p.rec)
		}
	}
	ids, err := d.ListSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{id1, id2}
	slices.Sort(ids)
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("ListSessions = %q, want %q", ids, want)
	}
	for i := range 2 {
		if err := d.DeleteSession(ctx, id1); err != nil {
			t.Errorf("DeleteSession #%d: %v", i+1, err)
		}
	}
	_, err = d.GetSession(ctx, id1)
	wantNotExist(t, "GetSession after delete", err)
	if ids, err := d.ListSessions(ctx); err != nil || !slices.Equal(ids, []string{id2}) {
		t.Errorf("ListSessions after delete = %q, %v; want [%s]", ids, err, id2)
	}
	if keys := listKeys(t, d, ""); len(keys) != 0 {
		t.Errorf("List shows session records: %q", keys)
	}
}

// testSessionCopies checks that the driver neither keeps the caller's slice
// nor hands out its own.
func (s *suite) testSessionCopies(t *testing.T) {
	d := s.driver(t)
	id := newID(t)
	rec := []byte("original")
	if err := d.PutSession(t.Context(), id, rec); err != nil {
		t.Fatal(err)
	}
	copy(rec, "XXXXXXXX")
	got, err := d.GetSession(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	copy(got, "YYYYYYYY")
	again, err := d.GetSession(t.Context(), id)
	if err != nil || string(again) != "original" {
		t.Errorf("GetSession = %q, %v; want %q", again, err, "original")
	}
}

// testSessionAtomic reads a record while it is being replaced: every read
// must see one whole version.
func (s *suite) testSessionAtomic(t *testing.T) {
	d := s.driver(t)
	id := newID(t)
	versions := [][]byte{bytes.Repeat([]byte("a"), 4096), bytes.Repeat([]byte("b"), 9000)}
	if err := d.PutSession(t.Context(), id, versions[0]); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				got, err := d.GetSession(t.Context(), id)
				if err != nil {
					t.Errorf("GetSession during Put: %v", err)
					return
				}
				if !bytes.Equal(got, versions[0]) && !bytes.Equal(got, versions[1]) {
					t.Errorf("GetSession during Put saw a torn record of %d bytes", len(got))
					return
				}
			}
		})
	}
	for i := range 40 {
		if err := d.PutSession(t.Context(), id, versions[i%2]); err != nil {
			t.Errorf("PutSession: %v", err)
			break
		}
	}
	close(done)
	wg.Wait()
}

func (s *suite) strayTests() []test {
	return []test{{"OrphanedStaging", s.testStrays}}
}

// testStrays checks that staging areas without a session record are
// reported and removable, and that nothing else is.
func (s *suite) testStrays(t *testing.T) {
	d := s.driver(t)
	ctx := t.Context()
	put(t, d, "kept/object.csv", []byte("object"), storage.Attrs{})
	live := stage(t, d, "live/upload.csv", []byte("live"))
	if err := d.PutSession(ctx, live.ID, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	orphan := stage(t, d, "orphan/upload.csv", []byte("0123456789"))
	ended := stage(t, d, "ended/upload.csv", []byte("x"))
	if err := d.PutSession(ctx, ended.ID, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteSession(ctx, ended.ID); err != nil {
		t.Fatal(err)
	}

	strays, err := d.Strays(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]storage.Stray{}
	for _, st := range strays {
		got[st.SessionID] = st
	}
	if len(strays) != 2 || got[orphan.ID].Name == "" || got[ended.ID].Name == "" {
		t.Fatalf("Strays = %+v, want the staging areas of %s and %s", strays, orphan.ID, ended.ID)
	}
	if st := got[orphan.ID]; st.Size != 10 || st.ModTime.IsZero() {
		t.Errorf("stray %+v: want size 10 and a mod time", st)
	}
	for _, st := range strays {
		for i := range 2 {
			if err := d.RemoveStray(ctx, st); err != nil {
				t.Errorf("RemoveStray #%d: %v", i+1, err)
			}
		}
	}
	if strays, err := d.Strays(ctx); err != nil || len(strays) != 0 {
		t.Errorf("Strays after RemoveStray = %+v, %v", strays, err)
	}
	_, err = d.ReadStaging(ctx, orphan, 0, -1)
	wantNotExist(t, "ReadStaging of a removed stray", err)
	equalBytes(t, "live staging", staged(t, d, live), []byte("live"))
	if err := d.Commit(ctx, live, 4, storage.Attrs{}); err != nil {
		t.Fatal(err)
	}
	if keys := listKeys(t, d, ""); !slices.Equal(keys, []string{"kept/object.csv", "live/upload.csv"}) {
		t.Errorf("List = %q", keys)
	}
}
