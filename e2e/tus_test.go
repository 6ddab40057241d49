package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
)

const tusPath = "/api/v1/uploads/"

// tusMeta encodes Upload-Metadata from key/value pairs.
func tusMeta(kv ...string) string {
	var parts []string
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+" "+base64.StdEncoding.EncodeToString([]byte(kv[i+1])))
	}
	return strings.Join(parts, ",")
}

// tusReq sends a tus request to base (a web URL) with token.
func tusReq(t *testing.T, base, token, method, path string, body []byte, hdr map[string]string) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/offset+octet-stream")
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	readAll(t, resp)
	return resp
}

// tusCreate creates an upload of size bytes for c1/name and returns its path.
func tusCreate(t *testing.T, base, token string, size int64, name string) string {
	t.Helper()
	resp := tusReq(t, base, token, http.MethodPost, tusPath, nil, map[string]string{
		"Upload-Length": strconv.FormatInt(size, 10), "Upload-Metadata": tusMeta("cohort", "c1", "filename", name),
	})
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: status %d", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, tusPath) || len(strings.TrimPrefix(loc, tusPath)) != 32 {
		t.Fatalf("create: Location %q", loc)
	}
	return loc
}

func tusOffset(t *testing.T, resp *http.Response) int64 {
	t.Helper()
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		t.Fatalf("Upload-Offset %q: %v", resp.Header.Get("Upload-Offset"), err)
	}
	return n
}

func wantStatus(t *testing.T, what string, resp *http.Response, want int) {
	t.Helper()
	if resp.StatusCode != want {
		t.Fatalf("%s: status %d, want %d", what, resp.StatusCode, want)
	}
}

func checkOnDisk(t *testing.T, c *cluster, rel string, want []byte) {
	t.Helper()
	got, err := c.stored("c1/" + rel)
	if err != nil {
		t.Fatalf("file c1/%s: %v", rel, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("file c1/%s: %d bytes (sha %s), want %d bytes (sha %s)", rel, len(got), sha(got), len(want), sha(want))
	}
}

func checkAbsent(t *testing.T, c *cluster, rel string) {
	t.Helper()
	if _, err := c.stored("c1/" + rel); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("c1/%s exists (err %v), want absent", rel, err)
	}
}

// completedRecords returns the upload.completed audit records of key.
func completedRecords(t *testing.T, c *cluster, key string) []depot.AuditEvent {
	t.Helper()
	var out []depot.AuditEvent
	for _, e := range completedUnder(t, c, key) {
		if e.Key == key {
			out = append(out, e)
		}
	}
	return out
}

