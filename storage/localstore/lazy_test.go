package localstore

import (
	"bytes"
	"errors"
	"os"
	"testing"

	"depot"
	"depot/storage"
	"depot/storage/storagetest"
)

// TestLazyWriteLostAfterRestart: bytes written lazily are trusted by the
// same boot of the machine and by another machine, and refused, with
// ErrStagingLost, by the same machine after it restarted; a durable write
// clears the mark.
func TestLazyWriteLostAfterRestart(t *testing.T) {
	dir := t.TempDir()
	open := func(machine, boot string) *Driver {
		d := openDriver(t, dir, Options{})
		t.Cleanup(func() { d.Close() })
		d.host = identity{Machine: machine, Boot: boot}
		return d
	}
	data := storagetest.RandData(3*8192, 1)
	lazyWrite := func(d *Driver, st *storage.Staging, off int64, b []byte) error {
		st.Lazy = true
		defer func() { st.Lazy = false }()
		_, err := d.WriteStaging(t.Context(), st, off, bytes.NewReader(b))
		return err
	}
	first := open("m1", "boot1")
	st := &storage.Staging{ID: "0123456789abcdef0123456789abcdef"}
	if err := first.CreateStaging(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if err := lazyWrite(first, st, 0, data[:8192]); err != nil || len(st.State) == 0 {
		t.Fatalf("lazy write = %v, state %q; want a mark", err, st.State)
	}

	rebooted := open("m1", "boot2")
	if _, err := rebooted.WriteStaging(t.Context(), st, 8192, bytes.NewReader(data[8192:])); !errors.Is(err, storage.ErrStagingLost) {
		t.Fatalf("write after the machine restarted = %v, want ErrStagingLost", err)
	}
	if err := rebooted.Publish(t.Context(), st, 8192); !errors.Is(err, storage.ErrStagingLost) {
		t.Fatalf("publish after the machine restarted = %v, want ErrStagingLost", err)
	}

	other := open("m2", "boot9") // a second host on the same share
	if err := lazyWrite(other, st, 8192, data[8192:2*8192]); err != nil {
		t.Fatalf("lazy write on another machine = %v", err)
	}
	if _, err := other.WriteStaging(t.Context(), st, 2*8192, bytes.NewReader(data[2*8192:])); err != nil || len(st.State) != 0 {
		t.Fatalf("durable write = %v, state %q; want no mark", err, st.State)
	}
	if err := rebooted.Publish(t.Context(), st, int64(len(data))); err != nil {
		t.Fatalf("publish after a durable write = %v", err)
	}
	if got := readAll(t, rebooted, st.ID); !bytes.Equal(got, data) {
		t.Fatal("the object differs from the bytes written")
	}

	// Through a Store: the session is gone, and says so.
	d := open("m1", "boot3")
	ss := storagetest.NewSessions()
	store := storage.New(d, ss, storage.Options{})
	u, err := store.CreateUpload(t.Context(), depot.Upload{Key: "c1/f.csv", Owner: "alice", DeclaredSize: -1, Resumable: true})
	if err != nil {
		t.Fatal(err)
	}
	c := storage.Chunk{Offset: 0, Length: 8192, CRC32C: storage.CRC32C(data[:8192]), Body: bytes.NewReader(data[:8192]), Lazy: true}
	if _, err := store.Append(t.Context(), u.ID, c); err != nil {
		t.Fatal(err)
	}
	d.host.Boot = "boot4"
	if _, err := store.Sync(t.Context(), u.ID); depot.ErrorCode(err) != depot.CodeNotFound {
		t.Fatalf("Sync after the machine restarted = %v, want not_found", err)
	}
	if _, err := store.Upload(t.Context(), u.ID); depot.ErrorCode(err) != depot.CodeNotFound {
		t.Fatalf("the lost session still answers: %v", err)
	}
}

func readAll(t *testing.T, d *Driver, id string) []byte {
	t.Helper()
	rc, err := d.Open(t.Context(), id, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestFailedBackgroundFlushLosesTheSession: a background flush of lazy
// bytes that fails (a writeback error Linux reports to that fsync only)
// fails the next durable write with ErrStagingLost instead of letting its
// own fsync succeed over lost bytes.
func TestFailedBackgroundFlushLosesTheSession(t *testing.T) {
	d := openDriver(t, t.TempDir(), Options{})
	t.Cleanup(func() { d.Close() })
	d.host = identity{Machine: "m1", Boot: "b1"}
	d.flushes.sync = func(*os.File) error { return errors.New("EIO") }
	st := &storage.Staging{ID: "fedcba9876543210fedcba9876543210"}
	if err := d.CreateStaging(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	data := storagetest.RandData(2*8192, 2)
	st.Lazy = true
	if _, err := d.WriteStaging(t.Context(), st, 0, bytes.NewReader(data[:8192])); err != nil {
		t.Fatalf("lazy write = %v", err)
	}
	st.Lazy = false
	if _, err := d.WriteStaging(t.Context(), st, 8192, bytes.NewReader(data[8192:])); !errors.Is(err, storage.ErrStagingLost) {
		t.Fatalf("durable write after a failed background flush = %v, want ErrStagingLost", err)
	}
	// A failure nobody asked about is dropped with the staging area.
	st.Lazy = true
	if _, err := d.WriteStaging(t.Context(), st, 0, bytes.NewReader(data[:8192])); err != nil {
		t.Fatalf("lazy rewrite = %v", err)
	}
	d.flushes.wg.Wait()
	if err := d.DiscardStaging(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if n := len(d.flushes.failed); n != 0 {
		t.Fatalf("%d flush failures kept after the staging area was discarded", n)
	}
}
