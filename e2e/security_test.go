package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"depot/internal/httpauth"
)

// TestMutualTLS runs both tiers with TLS on the public listener and mutual
// TLS plus signed requests on the internal hop, with certificates made by
// `depot certs dev`.
func TestMutualTLS(t *testing.T) {
	certs := t.TempDir()
	depotCLI(t, nil, "certs", "dev", "--out", certs)
	f := func(name string) string { return filepath.Join(certs, name) }
	c := newCluster(t, clusterOpts{
		servicesEnv: map[string]string{
			"DEPOT_INTERNAL_TLS_CERT": f("services.pem"), "DEPOT_INTERNAL_TLS_KEY": f("services-key.pem"),
			"DEPOT_INTERNAL_CLIENT_CA": f("ca.pem"),
		},
		servicesURL: func(addr string) string { return "https://" + addr },
		webEnv: map[string]string{
			"DEPOT_SERVICES_CA": f("ca.pem"), "DEPOT_SERVICES_CLIENT_CERT": f("web-client.pem"),
			"DEPOT_SERVICES_CLIENT_KEY": f("web-client-key.pem"),
			"DEPOT_TLS_CERT":            f("web.pem"), "DEPOT_TLS_KEY": f("web-key.pem"),
		},
	})
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(f("ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}

	data, sum := payloadBytes(7, 12<<20)
	req, _ := http.NewRequest("PUT", "https://"+c.web.addr+"/api/v1/files/c1/tls.bin", bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := expectStatus(t, resp, http.StatusCreated)
	if !strings.Contains(string(body), sum) {
		t.Fatalf("upload over TLS: %s", body)
	}

	// Services refuses a client without a certificate, even with a valid
	// signature.
	plain := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	sreq, _ := http.NewRequest("GET", "https://"+c.services.addr+"/internal/v1/objects?limit=1", nil)
	sreq.Header.Set("Depot-Prefix", "c1/")
	signInternal(sreq, c.key)
	if resp, err := plain.Do(sreq); err == nil {
		resp.Body.Close()
		t.Fatalf("services answered %d to a client without a certificate", resp.StatusCode)
	}

	// A web tier without the client certificate cannot reach services.
	web2 := start(t, map[string]string{
		"DEPOT_ROLE": "web", "DEPOT_ADDR": "127.0.0.1:0", "DEPOT_SERVICES_URL": "https://" + c.services.addr,
		"DEPOT_INTERNAL_KEY": c.key, "DEPOT_SERVICES_CA": f("ca.pem"),
	})
	req, _ = http.NewRequest("GET", web2.url()+"/api/v1/files/c1/tls.bin", nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(string(b), c.services.addr) {
		t.Fatalf("web without client certificate: %d %s", resp.StatusCode, b)
	}
}

// TestSignedRequestsRefuseReplay captures a signed internal request and
// sends it again: the second time it is refused.
func TestSignedRequestsRefuseReplay(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/r.txt", strings.NewReader("replay me"), nil), http.StatusCreated)
	req, _ := http.NewRequest("GET", c.services.url()+"/internal/v1/object", nil)
	req.Header.Set("Depot-Key", "c1/r.txt")
	req.Header.Set("Depot-User-Token", c.token)
	signInternal(req, c.key)
	raw := req.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := expectStatus(t, resp, http.StatusOK); string(b) != "replay me" {
		t.Fatalf("first request: %q", b)
	}
	again, _ := http.NewRequest("GET", c.services.url()+"/internal/v1/object", nil)
	again.Header = raw
	resp, err = http.DefaultClient.Do(again)
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, resp, http.StatusUnauthorized)

	// The same signature with another storage key is refused too.
	other, _ := http.NewRequest("GET", c.services.url()+"/internal/v1/object", nil)
	other.Header = raw.Clone()
	other.Header.Set("Depot-Key", "c1/other.txt")
	resp, err = http.DefaultClient.Do(other)
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, resp, http.StatusUnauthorized)

	// A signature made with a stale timestamp is refused.
	stale, _ := http.NewRequest("GET", c.services.url()+"/internal/v1/object", nil)
	stale.Header.Set("Depot-Key", "c1/r.txt")
	stale.Header.Set("Depot-User-Token", c.token)
	signInternalAt(stale, c.key, time.Now().Add(-10*time.Minute))
	resp, err = http.DefaultClient.Do(stale)
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, resp, http.StatusUnauthorized)
}

// TestLimits hits each configured limit and expects a clear error.
func TestLimits(t *testing.T) {
	c := newCluster(t, clusterOpts{webEnv: map[string]string{
		"DEPOT_MAX_UPLOAD_SIZE": "1048576", "DEPOT_MAX_UPLOADS_PER_USER": "1",
		"DEPOT_MAX_HEADER_BYTES": "8192", "DEPOT_READ_HEADER_TIMEOUT": "1s",
	}})
	errCode := func(b []byte) string {
		var e struct{ Error struct{ Code string } }
		_ = json.Unmarshal(b, &e)
		return e.Error.Code
	}

	t.Run("declared size over the limit", func(t *testing.T) {
		data := make([]byte, 1048577)
		b := expectStatus(t, c.do("PUT", "/api/v1/files/c1/big.bin", bytes.NewReader(data), nil), http.StatusRequestEntityTooLarge)
		if errCode(b) != "too_large" {
			t.Fatalf("body %s", b)
		}
	})
	t.Run("streamed body over the limit", func(t *testing.T) {
		pr, pw := io.Pipe()
		go func() { pw.Write(make([]byte, 2<<20)); pw.Close() }()
		b := expectStatus(t, c.do("PUT", "/api/v1/files/c1/stream.bin", pr, nil), http.StatusRequestEntityTooLarge)
		if errCode(b) != "too_large" {
			t.Fatalf("body %s", b)
		}
		expectStatus(t, c.do("GET", "/api/v1/files/c1/stream.bin", nil, nil), http.StatusNotFound)
	})
	t.Run("concurrent uploads per user", func(t *testing.T) {
		pr, pw := io.Pipe()
		done := make(chan *http.Response, 1)
		go func() { done <- c.do("PUT", "/api/v1/files/c1/slow.bin", pr, nil) }()
		pw.Write([]byte("first bytes"))
		time.Sleep(500 * time.Millisecond) // the first upload holds the user's only slot
		b := expectStatus(t, c.do("PUT", "/api/v1/files/c1/second.bin", strings.NewReader("x"), nil), http.StatusTooManyRequests)
		if errCode(b) != "too_many_requests" {
			t.Fatalf("body %s", b)
		}
		pw.Close()
		expectStatus(t, <-done, http.StatusCreated)
	})
	t.Run("header size", func(t *testing.T) {
		resp := c.do("GET", "/api/v1/files/c1/", nil, map[string]string{"X-Padding": strings.Repeat("a", 20000)})
		readAll(t, resp)
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
	t.Run("slow headers", func(t *testing.T) {
		conn, err := net.Dial("tcp", c.web.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n")
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = bufio.NewReader(conn).ReadString('\n')
		if err == nil || time.Since(start) > 8*time.Second {
			t.Fatalf("a client trickling headers was not cut off: %v after %v", err, time.Since(start))
		}
	})
}

// TestWrongInternalKey: a web tier whose internal key services does not
// accept is not ready, and its users get 503 (a fault of the deployment),
// not 401 (which would tell them their valid token is wrong).
func TestWrongInternalKey(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	web2 := start(t, map[string]string{
		"DEPOT_ROLE": "web", "DEPOT_ADDR": "127.0.0.1:0", "DEPOT_SERVICES_URL": c.services.url(),
		"DEPOT_INTERNAL_KEY": httpauth.NewKey(), // a good key, but not one services accepts
	})
	get := func(base, path string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		req.Header.Set("Authorization", "Bearer "+c.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(web2.url(), "/readyz"); got != http.StatusServiceUnavailable {
		t.Errorf("readyz of a web tier with a wrong key: %d, want 503", got)
	}
	if got := get(web2.url(), "/api/v1/me"); got != http.StatusServiceUnavailable {
		t.Errorf("me through a web tier with a wrong key: %d, want 503", got)
	}
	// The right key: ready, and the same token is accepted.
	if got := get(c.web.url(), "/readyz"); got != http.StatusOK {
		t.Errorf("readyz: %d, want 200", got)
	}
	if got := get(c.web.url(), "/api/v1/me"); got != http.StatusOK {
		t.Errorf("me: %d, want 200", got)
	}
	// An unsigned probe (a load balancer's) still gets services' readiness.
	if got := get(c.services.url(), "/readyz"); got != http.StatusOK {
		t.Errorf("unsigned services readyz: %d, want 200", got)
	}
}

// TestCapturedRequestCannotDropAHeader captures a signed internal request
// that services refuses 403 because of its Depot-Permission header (may bob,
// an uploader, delete in c1?), and sends it again without that header (then
// it only asks who bob is, which services answers 200), then with another
// value: both are refused as badly signed. The review turned such a 403
// into a 200 by removing the header, which v1 did not sign.
func TestCapturedRequestCannotDropAHeader(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	depotCLI(t, c.dbEnv(), "users", "add", "bob")
	depotCLI(t, c.dbEnv(), "cohorts", "grant", "bob", "c1", "uploader")
	bob := strings.TrimSpace(depotCLI(t, c.dbEnv(), "tokens", "create", "bob"))

	capture := func(drop bool) *http.Request {
		req, _ := http.NewRequest("POST", c.services.url()+"/internal/v1/auth", nil)
		req.Header.Set("Depot-User-Token", bob)
		req.Header.Set("Depot-Cohort", "c1")
		if !drop {
			req.Header.Set("Depot-Permission", "delete")
		}
		return req
	}
	send := func(req *http.Request) int {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readAll(t, resp)
		return resp.StatusCode
	}
	signed := capture(false)
	signInternal(signed, c.key)
	if got := send(signed); got != http.StatusForbidden {
		t.Fatalf("bob asking for delete in c1: %d, want 403", got)
	}
	honest := capture(true)
	signInternal(honest, c.key)
	if got := send(honest); got != http.StatusOK {
		t.Fatalf("bob asking who he is, signed: %d, want 200", got)
	}
	dropped := capture(false)
	signInternal(dropped, c.key)
	dropped.Header.Del("Depot-Permission")
	if got := send(dropped); got != http.StatusUnauthorized {
		t.Errorf("the captured request without Depot-Permission: %d, want 401 (bad signature)", got)
	}
	changed := capture(false)
	signInternal(changed, c.key)
	changed.Header.Set("Depot-Permission", "upload")
	if got := send(changed); got != http.StatusUnauthorized {
		t.Errorf("the captured request with another permission: %d, want 401 (bad signature)", got)
	}
}
