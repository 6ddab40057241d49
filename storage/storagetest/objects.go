package storagetest

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"depot/storage"
)

func (s *suite) objectTests() []test {
	return []test{
		{"OpenRanges", s.testOpenRanges},
		{"OpenSurvivesDelete", s.testOpenSurvivesDelete},
		{"Missing", s.testMissing},
		{"Delete", s.testDelete},
		{"ListOrderAndPages", s.testList},
	}
}

func (s *suite) testOpenRanges(t *testing.T) {
	d := s.driver(t)
	data := RandData(1000, 12)
	id := publish(t, d, data)
	for _, tc := range []struct {
		name       string
		off, n     int64
		start, end int
	}{
		{"whole", 0, -1, 0, 1000},
		{"whole exact", 0, 1000, 0, 1000},
		{"start", 0, 10, 0, 10},
		{"middle", 500, 100, 500, 600},
		{"to end", 990, -1, 990, 1000},
		{"last byte", 999, 1, 999, 1000},
		{"past end is clamped", 990, 100, 990, 1000},
		{"zero length", 500, 0, 500, 500},
		{"zero length at start", 0, 0, 0, 0},
		{"at end", 1000, -1, 1000, 1000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			equalBytes(t, "range", object(t, d, id, tc.off, tc.n), data[tc.start:tc.end])
		})
	}
}

// testOpenSurvivesDelete checks that a reader opened before the object was
// deleted reads it whole (a download in progress while cleanup purges the
// version it reads).
func (s *suite) testOpenSurvivesDelete(t *testing.T) {
	d := s.driver(t)
	data := RandData(200_000, 13)
	id := publish(t, d, data)
	rc, err := d.Open(t.Context(), id, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "read after delete", readAll(t, rc), data)
	absent(t, d, id)
}

// testMissing checks ErrNotExist for objects never written, and that a
// delete of one is not an error.
func (s *suite) testMissing(t *testing.T) {
	d := s.driver(t)
	publish(t, d, []byte("x"))
	id := storage.NewID()
	absent(t, d, id)
	if err := d.Delete(t.Context(), id); err != nil {
		t.Errorf("Delete of a missing object: %v", err)
	}
}

// testDelete deletes one of two objects.
func (s *suite) testDelete(t *testing.T) {
	d := s.driver(t)
	a := publish(t, d, []byte("aaa"))
	b := publish(t, d, []byte("bbb"))
	if err := d.Delete(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	absent(t, d, a)
	equalBytes(t, "the other object", object(t, d, b, 0, -1), []byte("bbb"))
	if ids := listIDs(t, d, 10); !slices.Equal(ids, []string{b}) {
		t.Errorf("List after delete = %q, want [%s]", ids, b)
	}
}

// testList checks that List returns every object once, in ID order, with
// sizes, over pages of any size.
func (s *suite) testList(t *testing.T) {
	d := s.driver(t)
	if ids := listIDs(t, d, 10); len(ids) != 0 {
		t.Fatalf("List of an empty store = %q", ids)
	}
	var want []string
	sizes := map[string]int64{}
	for i := range 7 {
		data := RandData(i*10, uint64(i))
		id := publish(t, d, data)
		want = append(want, id)
		sizes[id] = int64(len(data))
	}
	stage(t, d, []byte("not an object"))
	slices.Sort(want)
	for _, page := range []int{1, 2, 3, 100} {
		if got := listIDs(t, d, page); !slices.Equal(got, want) {
			t.Errorf("List in pages of %d = %q, want %q", page, got, want)
		}
	}
	infos, err := d.List(t.Context(), want[2], 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) == 0 || infos[0].ID != want[3] {
		t.Fatalf("List after %s = %+v, want it to start at %s", want[2], infos, want[3])
	}
	for _, info := range infos {
		if info.Size != sizes[info.ID] || info.ModTime.IsZero() {
			t.Errorf("List entry %+v, want size %d and a mod time", info, sizes[info.ID])
		}
	}
}

func (s *suite) capabilityTests() []test {
	return []test{
		{"PutObject", s.testPutObject},
		{"Space", s.testSpace},
	}
}

// testPutObject checks the optional one-call store: the object reads back,
// and a reader that fails leaves no object behind.
func (s *suite) testPutObject(t *testing.T) {
	d := s.driver(t)
	p, ok := d.(storage.ObjectPutter)
	if !ok {
		t.Skip("driver has no PutObject")
	}
	data := RandData(3<<20, 21)
	id := storage.NewID()
	if err := p.PutObject(t.Context(), id, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "object", object(t, d, id, 0, -1), data)
	empty := storage.NewID()
	if err := p.PutObject(t.Context(), empty, bytes.NewReader(nil), 0); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "empty object", object(t, d, empty, 0, -1), nil)

	broken := errors.New("connection cut")
	bad := storage.NewID()
	err := p.PutObject(t.Context(), bad, &failingReader{data: data[:1000], err: broken}, int64(len(data)))
	if err == nil {
		t.Fatal("PutObject with a failing reader succeeded")
	}
	absent(t, d, bad)
	short := storage.NewID()
	if err := p.PutObject(t.Context(), short, bytes.NewReader(data[:10]), 11); err == nil {
		t.Error("PutObject of fewer bytes than its size succeeded")
	}
	absent(t, d, short)
}

// testSpace checks the optional capacity report.
func (s *suite) testSpace(t *testing.T) {
	d := s.driver(t)
	sr, ok := d.(storage.SpaceReporter)
	if !ok {
		t.Skip("driver reports no capacity")
	}
	sp, err := sr.Space(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sp.Total <= 0 || sp.Free < 0 || sp.Free > sp.Total {
		t.Errorf("Space = %+v, want 0 <= free <= total, total > 0", sp)
	}
}
