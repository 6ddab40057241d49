package checkpoint_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"depot/checkpoint"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// newKey writes a fresh key pair in a temporary directory and returns the
// signing key and the public key file.
func newKey(t testing.TB, name string) (*checkpoint.SigningKey, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.key")
	if _, err := checkpoint.WriteKeyFiles(path, name); err != nil {
		t.Fatal(err)
	}
	k, err := checkpoint.ReadSigningKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return k, path + ".pub"
}

// openDB opens and migrates a database, closed when the test ends.
func openDB(t testing.TB, url string) *servicedb.DB {
	t.Helper()
	db, err := servicedb.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// engines runs fn on a fresh database of each engine.
func engines(t *testing.T, fn func(t *testing.T, e servicedbtest.EngineURL)) {
	t.Helper()
	t.Parallel()
	servicedbtest.Run(t, func(t *testing.T, e servicedbtest.EngineURL) {
		t.Parallel()
		fn(t, e)
	})
}

func TestSignOpen(t *testing.T) {
	t.Parallel()
	k, pub := newKey(t, "audit.example.org/depot")
	c := checkpoint.Checkpoint{Size: 42, Root: [32]byte{1, 2, 3}, Time: time.Date(2026, 12, 7, 10, 15, 0, 123456789, time.UTC),
		Head: strings.Repeat("ab", 32)}
	msg, signed, err := checkpoint.Sign(c, k)
	if err != nil {
		t.Fatal(err)
	}
	if signed.Origin != "audit.example.org/depot" || signed.Time.Nanosecond() != 123000000 {
		t.Fatalf("signed %+v", signed)
	}
	want := "audit.example.org/depot\n42\nAQIDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime 2026-12-07T10:15:00.123Z\nhead " + strings.Repeat("ab", 32) + "\n\n— audit.example.org/depot "
	if !strings.HasPrefix(string(msg), want) {
		t.Fatalf("note:\n%s\nwant prefix:\n%s", msg, want)
	}
	v, err := checkpoint.ReadVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	got, err := checkpoint.Open(msg, v)
	if err != nil || got != signed {
		t.Fatalf("Open = %+v, %v; want %+v", got, err, signed)
	}
	// The private key file gives the same verifier.
	if v2, err := checkpoint.ReadVerifier(strings.TrimSuffix(pub, ".pub")); err != nil || v2.KeyHash() != v.KeyHash() {
		t.Fatalf("verifier of the private key: %v", err)
	}
	// Another key with the same name, an edited text, a cut signature.
	other, _ := newKey(t, "audit.example.org/depot")
	if _, err := checkpoint.Open(msg, other.Verifier); err == nil {
		t.Error("a checkpoint opened with another key")
	}
	edited := strings.Replace(string(msg), "\n42\n", "\n43\n", 1)
	if _, err := checkpoint.Open([]byte(edited), v); err == nil {
		t.Error("an edited checkpoint opened")
	}
	if _, err := checkpoint.Open([]byte(strings.SplitAfter(string(msg), "\n\n")[0]), v); err == nil {
		t.Error("an unsigned checkpoint opened")
	}
	// A note signed by the key whose text is not a checkpoint.
	bad, _ := note.Sign(&note.Note{Text: "audit.example.org/depot\n42\n"}, k)
	if _, err := checkpoint.Open(bad, v); err == nil {
		t.Error("a signed note that is not a checkpoint opened")
	}
}

func TestParseTextStrict(t *testing.T) {
	t.Parallel()
	good := "o\n5\nAQIDAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\ntime 2026-12-07T10:15:00.123Z\nhead " + strings.Repeat("0", 64) + "\n"
	if _, err := checkpoint.ParseText(good); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		strings.Replace(good, "\n5\n", "\n05\n", 1),
		strings.Replace(good, "\n5\n", "\n-5\n", 1),
		strings.Replace(good, ".123Z", "Z", 1),
		strings.Replace(good, "head 0", "head A", 1),
		strings.Replace(good, "time ", "time  ", 1),
		good + "extra\n",
		strings.TrimSuffix(good, "\n"),
	} {
		if _, err := checkpoint.ParseText(bad); err == nil {
			t.Errorf("ParseText accepted %q", bad)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	pub, err := checkpoint.WriteKeyFiles(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(pub, checkpoint.DefaultKeyName+"+") {
		t.Fatalf("public key %q", pub)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v", st.Mode().Perm())
	}
	if b, _ := os.ReadFile(path + ".pub"); strings.TrimSpace(string(b)) != pub {
		t.Fatalf("public key file %q", b)
	}
	if _, err := checkpoint.WriteKeyFiles(path, ""); err == nil {
		t.Fatal("an existing key was overwritten")
	}
	os.Chmod(path, 0o640)
	if _, err := checkpoint.ReadSigningKey(path); err == nil || !strings.Contains(err.Error(), "readable") {
		t.Fatalf("a group-readable key was accepted: %v", err)
	}
	os.Chmod(path, 0o600)
	k, err := checkpoint.ReadSigningKey(path)
	if err != nil || k.Public != pub {
		t.Fatalf("ReadSigningKey: %v, public %q", err, k.Public)
	}
	if _, err := checkpoint.ReadSigningKey(path + ".pub"); err == nil {
		t.Fatal("a public key was accepted as a signing key")
	}
}