// completedUnder returns the upload.completed audit records of the keys
// under prefix, read from c's database.
func completedUnder(t *testing.T, c *cluster, prefix string) []depot.AuditEvent {
	t.Helper()
	ctx := context.Background()
	db, err := servicedb.Open(ctx, c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := db.Events(ctx, servicedb.Filter{Action: depot.ActionUploadCompleted, KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func b64sum(algo string, b []byte) string {
	if algo == "sha1" {
		s := sha1.Sum(b)
		return "sha1 " + base64.StdEncoding.EncodeToString(s[:])
	}
	s := sha256.Sum256(b)
	return "sha256 " + base64.StdEncoding.EncodeToString(s[:])
}

// TestTusProtocol checks the tus 1.0 subset through the real processes.
func TestTusProtocol(t *testing.T) {
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_CHUNK_SIZE": "65536"}})
	base := c.web.url()
	depotCLI(t, c.dbEnv(), "users", "add", "bob")
	depotCLI(t, c.dbEnv(), "cohorts", "grant", "bob", "c1", "uploader")
	bob := strings.TrimSpace(depotCLI(t, c.dbEnv(), "tokens", "create", "bob"))

	t.Run("options", func(t *testing.T) {
		resp := tusReq(t, base, "", http.MethodOptions, tusPath, nil, map[string]string{"Tus-Resumable": ""})
		wantStatus(t, "OPTIONS", resp, http.StatusNoContent)
		h := resp.Header
		if h.Get("Tus-Version") != "1.0.0" || h.Get("Tus-Max-Size") == "" || !strings.Contains(h.Get("Tus-Checksum-Algorithm"), "sha256") {
			t.Fatalf("OPTIONS headers: %v", h)
		}
		for _, ext := range []string{"creation", "creation-with-upload", "termination", "expiration", "checksum"} {
			if !strings.Contains(","+h.Get("Tus-Extension")+",", ","+ext+",") {
				t.Errorf("Tus-Extension %q lacks %s", h.Get("Tus-Extension"), ext)
			}
		}
	})

	t.Run("auth and version", func(t *testing.T) {
		resp := tusReq(t, base, "", http.MethodPost, tusPath, nil, map[string]string{
			"Upload-Length": "1", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "x"),
		})
		wantStatus(t, "no token", resp, http.StatusUnauthorized)
		resp = tusReq(t, base, c.token, http.MethodPost, tusPath, nil, map[string]string{
			"Tus-Resumable": "0.2.2", "Upload-Length": "1", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "x"),
		})
		wantStatus(t, "old version", resp, http.StatusPreconditionFailed)
		resp = tusReq(t, base, c.token, http.MethodPost, tusPath, nil, map[string]string{
			"Upload-Length": "1", "Upload-Metadata": tusMeta("cohort", "c9", "filename", "x"),
		})
		if resp.StatusCode != http.StatusForbidden && resp.StatusCode != http.StatusNotFound {
			t.Fatalf("foreign cohort: status %d", resp.StatusCode)
		}
		resp = tusReq(t, base, c.token, http.MethodPost, tusPath, nil, map[string]string{
			"Upload-Length": "1", "Upload-Metadata": tusMeta("filename", "x"),
		})
		wantStatus(t, "no cohort", resp, http.StatusBadRequest)
	})

	t.Run("creation, offsets, wrong offset, completion", func(t *testing.T) {
		data, _ := payloadBytes(1, 200_000)
		loc := tusCreate(t, base, c.token, int64(len(data)), "proto.bin")
		resp := tusReq(t, base, c.token, http.MethodHead, loc, nil, nil)
		wantStatus(t, "HEAD", resp, http.StatusOK)
		if tusOffset(t, resp) != 0 || resp.Header.Get("Upload-Length") != "200000" {
			t.Fatalf("HEAD: offset %s length %s", resp.Header.Get("Upload-Offset"), resp.Header.Get("Upload-Length"))
		}
		if _, err := http.ParseTime(resp.Header.Get("Upload-Expires")); err != nil {
			t.Fatalf("Upload-Expires %q: %v", resp.Header.Get("Upload-Expires"), err)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("HEAD Cache-Control %q", resp.Header.Get("Cache-Control"))
		}
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, data[:70_000], map[string]string{"Upload-Offset": "0"})
		wantStatus(t, "PATCH 1", resp, http.StatusNoContent)
		if tusOffset(t, resp) != 70_000 || resp.Header.Get("Upload-Expires") == "" {
			t.Fatalf("PATCH 1: headers %v", resp.Header)
		}
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, data[:10], map[string]string{"Upload-Offset": "5"})
		wantStatus(t, "PATCH at a wrong offset", resp, http.StatusConflict)
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, data[70_000:80_000], map[string]string{"Upload-Offset": "70000", "Content-Type": "text/plain"})
		wantStatus(t, "PATCH with a wrong content type", resp, http.StatusUnsupportedMediaType)
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, data[70_000:], map[string]string{"Upload-Offset": "70000"})
		wantStatus(t, "PATCH 2", resp, http.StatusNoContent)
		if tusOffset(t, resp) != int64(len(data)) {
			t.Fatalf("PATCH 2: offset %d", tusOffset(t, resp))
		}
		checkOnDisk(t, c, "proto.bin", data)
		if n := len(completedRecords(t, c, "c1/proto.bin")); n != 1 {
			t.Fatalf("%d upload.completed records, want 1", n)
		}
		// A client that lost the final answer asks again: the upload is
		// complete, and re-sending the last (empty) PATCH records nothing new.
		resp = tusReq(t, base, c.token, http.MethodHead, loc, nil, nil)
		wantStatus(t, "HEAD after completion", resp, http.StatusOK)
		if tusOffset(t, resp) != int64(len(data)) {
			t.Fatalf("HEAD after completion: offset %d", tusOffset(t, resp))
		}
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, []byte{}, map[string]string{"Upload-Offset": strconv.Itoa(len(data)), "Content-Type": "application/offset+octet-stream"})
		wantStatus(t, "empty PATCH after completion", resp, http.StatusNoContent)
		if n := len(completedRecords(t, c, "c1/proto.bin")); n != 1 {
			t.Fatalf("%d upload.completed records after a repeated completion, want 1", n)
		}
		wantStatus(t, "DELETE after completion", tusReq(t, base, c.token, http.MethodDelete, loc, nil, nil), http.StatusConflict)
		checkOnDisk(t, c, "proto.bin", data)
	})

	t.Run("other user gets 404", func(t *testing.T) {
		loc := tusCreate(t, base, c.token, 10, "alice-only.bin")
		wantStatus(t, "HEAD by bob", tusReq(t, base, bob, http.MethodHead, loc, nil, nil), http.StatusNotFound)
		wantStatus(t, "PATCH by bob", tusReq(t, base, bob, http.MethodPatch, loc, []byte("0123456789"), map[string]string{"Upload-Offset": "0"}), http.StatusNotFound)
		wantStatus(t, "DELETE by bob", tusReq(t, base, bob, http.MethodDelete, loc, nil, nil), http.StatusNotFound)
		wantStatus(t, "HEAD by alice", tusReq(t, base, c.token, http.MethodHead, loc, nil, nil), http.StatusOK)
		wantStatus(t, "unknown id", tusReq(t, base, c.token, http.MethodHead, tusPath+strings.Repeat("ab", 16), nil, nil), http.StatusNotFound)
		wantStatus(t, "malformed id", tusReq(t, base, c.token, http.MethodHead, tusPath+"..%2f..%2fetc", nil, nil), http.StatusNotFound)
	})

	t.Run("termination", func(t *testing.T) {
		loc := tusCreate(t, base, c.token, 100, "terminated.bin")
		data, _ := payloadBytes(2, 100)
		wantStatus(t, "PATCH", tusReq(t, base, c.token, http.MethodPatch, loc, data[:50], map[string]string{"Upload-Offset": "0"}), http.StatusNoContent)
		wantStatus(t, "DELETE", tusReq(t, base, c.token, http.MethodDelete, loc, nil, nil), http.StatusNoContent)
		wantStatus(t, "HEAD after DELETE", tusReq(t, base, c.token, http.MethodHead, loc, nil, nil), http.StatusNotFound)
		wantStatus(t, "PATCH after DELETE", tusReq(t, base, c.token, http.MethodPatch, loc, data[50:], map[string]string{"Upload-Offset": "50"}), http.StatusNotFound)
		checkAbsent(t, c, "terminated.bin")
	})

	t.Run("checksum", func(t *testing.T) {
		data, _ := payloadBytes(3, 100_000)
		loc := tusCreate(t, base, c.token, int64(len(data)), "checksum.bin")
		bad := append([]byte(nil), data[:40_000]...)
		bad[123] ^= 1
		resp := tusReq(t, base, c.token, http.MethodPatch, loc, bad, map[string]string{"Upload-Offset": "0", "Upload-Checksum": b64sum("sha256", data[:40_000])})
		wantStatus(t, "PATCH with a bad checksum", resp, 460)
		resp = tusReq(t, base, c.token, http.MethodHead, loc, nil, nil)
		if tusOffset(t, resp) != 0 {
			t.Fatalf("after a checksum mismatch the offset is %d, want 0 (nothing committed)", tusOffset(t, resp))
		}
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, data[:40_000], map[string]string{"Upload-Offset": "0", "Upload-Checksum": b64sum("sha256", data[:40_000])})
		wantStatus(t, "PATCH sha256", resp, http.StatusNoContent)
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, data[40_000:], map[string]string{"Upload-Offset": "40000", "Upload-Checksum": b64sum("sha1", data[40_000:])})
		wantStatus(t, "PATCH sha1", resp, http.StatusNoContent)
		checkOnDisk(t, c, "checksum.bin", data)

		big, _ := payloadBytes(4, 100_000) // over the 64 KiB chunk size
		loc = tusCreate(t, base, c.token, int64(len(big)), "checksum-big.bin")
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, big, map[string]string{"Upload-Offset": "0", "Upload-Checksum": b64sum("sha256", big)})
		wantStatus(t, "checksummed PATCH over the chunk size", resp, http.StatusRequestEntityTooLarge)
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, big, map[string]string{"Upload-Offset": "0", "Upload-Checksum": "md5 AAAA"})
		wantStatus(t, "unsupported algorithm", resp, http.StatusBadRequest)
	})

	t.Run("creation-with-upload", func(t *testing.T) {
		data, _ := payloadBytes(5, 150_000)
		resp := tusReq(t, base, c.token, http.MethodPost, tusPath, data[:60_000], map[string]string{
			"Upload-Length": "150000", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "cwu.bin", "path", "dir/cwu.bin", "class", "temporary"),
		})
		wantStatus(t, "POST with body", resp, http.StatusCreated)
		if tusOffset(t, resp) != 60_000 || resp.Header.Get("Upload-Expires") == "" {
			t.Fatalf("POST with body: headers %v", resp.Header)
		}
		loc := resp.Header.Get("Location")
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, data[60_000:], map[string]string{"Upload-Offset": "60000"})
		wantStatus(t, "PATCH rest", resp, http.StatusNoContent)
		checkOnDisk(t, c, "dir/cwu.bin", data)

		// The whole file in the creation request.
		small, _ := payloadBytes(6, 1000)
		resp = tusReq(t, base, c.token, http.MethodPost, tusPath, small, map[string]string{
			"Upload-Length": "1000", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "one-shot.bin"),
		})
		wantStatus(t, "POST whole file", resp, http.StatusCreated)
		checkOnDisk(t, c, "one-shot.bin", small)

		// An empty file needs no PATCH at all.
		resp = tusReq(t, base, c.token, http.MethodPost, tusPath, nil, map[string]string{
			"Upload-Length": "0", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "empty.bin"),
		})
		wantStatus(t, "POST empty file", resp, http.StatusCreated)
		checkOnDisk(t, c, "empty.bin", nil)
	})

	t.Run("deferred length", func(t *testing.T) {
		data, _ := payloadBytes(7, 90_000)
		resp := tusReq(t, base, c.token, http.MethodPost, tusPath, nil, map[string]string{
			"Upload-Defer-Length": "1", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "deferred.bin"),
		})
		wantStatus(t, "POST deferred", resp, http.StatusCreated)
		loc := resp.Header.Get("Location")
		wantStatus(t, "PATCH 1", tusReq(t, base, c.token, http.MethodPatch, loc, data[:50_000], map[string]string{"Upload-Offset": "0"}), http.StatusNoContent)
		resp = tusReq(t, base, c.token, http.MethodHead, loc, nil, nil)
		if resp.Header.Get("Upload-Defer-Length") != "1" || tusOffset(t, resp) != 50_000 {
			t.Fatalf("HEAD deferred: %v", resp.Header)
		}
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, data[50_000:], map[string]string{"Upload-Offset": "50000", "Upload-Length": "90000"})
		wantStatus(t, "PATCH last", resp, http.StatusNoContent)
		checkOnDisk(t, c, "deferred.bin", data)
	})

	t.Run("body past Upload-Length", func(t *testing.T) {
		loc := tusCreate(t, base, c.token, 10, "overflow.bin")
		resp := tusReq(t, base, c.token, http.MethodPatch, loc, make([]byte, 11), map[string]string{"Upload-Offset": "0"})
		wantStatus(t, "PATCH too long", resp, http.StatusRequestEntityTooLarge)
		checkAbsent(t, c, "overflow.bin")
	})

	// Web trusts services' "may upload" for a moment (to count upload
	// slots), but services authorises the PUT itself: a grant revoked right
	// after a successful PUT stops the next one, audited once.
	t.Run("grant revoked between PUTs", func(t *testing.T) {
		put := func(name string) *http.Response {
			return tusReq(t, base, bob, http.MethodPut, "/api/v1/files/c1/"+name, []byte("a,b\n1,2\n"), nil)
		}
		wantStatus(t, "PUT before revoke", put("bob-put-1.csv"), http.StatusCreated)
		depotCLI(t, c.dbEnv(), "cohorts", "revoke", "bob", "c1")
		db := openAuditDB(t, c.dbURL)
		after := auditHead(t, db)
		wantStatus(t, "PUT after revoke", put("bob-put-2.csv"), http.StatusForbidden)
		checkAbsent(t, c, "bob-put-2.csv")
		evs := auditAfter(t, db, after)
		if len(evs) != 1 || evs[0].Action != depot.ActionAccessDenied || evs[0].Actor != "bob" || evs[0].Metadata["permission"] != string(depot.PermUpload) {
			t.Fatalf("audit records after the revoke: %+v, want one access.denied of bob's upload permission", evs)
		}
		depotCLI(t, c.dbEnv(), "cohorts", "grant", "bob", "c1", "uploader")
	})

	// Services checks the cohort permission with the session lookup that
	// precedes every PATCH and HEAD (web asks for it in the same request).
	t.Run("grant revoked mid-upload", func(t *testing.T) {
		loc := tusCreate(t, base, bob, 10, "bob-revoked.bin")
		wantStatus(t, "first PATCH", tusReq(t, base, bob, http.MethodPatch, loc, []byte("01234"), map[string]string{"Upload-Offset": "0"}), http.StatusNoContent)
		depotCLI(t, c.dbEnv(), "cohorts", "revoke", "bob", "c1")
		db := openAuditDB(t, c.dbURL)
		after := auditHead(t, db)
		wantStatus(t, "PATCH after revoke", tusReq(t, base, bob, http.MethodPatch, loc, []byte("56789"), map[string]string{"Upload-Offset": "5"}), http.StatusForbidden)
		wantStatus(t, "HEAD after revoke", tusReq(t, base, bob, http.MethodHead, loc, nil, nil), http.StatusForbidden)
		checkAbsent(t, c, "bob-revoked.bin")
		evs := auditAfter(t, db, after)
		if len(evs) != 2 {
			t.Fatalf("audit records after the revoke: %d, want 2 (%+v)", len(evs), evs)
		}
		for _, ev := range evs {
			if ev.Action != depot.ActionAccessDenied || ev.Actor != "bob" || ev.Key != "c1/bob-revoked.bin" || ev.Metadata["permission"] != string(depot.PermUpload) {
				t.Fatalf("audit record %+v, want access.denied of bob's upload permission", ev)
			}
		}
	})
}

