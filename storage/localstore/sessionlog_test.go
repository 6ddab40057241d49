package localstore

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

const testSessionID = "0123456789abcdef0123456789abcdef"

func recordPath(dir, id string) string {
	return filepath.Join(dir, filepath.FromSlash(sessionName(id)))
}

func inode(t *testing.T, name string) uint64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func putSession(t *testing.T, d *Driver, id, rec string) {
	t.Helper()
	if err := d.PutSession(t.Context(), id, []byte(rec)); err != nil {
		t.Fatalf("PutSession: %v", err)
	}
}

func wantSession(t *testing.T, d *Driver, id, want string) {
	t.Helper()
	got, err := d.GetSession(t.Context(), id)
	if err != nil || string(got) != want {
		t.Fatalf("GetSession = %q, %v; want %q", got, err, want)
	}
}

// TestSessionRecordAppendedInPlace checks that replacing a record keeps its
// file (no inode allocated per chunk) until the log reaches maxSessionLog,
// and that the log then starts again with the newest record alone.
func TestSessionRecordAppendedInPlace(t *testing.T) {
	d, dir := open(t)
	name := recordPath(dir, testSessionID)
	putSession(t, d, testSessionID, "v0")
	first := inode(t, name)
	rec := string(bytes.Repeat([]byte("r"), 1000))
	var replaced bool
	for i := 1; i <= 2*maxSessionLog/1000; i++ {
		putSession(t, d, testSessionID, fmt.Sprintf("%s%04d", rec, i))
		wantSession(t, d, testSessionID, fmt.Sprintf("%s%04d", rec, i))
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > maxSessionLog {
			t.Fatalf("record file of %d bytes, want at most %d", fi.Size(), maxSessionLog)
		}
		if i == 10 && inode(t, name) != first {
			t.Fatal("the record file was replaced after 10 small records; want appends to the same file")
		}
		replaced = replaced || inode(t, name) != first
	}
	if !replaced {
		t.Error("the record file was never replaced although the log grew past maxSessionLog")
	}
}

// TestSessionRecordTornTail checks what a crash in the middle of an append
// leaves: the previous record, and neither a driver opened afterwards nor
// one that wrote the record before appends after the torn frame (readers
// would never see its records).
func TestSessionRecordTornTail(t *testing.T) {
	d, dir := open(t)
	name := recordPath(dir, testSessionID)
	putSession(t, d, testSessionID, "first")
	putSession(t, d, testSessionID, "second")
	torn := appendFrame(nil, []byte("third, never finished"))
	for _, tail := range [][]byte{torn[:5], torn[:len(torn)-3], corruptLast(torn)} {
		appendTorn(t, name, tail)
		wantSession(t, d, testSessionID, "second")

		after := newDriver(t, dir)
		putSession(t, after, testSessionID, "after the crash")
		wantSession(t, after, testSessionID, "after the crash")
		wantSession(t, d, testSessionID, "after the crash")
		appendTorn(t, name, tail)
		after.Close()
		putSession(t, d, testSessionID, "second")
		wantSession(t, newDriver(t, dir), testSessionID, "second")
	}
}

// appendTorn appends tail to the file name, as a crash in the middle of an
// append would leave it.
func appendTorn(t *testing.T, name string, tail []byte) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(tail); err != nil {
		t.Fatal(err)
	}
}

func corruptLast(frame []byte) []byte {
	c := bytes.Clone(frame)
	c[len(c)-1] ^= 0x20
	return c
}

// TestSessionRecordOfEarlierVersion checks that a record file written whole
// (no frames), as earlier versions did, is read as it is and replaced by
// the next PutSession.
func TestSessionRecordOfEarlierVersion(t *testing.T) {
	d, dir := open(t)
	name := recordPath(dir, testSessionID)
	legacy := `{"upload":{"id":"` + testSessionID + `"}}`
	if err := os.WriteFile(name, []byte(legacy), 0o640); err != nil {
		t.Fatal(err)
	}
	wantSession(t, d, testSessionID, legacy)
	putSession(t, d, testSessionID, "new")
	wantSession(t, d, testSessionID, "new")
	putSession(t, d, testSessionID, "newer")
	wantSession(t, newDriver(t, dir), testSessionID, "newer")
}

// TestLastRecord covers the parser on its own.
func TestLastRecord(t *testing.T) {
	a, b := appendFrame(nil, []byte("a")), appendFrame(nil, []byte("bb"))
	for _, tc := range []struct {
		name string
		log  []byte
		want string
		ok   bool
	}{
		{"one frame", a, "a", true},
		{"two frames", append(bytes.Clone(a), b...), "bb", true},
		{"empty record", appendFrame(nil, nil), "", true},
		{"last frame damaged", append(bytes.Clone(a), corruptLast(b)...), "a", true},
		{"last frame short", append(bytes.Clone(a), b[:len(b)-1]...), "a", true},
		{"header only", append(bytes.Clone(a), b[:frameHeaderSize]...), "a", true},
		{"only frame damaged", corruptLast(b), "", false},
		{"length past the end", append([]byte(frameMagic), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0), "", false},
		{"earlier version", []byte(`{"upload":{}}`), `{"upload":{}}`, true},
	} {
		got, ok := lastRecord(tc.log)
		if string(got) != tc.want || ok != tc.ok {
			t.Errorf("%s: lastRecord = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
