package web

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"depot"
	"depot/internal/wire"
)

// uploadsFake is a Backend that keeps one upload session in memory.
type uploadsFake struct {
	Backend // nil: any other call panics
	mu      sync.Mutex
	data    []byte
	appends []int64 // offsets of the appends
	done    bool
	aborted depot.Code
	fail    error // returned by every append when set
}

func (f *uploadsFake) Authorize(context.Context, depot.Caller, string, depot.Permission) (depot.Principal, error) {
	return depot.Principal{User: "alice", Grants: map[string]depot.Role{"c1": depot.RoleManager}}, nil
}

func (f *uploadsFake) CreateUpload(_ context.Context, _ depot.Caller, req wire.CreateUpload) (depot.Upload, error) {
	return depot.Upload{ID: "u1", Key: req.Key, DeclaredSize: -1, Resumable: true}, nil
}

func (f *uploadsFake) ChunkBuffer(context.Context) ([]byte, func(), error) {
	return make([]byte, 16), func() {}, nil
}

func (f *uploadsFake) AppendChunk(_ context.Context, _ depot.Caller, _ string, off int64, data []byte, end int64, complete bool) (int64, *depot.Object, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return 0, nil, f.fail
	}
	if off != int64(len(f.data)) {
		return 0, nil, depot.Errorf(depot.CodeOffsetMismatch, "offset %d, have %d", off, len(f.data))
	}
	f.data = append(f.data, data...)
	f.appends = append(f.appends, off)
	if complete && end == int64(len(f.data)) {
		f.done = true
		return int64(len(data)), &depot.Object{Size: end}, nil
	}
	return int64(len(data)), nil, nil
}

func (f *uploadsFake) Abort(_ context.Context, _ depot.Caller, _ string, reason depot.Code) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.aborted = reason
	return nil
}

// openWriter opens /c1/f for writing (truncating) through a fresh server.
func openWriter(t *testing.T, f *uploadsFake) (*sftpWriter, *Server) {
	t.Helper()
	s := New(Config{Backend: f, ChunkSize: 16})
	fs := s.newSFTPFS(context.Background(), depot.Caller{Token: "t"}, "alice")
	w, err := fs.Filewrite(&sftp.Request{Method: "Put", Filepath: "/c1/f", Flags: 0x02 | 0x08 | 0x10})
	if err != nil {
		t.Fatal(err)
	}
	return w.(*sftpWriter), s
}

var payload40 = []byte("0123456789abcdefghijklmnopqrstuvwxyzABCD")

func TestSFTPWriterReordersWithinTheWindow(t *testing.T) {
	f := &uploadsFake{}
	w, s := openWriter(t, f)
	for _, p := range [][2]int{{20, 32}, {16, 20}, {4, 16}, {0, 4}, {32, 40}} {
		if _, err := w.WriteAt(payload40[p[0]:p[1]], int64(p[0])); err != nil {
			t.Fatalf("WriteAt %d: %v", p[0], err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.data, payload40) || !f.done {
		t.Fatalf("stored %q (committed %v), want %q", f.data, f.done, payload40)
	}
	if _, ok := s.sftpResumes.get("alice", "c1/f"); ok {
		t.Fatal("a committed upload is still offered for reput")
	}
}

func TestSFTPWriterRefusesPastTheWindow(t *testing.T) {
	f := &uploadsFake{}
	w, s := openWriter(t, f)
	if _, err := w.WriteAt(payload40[:4], 0); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt(payload40[:4], 40); err == nil || !strings.Contains(err.Error(), "reorder window") {
		t.Fatalf("a write two chunks ahead: %v", err)
	}
	if _, err := w.WriteAt(payload40[4:8], 4); err == nil {
		t.Fatal("a write after a refusal was accepted")
	}
	if err := w.Close(); err == nil || f.done || f.aborted != depot.CodeInvalid {
		t.Fatalf("Close: %v, committed %v, aborted %q", err, f.done, f.aborted)
	}
	if _, ok := s.sftpResumes.get("alice", "c1/f"); ok {
		t.Fatal("an abandoned upload is offered for reput")
	}
}

func TestSFTPWriterRefusesRewritingSentBytes(t *testing.T) {
	f := &uploadsFake{}
	w, _ := openWriter(t, f)
	if _, err := w.WriteAt(payload40[:16], 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		base := w.base
		w.mu.Unlock()
		if base == 16 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first chunk was never appended")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := w.WriteAt(payload40[:4], 0); err == nil || !strings.Contains(err.Error(), "rewrite") {
		t.Fatalf("rewriting sent bytes: %v", err)
	}
	w.Close()
}

func TestSFTPWriterCutKeepsTheSession(t *testing.T) {
	f := &uploadsFake{}
	w, s := openWriter(t, f)
	w.WriteAt(payload40[:20], 0)
	w.WriteAt(payload40[24:30], 24) // past a gap: lost with the cut
	w.TransferError(context.Canceled)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.data, payload40[:20]) || f.done || f.aborted != "" {
		t.Fatalf("after a cut: stored %q, committed %v, aborted %q", f.data, f.done, f.aborted)
	}
	if id, ok := s.sftpResumes.get("alice", "c1/f"); !ok || id != "u1" {
		t.Fatal("a cut upload is not offered for reput")
	}
}

func TestSFTPWriterServicesDownKeepsTheSession(t *testing.T) {
	f := &uploadsFake{fail: depot.Errorf(depot.CodeUnavailable, "services down")}
	w, s := openWriter(t, f)
	w.WriteAt(payload40[:16], 0) // completes a chunk: its append fails
	var err error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = w.WriteAt(payload40[16:17], 16)
		time.Sleep(time.Millisecond)
	}
	if err == nil {
		t.Fatal("writes go on after services failed")
	}
	if err := w.Close(); err == nil || f.aborted != "" {
		t.Fatalf("Close: %v, aborted %q", err, f.aborted)
	}
	if _, ok := s.sftpResumes.get("alice", "c1/f"); !ok {
		t.Fatal("an upload interrupted by services is not offered for reput")
	}
}

func TestSFTPWriterRefusesAFileWithAGap(t *testing.T) {
	f := &uploadsFake{}
	w, _ := openWriter(t, f)
	w.WriteAt(payload40[:4], 0)
	w.WriteAt(payload40[8:12], 8)
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "gap") || f.done {
		t.Fatalf("Close of a file with a gap: %v (committed %v)", err, f.done)
	}
}
