package sealed_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"

	"depot/storage"
	"depot/storage/localstore"
	"depot/storage/memstore"
	"depot/storage/sealed"
	"depot/storage/storagetest"
)

const seg = 64 << 10

// stageChunks stages data in writes of the given sizes and publishes it.
func stageChunks(t *testing.T, d storage.Driver, data []byte, sizes ...int) string {
	t.Helper()
	st := &storage.Staging{ID: storage.NewID()}
	if err := d.CreateStaging(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	off := 0
	for _, n := range append(sizes, len(data)) {
		n = min(n, len(data)-off)
		if _, err := d.WriteStaging(t.Context(), st, int64(off), bytes.NewReader(data[off:off+n])); err != nil {
			t.Fatal(err)
		}
		off += n
	}
	if err := d.Publish(t.Context(), st, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	return st.ID
}

func rawObject(t *testing.T, inner storage.Driver, id string) []byte {
	t.Helper()
	rc, err := inner.Open(t.Context(), id, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func read(d storage.Driver, id string, off, n int64) ([]byte, error) {
	rc, err := d.Open(context.Background(), id, off, n)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// TestAgeDecrypts checks that what is stored is a standard age file that
// filippo.io/age decrypts, for sizes around segment boundaries and chunks
// that end mid-segment, and that no plaintext reaches the backend.
func TestAgeDecrypts(t *testing.T) {
	k, name := testKeys(t)
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := age.ParseIdentities(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{0, 1, seg - 1, seg, seg + 1, 2 * seg, 3*seg + 7} {
		inner := memstore.New()
		d := wrapDriver(t, inner, k)
		data := bytes.Repeat([]byte("PLAINTEXT-MARKER"), size/16+1)[:size]
		id := stageChunks(t, d, data, 1000, seg-1000, 5, seg+3)
		raw := rawObject(t, inner, id)
		if size > 0 && bytes.Contains(raw, []byte("PLAINTEXT-MARKER")) {
			t.Errorf("size %d: the stored bytes contain the plaintext", size)
		}
		r, err := age.Decrypt(bytes.NewReader(raw), ids...)
		if err != nil {
			t.Fatalf("size %d: age.Decrypt: %v", size, err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("size %d: age decrypts %d bytes (%v), want %d", size, len(got), err, size)
		}
		info, err := d.Stat(t.Context(), id)
		if err != nil || info.Size != int64(size) {
			t.Errorf("size %d: Stat = %+v, %v", size, info, err)
		}
		d.Close()
	}
}

// TestRanges reads ranges around segment boundaries.
func TestRanges(t *testing.T) {
	k, _ := testKeys(t)
	d := wrapDriver(t, memstore.New(), k)
	defer d.Close()
	data := storagetest.RandData(3*seg+100, 7)
	id := stageChunks(t, d, data, seg+1)
	for _, r := range [][2]int64{{0, seg}, {seg - 1, 2}, {seg, seg}, {seg, 1}, {2*seg - 1, 1}, {3 * seg, -1}, {3*seg + 99, 10}, {0, -1}, {5, 3 * seg}} {
		got, err := read(d, id, r[0], r[1])
		end := int64(len(data))
		if r[1] >= 0 {
			end = min(end, r[0]+r[1])
		}
		if err != nil || !bytes.Equal(got, data[r[0]:end]) {
			t.Errorf("range %v: %d bytes, %v", r, len(got), err)
		}
	}
}

// TestTamperAndWrongKey flips one stored byte (read fails with
// ErrCorrupt, only for the segment it is in) and reads with another KEK
// (ErrNoKey).
func TestTamperAndWrongKey(t *testing.T) {
	k, _ := testKeys(t)
	dir := t.TempDir()
	inner, err := localstore.Open(dir, localstore.Options{BufferedIO: true})
	if err != nil {
		t.Fatal(err)
	}
	d := wrapDriver(t, inner, k)
	defer d.Close()
	data := storagetest.RandData(2*seg+10, 8)
	id := stageChunks(t, d, data)
	path := filepath.Join(dir, "objects", id[:2], id)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-seg-40] ^= 1 // in the second segment
	os.Chmod(path, 0o600)
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := read(d, id, 0, -1); !errors.Is(err, sealed.ErrCorrupt) {
		t.Errorf("read of a tampered object: %v, want ErrCorrupt", err)
	}
	if got, err := read(d, id, 0, seg); err != nil || !bytes.Equal(got, data[:seg]) {
		t.Errorf("read of the intact first segment: %v", err)
	}
	other, _ := testKeys(t)
	d2 := wrapDriver(t, inner, other)
	if _, err := read(d2, id, 0, -1); !errors.Is(err, sealed.ErrNoKey) {
		t.Errorf("read with another KEK: %v, want ErrNoKey", err)
	}
}

// TestRetry checks the nonce rule: a failed write retried with the same
// bytes succeeds, with different bytes is refused (ErrChanged), and a chunk
// that fails its check is never encrypted, so its correct retry succeeds.
func TestRetry(t *testing.T) {
	k, _ := testKeys(t)
	inner := &breakingDriver{Driver: memstore.New()}
	d := wrapDriver(t, inner, k)
	defer d.Close()
	var saved []byte
	st := &storage.Staging{ID: storage.NewID()}
	if err := d.CreateStaging(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	saved = st.State
	st.Checkpoint = func(_ context.Context, s []byte) error { saved = s; return nil }
	data := storagetest.RandData(4*seg, 9)
	// A write that fails after its segments went out (the backend takes
	// them, then fails): the state is the checkpoint.
	st.Verify = func() error { return nil }
	inner.broken = true
	if _, err := d.WriteStaging(t.Context(), st, 0, bytes.NewReader(data[:3*seg+5])); !errors.Is(err, errBroken) {
		t.Fatalf("failing write: %v", err)
	}
	inner.broken = false
	// Verify failing: nothing is encrypted, the checkpoint is unchanged.
	st.State = saved
	st.Verify = func() error { return errors.New("CRC mismatch") }
	before := saved
	other := bytes.Clone(data)
	other[10] ^= 1
	if _, err := d.WriteStaging(t.Context(), st, 0, bytes.NewReader(other)); err == nil {
		t.Fatal("a chunk failing Verify was accepted")
	}
	if !bytes.Equal(before, saved) {
		t.Error("a chunk failing Verify changed the checkpoint")
	}
	st.Verify = func() error { return nil }
	st.State = saved
	if _, err := d.WriteStaging(t.Context(), st, 0, bytes.NewReader(other[:2*seg])); !errors.Is(err, sealed.ErrChanged) {
		t.Fatalf("retry with other bytes: %v, want ErrChanged", err)
	}
	st.State = saved
	if _, err := d.WriteStaging(t.Context(), st, 0, bytes.NewReader(data)); err != nil {
		t.Fatalf("retry with the same bytes: %v", err)
	}
	if err := d.Publish(t.Context(), st, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if got, err := read(d, st.ID, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

var errBroken = errors.New("backend failed")

// breakingDriver consumes a write and then fails while broken is set.
type breakingDriver struct {
	storage.Driver
	broken bool
}

func (b *breakingDriver) WriteStaging(ctx context.Context, st *storage.Staging, off int64, r io.Reader) (int64, error) {
	if b.broken {
		n, _ := io.Copy(io.Discard, r)
		return n, errBroken
	}
	return b.Driver.WriteStaging(ctx, st, off, r)
}

// TestRewrap re-wraps objects under a new KEK: the new header opens with
// the new KEK only (as age reads it), the data reads back the same, and a
// second run changes nothing.
func TestRewrap(t *testing.T) {
	oldK, oldName := testKeys(t)
	_, newName := testKeys(t)
	inner := memstore.New()
	d := wrapDriver(t, inner, oldK)
	data := storagetest.RandData(3*seg+5, 11)
	id := stageChunks(t, d, data, seg+7)
	both, err := sealed.LoadKeyring([]string{newName, oldName})
	if err != nil {
		t.Fatal(err)
	}
	d2 := wrapDriver(t, inner, both)
	if changed, err := sealed.Of(d2).Rewrap(t.Context(), id); err != nil || !changed {
		t.Fatalf("Rewrap: %v, %v", changed, err)
	}
	if changed, err := sealed.Of(d2).Rewrap(t.Context(), id); err != nil || changed {
		t.Fatalf("second Rewrap: %v, %v", changed, err)
	}
	onlyNew, _ := sealed.LoadKeyring([]string{newName})
	if got, err := read(wrapDriver(t, inner, onlyNew), id, 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read with the new KEK: %v", err)
	}
	if _, err := read(d, id, 0, -1); !errors.Is(err, sealed.ErrNoKey) {
		t.Fatalf("read with the old KEK only: %v, want ErrNoKey", err)
	}
	f, _ := os.Open(newName)
	ids, _ := age.ParseIdentities(f)
	f.Close()
	r, err := age.Decrypt(bytes.NewReader(rawObject(t, inner, id)), ids...)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("age decrypts the re-wrapped object: %v", err)
	}
}

// TestKeyringRefuses checks that KEK files others may read, missing ones
// and ones without X25519 identities are refused.
func TestKeyringRefuses(t *testing.T) {
	_, name := testKeys(t)
	if err := os.Chmod(name, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sealed.LoadKeyring([]string{name}); err == nil {
		t.Error("a KEK file readable by others was accepted")
	}
	if _, err := sealed.LoadKeyring([]string{name + ".missing"}); err == nil {
		t.Error("a missing KEK file was accepted")
	}
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("not a key\n"), 0o600)
	if _, err := sealed.LoadKeyring([]string{junk}); err == nil {
		t.Error("a KEK file without an identity was accepted")
	}
}
