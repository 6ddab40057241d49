package localstore

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"depot/storage"
	"depot/storage/storagetest"
)

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

func newDriver(t *testing.T, dir string) *Driver { return openDriver(t, dir, Options{}) }

func openDriver(t *testing.T, dir string, opts Options) *Driver {
	t.Helper()
	d, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return d
}

// open returns a driver over a fresh directory, closed when t ends.
func open(t *testing.T) (*Driver, string) {
	dir := filepath.Join(t.TempDir(), "store")
	d := newDriver(t, dir)
	t.Cleanup(func() { d.Close() })
	return d, dir
}

func put(t *testing.T, d *Driver, key string, data []byte, attrs storage.Attrs) {
	t.Helper()
	st := &storage.Staging{ID: "0123456789abcdef0123456789abcdef", Key: key}
	if err := d.CreateStaging(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteStaging(t.Context(), st, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(t.Context(), st, int64(len(data)), attrs); err != nil {
		t.Fatal(err)
	}
}

func TestNewNeedsAbsolutePath(t *testing.T) {
	if _, err := New("relative/dir"); err == nil {
		t.Error("New with a relative path succeeded")
	}
}

func TestLayoutAndXattrs(t *testing.T) {
	d, dir := open(t)
	attrs := storage.Attrs{SHA256: strings.Repeat("ab", 32), Class: "permanent"}
	put(t, d, "a/b/c.csv", []byte("hello"), attrs)
	got, err := os.ReadFile(filepath.Join(dir, "a/b/c.csv"))
	if err != nil || string(got) != "hello" {
		t.Fatalf("object file = %q, %v", got, err)
	}
	buf := make([]byte, 100)
	n, err := unix.Getxattr(filepath.Join(dir, "a/b/c.csv"), "user.depot.sha256", buf)
	if err != nil || string(buf[:n]) != attrs.SHA256 {
		t.Errorf("xattr user.depot.sha256 = %q, %v", buf[:n], err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "a/b"))
	if len(entries) != 1 {
		t.Errorf("a/b holds %d entries after commit, want only the object", len(entries))
	}
	if err := d.PutSession(t.Context(), "0123456789abcdef0123456789abcdef", []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".depot/sessions/0123456789abcdef0123456789abcdef.json")); err != nil {
		t.Errorf("session record: %v", err)
	}
}

// TestSymlinkEscape plants symbolic links that point outside the root and
// checks that no operation follows them.
func TestSymlinkEscape(t *testing.T) {
	d, dir := open(t)
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../"+filepath.Base(outside), filepath.Join(dir, "rel")); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, link := range []string{"abs", "rel"} {
		if rc, err := d.Open(ctx, link+"/secret", 0, -1); err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			t.Errorf("Open through %s read %q", link, b)
		}
		if _, err := d.Stat(ctx, link+"/secret"); err == nil {
			t.Errorf("Stat through %s succeeded", link)
		}
		if err := d.Delete(ctx, link+"/secret"); err == nil {
			t.Errorf("Delete through %s succeeded", link)
		}
		st := &storage.Staging{ID: "00000000000000000000000000000001", Key: link + "/planted"}
		if err := d.CreateStaging(ctx, st); err == nil {
			t.Errorf("CreateStaging through %s succeeded", link)
		}
		// An error or nothing: either way no object from outside.
		if keys, _ := d.List(ctx, link+"/", "", 100); len(keys) != 0 {
			t.Errorf("List(%s/) = %v", link, keys)
		}
	}

	// A directory swapped for a link between CreateStaging and Commit.
	st := &storage.Staging{ID: "00000000000000000000000000000002", Key: "swap/planted"}
	if err := d.CreateStaging(ctx, st); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "swap"), filepath.Join(dir, "swapped")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(outside, partPrefix+st.ID), []byte("bait"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "swap")); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteStaging(ctx, st, 0, strings.NewReader("x")); err == nil {
		t.Error("WriteStaging through a swapped link succeeded")
	}
	if err := d.Commit(ctx, st, 4, storage.Attrs{}); err == nil {
		t.Error("Commit through a swapped link succeeded")
	}
	entries, _ := os.ReadDir(outside)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{partPrefix + st.ID, "secret"}; !slices.Equal(names, want) {
		t.Errorf("outside directory holds %q, want %q", names, want)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "secret" {
		t.Errorf("outside file changed to %q", b)
	}
}

