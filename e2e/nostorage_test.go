package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWebStoresNothing proves invariant 1 on the real web process: while a
// 1 GiB PUT and a 1 GiB multipart POST (of unknown length) pass through it,
// it writes no byte to storage, its TMPDIR stays empty and its working
// directory is unchanged.
func TestWebStoresNothing(t *testing.T) {
	tmp, work := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(work, "marker"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"TMPDIR": tmp, "PWD": work}})
	pid := c.web.pid()
	if cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid)); err != nil || cwd != work {
		t.Fatalf("web cwd %q (%v), want %q", cwd, err, work)
	}
	if env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid)); err != nil || !slices.Contains(splitNUL(env), "TMPDIR="+tmp) {
		t.Fatalf("web process does not run with TMPDIR=%s (%v)", tmp, err)
	}
	workBefore := treeSnapshot(t, work, nil)
	before := procWriteBytes(t, pid)
	servicesBefore := procWriteBytes(t, c.services.pid())

	const n = 1 << 30
	// Raw PUT with a known length.
	body, sum := payload(7, n)
	status, got, raw := c.putStream("/api/v1/files/c1/nostore/put.bin", body, n, nil)
	if status != http.StatusCreated || got.Size != n || got.SHA256 != sum() {
		t.Fatalf("PUT 1 GiB: status %d answer %+v (%s), want sha %s", status, got, raw, sum())
	}

	// Multipart POST streamed through a pipe: the web tier cannot know its
	// length, so any spooling would have to hit the disk.
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	mpSum := make(chan string, 1)
	go func() {
		fw, err := mw.CreateFormFile("file", "post.bin")
		if err != nil {
			pw.CloseWithError(err)
			return
		}
		r, s := payload(8, n)
		if _, err := io.CopyBuffer(fw, r, make([]byte, 1<<20)); err != nil {
			pw.CloseWithError(err)
			return
		}
		mpSum <- s()
		pw.CloseWithError(mw.Close())
	}()
	req, err := http.NewRequestWithContext(context.Background(), "POST", c.web.url()+"/api/v1/files/c1/nostore/", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var posted []fileJSON
	if err := json.Unmarshal(expectStatus(t, resp, http.StatusCreated), &posted); err != nil {
		t.Fatal(err)
	}
	want := <-mpSum
	if len(posted) != 1 || posted[0].Size != n || posted[0].SHA256 != want || posted[0].Path != "nostore/post.bin" {
		t.Fatalf("POST 1 GiB answered %+v, want size %d sha %s", posted, int64(n), want)
	}

	after := procWriteBytes(t, pid)
	// The measurement is meaningful: the services process, which stores the
	// files, is charged for them.
	if grew := procWriteBytes(t, c.services.pid()) - servicesBefore; grew < 2*n {
		t.Errorf("services write_bytes grew by only %d bytes; /proc/<pid>/io does not measure writes here", grew)
	}
	if after != before {
		t.Errorf("web process write_bytes grew by %d bytes during 2 GiB of uploads", after-before)
	}
	if left := treeSnapshot(t, tmp, nil); len(left) != 1 { // just "."
		t.Errorf("TMPDIR of the web process is not empty: %v", left)
	}
	if workAfter := treeSnapshot(t, work, nil); !slices.Equal(workAfter, workBefore) {
		t.Errorf("working directory changed: before %v, after %v", workBefore, workAfter)
	}
	for name, sum := range map[string]string{"put.bin": sum(), "post.bin": want} {
		size, onDisk := hashFile(t, c.storedPath("c1/nostore/"+name))
		if size != n || onDisk != sum {
			t.Errorf("stored %s: size %d sha %s, want %d %s", name, size, onDisk, int64(n), sum)
		}
	}
}

func splitNUL(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			out = append(out, string(b[start:i]))
			start = i + 1
		}
	}
	return out
}

// TestSFTPStoresNothing extends TestWebStoresNothing to the SFTP entrance:
// while a 256 MiB put, a put cut midway and its reput, and a get pass
// through web, it writes no byte to storage, leaves TMPDIR empty, its
// working directory unchanged, and holds no regular file open.
func TestSFTPStoresNothing(t *testing.T) {
	tmp, work := t.TempDir(), t.TempDir()
	s := newSFTPCluster(t, map[string]string{"TMPDIR": tmp, "PWD": work})
	pid := s.web.pid()
	workBefore := treeSnapshot(t, work, nil)
	before := procWriteBytes(t, pid)
	servicesBefore := procWriteBytes(t, s.services.pid())

	const n = 256 << 20
	local := t.TempDir()
	f, sum := writePayload(t, local, "big.bin", 9, n)
	cut, cutSum := writePayload(t, local, "cut.bin", 10, 48<<20)
	args := append(s.sshOpts(s.key), "-l", "160000", "-b", "-", "alice@127.0.0.1")
	cmd := exec.Command("sftp", args...)
	cmd.Stdin = strings.NewReader("put " + cut + " /c1/nostore/cut.bin\n")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, func() bool { return s.remoteSize(t, "/c1/nostore/cut.bin") >= 8<<20 })
	openFiles := regularFilesOpen(t, pid) // mid-transfer
	cmd.Process.Kill()
	cmd.Wait()
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(s.web.logs(), "sftp upload cut") })
	s.mustSFTP(t, "put "+f+" /c1/nostore/big.bin", "reput "+cut+" /c1/nostore/cut.bin",
		"get /c1/nostore/big.bin "+filepath.Join(local, "back.bin"))

	if grew := procWriteBytes(t, s.services.pid()) - servicesBefore; grew < n {
		t.Errorf("services write_bytes grew by only %d bytes; /proc/<pid>/io does not measure writes here", grew)
	}
	if after := procWriteBytes(t, pid); after != before {
		t.Errorf("web process write_bytes grew by %d bytes during SFTP transfers", after-before)
	}
	if left := treeSnapshot(t, tmp, nil); len(left) != 1 {
		t.Errorf("TMPDIR of the web process is not empty: %v", left)
	}
	if workAfter := treeSnapshot(t, work, nil); !slices.Equal(workAfter, workBefore) {
		t.Errorf("working directory changed: before %v, after %v", workBefore, workAfter)
	}
	if len(openFiles) > 0 {
		t.Errorf("web holds regular files open during an SFTP transfer: %v", openFiles)
	}
	for key, want := range map[string]string{"c1/nostore/big.bin": sum, "c1/nostore/cut.bin": cutSum} {
		if _, got := hashFile(t, s.storedPath(key)); got != want {
			t.Errorf("stored %s: sha %s, want %s", key, got, want)
		}
	}
	if _, got := hashFile(t, filepath.Join(local, "back.bin")); got != sum {
		t.Errorf("get: sha %s, want %s", got, sum)
	}
}

// regularFilesOpen lists the regular files process pid has open.
func regularFilesOpen(t *testing.T, pid int) []string {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join(dir, fd.Name()))
		if err != nil || !strings.HasPrefix(target, "/") || strings.HasPrefix(target, "/dev/") ||
			strings.HasPrefix(target, "/sys/") || strings.HasPrefix(target, "/proc/") {
			continue // sockets, pipes, anon inodes, /dev/null, the runtime's cgroup limits
		}
		out = append(out, target)
	}
	return out
}
