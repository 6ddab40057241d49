package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestContradictionsRefusedAtStart: settings that look protected but are
// not are refused at start, each with a message that names the setting and
// never repeats a key: TLS client material with an http:// services URL, a
// trusted user header behind a proxy list that trusts the whole Internet,
// internal keys of low entropy, and keys given on the command line.
func TestContradictionsRefusedAtStart(t *testing.T) {
	certs := t.TempDir()
	depotCLI(t, nil, "certs", "dev", "--out", certs)
	web := map[string]string{
		"DEPOT_ROLE": "web", "DEPOT_ADDR": "127.0.0.1:0", "DEPOT_SERVICES_URL": "http://127.0.0.1:1",
		"DEPOT_INTERNAL_KEY": testKey,
	}
	services := map[string]string{
		"DEPOT_ROLE": "services", "DEPOT_INTERNAL_ADDR": "127.0.0.1:0", "DEPOT_INTERNAL_KEYS": testKey,
		"DEPOT_STORAGE_URL": "mem://", "DEPOT_DATABASE_URL": "sqlite://" + filepath.Join(t.TempDir(), "x.db"),
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
	weakFile := filepath.Join(t.TempDir(), "keys")
	if err := os.WriteFile(weakFile, []byte(testKey+"\n"+strings.Repeat("a", 64)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		env     map[string]string
		args    []string
		mention string
	}{
		{"http:// with a services CA", with(web, "DEPOT_SERVICES_CA", filepath.Join(certs, "ca.pem")), nil, "DEPOT_SERVICES_CA"},
		{"http:// with a client certificate", with(web, "DEPOT_SERVICES_CLIENT_CERT", filepath.Join(certs, "web-client.pem"),
			"DEPOT_SERVICES_CLIENT_KEY", filepath.Join(certs, "web-client-key.pem")), nil, "plain text"},
		{"user header trusted from everywhere", with(web, "DEPOT_TRUSTED_USER_HEADER", "X-Remote-User", "DEPOT_TRUSTED_PROXIES", "10.0.0.1,0.0.0.0/0"), nil, "0.0.0.0/0"},
		{"user header trusted from all of IPv6", with(web, "DEPOT_TRUSTED_USER_HEADER", "X-Remote-User", "DEPOT_TRUSTED_PROXIES", "::/0"), nil, "::/0"},
		{"user header trusted from all IPv4 as IPv6", with(web, "DEPOT_TRUSTED_USER_HEADER", "X-Remote-User", "DEPOT_TRUSTED_PROXIES", "::ffff:0:0/96"), nil, "DEPOT_TRUSTED_PROXIES"},
		{"user header trusted from a /7", with(web, "DEPOT_TRUSTED_USER_HEADER", "X-Remote-User", "DEPOT_TRUSTED_PROXIES", "10.0.0.0/7"), nil, "DEPOT_TRUSTED_PROXIES"},
		{"web key of one letter", with(web, "DEPOT_INTERNAL_KEY", strings.Repeat("a", 16)), nil, "32 random bytes"},
		{"web key of 16 hex bytes", with(web, "DEPOT_INTERNAL_KEY", "0123456789abcdef0123456789abcdef"), nil, "32 random bytes"},
		{"services key that repeats", with(services, "DEPOT_INTERNAL_KEYS", testKey+","+strings.Repeat("ab", 32)), nil, "random"},
		{"services key file with a weak key", with(services, "DEPOT_INTERNAL_KEYS", "", "DEPOT_INTERNAL_KEYS_FILE", weakFile), nil, "DEPOT_INTERNAL_KEYS_FILE"},
		{"web key on the command line", with(web, "DEPOT_INTERNAL_KEY", ""), []string{"--internal-key", testKey}, "DEPOT_INTERNAL_KEY"},
		{"services keys on the command line", with(services, "DEPOT_INTERNAL_KEYS", ""), []string{"--internal-keys", testKey}, "DEPOT_INTERNAL_KEYS_FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := depotCLIResult(tc.env, append([]string{"serve"}, tc.args...)...)
			msg := out + errOut
			if code == 0 || !strings.Contains(msg, "refusing to start") || !strings.Contains(msg, tc.mention) {
				t.Fatalf("exit %d, want a refusal mentioning %q: %s", code, tc.mention, msg)
			}
			if strings.Contains(msg, `"msg":"listening"`) {
				t.Fatalf("the process listened before refusing: %s", msg)
			}
			if strings.Contains(msg, testKey) || strings.Contains(msg, strings.Repeat("a", 16)) {
				t.Fatalf("the message repeats a key: %s", msg)
			}
		})
	}

	// The accepted forms start: a narrow proxy list with a user header, and
	// an https:// URL with TLS material (services is not there: web starts
	// and is not ready).
	start(t, with(web, "DEPOT_TRUSTED_USER_HEADER", "X-Remote-User", "DEPOT_TRUSTED_PROXIES", "127.0.0.1,10.0.0.0/8,fd00::/32"))
	start(t, with(web, "DEPOT_SERVICES_URL", "https://127.0.0.1:1", "DEPOT_SERVICES_CA", filepath.Join(certs, "ca.pem")))
}

// TestProfilerNeverServesTheCommandLine: with DEPOT_PPROF=on the metrics
// listener serves the profiler but not /debug/pprof/cmdline, so nothing
// passed on a command line is ever served.
func TestProfilerNeverServesTheCommandLine(t *testing.T) {
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_PPROF": "on", "DEPOT_METRICS_ADDR": "127.0.0.1:0"}})
	addr := ""
	for _, line := range strings.Split(c.web.logs(), "\n") {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "metrics listening" {
			addr = rec.Addr
		}
	}
	if addr == "" {
		t.Fatalf("web did not log its metrics address:\n%s", c.web.logs())
	}
	for path, want := range map[string]int{
		"/debug/pprof/cmdline": http.StatusNotFound, "/debug/pprof/cmdline?debug=1": http.StatusNotFound,
		"/debug/pprof/goroutine?debug=1": http.StatusOK,
	} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b := readAll(t, resp)
		if resp.StatusCode != want || strings.Contains(string(b), c.key) {
			t.Errorf("GET %s: %d (want %d): %.200s", path, resp.StatusCode, want, b)
		}
	}
}
