package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestHostilePaths sends hostile paths, exactly as written (raw TCP, so no
// client library cleans them), to the web tier: each gets 400 invalid_path
// and nothing appears in or outside the storage root.
func TestHostilePaths(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	// Something legitimate first, so the storage tree exists.
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/ok/a.txt", strings.NewReader("ok"), nil), http.StatusCreated)

	outer := filepath.Dir(c.dataDir) // the parent of the data dir, which holds the storage root
	skipDB := func(rel string) bool { return strings.Contains(filepath.Base(rel), "depot.db") }
	before := treeSnapshot(t, outer, skipDB)

	long := strings.Repeat("abcdefghi/", 103) + "x.csv" // > 1024 bytes in all
	for _, tc := range []struct{ name, target string }{
		{"dotdot", "/api/v1/files/c1/.."},
		{"dotdot then name", "/api/v1/files/c1/../escape.txt"},
		{"cohort dotdot", "/api/v1/files/../c1/escape.txt"},
		{"encoded dotdot", "/api/v1/files/c1/%2e%2e/%2e%2e/escape.txt"},
		{"encoded dotdot cohort", "/api/v1/files/%2e%2e/escape.txt"},
		{"encoded slashes", "/api/v1/files/c1/..%2f..%2fescape.txt"},
		{"inner dotdot", "/api/v1/files/c1/a/../b"},
		{"absolute via //", "/api/v1/files/c1//etc/passwd"},
		{"absolute cohort", "/api/v1/files//etc/passwd"},
		{"NUL", "/api/v1/files/c1/a%00b.txt"},
		{"backslash", "/api/v1/files/c1/a%5c..%5c..%5cb.txt"},
		{"control char", "/api/v1/files/c1/a%0ab.txt"},
		{"overlong", "/api/v1/files/c1/" + long},
		{"256-byte segment", "/api/v1/files/c1/" + strings.Repeat("s", 256)},
		{"invalid UTF-8", "/api/v1/files/c1/bad%ff.txt"},
		{"trailing slash on PUT", "/api/v1/files/c1/folder/"},
		{"dot segment", "/api/v1/files/c1/./x"},
		{"reserved prefix", "/api/v1/files/c1/.depot-part-x"},
		{"reserved prefix in folder", "/api/v1/files/c1/.depot-staging/x"},
		{"empty segment", "/api/v1/files/c1/a//b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := "hostile content"
			head := fmt.Sprintf("PUT %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
				tc.target, c.web.addr, c.token, len(body))
			resp, b := rawRequest(t, c.web.addr, head, []byte(body))
			if resp.StatusCode != http.StatusBadRequest || errorCode(b) != "invalid_path" {
				t.Errorf("PUT %q: status %d %s, want 400 invalid_path", tc.target, resp.StatusCode, b)
			}
			if bytes.Contains(b, []byte(c.dataDir)) {
				t.Errorf("error body reveals an internal path: %s", b)
			}
			// Reading must be refused the same way (and never reach outside).
			head = fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", tc.target, c.web.addr, c.token)
			if tc.name == "trailing slash on PUT" {
				return // a GET of a folder is a listing
			}
			resp, b = rawRequest(t, c.web.addr, head, nil)
			if resp.StatusCode != http.StatusBadRequest || errorCode(b) != "invalid_path" {
				t.Errorf("GET %q: status %d %s, want 400 invalid_path", tc.target, resp.StatusCode, b)
			}
		})
	}
	after := treeSnapshot(t, outer, skipDB)
	if !slices.Equal(before, after) {
		t.Errorf("the file tree around the storage root changed:\nbefore %v\nafter  %v", before, after)
	}
}

// TestInternalKeyRequired calls services directly: a request that is not
// signed, signed with a wrong key, carrying the right key in clear instead of
// a signature, or replayed, gets 401 JSON, sent before any body byte has
// been sent at all (the request declares 1 GiB and sends none).
func TestInternalKeyRequired(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	type call struct {
		method, path string
		hdr          map[string]string
		length       int64
	}
	calls := []call{
		{"PUT", "/internal/v1/object", map[string]string{"Depot-Key": "c1%2Fsneaky.txt"}, 1 << 30},
		{"POST", "/internal/v1/uploads", map[string]string{"Content-Type": "application/json"}, 1 << 30},
		{"PATCH", "/internal/v1/uploads/abc", map[string]string{"Depot-Offset": "0"}, 1 << 30},
		{"GET", "/internal/v1/objects", map[string]string{"Depot-Prefix": "c1"}, 0},
		{"GET", "/internal/v1/object", map[string]string{"Depot-Key": "c1%2Fok.txt"}, 0},
	}
	// head renders req's head exactly as sent, with Content-Length but no body.
	head := func(req *http.Request, length int64) string {
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", req.Method, req.URL.RequestURI(), c.services.addr)
		for k, vs := range req.Header {
			for _, v := range vs {
				fmt.Fprintf(&b, "%s: %s\r\n", k, v)
			}
		}
		if length > 0 {
			fmt.Fprintf(&b, "Content-Length: %d\r\n", length)
		}
		return b.String() + "\r\n"
	}
	build := func(cl call) *http.Request {
		var body io.Reader
		if cl.length > 0 {
			body = strings.NewReader("x") // never sent; only makes the length count
		}
		req, _ := http.NewRequest(cl.method, c.services.url()+cl.path, body)
		req.ContentLength = cl.length
		req.Header.Set("Depot-User-Token", c.token)
		for k, v := range cl.hdr {
			req.Header.Set(k, v)
		}
		return req
	}
	for _, cl := range calls {
		cases := map[string]*http.Request{}
		cases["unsigned"] = build(cl)
		r := build(cl)
		signInternal(r, "wrong-key-wrong-key-wrong-key-00")
		cases["wrong key"] = r
		r = build(cl)
		signInternal(r, testKey[:len(testKey)-1])
		cases["key prefix"] = r
		r = build(cl)
		r.Header.Set("Depot-Internal-Key", testKey)
		cases["key in clear"] = r
		r = build(cl)
		signInternal(r, testKey)
		r.Header.Set("Depot-Key", "c1%2Fother.txt") // altered after signing
		cases["altered"] = r
		for name, req := range cases {
			resp, b := rawRequest(t, c.services.addr, head(req, cl.length), nil)
			if resp.StatusCode != http.StatusUnauthorized || errorCode(b) != "unauthorized" {
				t.Errorf("%s %s (%s): status %d %s, want 401 unauthorized", cl.method, cl.path, name, resp.StatusCode, b)
			}
		}
	}
	// A correctly signed request is accepted (it is not the key check that
	// refuses everything), and the same signed head sent again is a replay.
	req, _ := http.NewRequest("GET", c.services.url()+"/internal/v1/objects", nil)
	req.Header.Set("Depot-User-Token", c.token)
	req.Header.Set("Depot-Prefix", "c1%2F")
	signInternal(req, testKey)
	if resp, b := rawRequest(t, c.services.addr, head(req, 0), nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("signed listing: status %d %s", resp.StatusCode, b)
	}
	if resp, b := rawRequest(t, c.services.addr, head(req, 0), nil); resp.StatusCode != http.StatusUnauthorized || errorCode(b) != "unauthorized" {
		t.Errorf("replayed signed request: status %d %s, want 401", resp.StatusCode, b)
	}
	if _, err := c.currentVersion("c1/sneaky.txt"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an unauthenticated PUT stored a file: %v", err)
	}
}

