// Package e2e runs the real depot binary as separate processes on ephemeral
// loopback ports and talks to them over real HTTP. Nothing across the tier
// boundary is mocked.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"depot"
	"depot/internal/httpauth"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// binary is the depot binary built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "depot-e2e-bin-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "depot")
	// The crashpoints tag lets a test kill services at a step of a commit
	// (internal/crashpoint); without DEPOTTEST_CRASH_AT it changes nothing.
	build := exec.Command("go", "build", "-tags", "crashpoints", "-o", binary, "../cmd/depot")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build depot:", err)
		os.Exit(1)
	}
	code := m.Run()
	for _, f := range afterAll {
		f()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// afterAll holds functions TestMain runs after every test, such as stopping
// a server shared by the whole test binary (see s3_test.go).
var afterAll []func()

// proc is one running depot process.
type proc struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
	read chan struct{} // closed when all of stderr is in log
}

// start runs "depot serve" with env (and nothing else of DEPOT_*), waits
// until it logs its listening address and returns it.
func start(t *testing.T, env map[string]string, extra ...string) *proc {
	t.Helper()
	p := &proc{t: t, done: make(chan struct{}), read: make(chan struct{})}
	p.cmd = exec.Command(binary, append([]string{"serve"}, extra...)...)
	p.cmd.Env = baseEnv(env)
	if d, ok := env["PWD"]; ok {
		p.cmd.Dir = d
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	go func() {
		defer close(p.read)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addrc <- rec.Addr
			}
		}
	}()
	go func() {
		<-p.read // Wait closes the pipe: read it to the end first
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if t.Failed() {
			p.dumpGoroutines()
			t.Logf("log of pid %d (%s):\n%s", p.cmd.Process.Pid, env["DEPOT_ROLE"], p.logs())
			return
		}
		p.stop()
	})
	select {
	case p.addr = <-addrc:
	case <-p.done:
		t.Fatalf("depot serve exited early:\n%s", p.logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("depot serve did not start:\n%s", p.logs())
	}
	return p
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) url() string { return "http://" + p.addr }

// dumpGoroutines ends a process that is still running with SIGQUIT, so
// that its log ends with the stacks of all its goroutines: what a hung
// upload was waiting for.
func (p *proc) dumpGoroutines() { p.end(syscall.SIGQUIT) }

// stop terminates the process gracefully (SIGTERM).
func (p *proc) stop() { p.end(syscall.SIGTERM) }

// end sends sig to a process that is still running and waits for it to
// exit, killing it after 10 s.
func (p *proc) end(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill sends SIGKILL and waits.
func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

func baseEnv(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DEPOT_") && !strings.HasPrefix(kv, "TMPDIR=") {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		if k != "PWD" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// depotCLI runs a depot subcommand with env and returns stdout.
func depotCLI(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	out, errOut, code := depotCLIResult(env, args...)
	if code != 0 {
		t.Fatalf("depot %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func depotCLIResult(env map[string]string, args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command(binary, args...)
	cmd.Env = baseEnv(env)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		code = -1
	}
	return o.String(), e.String(), code
}

// testKey is the internal key of every cluster: fresh random bytes, as
// depot refuses keys of low entropy.
var testKey = httpauth.NewKey()

// cluster is one services process and one web process sharing nothing but
// the internal API.
type cluster struct {
	t          *testing.T
	dataDir    string
	dbURL      string
	storageURL string            // "" → file://<dataDir>/files
	storageEnv map[string]string // extra services env for the storage (S3 credentials)
	key        string
	services   *proc
	web        *proc
	token      string // token of user "alice", manager of cohort "c1"
	webEnv     map[string]string
	svcEnv     map[string]string
}

type clusterOpts struct {
	dbURL       string // "" → a fresh SQLite file
	webEnv      map[string]string
	servicesEnv map[string]string
	servicesURL func(servicesAddr string) string // to put a proxy in between
	storageURL  string                           // "" → local storage under the data dir; see s3Storage
	storageEnv  map[string]string                // extra services env for storageURL (AWS_* credentials)
}

func newCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t, dataDir: t.TempDir(), key: testKey, dbURL: o.dbURL, storageURL: o.storageURL, storageEnv: o.storageEnv,
		webEnv: o.webEnv, svcEnv: o.servicesEnv}
	if c.dbURL == "" {
		c.dbURL = "sqlite://" + filepath.Join(c.dataDir, "depot.db")
	}
	depotCLI(t, c.dbEnv(), "migrate")
	depotCLI(t, c.dbEnv(), "users", "add", "alice")
	depotCLI(t, c.dbEnv(), "cohorts", "add", "c1")
	depotCLI(t, c.dbEnv(), "cohorts", "grant", "alice", "c1", "manager")
	c.token = strings.TrimSpace(depotCLI(t, c.dbEnv(), "tokens", "create", "alice"))
	c.startServices(o.servicesEnv)
	surl := c.services.url()
	if o.servicesURL != nil {
		surl = o.servicesURL(c.services.addr)
	}
	c.startWeb(surl, o.webEnv)
	return c
}

func (c *cluster) dbEnv() map[string]string { return map[string]string{"DEPOT_DATABASE_URL": c.dbURL} }

func (c *cluster) storageDir() string { return filepath.Join(c.dataDir, "files") }

// objectPath is the file of object (version) id in c's local storage.
func (c *cluster) objectPath(id string) string {
	return filepath.Join(c.storageDir(), "objects", id[:2], id)
}

// currentVersion returns the ID of key's current version, read from the
// database; a file without one is an error wrapping fs.ErrNotExist.
func (c *cluster) currentVersion(key string) (string, error) {
	db, err := servicedb.Open(context.Background(), c.dbURL)
	if err != nil {
		return "", err
	}
	defer db.Close()
	v, err := db.Current(context.Background(), key)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		return "", fmt.Errorf("%s: %w", key, fs.ErrNotExist)
	}
	return v.ID, err
}

