package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSFTPOpenSSH drives OpenSSH's sftp (batch mode) and scp against the
// SFTP entrance: put, ls, get (whole and from an offset), mkdir, rm, the
// operations depot refuses, and scp both ways; every uploaded file is read
// back through the HTTP API with its SHA-256.
func TestSFTPOpenSSH(t *testing.T) {
	s := newSFTPCluster(t, nil)
	local := t.TempDir()
	small, smallSum := writePayload(t, local, "small.csv", 1, 1000)
	big, bigSum := writePayload(t, local, "big.bin", 2, 40<<20+123) // several chunks, pipelined
	empty, emptySum := writePayload(t, local, "empty.txt", 3, 0)

	out := s.mustSFTP(t,
		"put "+small+" /c1/small.csv",
		"mkdir /c1/deep",
		"put "+big+" /c1/deep/big.bin",
		"put "+empty+" /c1/empty.txt",
		"ls -l /",
		"ls -l /c1",
		"ls -l /c1/deep",
	)
	for _, want := range []string{"c1", "small.csv", "deep", "big.bin", "41943163", "empty.txt"} {
		if !strings.Contains(out, want) {
			t.Errorf("listing lacks %q:\n%s", want, out)
		}
	}
	for key, want := range map[string]string{"c1/small.csv": smallSum, "c1/deep/big.bin": bigSum, "c1/empty.txt": emptySum} {
		if _, got := s.fileSHA(t, key); got != want {
			t.Errorf("%s stored with SHA-256 %s, want %s", key, got, want)
		}
	}

	// get, and reget from an offset (a resumed download): the local copy
	// of a prefix is completed from where it stops.
	back := filepath.Join(local, "back.bin")
	s.mustSFTP(t, "get /c1/deep/big.bin "+back)
	if _, got := hashFile(t, back); got != bigSum {
		t.Fatalf("get: SHA-256 %s, want %s", got, bigSum)
	}
	if err := os.Truncate(back, 7<<20+5); err != nil {
		t.Fatal(err)
	}
	s.mustSFTP(t, "reget /c1/deep/big.bin "+back)
	if _, got := hashFile(t, back); got != bigSum {
		t.Fatalf("reget: SHA-256 %s, want %s", got, bigSum)
	}

	// What depot does not do gets a clear status, never a hang.
	for cmd, want := range map[string]string{
		"symlink /c1/small.csv /c1/link":  "unsupported",
		"mkdir /newcohort":                "Permission denied",
		"get /c1/nothing-here " + local:   "not found",
		"put " + small + " /c2/small.csv": "denied",
	} {
		out, err := s.sftpBatch(t, "alice", s.key, cmd)
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("%s: err %v, output lacks %q:\n%s", cmd, err, want, out)
		}
	}

	// rename (posix-rename: OpenSSH's rename) within the cohort: a verified
	// copy as a new version, then the source deleted.
	s.mustSFTP(t, "rename /c1/small.csv /c1/renamed/small.csv")
	if _, got := s.fileSHA(t, "c1/renamed/small.csv"); got != smallSum {
		t.Fatalf("renamed file: SHA-256 %s, want %s", got, smallSum)
	}
	if n, _ := s.fileSHA(t, "c1/small.csv"); n != -1 {
		t.Fatalf("the source of a rename is still served")
	}
	if out, err := s.sftpBatch(t, "alice", s.key, "rename /c1/deep /c1/deeper"); err == nil {
		t.Fatalf("a directory was renamed:\n%s", out)
	}
	s.mustSFTP(t, "rename /c1/renamed/small.csv /c1/small.csv")

	// rm (alice manages c1): the file is gone from the HTTP API too.
	s.mustSFTP(t, "rm /c1/small.csv")
	if n, _ := s.fileSHA(t, "c1/small.csv"); n != -1 {
		t.Fatalf("c1/small.csv still served after rm")
	}

	// scp both ways (scp speaks SFTP since OpenSSH 9).
	needSFTPClients(t, "scp")
	scpArgs := func(args ...string) []string { return append(s.sshOpts(s.key), args...) }
	remote := "alice@127.0.0.1:/c1/scp/copy.bin"
	if out, err := exec.Command("scp", scpArgs(big, remote)...).CombinedOutput(); err != nil {
		t.Fatalf("scp up: %v\n%s", err, out)
	}
	if _, got := s.fileSHA(t, "c1/scp/copy.bin"); got != bigSum {
		t.Fatalf("scp up: SHA-256 %s, want %s", got, bigSum)
	}
	down := filepath.Join(local, "scp-down.bin")
	if out, err := exec.Command("scp", scpArgs(remote, down)...).CombinedOutput(); err != nil {
		t.Fatalf("scp down: %v\n%s", err, out)
	}
	if _, got := hashFile(t, down); got != bigSum {
		t.Fatalf("scp down: SHA-256 %s, want %s", got, bigSum)
	}
}

