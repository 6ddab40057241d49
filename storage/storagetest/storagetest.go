// Package storagetest is the conformance suite that every storage.Driver
// must pass. A driver's tests call RunDriverTests with a Harness.
package storagetest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
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

// RunDriverTests runs the conformance suite against the drivers h builds.
// Every driver it obtains is closed exactly once.
//
// Beyond the letter of storage.Driver, the suite pins down these choices:
// WriteStaging at an offset past the staged data is an error; Commit with a
// size larger than the staged data is an error; Open clamps a range that
// runs past the end of the object (a range starting at the end is empty);
// deleting "p/q" makes the key "p" usable again. The suite always passes
// List a limit > 0, and loops over pages until an empty one, so a driver may
// return short pages. The suite never stores both a key and a key below it
// ("a" and "a/b"), which a file system cannot hold.
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
		{"List", s.listTests()},
		{"Sessions", s.sessionTests()},
		{"Strays", s.strayTests()},
		{"Concurrency", s.concurrencyTests()},
		{"Reopen", s.reopenTests()},
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

// newID returns a random session ID in the Store's format, [0-9a-f]{32}.
func newID(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// randData returns n pseudo-random bytes determined by seed.
func randData(n int, seed uint64) []byte {
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 0xd, 0xe, 0xf})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// stage creates a staging area for key and writes data to it.
func stage(t *testing.T, d storage.Driver, key string, data []byte) *storage.Staging {
	t.Helper()
	st := &storage.Staging{ID: newID(t), Key: key}
	if err := d.CreateStaging(t.Context(), st); err != nil {
		t.Fatalf("CreateStaging(%q): %v", key, err)
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

// put stores data under key with attrs through a staging area.
func put(t *testing.T, d storage.Driver, key string, data []byte, attrs storage.Attrs) {
	t.Helper()
	st := stage(t, d, key, data)
	if err := d.Commit(t.Context(), st, int64(len(data)), attrs); err != nil {
		t.Fatalf("Commit(%q): %v", key, err)
	}
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

// object returns the bytes [offset, offset+length) of key.
func object(t *testing.T, d storage.Driver, key string, offset, length int64) []byte {
	t.Helper()
	rc, err := d.Open(t.Context(), key, offset, length)
	if err != nil {
		t.Fatalf("Open(%q, %d, %d): %v", key, offset, length, err)
	}
	return readAll(t, rc)
}

// staged returns all staged bytes of st.
func staged(t *testing.T, d storage.Driver, st *storage.Staging) []byte {
	t.Helper()
	rc, err := d.ReadStaging(t.Context(), st, 0, -1)
	if err != nil {
		t.Fatalf("ReadStaging: %v", err)
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

// invisible checks that nothing is visible under key.
func invisible(t *testing.T, d storage.Driver, key string) {
	t.Helper()
	_, err := d.Stat(t.Context(), key)
	wantNotExist(t, "Stat("+key+")", err)
	rc, err := d.Open(t.Context(), key, 0, -1)
	if err == nil {
		rc.Close()
	}
	wantNotExist(t, "Open("+key+")", err)
}

// listKeys lists every key under prefix in one call.
func listKeys(t *testing.T, d storage.Driver, prefix string) []string {
	t.Helper()
	infos, err := d.List(t.Context(), prefix, "", 1_000_000)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	keys := make([]string, len(infos))
	for i, info := range infos {
		keys[i] = info.Key
	}
	return keys
}
