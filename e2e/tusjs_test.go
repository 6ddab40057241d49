package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// TestTusJSParallelUploads: tus-js-client with parallelUploads: 3 sends
// three partial uploads (Upload-Concat: partial) in parallel, through a
// proxy that cuts connections, then the final upload that joins them. The
// file is committed once, byte-exact, with one upload.completed record
// (naming the three parts); no partial is ever listed, and none is left.
func TestTusJSParallelUploads(t *testing.T) {
	dir := tusJSDir(t)
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_CHUNK_SIZE": "65536"}})
	const size = 3<<20 + 777
	data, _ := payloadBytes(22, size)
	src := filepath.Join(t.TempDir(), "source.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	var cuts []int64
	for range 4 {
		cuts = append(cuts, int64(size/10)+rng.Int64N(int64(size*7/10)))
	}
	t.Logf("cut points: %v", cuts)
	proxy := newFaultProxy(t, c.web.addr, nil).withCuts(cuts)
	// Partial uploads are never listed, complete or not: watch the listing
	// while the upload runs.
	stop := make(chan struct{})
	listed := make(chan string, 1)
	go func() {
		defer close(listed)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			req, _ := http.NewRequest("GET", c.web.url()+"/api/v1/files/c1/", nil)
			req.Header.Set("Authorization", "Bearer "+c.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			var page struct {
				Files []fileJSON `json:"files"`
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			resp.Body.Close()
			for _, f := range page.Files {
				if err == nil && f.Size != size {
					listed <- f.Path + " of " + strconv.FormatInt(f.Size, 10) + " bytes"
					return
				}
			}
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "upload.mjs", "--endpoint", "http://"+proxy.addr()+tusPath,
		"--file", src, "--cohort", "c1", "--filename", "parallel.bin", "--path", "js/parallel.bin",
		"--parallel", "3", "--chunk-size", "262144")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEPOT_TOKEN="+c.token)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	close(stop)
	t.Logf("node stdout (tail):\n%s", tail(stdout.String(), 15))
	if err != nil {
		t.Fatalf("node upload.mjs: %v\nstderr:\n%s", err, stderr.String())
	}
	if got := proxy.cutsMade(); got < 2 {
		t.Fatalf("only %d connection cuts happened, want at least 2", got)
	}
	if l, ok := <-listed; ok {
		t.Fatalf("a partial upload was listed: %s", l)
	}
	checkOnDisk(t, c, "js/parallel.bin", data)
	recs := completedUnder(t, c, "c1/")
	if len(recs) != 1 || recs[0].Key != "c1/js/parallel.bin" || recs[0].SHA256 != sha(data) ||
		len(strings.Fields(recs[0].Metadata["concat_parts"])) != 3 {
		t.Fatalf("upload.completed records under c1/: %+v, want one of c1/js/parallel.bin naming 3 parts", recs)
	}
	if !strings.Contains(stdout.String(), "done http://"+proxy.addr()+tusPath+recs[0].UploadID) {
		t.Fatalf("the client's upload URL is not the final upload's")
	}
	db := openAuditDB(t, c.dbURL)
	started := map[string]bool{}
	for _, ev := range auditAfter(t, db, 0) {
		if ev.Action == "upload.started" {
			started[ev.UploadID] = true
		}
	}
	for _, id := range strings.Fields(recs[0].Metadata["concat_parts"]) {
		if !started[id] {
			t.Errorf("part %s has no upload.started record", id)
		}
		if resp := tusReq(t, c.web.url(), c.token, http.MethodHead, tusPath+id, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("part %s: HEAD %d, want 404 (released)", id, resp.StatusCode)
		}
	}
	if strings.Contains(c.web.logs(), "parallel.bin") {
		t.Fatal("the web tier logged the file name")
	}
	t.Logf("%d cuts, %d retries, file byte-exact", proxy.cutsMade(), strings.Count(stdout.String(), "retry "))
}
