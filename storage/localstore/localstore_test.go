package localstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"depot/storage"
	"depot/storage/storagetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestDriver runs the conformance suite with direct I/O on (the default)
// and off.
func TestDriver(t *testing.T) {
	for name, opts := range map[string]Options{"direct": {}, "buffered": {BufferedIO: true}} {
		t.Run(name, func(t *testing.T) {
			storagetest.RunDriverTests(t, storagetest.Harness{
				New: func(t *testing.T) storage.Driver { return openDriver(t, t.TempDir(), opts) },
				Reopen: func(t *testing.T, d storage.Driver) storage.Driver {
					return openDriver(t, d.(*Driver).dir, opts)
				},
			})
		})
	}
}

func openDriver(t *testing.T, dir string, opts Options) *Driver {
	t.Helper()
	d, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return d
}

// TestLayout checks where bytes live on disk: objects by ID, read-only,
// no file or directory named after anything but an ID.
func TestLayout(t *testing.T) {
	dir := t.TempDir()
	d := openDriver(t, dir, Options{})
	defer d.Close()
	st := &storage.Staging{ID: storage.NewID()}
	if err := d.CreateStaging(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "staging", st.ID)); err != nil {
		t.Fatalf("staging file: %v", err)
	}
	if err := d.Publish(t.Context(), st, 0); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "objects", st.ID[:2], st.ID))
	if err != nil {
		t.Fatalf("object file: %v", err)
	}
	if fi.Mode().Perm() != 0o440 {
		t.Errorf("object mode %v, want 0440", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, "staging", st.ID)); !os.IsNotExist(err) {
		t.Errorf("staging file after publish: %v", err)
	}
}

// TestErrorsHidePaths checks that errors never carry the base directory.
func TestErrorsHidePaths(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secret-base")
	d := openDriver(t, dir, Options{})
	defer d.Close()
	_, err := d.Open(t.Context(), storage.NewID(), 0, -1)
	if err == nil || strings.Contains(err.Error(), "secret-base") {
		t.Errorf("Open of a missing object: %v", err)
	}
	_, err = d.WriteStaging(t.Context(), &storage.Staging{ID: storage.NewID()}, 0, strings.NewReader("x"))
	if err == nil || strings.Contains(err.Error(), "secret-base") {
		t.Errorf("WriteStaging of a missing staging area: %v", err)
	}
}