// TestCrashLeftovers plants the files an interrupted process leaves.
func TestCrashLeftovers(t *testing.T) {
	d, dir := open(t)
	put(t, d, "x/data.csv", []byte("data"), storage.Attrs{})
	for name, content := range map[string]string{
		".depot-tmp-root":                  "1",
		"x/.depot-tmp-x":                   "12",
		".depot/sessions/.tmp-abc-0123":    "123",
		"y/z/" + partPrefix + "not-an-id!": "1234",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	strays, err := d.Strays(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range strays {
		names = append(names, s.Name)
		if s.Size == 0 || time.Since(s.ModTime) > time.Hour {
			t.Errorf("stray %+v: want its size and mod time", s)
		}
	}
	slices.Sort(names)
	want := []string{".depot-tmp-root", ".depot/sessions/.tmp-abc-0123", "x/.depot-tmp-x", "y/z/" + partPrefix + "not-an-id!"}
	if !slices.Equal(names, want) {
		t.Fatalf("Strays = %q, want %q", names, want)
	}
	if keys, _ := d.List(t.Context(), "", "", 100); len(keys) != 1 {
		t.Errorf("List shows leftovers: %v", keys)
	}
	for _, s := range strays {
		if err := d.RemoveStray(t.Context(), s); err != nil {
			t.Errorf("RemoveStray(%s): %v", s.Name, err)
		}
	}
	if strays, _ := d.Strays(t.Context()); len(strays) != 0 {
		t.Errorf("Strays after removal = %+v", strays)
	}
	if _, err := os.Stat(filepath.Join(dir, "y")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty directory left after RemoveStray: %v", err)
	}
	for _, name := range []string{"x/data.csv", "x", ".depot/sessions/x.json", "../outside", "/etc/passwd"} {
		if err := d.RemoveStray(t.Context(), storage.Stray{Name: name}); err == nil {
			t.Errorf("RemoveStray(%q) succeeded", name)
		}
	}
	if _, err := d.Stat(t.Context(), "x/data.csv"); err != nil {
		t.Errorf("object gone: %v", err)
	}
}

// TestNothingVisibleDuringWrite lists while a long write is in progress.
func TestNothingVisibleDuringWrite(t *testing.T) {
	d, _ := open(t)
	ctx := t.Context()
	st := &storage.Staging{ID: "0123456789abcdef0123456789abcdef", Key: "long/write.bin"}
	if err := d.CreateStaging(ctx, st); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := d.WriteStaging(ctx, st, 0, pr)
		done <- err
	}()
	chunk := bytes.Repeat([]byte("x"), 256<<10)
	for range 8 {
		if _, err := pw.Write(chunk); err != nil {
			t.Fatal(err)
		}
		if keys, err := d.List(ctx, "", "", 100); err != nil || len(keys) != 0 {
			t.Fatalf("List during write = %v, %v", keys, err)
		}
		if _, err := d.Stat(ctx, st.Key); !errors.Is(err, storage.ErrNotExist) {
			t.Fatalf("Stat during write: %v", err)
		}
	}
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(ctx, st, 8*int64(len(chunk)), storage.Attrs{}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := d.List(ctx, "", "", 100); len(keys) != 1 {
		t.Errorf("List after commit = %v", keys)
	}
}

func TestReaderExposesFile(t *testing.T) {
	d, _ := open(t)
	put(t, d, "f.txt", []byte("0123456789"), storage.Attrs{})
	rc, err := d.Open(t.Context(), "f.txt", 3, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	r, ok := rc.(interface {
		File() *os.File
		Range() (int64, int64)
	})
	if !ok {
		t.Fatalf("Open returned %T without File and Range", rc)
	}
	off, n := r.Range()
	buf := make([]byte, n)
	if _, err := r.File().ReadAt(buf, off); err != nil || string(buf) != "3456" {
		t.Errorf("ReadAt(File, Range) = %q, %v", buf, err)
	}
}

// TestErrorsHaveNoPaths checks that errors carry neither the root nor keys.
func TestErrorsHaveNoPaths(t *testing.T) {
	d, dir := open(t)
	ctx := t.Context()
	put(t, d, "secret-name/file.csv", []byte("x"), storage.Attrs{})
	_, err1 := d.Open(ctx, "patient-jane-doe.csv", 0, -1)
	_, err2 := d.Stat(ctx, "secret-name/file.csv/below")
	err3 := d.Commit(ctx, &storage.Staging{ID: "0123456789abcdef0123456789abcdef", Key: "patient-jane-doe.csv"}, 0, storage.Attrs{})
	st := &storage.Staging{ID: "0123456789abcdef0123456789abcdef", Key: "secret-name/file.csv/patient-jane-doe.csv"}
	err4 := d.CreateStaging(ctx, st)
	for _, err := range []error{err1, err2, err3, err4} {
		if err == nil {
			t.Fatal("expected an error")
		}
		if msg := err.Error(); strings.Contains(msg, dir) || strings.Contains(msg, "jane") || strings.Contains(msg, "secret-name") {
			t.Errorf("error shows a path: %s", msg)
		}
	}
}

// TestKeyConflict checks that a key cannot be both an object and a
// directory of objects on disk.
func TestKeyConflict(t *testing.T) {
	d, _ := open(t)
	put(t, d, "a/b", []byte("b"), storage.Attrs{})
	for _, key := range []string{"a", "a/b/c"} {
		st := &storage.Staging{ID: "0123456789abcdef0123456789abcdef", Key: key}
		if err := d.CreateStaging(t.Context(), st); !errors.Is(err, ErrKeyConflict) {
			t.Errorf("CreateStaging(%q) = %v, want ErrKeyConflict", key, err)
		}
	}
}