// TestSFTPResumeAfterCut kills an OpenSSH sftp client in the middle of a
// put: nothing becomes visible, stat reports the bytes the cut upload
// holds, and reput continues the same upload session to a complete,
// verified file.
func TestSFTPResumeAfterCut(t *testing.T) {
	s := newSFTPCluster(t, nil)
	local := t.TempDir()
	f, sum := writePayload(t, local, "cut.bin", 7, 96<<20+11)
	args := append(s.sshOpts(s.key), "-l", "160000", "-b", "-", "alice@127.0.0.1") // ~20 MB/s: the put lasts seconds
	cmd := exec.Command("sftp", args...)
	cmd.Stdin = strings.NewReader("put " + f + " /c1/cut.bin\n")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until services holds part of the file (stat of a path with a
	// cut or running upload reports its offset), then cut the client.
	deadline := time.Now().Add(30 * time.Second)
	var held int64
	for held < 16<<20 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the upload did not progress:\n%s", s.web.logs())
		}
		time.Sleep(100 * time.Millisecond)
		held = s.remoteSize(t, "/c1/cut.bin")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if n, _ := s.fileSHA(t, "c1/cut.bin"); n != -1 {
		t.Fatalf("a cut upload is visible (%d bytes)", n)
	}
	// The cut lands in web a moment after the client dies: wait until the
	// session is parked (no longer held by a handle), then resume.
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(s.web.logs(), "sftp upload cut; kept for reput") })
	at := s.remoteSize(t, "/c1/cut.bin")
	if at < held || at >= 96<<20+11 {
		t.Fatalf("stat after the cut: %d bytes (saw %d before)", at, held)
	}
	out := s.mustSFTP(t, "reput "+f+" /c1/cut.bin")
	if !strings.Contains(out, "Resuming upload") {
		t.Logf("reput output: %s", out)
	}
	if _, got := s.fileSHA(t, "c1/cut.bin"); got != sum {
		t.Fatalf("after reput: SHA-256 %s, want %s", got, sum)
	}
	if !strings.Contains(s.web.logs(), `"resumed":true`) {
		t.Fatalf("reput did not continue the session:\n%s", s.web.logs())
	}
	// One upload session: one upload.started, one upload.completed.
	audit := depotCLI(t, s.dbEnv(), "audit", "export")
	if n := strings.Count(audit, `"upload.started"`); n != 1 {
		t.Errorf("%d upload.started records, want 1", n)
	}
	if !strings.Contains(audit, `"upload.resumed"`) {
		t.Errorf("no upload.resumed record")
	}
}