// TestBadBodiesCommitNothing: a body shorter than its Content-Length, a
// wrong Depot-Sha256, and internal one-shot PUTs whose Depot-Size disagrees
// with the body commit nothing.
func TestBadBodiesCommitNothing(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	data, sum := payloadBytes(5, 3<<20)

	// 1. Cut-off body through the web tier: declares 1,000,000 bytes (one-shot
	// path) and 20 MiB (session path), sends fewer, then closes.
	for _, tc := range []struct {
		name     string
		declared int
		sent     int
	}{{"short", 1_000_000, 1000}, {"short-session", 20 << 20, 3 << 20}} {
		conn, err := net.Dial("tcp", c.web.addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "PUT /api/v1/files/c1/bad/%s.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", tc.name, c.token, tc.declared)
		conn.Write(data[:tc.sent])
		conn.(*net.TCPConn).CloseWrite()
		conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		var answer bytes.Buffer
		answer.ReadFrom(conn) // whatever the server says (it may say nothing)
		conn.Close()
		if bytes.HasPrefix(answer.Bytes(), []byte("HTTP/1.1 201")) {
			t.Errorf("cut-off PUT %s answered %s", tc.name, answer.Bytes())
		}
	}

	// 2. Wrong SHA-256, on both the one-shot and the session path.
	wrong := strings.Repeat("0", 64)
	for name, body := range map[string][]byte{"sha-small.bin": data[:1000], "sha-large.bin": append(bytes.Repeat(data, 4), data[:7]...)} {
		status, _, b := c.putStream("/api/v1/files/c1/bad/"+name, bytes.NewReader(body), int64(len(body)), map[string]string{"Depot-Sha256": wrong})
		if status != http.StatusBadRequest || errorCode(b) != "checksum_mismatch" {
			t.Errorf("PUT %s with a wrong Depot-Sha256: status %d %s, want 400 checksum_mismatch", name, status, b)
		}
	}

	// A wrong SHA-256 on the internal one-shot PUT too.
	req, _ := http.NewRequest("PUT", c.services.url()+"/internal/v1/object", bytes.NewReader(data))
	req.Header.Set("Depot-User-Token", c.token)
	req.Header.Set("Depot-Key", "c1%2Fbad%2Finternal-sha.bin")
	req.Header.Set("Depot-Sha256", wrong)
	req.Header.Set("Depot-Crc32c", crc32c(data))
	signInternal(req, testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if b := readAll(t, resp); resp.StatusCode != http.StatusBadRequest || errorCode(b) != "checksum_mismatch" {
		t.Errorf("internal PUT with a wrong sha: status %d %s", resp.StatusCode, b)
	}

	// Nothing is visible, nothing is on disk, and staging files go away.
	for _, name := range []string{"short.bin", "short-session.bin", "sha-small.bin", "sha-large.bin", "internal-sha.bin"} {
		expectStatus(t, c.do("GET", "/api/v1/files/c1/bad/"+name, nil, nil), http.StatusNotFound)
	}
	var leftovers []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		leftovers = nil
		for _, e := range treeSnapshot(t, c.storageDir(), nil) {
			if strings.HasPrefix(e, "c1/bad/") || strings.Contains(e, ".depot") && !strings.HasSuffix(e, "/") {
				leftovers = append(leftovers, e)
			}
		}
		if len(leftovers) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(leftovers) > 0 {
		t.Errorf("failed uploads left files in storage: %v", leftovers)
	}
	// The good path still works afterwards.
	if status, got, b := c.putStream("/api/v1/files/c1/bad/fine.bin", bytes.NewReader(data), int64(len(data)), map[string]string{"Depot-Sha256": sum}); status != http.StatusCreated || got.SHA256 != sum {
		t.Fatalf("a correct PUT after the bad ones: %d %s", status, b)
	}
}