// rawPatch writes a PATCH with a Content-Length of total but only the
// first len(part) bytes of body, then closes the connection.
func rawPatch(t *testing.T, webURL, token, loc string, offset, total int64, part []byte) {
	t.Helper()
	u, _ := url.Parse(webURL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(conn)
	fmt.Fprintf(w, "PATCH %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n"+
		"Content-Type: application/offset+octet-stream\r\nUpload-Offset: %d\r\nContent-Length: %d\r\n\r\n",
		loc, u.Host, token, offset, total)
	w.Write(part)
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the web tier read what was sent
	conn.Close()
}

// TestTusResumeAfterDrop cuts a PATCH mid-body, resumes from HEAD's offset
// and checks the file and its single upload.completed record.
func TestTusResumeAfterDrop(t *testing.T) { testTusResumeAfterDrop(t, clusterOpts{}) }

// testTusResumeAfterDrop runs TestTusResumeAfterDrop on a cluster made with o
// (see TestS3TusResumeAfterDrop).
func testTusResumeAfterDrop(t *testing.T, o clusterOpts) {
	const chunk = 64 << 10
	o.webEnv = map[string]string{"DEPOT_CHUNK_SIZE": strconv.Itoa(chunk)}
	c := newCluster(t, o)
	data, _ := payloadBytes(11, 1<<20+12345)
	loc := tusCreate(t, c.web.url(), c.token, int64(len(data)), "resumed.bin")

	sent := 5*chunk + 1000
	rawPatch(t, c.web.url(), c.token, loc, 0, int64(len(data)), data[:sent])

	// The web tier may still be appending what it read before the drop: a
	// HEAD reports the durable offset, which may then grow. Like a tus
	// client, resume from HEAD and, on 409, ask again.
	var off int64
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := tusReq(t, c.web.url(), c.token, http.MethodHead, loc, nil, nil)
		wantStatus(t, "HEAD after the drop", resp, http.StatusOK)
		off = tusOffset(t, resp)
		if off >= int64(sent/chunk*chunk) || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if off < int64(sent/chunk*chunk) || off > int64(sent) {
		t.Fatalf("offset after the drop %d, want in [%d, %d]", off, sent/chunk*chunk, sent)
	}
	checkAbsent(t, c, "resumed.bin")
	for attempt := 0; ; attempt++ {
		resp := tusReq(t, c.web.url(), c.token, http.MethodPatch, loc, data[off:], map[string]string{"Upload-Offset": strconv.FormatInt(off, 10)})
		if resp.StatusCode == http.StatusConflict && attempt < 5 {
			time.Sleep(100 * time.Millisecond)
			resp = tusReq(t, c.web.url(), c.token, http.MethodHead, loc, nil, nil)
			wantStatus(t, "HEAD after 409", resp, http.StatusOK)
			off = tusOffset(t, resp)
			continue
		}
		wantStatus(t, "resume PATCH", resp, http.StatusNoContent)
		break
	}
	checkOnDisk(t, c, "resumed.bin", data)
	recs := completedRecords(t, c, "c1/resumed.bin")
	if len(recs) != 1 {
		t.Fatalf("%d upload.completed records, want 1", len(recs))
	}
	if recs[0].SHA256 != sha(data) {
		t.Fatalf("audited sha256 %s, want %s", recs[0].SHA256, sha(data))
	}
	ctx := context.Background()
	db, err := servicedb.Open(ctx, c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	resumed, err := db.Events(ctx, servicedb.Filter{Action: depot.ActionUploadResumed, UploadID: strings.TrimPrefix(loc, tusPath)})
	if err != nil {
		t.Fatal(err)
	}
	if len(resumed) == 0 {
		t.Fatal("no upload.resumed audit record for the HEAD of a resuming client")
	}
	if strings.Contains(c.web.logs(), "resumed.bin") {
		t.Fatal("the web tier logged the file name")
	}
}

// TestTusAcrossWebProcesses begins an upload through one web process and
// finishes it through another: no upload state lives on a web host.
func TestTusAcrossWebProcesses(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	first := c.web
	c.startWeb(c.services.url(), nil)
	second := c.web
	if first.url() == second.url() {
		t.Fatal("one web process")
	}
	data, _ := payloadBytes(12, 300_000)
	loc := tusCreate(t, first.url(), c.token, int64(len(data)), "two-webs.bin")
	wantStatus(t, "PATCH via web 1", tusReq(t, first.url(), c.token, http.MethodPatch, loc, data[:100_000], map[string]string{"Upload-Offset": "0"}), http.StatusNoContent)
	first.stop()
	resp := tusReq(t, second.url(), c.token, http.MethodHead, loc, nil, nil)
	wantStatus(t, "HEAD via web 2", resp, http.StatusOK)
	if tusOffset(t, resp) != 100_000 {
		t.Fatalf("offset via web 2: %d", tusOffset(t, resp))
	}
	wantStatus(t, "PATCH via web 2", tusReq(t, second.url(), c.token, http.MethodPatch, loc, data[100_000:], map[string]string{"Upload-Offset": "100000"}), http.StatusNoContent)
	checkOnDisk(t, c, "two-webs.bin", data)
	if n := len(completedRecords(t, c, "c1/two-webs.bin")); n != 1 {
		t.Fatalf("%d upload.completed records, want 1", n)
	}
}
