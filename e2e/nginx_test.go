package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nginxConfig returns deploy/nginx-depot.conf with its host paths, ports
// and upstream replaced by the test's; each replaced text must be in the
// file (the test then follows the file as it changes, or fails).
func nginxConfig(t *testing.T, repl [][2]string) string {
	t.Helper()
	raw, err := os.ReadFile("../deploy/nginx-depot.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	for _, r := range repl {
		if !strings.Contains(conf, r[0]) {
			t.Fatalf("deploy/nginx-depot.conf no longer contains %q", r[0])
		}
		conf = strings.ReplaceAll(conf, r[0], r[1])
	}
	return conf
}

// TestNginxConfig checks deploy/nginx-depot.conf with `nginx -t`, then runs
// that configuration in front of a real web tier (HTTPS with a certificate
// from depot certs dev, HTTP/2 from the client): an upload and a download
// pass byte for byte, /internal/ is not proxied, port 80 serves the ACME
// challenge and redirects the rest to HTTPS, and the access log holds no
// file name.
func TestNginxConfig(t *testing.T) {
	nginx := opsTool(t, "nginx")
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_TRUSTED_PROXIES": "127.0.0.1/32"}})
	dir := t.TempDir()
	depotCLI(t, nil, "certs", "dev", "--out", filepath.Join(dir, "tls"))
	acme := filepath.Join(dir, "acme", ".well-known", "acme-challenge")
	if err := os.MkdirAll(acme, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(acme, "tok123"), []byte("tok123.thumbprint"), 0o644); err != nil {
		t.Fatal(err)
	}
	httpsAddr, httpAddr := freeAddr(t), freeAddr(t)
	user := "" // not root: nginx runs as the test's user and ignores "user"
	if os.Getuid() == 0 {
		user = "user root;\n" // workers must read the test's private temporary directory
	}
	conf := nginxConfig(t, [][2]string{
		{"user www-data;\n", user},
		{"pid /run/nginx.pid;", "pid " + filepath.Join(dir, "nginx.pid") + ";"},
		{"/var/log/nginx/", dir + "/"},
		{"/etc/ssl/depot/fullchain.pem", filepath.Join(dir, "tls", "web.pem")},
		{"/etc/ssl/depot/privkey.pem", filepath.Join(dir, "tls", "web-key.pem")},
		{"/var/www/acme", filepath.Join(dir, "acme")},
		{"listen 443 ssl http2;", "listen " + httpsAddr + " ssl http2;"},
		{"listen 80;", "listen " + httpAddr + ";"},
		{"server 127.0.0.1:8080;", "server " + c.web.addr + ";"},
	})
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(nginx, "-t", "-c", confPath, "-e", "stderr").CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}

	cmd := exec.Command(nginx, "-c", confPath, "-e", "stderr", "-g", "daemon off;")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT) // graceful
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if conn, err := net.Dial("tcp", httpsAddr); err == nil {
			conn.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("nginx exited:\n%s", logs.String())
		default:
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("nginx did not listen:\n%s", logs.String())
		}
	}

	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "tls", "ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	send := func(method, url string, body []byte) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", method, url, err, logs.String())
		}
		return resp
	}
	base := "https://" + httpsAddr
	data, sum := payloadBytes(81, 9<<20+17)
	resp := send("PUT", base+"/api/v1/files/c1/patient-name.csv", data)
	if body := expectStatus(t, resp, http.StatusCreated); !strings.Contains(string(body), sum) {
		t.Fatalf("upload through nginx: %s", body)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("client ↔ nginx spoke %s, want HTTP/2", resp.Proto)
	}
	resp = send("GET", base+"/api/v1/files/c1/patient-name.csv", nil)
	if got := expectStatus(t, resp, http.StatusOK); !bytes.Equal(got, data) {
		t.Fatalf("download through nginx: %d bytes, want %d", len(got), len(data))
	}
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS header")
	}
	expectStatus(t, send("GET", base+"/internal/v1/objects", nil), http.StatusNotFound)

	resp = send("GET", "http://"+httpAddr+"/.well-known/acme-challenge/tok123", nil)
	if got := expectStatus(t, resp, http.StatusOK); string(got) != "tok123.thumbprint" {
		t.Fatalf("ACME challenge: %q", got)
	}
	resp = send("GET", "http://"+httpAddr+"/api/v1/me", nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
		t.Fatalf("port 80: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	_ = cmd.Process.Signal(syscall.SIGQUIT) // flush and close the logs
	<-exited
	access, err := os.ReadFile(filepath.Join(dir, "depot-access.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(access), " PUT 201 ") || strings.Contains(string(access), "patient-name") {
		t.Fatalf("access log:\n%s", access)
	}
	errLog, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	if bytes.Contains(errLog, []byte("buffered to a temporary file")) {
		t.Fatalf("nginx buffered a body to disk:\n%s", errLog)
	}
}
