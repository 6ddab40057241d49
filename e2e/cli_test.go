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

// TestCommandLineClient drives `depot upload / ls / download / rm` against
// two real processes: exit codes, verification, and an interrupted upload
// that a second run continues instead of restarting.
func TestCommandLineClient(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	dir := t.TempDir()
	env := map[string]string{"DEPOT_URL": c.web.url(), "DEPOT_TOKEN": c.token, "XDG_CACHE_HOME": filepath.Join(dir, "cache")}
	small := filepath.Join(dir, "visits.tsv")
	data, sum := payloadBytes(21, 3<<20+11)
	if err := os.WriteFile(small, data, 0o600); err != nil {
		t.Fatal(err)
	}

	out := depotCLI(t, env, "upload", small, "--cohort", "c1", "--to", "2026")
	if !strings.Contains(out, "c1/2026/visits.tsv") || !strings.Contains(out, sum) {
		t.Fatalf("upload printed %q", out)
	}
	if out := depotCLI(t, env, "ls", "-l", "c1"); !strings.Contains(out, "2026/visits.tsv") || !strings.Contains(out, sum) {
		t.Fatalf("ls printed %q", out)
	}
	copyPath := filepath.Join(dir, "copy.tsv")
	depotCLI(t, env, "download", "c1/2026/visits.tsv", copyPath)
	if got, _ := os.ReadFile(copyPath); sha(got) != sum {
		t.Fatal("downloaded bytes differ")
	}
	depotCLI(t, env, "rm", "c1/2026/visits.tsv")

	// Exit codes scripts can rely on.
	for _, tc := range []struct {
		env  map[string]string
		args []string
		code int
	}{
		{map[string]string{"DEPOT_URL": c.web.url(), "DEPOT_TOKEN": "dpt_wrong"}, []string{"ls", "c1"}, 3},
		{env, []string{"download", "c1/2026/visits.tsv", copyPath}, 4},
		{env, []string{"upload", small}, 2}, // no --cohort
		{map[string]string{"DEPOT_URL": "http://127.0.0.1:1", "DEPOT_TOKEN": c.token}, []string{"ls", "c1"}, 5},
	} {
		if _, errOut, code := depotCLIResult(tc.env, tc.args...); code != tc.code || errOut == "" {
			t.Errorf("depot %v: exit %d (%q), want %d", tc.args, code, errOut, tc.code)
		}
	}

	// An upload interrupted (the client killed) is continued by a rerun.
	big := filepath.Join(dir, "imaging.bin")
	bigData, bigSum := payloadBytes(22, 48<<20)
	if err := os.WriteFile(big, bigData, 0o600); err != nil {
		t.Fatal(err)
	}
	proxy, unthrottle := throttledProxy(t, c.web.addr, 6<<20)
	penv := map[string]string{"DEPOT_URL": proxy.url(), "DEPOT_TOKEN": c.token, "XDG_CACHE_HOME": filepath.Join(dir, "cache")}
	first := exec.Command(binary, "upload", big, "--cohort", "c1", "-q")
	first.Env = baseEnv(penv)
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // about 18 MiB at 6 MiB/s
	_ = first.Process.Signal(syscall.SIGKILL)
	_ = first.Wait()
	unthrottle()
	proxy.resetAll()

	out = depotCLI(t, penv, "upload", big, "--cohort", "c1", "-q")
	if !strings.Contains(out, "resumed") || !strings.Contains(out, bigSum) {
		t.Fatalf("the rerun did not continue the interrupted upload: %q", out)
	}
	if got, err := c.stored("c1/imaging.bin"); err != nil || sha(got) != bigSum {
		t.Fatal("stored bytes differ after the resumed upload")
	}
}
