package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestGracefulShutdownAndResume sends SIGTERM to the web tier in the middle
// of an upload: it stops accepting, lets the upload drain for the grace
// period, then cancels it and exits; the client (depot upload, which
// retries) resumes against the restarted process and the file arrives
// byte-exact.
func TestGracefulShutdownAndResume(t *testing.T) {
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_SHUTDOWN_GRACE": "2s"}})
	dir := t.TempDir()
	file := filepath.Join(dir, "cohort-export.bin")
	data, sum := payloadBytes(31, 40<<20)
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	proxy, unthrottle := throttledProxy(t, c.web.addr, 8<<20)
	up := exec.Command(binary, "upload", file, "--cohort", "c1", "-q")
	up.Env = baseEnv(map[string]string{"DEPOT_URL": proxy.url(), "DEPOT_TOKEN": c.token, "XDG_CACHE_HOME": filepath.Join(dir, "cache")})
	var out strings.Builder
	up.Stdout, up.Stderr = &out, &out
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- up.Wait() }()

	time.Sleep(2 * time.Second) // about 16 MiB sent
	start := time.Now()
	if err := c.web.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.web.done:
	case <-time.After(15 * time.Second):
		t.Fatal("the web tier did not stop after SIGTERM and its 2 s grace period")
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the web tier took %v to stop with a 2 s grace period", took)
	}
	if log := c.web.logs(); !strings.Contains(log, `"msg":"shutting down"`) || !strings.Contains(log, `"msg":"stopped"`) {
		t.Fatalf("no orderly shutdown in the web log:\n%s", log)
	}

	// A new web process takes over behind the same address; the client,
	// still retrying, resumes there.
	unthrottle()
	c.startWeb(c.services.url(), nil)
	proxy.setTarget(c.web.addr)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("depot upload failed: %v\n%s", err, out.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the upload did not finish after the restart")
	}
	if !strings.Contains(out.String(), sum) {
		t.Fatalf("upload output %q lacks the SHA-256 %s", out.String(), sum)
	}
	if got, err := c.stored("c1/cohort-export.bin"); err != nil || sha(got) != sum {
		t.Fatal("stored bytes differ after the restart")
	}
}