// storedPath is the file of key's current version in c's local storage.
func (c *cluster) storedPath(key string) string {
	c.t.Helper()
	id, err := c.currentVersion(key)
	if err != nil {
		c.t.Fatalf("current version of %s: %v", key, err)
	}
	return c.objectPath(id)
}

func (c *cluster) servicesEnv(extra map[string]string) map[string]string {
	env := map[string]string{
		"DEPOT_ROLE": "services", "DEPOT_INTERNAL_ADDR": "127.0.0.1:0", "DEPOT_INTERNAL_KEYS": c.key,
		"DEPOT_STORAGE_URL": "file://" + c.storageDir(), "DEPOT_DATABASE_URL": c.dbURL,
	}
	if c.storageURL != "" {
		env["DEPOT_STORAGE_URL"] = c.storageURL
	}
	for k, v := range c.storageEnv {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

func (c *cluster) startServices(extra map[string]string) {
	c.services = start(c.t, c.servicesEnv(extra))
}

func (c *cluster) startWeb(servicesURL string, extra map[string]string) {
	env := map[string]string{
		"DEPOT_ROLE": "web", "DEPOT_ADDR": "127.0.0.1:0", "DEPOT_SERVICES_URL": servicesURL,
		"DEPOT_INTERNAL_KEY": c.key,
	}
	for k, v := range extra {
		env[k] = v
	}
	c.web = start(c.t, env)
}

// restartServices stops services (if it still runs), starts it again on
// the same data with extra added to its environment, and starts web again
// in front of it.
func (c *cluster) restartServices(t *testing.T, extra map[string]string) {
	t.Helper()
	c.web.stop()
	c.services.stop()
	env := map[string]string{}
	for k, v := range c.svcEnv {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	c.startServices(env)
	c.startWeb(c.services.url(), c.webEnv)
}

// waitExit waits until the process has exited (it killed itself).
func (p *proc) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("pid %d did not exit", p.pid())
	}
}

// tryDo sends a request to the web tier as alice and returns its answer,
// read to the end, or the transport's error.
func (c *cluster) tryDo(method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequest(method, c.web.url()+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, err
}

// do sends a request to the web tier as alice.
func (c *cluster) do(method, path string, body io.Reader, hdr map[string]string) *http.Response {
	c.t.Helper()
	return c.doAs(c.token, method, path, body, hdr)
}

func (c *cluster) doAs(token, method, path string, body io.Reader, hdr map[string]string) *http.Response {
	c.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, c.web.url()+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if r, ok := body.(interface{ Len() int }); ok && body != nil {
		req.ContentLength = int64(r.Len())
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp
}

// readAll reads and closes a response body.
func readAll(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expectStatus fails unless resp has status want; it returns the body.
func expectStatus(t *testing.T, resp *http.Response, want int) []byte {
	t.Helper()
	b := readAll(t, resp)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d: %s", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, want, b)
	}
	return b
}

var _ = servicedbtest.Engines

// signInternal signs an internal API request with key, as the web tier does.
// Set every header and ContentLength first.
func signInternal(req *http.Request, key string) {
	httpauth.Sign(req, []byte(key), time.Now())
}

// signInternalAt signs req as of a given time.
func signInternalAt(req *http.Request, key string, at time.Time) {
	httpauth.Sign(req, []byte(key), at)
}
