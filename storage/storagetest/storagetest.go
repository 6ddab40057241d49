// Package storagetest holds the conformance suites of the storage layer:
// RunDriverTests for every storage.Driver (local disk, memory, S3), and
// RunSessionsTests for every storage.Sessions (the in-memory one here and
// the services database on SQLite and PostgreSQL). RunStoreTests runs the
// Store's own contract over a driver.
package storagetest

import (
	"bytes"
	"errors"
	"io"
	mrand "math/rand/v2"
	"testing"

	"depot/storage"
)

// Harness builds the drivers under test.
type Harness struct {
	// New returns a fresh, empty driver.
	New func(t *testing.T) storage.Driver
	// Reopen returns a new driver over the same backing store as d
	// (simulating a process restart); nil if the driver cannot be reopened
	// (memstore). The suite closes d before calling Reopen.
	Reopen func(t *testing.T, d storage.Driver) storage.Driver
}

// RunDriverTests runs the conformance suite against the drivers h builds,
// and the Store's suite over them. Every driver it obtains is closed
// exactly once.
//
// Beyond the letter of storage.Driver, the suite pins down these choices:
// WriteStaging at an offset past the staged data is an error; Publish of
// more bytes than staged is an error; Open clamps a range that runs past
// the end of the object (a range starting at the end is empty). The suite
// always passes List a limit > 0 and loops over pages until an empty one,
// so a driver may return short pages.
func RunDriverTests(t *testing.T, h Harness) {
	if h.New == nil {
		t.Fatal("storagetest: Harness.New is nil")
	}
	s := &suite{h: h}
	groups := []struct {
		name  string
		tests []test
	}{
		{"Staging", s.stagingTests()},
		{"Objects", s.objectTests()},
		{"Capabilities", s.capabilityTests()},
		{"Strays", s.strayTests()},
		{"Concurrency", s.concurrencyTests()},
		{"Reopen", s.reopenTests()},
		{"Store", s.storeTests()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, tc.run)
			}
		})
	}
}

type test struct {
	name string
	run  func(t *testing.T)
}

type suite struct{ h Harness }

// driver returns a fresh driver that is closed when t ends.
func (s *suite) driver(t *testing.T) storage.Driver {
	t.Helper()
	d := s.h.New(t)
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return d
}

// RandData returns n pseudo-random bytes determined by seed.
func RandData(n int, seed uint64) []byte {
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 0xd, 0xe, 0xf})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// stage creates a staging area and writes data to it.
func stage(t *testing.T, d storage.Driver, data []byte) *storage.Staging {
	t.Helper()
	st := &storage.Staging{ID: storage.NewID()}
	if err := d.CreateStaging(t.Context(), st); err != nil {
		t.Fatalf("CreateStaging: %v", err)
	}
	write(t, d, st, 0, data)
	return st
}

// write writes data to st at offset and checks the count.
func write(t *testing.T, d storage.Driver, st *storage.Staging, offset int64, data []byte) {
	t.Helper()
	n, err := d.WriteStaging(t.Context(), st, offset, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("WriteStaging(offset %d): %v", offset, err)
	}
	if n != int64(len(data)) {
		t.Fatalf("WriteStaging(offset %d) took %d bytes, want %d", offset, n, len(data))
	}
}

// publish stores data as a new object through a staging area and returns
// its ID.
func publish(t *testing.T, d storage.Driver, data []byte) string {
	t.Helper()
	st := stage(t, d, data)
	if err := d.Publish(t.Context(), st, int64(len(data))); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return st.ID
}

// readAll reads and closes rc.
func readAll(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

// object returns the bytes [offset, offset+length) of object id.
func object(t *testing.T, d storage.Driver, id string, offset, length int64) []byte {
	t.Helper()
	rc, err := d.Open(t.Context(), id, offset, length)
	if err != nil {
		t.Fatalf("Open(%s, %d, %d): %v", id, offset, length, err)
	}
	return readAll(t, rc)
}

// equalBytes reports a mismatch without printing megabytes.
func equalBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Errorf("%s: got %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
}

// wantNotExist checks that err wraps storage.ErrNotExist.
func wantNotExist(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, storage.ErrNotExist) {
		t.Errorf("%s: got error %v, want storage.ErrNotExist", what, err)
	}
}

// absent checks that object id does not exist.
func absent(t *testing.T, d storage.Driver, id string) {
	t.Helper()
	_, err := d.Stat(t.Context(), id)
	wantNotExist(t, "Stat("+id+")", err)
	rc, err := d.Open(t.Context(), id, 0, -1)
	if err == nil {
		rc.Close()
	}
	wantNotExist(t, "Open("+id+")", err)
}

// listIDs lists every object, page by page.
func listIDs(t *testing.T, d storage.Driver, pageSize int) []string {
	t.Helper()
	var ids []string
	after := ""
	for {
		infos, err := d.List(t.Context(), after, pageSize)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		if len(infos) == 0 {
			return ids
		}
		for _, info := range infos {
			ids = append(ids, info.ID)
		}
		after = infos[len(infos)-1].ID
	}
}
