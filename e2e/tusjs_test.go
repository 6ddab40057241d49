package e2e

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// tusJSDir returns e2e/tusjs with its node_modules installed, or skips.
func tusJSDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("tusjs")
	if err != nil {
		t.Fatal(err)
	}
	_, nodeErr := exec.LookPath("node")
	_, npmErr := exec.LookPath("npm")
	if nodeErr != nil || npmErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("node and npm are required in CI for the tus-js-client test")
		}
		t.Skip("node or npm not installed")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "tus-js-client", "package.json")); err != nil {
		cmd := exec.Command("sh", filepath.Join("..", "scripts", "install-tus-js-client.sh"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("scripts/install-tus-js-client.sh: %v\n%s", err, out)
		}
	}
	return dir
}

// TestTusJSClient uploads through a real third-party tus client
// (tus-js-client on node) behind a proxy that cuts the connection several
// times; the client retries, resumes from HEAD's offset, and the file
// arrives byte-exact with a single upload.completed record.
func TestTusJSClient(t *testing.T) {
	dir := tusJSDir(t)
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_CHUNK_SIZE": "65536"}})

	const size = 3<<20 + 4321
	data, _ := payloadBytes(21, size)
	src := filepath.Join(t.TempDir(), "source.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// Cut points in the body, away from its very end so that a cut never
	// falls between the commit and its response (a client would then start
	// over: see docs/tus.md).
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	var cuts []int64
	for range 5 {
		cuts = append(cuts, int64(size/10)+rng.Int64N(int64(size*7/10)))
	}
	t.Logf("cut points: %v", cuts)
	proxy := newFaultProxy(t, c.web.addr, nil).withCuts(cuts)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "upload.mjs",
		"--endpoint", "http://"+proxy.addr()+tusPath,
		"--file", src, "--cohort", "c1", "--filename", "tusjs.bin", "--path", "js/tusjs.bin",
		"--chunk-size", "262144")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEPOT_TOKEN="+c.token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("node stdout (tail):\n%s", tail(stdout.String(), 25))
	if err != nil {
		t.Fatalf("node upload.mjs: %v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "done ") {
		t.Fatalf("no success line from node")
	}
	if got := proxy.cutsMade(); got < 3 {
		t.Fatalf("only %d connection cuts happened, want at least 3", got)
	}
	if !strings.Contains(stdout.String(), "retry ") {
		t.Fatalf("tus-js-client never retried")
	}
	checkOnDisk(t, c, "js/tusjs.bin", data)
	if n := len(completedRecords(t, c, "c1/js/tusjs.bin")); n != 1 {
		t.Fatalf("%d upload.completed records, want 1", n)
	}
	if strings.Contains(c.web.logs(), "tusjs.bin") {
		t.Fatal("the web tier logged the file name")
	}
	t.Logf("%d cuts, %d retries, file byte-exact", proxy.cutsMade(), strings.Count(stdout.String(), "retry "))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestTusJSParallelUploadsRefused: tus-js-client with parallelUploads: 3
// sends partial uploads joined by the concatenation extension, which depot
// does not implement: the first partial creation is refused with 400
// naming Upload-Concat, and nothing is stored (the review got each third
// committed as the whole file).
func TestTusJSParallelUploadsRefused(t *testing.T) {
	dir := tusJSDir(t)
	c := newCluster(t, clusterOpts{})
	data, _ := payloadBytes(22, 300_000)
	src := filepath.Join(t.TempDir(), "source.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "upload.mjs", "--endpoint", c.web.url()+tusPath,
		"--file", src, "--cohort", "c1", "--filename", "parallel.bin", "--parallel", "3")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEPOT_TOKEN="+c.token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil {
		t.Fatalf("the parallel upload succeeded:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "400") || !strings.Contains(stderr.String(), "Upload-Concat") {
		t.Fatalf("the client's error does not show a 400 naming Upload-Concat:\n%s", stderr.String())
	}
	checkAbsent(t, c, "parallel.bin")
	db := openAuditDB(t, c.dbURL)
	for _, ev := range auditAfter(t, db, 0) {
		if ev.Action == "upload.started" {
			t.Errorf("an upload session was opened: %+v", ev)
		}
	}
}
