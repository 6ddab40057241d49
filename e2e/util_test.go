package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// hashFile returns the size and SHA-256 of the file at path, read from disk.
func hashFile(t *testing.T, path string) (int64, string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return n, hex.EncodeToString(h.Sum(nil))
}

// putStream PUTs body (of length n, or -1 for chunked) to the web tier as
// alice and returns the status and the decoded JSON answer.
func (c *cluster) putStream(path string, body io.Reader, n int64, hdr map[string]string) (int, fileJSON, []byte) {
	c.t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), "PUT", c.web.url()+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	req.ContentLength = n
	req.Header.Set("Authorization", "Bearer "+c.token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("PUT %s: %v", path, err)
	}
	b := readAll(c.t, resp)
	var f fileJSON
	if resp.StatusCode == http.StatusCreated {
		if err := json.Unmarshal(b, &f); err != nil {
			c.t.Fatalf("PUT %s: %v: %s", path, err, b)
		}
	}
	return resp.StatusCode, f, b
}

// errorCode decodes a JSON error body and returns its code.
func errorCode(b []byte) string {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// procWriteBytes reads write_bytes from /proc/<pid>/io.
func procWriteBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		t.Fatalf("read /proc/%d/io: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no write_bytes in /proc/%d/io:\n%s", pid, b)
	return 0
}

// treeSnapshot lists every path under root (relative) with its kind and, for
// regular files, size; names accepted by skip are left out.
func treeSnapshot(t *testing.T, root string, skip func(rel string) bool) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if skip != nil && skip(rel) {
			return nil
		}
		entry := rel
		if d.IsDir() {
			entry += "/"
		} else if info, err := d.Info(); err == nil {
			entry += fmt.Sprintf(" %d", info.Size())
		}
		out = append(out, entry)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// rawRequest writes raw (a complete request head, and optionally body bytes)
// to addr on a fresh TCP connection and reads one response. It sends the
// request target exactly as given, so that no client library cleans it.
func rawRequest(t *testing.T, addr, head string, body []byte) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	if len(body) > 0 {
		if _, err := conn.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read response to %q: %v", strings.SplitN(head, "\r\n", 2)[0], err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// crc32c is the Depot-Crc32c header value of body.
func crc32c(body []byte) string {
	return fmt.Sprintf("%08x", crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli)))
}
