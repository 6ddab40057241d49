package storagetest

import (
	"testing"

	"depot/storage"
)

func (s *suite) objectTests() []test {
	return []test{
		{"CommitReplaces", s.testCommitReplaces},
		{"OpenRanges", s.testOpenRanges},
		{"OpenSurvivesDeleteAndReplace", s.testOpenSurvives},
		{"Missing", s.testMissing},
		{"Delete", s.testDelete},
		{"DeleteFreesName", s.testDeleteFreesName},
		{"DirectoryIsNotAnObject", s.testDirectoryIsNotAnObject},
	}
}

// testCommitReplaces commits twice to one key.
func (s *suite) testCommitReplaces(t *testing.T) {
	d := s.driver(t)
	v1, v2 := randData(5000, 10), randData(1234, 11)
	a1 := storage.Attrs{SHA256: "11", Class: "permanent"}
	a2 := storage.Attrs{SHA256: "22", Class: "temporary"}
	put(t, d, "replace/me.csv", v1, a1)
	put(t, d, "replace/me.csv", v2, a2)
	equalBytes(t, "object", object(t, d, "replace/me.csv", 0, -1), v2)
	info, err := d.Stat(t.Context(), "replace/me.csv")
	if err != nil || info.Size != int64(len(v2)) || info.Attrs != a2 {
		t.Errorf("Stat = %+v, %v; want size %d, attrs %+v", info, err, len(v2), a2)
	}
	if keys := listKeys(t, d, ""); len(keys) != 1 {
		t.Errorf("List = %q, want one key", keys)
	}
}

// testOpenRanges reads ranges of an object.
func (s *suite) testOpenRanges(t *testing.T) {
	d := s.driver(t)
	data := randData(1000, 12)
	put(t, d, "ranges.bin", data, storage.Attrs{})
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
			equalBytes(t, "range", object(t, d, "ranges.bin", tc.off, tc.n), data[tc.start:tc.end])
		})
	}
}

// testOpenSurvives checks that an open reader keeps reading the object as
// it was when opened.
func (s *suite) testOpenSurvives(t *testing.T) {
	d := s.driver(t)
	v1 := randData(200_000, 13)
	put(t, d, "snap.bin", v1, storage.Attrs{})
	replaced, err := d.Open(t.Context(), "snap.bin", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	put(t, d, "snap.bin", randData(100, 14), storage.Attrs{})
	equalBytes(t, "read after replace", readAll(t, replaced), v1)

	v2 := randData(100, 14)
	deleted, err := d.Open(t.Context(), "snap.bin", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(t.Context(), "snap.bin"); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "read after delete", readAll(t, deleted), v2)
}

// testMissing checks ErrNotExist for objects that were never written.
func (s *suite) testMissing(t *testing.T) {
	d := s.driver(t)
	put(t, d, "present/file.txt", []byte("x"), storage.Attrs{})
	for _, key := range []string{"missing", "present/missing", "missing/dir/file", "present/file.txt/below"} {
		invisible(t, d, key)
		wantNotExist(t, "Delete("+key+")", d.Delete(t.Context(), key))
	}
}

// testDelete deletes one of two objects.
func (s *suite) testDelete(t *testing.T) {
	d := s.driver(t)
	put(t, d, "del/a.txt", []byte("a"), storage.Attrs{})
	put(t, d, "del/b.txt", []byte("b"), storage.Attrs{})
	if err := d.Delete(t.Context(), "del/a.txt"); err != nil {
		t.Fatal(err)
	}
	invisible(t, d, "del/a.txt")
	wantNotExist(t, "second Delete", d.Delete(t.Context(), "del/a.txt"))
	equalBytes(t, "other object", object(t, d, "del/b.txt", 0, -1), []byte("b"))
	if keys := listKeys(t, d, ""); len(keys) != 1 || keys[0] != "del/b.txt" {
		t.Errorf("List = %q, want [del/b.txt]", keys)
	}
}

// testDeleteFreesName checks that once "p/q" is deleted, "p" can be an
// object (no empty directory is left behind on disk).
func (s *suite) testDeleteFreesName(t *testing.T) {
	d := s.driver(t)
	put(t, d, "p/q/r.txt", []byte("r"), storage.Attrs{})
	if err := d.Delete(t.Context(), "p/q/r.txt"); err != nil {
		t.Fatal(err)
	}
	put(t, d, "p", []byte("p"), storage.Attrs{})
	equalBytes(t, "object p", object(t, d, "p", 0, -1), []byte("p"))
	if keys := listKeys(t, d, ""); len(keys) != 1 || keys[0] != "p" {
		t.Errorf("List = %q, want [p]", keys)
	}
}

// testDirectoryIsNotAnObject checks that a key prefix is not an object.
func (s *suite) testDirectoryIsNotAnObject(t *testing.T) {
	d := s.driver(t)
	put(t, d, "x/y/z.txt", []byte("z"), storage.Attrs{})
	for _, key := range []string{"x", "x/y"} {
		invisible(t, d, key)
		wantNotExist(t, "Delete("+key+")", d.Delete(t.Context(), key))
	}
	equalBytes(t, "object", object(t, d, "x/y/z.txt", 0, -1), []byte("z"))
}
