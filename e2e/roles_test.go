package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFailClosed: a process with no role, or a web process given storage or
// database settings, refuses to start with a clear message.
func TestFailClosed(t *testing.T) {
	dir := t.TempDir()
	web := map[string]string{
		"DEPOT_ROLE": "web", "DEPOT_ADDR": "127.0.0.1:0", "DEPOT_SERVICES_URL": "http://127.0.0.1:1",
		"DEPOT_INTERNAL_KEY": testKey,
	}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		mention string
	}{
		{"no role", map[string]string{"DEPOT_ADDR": "127.0.0.1:0", "DEPOT_INTERNAL_ADDR": "127.0.0.1:0", "DEPOT_INTERNAL_KEYS": testKey}, nil, "role"},
		{"empty role flag", nil, []string{"--role", ""}, "role"},
		{"unknown role", map[string]string{"DEPOT_ROLE": "both"}, nil, "role"},
		{"web with storage", with(web, "DEPOT_STORAGE_URL", "file://"+dir), nil, "DEPOT_STORAGE_URL"},
		{"web with database", with(web, "DEPOT_DATABASE_URL", "sqlite://"+filepath.Join(dir, "x.db")), nil, "DEPOT_DATABASE_URL"},
		{"web with storage flag", web, []string{"--storage-url", "file://" + dir}, "DEPOT_STORAGE_URL"},
		{"web role flag with database", with(web, "DEPOT_ROLE", "", "DEPOT_DATABASE_URL", "sqlite://"+filepath.Join(dir, "x.db")), []string{"--role", "web"}, "DEPOT_DATABASE_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := depotCLIResult(tc.env, append([]string{"serve"}, tc.args...)...)
			if code == 0 {
				t.Fatalf("depot serve exited 0; stdout %q stderr %q", out, errOut)
			}
			msg := out + errOut
			if !strings.Contains(msg, "refusing to start") || !strings.Contains(msg, tc.mention) {
				t.Fatalf("exit %d, message does not say why (want %q): %s", code, tc.mention, msg)
			}
			if strings.Contains(msg, `"msg":"listening"`) {
				t.Fatalf("the process listened before refusing: %s", msg)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused process created files: %v", entries)
	}
}

// TestRoleSwitching runs one host's data directory first as services (with a
// web in front), then restarts the same binary as web (which must refuse
// while it still has the storage settings, and once they are dropped serves
// files only through services, never opening the data dir), then as services
// again, which finds its stored file.
func TestRoleSwitching(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	data, sum := payloadBytes(9, 3<<20+17)
	if status, got, b := c.putStream("/api/v1/files/c1/roles/table.csv", bytes.NewReader(data), int64(len(data)), nil); status != http.StatusCreated || got.SHA256 != sum {
		t.Fatalf("PUT: %d %s", status, b)
	}
	c.web.stop()
	c.services.stop()

	// The services environment with the role switched to web: refused.
	asWeb := c.servicesEnv(map[string]string{
		"DEPOT_ROLE": "web", "DEPOT_ADDR": "127.0.0.1:0", "DEPOT_INTERNAL_KEY": c.key,
		"DEPOT_SERVICES_URL": "http://127.0.0.1:1",
	})
	_, errOut, code := depotCLIResult(asWeb, "serve")
	if code == 0 || !strings.Contains(errOut, "DEPOT_STORAGE_URL") && !strings.Contains(errOut, "DEPOT_DATABASE_URL") {
		t.Fatalf("web with the services' storage settings: exit %d: %s", code, errOut)
	}

	// Fresh services on the same data, and the web without storage/db.
	c.startServices(nil)
	delete(asWeb, "DEPOT_STORAGE_URL")
	delete(asWeb, "DEPOT_DATABASE_URL")
	asWeb["DEPOT_SERVICES_URL"] = c.services.url()
	c.web = start(t, asWeb)

	// Sample the web process's open files all through its traffic.
	stopWatch := make(chan struct{})
	watched := make(chan []string)
	go func() { watched <- watchFDs(c.web.pid(), c.dataDir, stopWatch) }()
	got := expectStatus(t, c.do("GET", "/api/v1/files/c1/roles/table.csv", nil, nil), http.StatusOK)
	if !bytes.Equal(got, data) {
		t.Fatalf("download through the new web: %d bytes, sha %s, want %s", len(got), sha(got), sum)
	}
	newData, newSum := payloadBytes(10, 9<<20+3) // a session upload, several chunks
	if status, f, b := c.putStream("/api/v1/files/c1/roles/second.csv", bytes.NewReader(newData), int64(len(newData)), nil); status != http.StatusCreated || f.SHA256 != newSum {
		t.Fatalf("PUT through the new web: %d %s", status, b)
	}
	close(stopWatch)
	if bad := <-watched; len(bad) > 0 {
		t.Errorf("the web process opened files in the data dir: %v", bad)
	}
	assertNoFDsInto(t, c.web.pid(), c.dataDir)
	if cwd, _ := os.Readlink(fmt.Sprintf("/proc/%d/cwd", c.web.pid())); strings.HasPrefix(cwd, c.dataDir) {
		t.Errorf("web working directory %s is inside the data dir", cwd)
	}

	// The web serves files only through services: with services gone it
	// cannot answer from any local copy.
	c.services.stop()
	resp := c.do("GET", "/api/v1/files/c1/roles/table.csv", nil, nil)
	if b := readAll(t, resp); resp.StatusCode == http.StatusOK || bytes.Contains(b, data[:64]) {
		t.Fatalf("with services stopped the web tier still served the file: %d", resp.StatusCode)
	} else if resp.StatusCode < 500 || errorCode(b) == "" {
		t.Errorf("with services stopped: status %d %s, want a 5xx JSON error", resp.StatusCode, b)
	}
	assertNoFDsInto(t, c.web.pid(), c.dataDir)
	c.web.stop()

	// Back to services on the same data dir: it finds both files again.
	c.startServices(nil)
	for name, want := range map[string][]byte{"roles/table.csv": data, "roles/second.csv": newData} {
		req, _ := http.NewRequest("GET", c.services.url()+"/internal/v1/object", nil)
		req.Header.Set("Depot-User-Token", c.token)
		req.Header.Set("Depot-Key", "c1%2F"+strings.ReplaceAll(name, "/", "%2F"))
		signInternal(req, c.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if b := expectStatus(t, resp, http.StatusOK); !bytes.Equal(b, want) {
			t.Fatalf("services after the switch back: %s has %d bytes, sha %s", name, len(b), sha(b))
		}
		if resp.Header.Get("Depot-Sha256") != sha(want) {
			t.Errorf("%s: Depot-Sha256 %q", name, resp.Header.Get("Depot-Sha256"))
		}
	}
}

// watchFDs samples /proc/<pid>/fd until stop is closed and returns every
// open file found under dir.
func watchFDs(pid int, dir string, stop chan struct{}) []string {
	var bad []string
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	for {
		entries, _ := os.ReadDir(fdDir)
		for _, e := range entries {
			if target, err := os.Readlink(filepath.Join(fdDir, e.Name())); err == nil && (target == dir || strings.HasPrefix(target, dir+"/")) {
				bad = append(bad, target)
			}
		}
		select {
		case <-stop:
			return bad
		case <-time.After(time.Millisecond):
		}
	}
}

// assertNoFDsInto fails if process pid has any file open under dir.
func assertNoFDsInto(t *testing.T, pid int, dir string) {
	t.Helper()
	fdDir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatalf("%s is empty; cannot check", fdDir)
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(fdDir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if target == dir || strings.HasPrefix(target, dir+"/") {
			t.Errorf("web process %d has %s open (fd %s), inside the data dir", pid, target, e.Name())
		}
	}
}
