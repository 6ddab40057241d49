package sealed

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"depot/storage"
	"depot/storage/memstore"
)

func keyring(t *testing.T, names ...string) *Keyring {
	t.Helper()
	k, err := LoadKeyring(names)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newKEK(t *testing.T) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "kek")
	if _, err := Generate(name); err != nil {
		t.Fatal(err)
	}
	return name
}

// newStaging returns a sealed driver over memory and a new staging area.
func newStaging(t *testing.T, k *Keyring) (storage.Driver, *storage.Staging) {
	t.Helper()
	d, err := New(memstore.New(), k)
	if err != nil {
		t.Fatal(err)
	}
	st := &storage.Staging{ID: storage.NewID()}
	if err := d.CreateStaging(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	return d, st
}

// TestStateSeal checks the sealing of a staging area's secrets: a round
// trip, a fresh nonce each time, a flipped byte refused, another KEK's
// seal refused as ErrNoKey, any configured KEK opening what it sealed, and
// a small age file (an older build's format) still opening.
func TestStateSeal(t *testing.T) {
	oldName, newName := newKEK(t), newKEK(t)
	old := keyring(t, oldName)
	plain := bytes.Repeat([]byte("PHI-tail-"), 1000)
	a, err := old.seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := old.seal(plain)
	if bytes.Equal(a, b) || bytes.Contains(a, []byte("PHI-tail")) {
		t.Fatal("two seals of one plaintext are equal, or hold it in the clear")
	}
	if got, err := old.open(a); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %v", err)
	}
	for i := range a {
		bad := bytes.Clone(a)
		bad[i] ^= 1
		if _, err := old.open(bad); err == nil {
			t.Fatalf("a seal with byte %d flipped opened", i)
		}
	}
	if _, err := old.open(a[:len(a)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a cut seal: %v, want ErrCorrupt", err)
	}
	if _, err := keyring(t, newName).open(a); !errors.Is(err, ErrNoKey) {
		t.Fatalf("open under another KEK: %v, want ErrNoKey", err)
	}
	if got, err := keyring(t, newName, oldName).open(a); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open with the sealing KEK second: %v", err)
	}

	var legacy bytes.Buffer
	w, _ := age.Encrypt(&legacy, old.current.Recipient())
	w.Write(plain)
	w.Close()
	if got, err := old.open(legacy.Bytes()); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open an age file: %v", err)
	}
	if _, err := keyring(t, newName).open(legacy.Bytes()); !errors.Is(err, ErrNoKey) {
		t.Fatalf("open an age file under another KEK: %v, want ErrNoKey", err)
	}
}

// TestOlderSessionContinues stages a chunk, turns the session's state into
// what an older build stored (JSON, no sealed file key, the tail a small
// age file), and finishes the upload with this build.
func TestOlderSessionContinues(t *testing.T) {
	k := keyring(t, newKEK(t))
	d, st := newStaging(t, k)
	data := bytes.Repeat([]byte("0123456789abcdef"), (3*segSize+777)/16)
	first := segSize + 100
	if _, err := d.WriteStaging(t.Context(), st, 0, bytes.NewReader(data[:first])); err != nil {
		t.Fatal(err)
	}
	s, err := decodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	tail, err := k.open(s.Tail)
	if err != nil {
		t.Fatal(err)
	}
	var legacy bytes.Buffer
	w, _ := age.Encrypt(&legacy, k.current.Recipient())
	w.Write(tail)
	w.Close()
	s.Key, s.Tail = nil, legacy.Bytes()
	if st.State, err = json.Marshal(s); err != nil { // an older build's state was JSON
		t.Fatal(err)
	}

	if _, err := d.WriteStaging(t.Context(), st, int64(first), bytes.NewReader(data[first:])); err != nil {
		t.Fatal(err)
	}
	if err := d.Publish(t.Context(), st, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Open(t.Context(), st.ID, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got, err := io.ReadAll(rc); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
}

// TestStagedKeyMustMatchHeader replaces a session's sealed file key with
// another (sealed under the right KEK): neither a write nor the publish
// encrypts under it.
func TestStagedKeyMustMatchHeader(t *testing.T) {
	k := keyring(t, newKEK(t))
	d, st := newStaging(t, k)
	if _, err := d.WriteStaging(t.Context(), st, 0, bytes.NewReader([]byte("abc"))); err != nil {
		t.Fatal(err)
	}
	s, _ := decodeState(st)
	hdr, fileKey, _ := k.newHeader()
	if !headerMatches(hdr, fileKey) || headerMatches(s.Header, fileKey) {
		t.Fatal("headerMatches does not tell a header's own file key from another")
	}
	key, err := k.seal(fileKey)
	if err != nil {
		t.Fatal(err)
	}
	s.Key = key
	st.State = encodeState(s)
	if _, err := d.WriteStaging(t.Context(), st, 3, bytes.NewReader([]byte("def"))); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("write with a mismatched file key: %v, want ErrCorrupt", err)
	}
	if err := d.Publish(t.Context(), st, 3); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("publish with a mismatched file key: %v, want ErrCorrupt", err)
	}
}
