//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// groupMembers returns the PIDs of the live processes (zombies excluded) of
// process group pgid, from /proc.
func groupMembers(t *testing.T, pgid int) []int {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces, so split
		// after its closing parenthesis.
		f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(f) > 2 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// devRun is one `depot dev` started as a terminal would: the leader of its
// own process group.
type devRun struct {
	cmd   *exec.Cmd
	done  chan struct{}
	token string
	url   string
}

func startDev(t *testing.T, dataDir string, extra ...string) *devRun {
	t.Helper()
	addr, internal := freeAddr(t), freeAddr(t)
	cmd := exec.Command(binary, append([]string{"dev", "--addr", addr, "--internal-addr", internal, "--data-dir", dataDir}, extra...)...)
	cmd.Env = baseEnv(nil)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &devRun{cmd: cmd, done: make(chan struct{}), url: "http://" + addr}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var printed strings.Builder
		for sc.Scan() {
			line := sc.Text()
			printed.WriteString(line + "\n")
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "token:" {
				d.token = f[1]
			}
			if strings.HasPrefix(line, "Press Ctrl-C to stop.") {
				ready <- printed.String()
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
	})
	select {
	case out := <-ready:
		if !strings.Contains(out, d.url) || d.token == "" {
			t.Fatalf("depot dev printed:\n%s", out)
		}
	case <-d.done:
		t.Fatalf("depot dev exited: %v\n%s", cmd.ProcessState, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("depot dev did not start:\n%s", logs.String())
	}
	if n := len(groupMembers(t, cmd.Process.Pid)); n != 3 {
		t.Fatalf("depot dev's process group has %d processes, want 3 (dev, services, web)", n)
	}
	return d
}

// waitGroupEmpty waits until no live process is left in group pgid.
func waitGroupEmpty(t *testing.T, pgid int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		left := groupMembers(t, pgid)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes left behind in the group of depot dev: %v", left)
		}
		time.Sleep(50 * time.Millisecond) // no signal tells us about non-children
	}
}

// TestDevCommand runs the README's first command, `depot dev`, as a
// process: it prints a URL and a token that work for `depot upload` and
// `depot download` (byte exact), and Ctrl-C — SIGINT to its process group,
// as a terminal sends it — stops it with status 0 and nothing left running.
// A SIGINT to depot dev alone (kill -INT) stops its two tiers too, and so
// does its death by SIGKILL (the tiers get SIGTERM from the kernel).
func TestDevCommand(t *testing.T) {
	dataDir := t.TempDir()
	d := startDev(t, dataDir)
	env := map[string]string{"DEPOT_URL": d.url, "DEPOT_TOKEN": d.token, "XDG_CACHE_HOME": t.TempDir()}
	src := filepath.Join(t.TempDir(), "results.csv")
	data, sum := payloadBytes(61, 5<<20+3)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := depotCLI(t, env, "upload", src, "--cohort", "dev", "--to", "2026", "-q"); !strings.Contains(out, sum) {
		t.Fatalf("upload: %s", out)
	}
	dst := filepath.Join(t.TempDir(), "copy.csv")
	depotCLI(t, env, "download", "dev/2026/results.csv", dst, "-q")
	if got, _ := os.ReadFile(dst); sha(got) != sum {
		t.Fatal("downloaded bytes differ")
	}
	if tok, _ := os.ReadFile(filepath.Join(dataDir, "dev-token")); strings.TrimSpace(string(tok)) != d.token {
		t.Fatal("depot-data/dev-token differs from the printed token")
	}

	stopped := func(d *devRun, how string) {
		t.Helper()
		select {
		case <-d.done:
		case <-time.After(40 * time.Second):
			t.Fatalf("depot dev still running 40 s after %s", how)
		}
	}

	// Ctrl-C in a terminal: SIGINT to the whole foreground group.
	if err := syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	stopped(d, "Ctrl-C")
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("depot dev exited %d after Ctrl-C", code)
	}
	waitGroupEmpty(t, d.cmd.Process.Pid, 5*time.Second)

	// Restarted on the same data: the file is still there; SIGINT to depot
	// dev alone.
	d = startDev(t, dataDir)
	env["DEPOT_URL"], env["DEPOT_TOKEN"] = d.url, d.token
	if out := depotCLI(t, env, "ls", "-l", "dev"); !strings.Contains(out, sum) {
		t.Fatalf("after a restart: %s", out)
	}
	if err := d.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	stopped(d, "SIGINT to depot dev alone")
	waitGroupEmpty(t, d.cmd.Process.Pid, 5*time.Second)

	// depot dev killed outright: its tiers must not outlive it.
	d = startDev(t, dataDir)
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	stopped(d, "SIGKILL")
	waitGroupEmpty(t, d.cmd.Process.Pid, 35*time.Second)
}

// TestDevEncrypted runs depot dev with --kek-file: encryption at rest is
// off in dev unless a KEK is given, and on with one: an uploaded file reads
// back exact and nothing under the data directory holds its plaintext.
func TestDevEncrypted(t *testing.T) {
	dataDir := t.TempDir()
	d := startDev(t, dataDir, "--kek-file", newKEK(t))
	data := markerData(300_000)
	req, _ := http.NewRequest("PUT", d.url+"/api/v1/files/dev/enc.txt", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("GET", d.url+"/api/v1/files/dev/enc.txt", nil)
	req.Header.Set("Authorization", "Bearer "+d.token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("GET: %d bytes differ", len(got))
	}
	noPlaintext(t, &cluster{t: t}, filepath.Join(dataDir, "files"))
}
