package storagetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"depot/storage"
)

// listKeysFixture sorts differently by segment than by byte: '.' < '/' < '0'
// and ' ' < '.', so a driver that walks directories naively gets it wrong.
// No key is a prefix directory of another key, so a file system can hold
// them all.
var listKeysFixture = []string{
	"A.csv",
	"a.b",
	"a/b c.csv",
	"a/b.c",
	"a/b/c",
	"a/b/c d/e",
	"a/b/c.d",
	"a/bc",
	"a0",
	"b",
	"z y/ünï.csv",
	"é/x",
	"日本/データ.csv",
}

func (s *suite) listTests() []test {
	return []test{
		{"OrderAndPrefix", s.testListOrderAndPrefix},
		{"Pagination", s.testListPagination},
		{"Infos", s.testListInfos},
		{"Empty", s.testListEmpty},
	}
}

// fixture returns a driver holding listKeysFixture; each object's content
// is its key.
func (s *suite) fixture(t *testing.T) storage.Driver {
	d := s.driver(t)
	for _, k := range listKeysFixture {
		put(t, d, k, []byte(k), storage.Attrs{SHA256: "00", Class: "permanent"})
	}
	return d
}

// expected filters and sorts listKeysFixture the way List must.
func expected(prefix, after string) []string {
	var out []string
	for _, k := range listKeysFixture {
		if strings.HasPrefix(k, prefix) && k > after {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

var listPrefixes = []string{"", "a", "a/", "a/b", "a/b/", "a/b/c", "a/bc", "é", "日本/", "z y/", "q", "q/", "a/b/c d/e/"}

func (s *suite) testListOrderAndPrefix(t *testing.T) {
	d := s.fixture(t)
	for _, prefix := range listPrefixes {
		for _, after := range []string{"", "a", "a/b", "a/b/", "a/b/c", "a0", "zzz", "\U0010FFFF"} {
			infos, err := d.List(t.Context(), prefix, after, 1000)
			if err != nil {
				t.Fatalf("List(%q, %q): %v", prefix, after, err)
			}
			got := make([]string, len(infos))
			for i, info := range infos {
				got[i] = info.Key
			}
			if want := expected(prefix, after); !slices.Equal(got, want) {
				t.Errorf("List(%q, after %q) =\n\t%q\nwant\n\t%q", prefix, after, got, want)
			}
		}
	}
}

// testListPagination pages through every prefix with several page sizes
// and checks that every key comes exactly once, in order.
func (s *suite) testListPagination(t *testing.T) {
	d := s.fixture(t)
	for _, prefix := range listPrefixes {
		for _, limit := range []int{1, 2, 3, 5, 100} {
			t.Run(fmt.Sprintf("%q/%d", prefix, limit), func(t *testing.T) {
				var got []string
				after := ""
				for page := 0; ; page++ {
					if page > len(listKeysFixture)+1 {
						t.Fatalf("pagination does not end: %q", got)
					}
					infos, err := d.List(t.Context(), prefix, after, limit)
					if err != nil {
						t.Fatal(err)
					}
					if len(infos) > limit {
						t.Fatalf("page of %d objects, limit %d", len(infos), limit)
					}
					if len(infos) == 0 {
						break
					}
					for _, info := range infos {
						got = append(got, info.Key)
					}
					after = infos[len(infos)-1].Key
				}
				if want := expected(prefix, ""); !slices.Equal(got, want) {
					t.Errorf("pages gave\n\t%q\nwant\n\t%q", got, want)
				}
			})
		}
	}
}

// testListInfos checks the descriptions List returns.
func (s *suite) testListInfos(t *testing.T) {
	d := s.fixture(t)
	infos, err := d.List(t.Context(), "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != len(listKeysFixture) {
		t.Fatalf("List returned %d objects, want %d", len(infos), len(listKeysFixture))
	}
	want := storage.Attrs{SHA256: "00", Class: "permanent"}
	for _, info := range infos {
		if info.Size != int64(len(info.Key)) || info.Attrs != want || info.ModTime.IsZero() {
			t.Errorf("List entry %+v: want size %d, attrs %+v, a mod time", info, len(info.Key), want)
		}
	}
}

// testListEmpty lists an empty store, and a store whose only object is
// being written.
func (s *suite) testListEmpty(t *testing.T) {
	d := s.driver(t)
	if keys := listKeys(t, d, ""); len(keys) != 0 {
		t.Errorf("List of an empty store = %q", keys)
	}
	if err := d.PutSession(t.Context(), newID(t), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	stage(t, d, "staged", []byte("x"))
	if keys := listKeys(t, d, ""); len(keys) != 0 {
		t.Errorf("List with only a session and a staging area = %q", keys)
	}
}