// remoteSize is the size sftp's ls -l shows for path (-1: none).
func (s *sftpCluster) remoteSize(t *testing.T, path string) int64 {
	t.Helper()
	out, err := s.sftpBatch(t, "alice", s.key, "ls -l "+path)
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		if len(fields) >= 9 && strings.HasPrefix(fields[0], "-") {
			n, err := strconv.ParseInt(fields[4], 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// TestSFTPParamiko runs e2e/testdata/sftp_paramiko.py (paramiko, as export
// scripts use it) with a key and with a token as the password.
func TestSFTPParamiko(t *testing.T) {
	const python = "/usr/bin/python3" // the Debian interpreter python3-paramiko installs into
	if exec.Command(python, "-c", "import paramiko").Run() != nil {
		t.Skip("python3-paramiko not installed (scripts/install-sftp-clients.sh)")
	}
	s := newSFTPCluster(t, nil)
	host, port, _ := net.SplitHostPort(s.addr)
	cmd := exec.Command(python, "testdata/sftp_paramiko.py", host, port, "alice", s.key, s.token, s.knownHosts, "/c1/para/export.bin")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("paramiko: %v\n%s", err, out)
	}
	var r struct {
		SHA256      string           `json:"sha256"`
		StatMissing string           `json:"stat_missing"`
		Rename      string           `json:"rename"`
		RenameBack  string           `json:"rename_back"`
		RenameOnto  string           `json:"rename_onto_existing"`
		Chmod       string           `json:"chmod"`
		Readlink    string           `json:"readlink"`
		AfterRemove string           `json:"after_remove"`
		BadPassword string           `json:"bad_password"`
		Size        int64            `json:"size"`
		StatSize    int64            `json:"stat_size"`
		Listing     map[string]int64 `json:"listing"`
		AtOffsetOK  bool             `json:"at_offset_ok"`
		TailOK      bool             `json:"tail_ok"`
		TokenGetOK  bool             `json:"token_get_ok"`
	}
	r.StatSize = -2
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("paramiko: %s", out)
	if r.Listing["export.bin"] != r.Size || r.StatSize != r.Size || !r.AtOffsetOK || !r.TailOK || !r.TokenGetOK {
		t.Errorf("paramiko saw the wrong file: %s", out)
	}
	if !strings.HasPrefix(r.StatMissing, "FileNotFoundError") || !strings.HasPrefix(r.AfterRemove, "FileNotFoundError") {
		t.Errorf("a missing file is not ENOENT: %s", out)
	}
	if r.Rename != "ok" || r.RenameBack != "ok" || r.RenameOnto == "ok" || r.Readlink == "ok" || r.BadPassword != "refused" {
		t.Errorf("refusals: %s", out)
	}
	if r.Chmod != "ok" {
		t.Errorf("chmod (ignored: depot keeps no modes) failed: %s", r.Chmod)
	}
	audit := depotCLI(t, s.dbEnv(), "audit", "export")
	for _, want := range []string{`"upload.completed"`, `"file.download"`, `"file.delete"`, `"auth.failed"`, `"ssh_key"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("audit trail lacks %s", want)
		}
	}
}

// TestSFTPRclone copies a directory up and back with rclone's sftp backend.
// depot keeps no modification times and runs no shell commands (rclone's
// remote hashing), so rclone is told --size-only and shell_type none.
func TestSFTPRclone(t *testing.T) {
	needSFTPClients(t, "rclone")
	s := newSFTPCluster(t, nil)
	src, back := t.TempDir(), t.TempDir()
	sums := map[string]string{}
	for i, n := range []int64{0, 4096, 12<<20 + 3} {
		name := fmt.Sprintf("f%d.dat", i)
		_, sums[name] = writePayload(t, src, name, uint64(20+i), n)
	}
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, sums["sub/nested.csv"] = writePayload(t, src, "sub/nested.csv", 30, 70000)
	host, port, _ := net.SplitHostPort(s.addr)
	remote := fmt.Sprintf(":sftp,host=%s,port=%s,user=alice,key_file=%s,known_hosts_file=%s,shell_type=none,disable_hashcheck=true:", host, port, s.key, s.knownHosts)
	rclone := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("rclone", append([]string{"--config", "/dev/null", "--size-only", "--retries", "1", "--low-level-retries", "1"}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rclone %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	rclone("copy", src, remote+"/c1/rc")
	for name, want := range sums {
		if _, got := s.fileSHA(t, "c1/rc/"+name); got != want {
			t.Errorf("%s stored with SHA-256 %s, want %s", name, got, want)
		}
	}
	if out := rclone("lsl", remote+"/c1/rc"); !strings.Contains(out, "12582915") || !strings.Contains(out, "sub/nested.csv") {
		t.Errorf("rclone lsl:\n%s", out)
	}
	// A second copy finds everything there (by size) and sends nothing.
	before := strings.Count(s.web.logs(), "sftp upload opened")
	rclone("copy", src, remote+"/c1/rc")
	if after := strings.Count(s.web.logs(), "sftp upload opened"); after != before {
		t.Errorf("a second rclone copy uploaded %d files again", after-before)
	}
	rclone("copy", remote+"/c1/rc", back)
	for name, want := range sums {
		if _, got := hashFile(t, filepath.Join(back, name)); got != want {
			t.Errorf("%s read back with SHA-256 %s, want %s", name, got, want)
		}
	}
}

// TestSFTPServicesHopCut cuts the connection between web and services
// twice while an sftp put streams: web sends the chunk again (as for every
// entrance) and the client never notices; the file is whole.
func TestSFTPServicesHopCut(t *testing.T) {
	var proxy *faultProxy
	s := newSFTPClusterOpts(t, clusterOpts{servicesURL: func(addr string) string {
		proxy = newFaultProxy(t, addr, nil).withCuts([]int64{10 << 20, 27 << 20})
		return proxy.url()
	}})
	local := t.TempDir()
	f, sum := writePayload(t, local, "hop.bin", 11, 40<<20+5)
	s.mustSFTP(t, "put "+f+" /c1/hop.bin")
	if _, got := s.fileSHA(t, "c1/hop.bin"); got != sum {
		t.Fatalf("stored with SHA-256 %s, want %s", got, sum)
	}
	if proxy.cutsMade() != 2 {
		t.Fatalf("%d cuts made, want 2 (%s)", proxy.cutsMade(), proxy.stats())
	}
}
