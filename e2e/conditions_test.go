package e2e

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestConditionalRequests checks ETags and HTTP conditions through the
// real tiers (issue 21): ETag is the version's SHA-256; If-None-Match
// answers 304; If-Match and If-None-Match: * on PUT answer 412 when they
// fail, for a one-shot body and for one streamed in chunks; suffix ranges
// are served; a multi-range request gets the whole body; If-Range with a
// stale validator gets the whole current version, so a resumed download
// across an overwrite never mixes two versions; and a download pinned to
// its version (?version=) stays correct while newer versions are written.
func TestConditionalRequests(t *testing.T) {
	t.Parallel()
	// 64 KiB chunks: a 200 kB body is an upload session, 1 kB is one-shot.
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_CHUNK_SIZE": "65536"}})
	const url = "/api/v1/files/c1/cond/table.csv"
	v1, _ := payloadBytes(301, 200_000)
	v2, _ := payloadBytes(302, 150_000)
	v3, _ := payloadBytes(303, 1_000)
	etag := func(b []byte) string { return `"` + sha(b) + `"` }

	// Create-only uploads.
	for _, body := range [][]byte{v3, v1} {
		resp := c.do("PUT", "/api/v1/files/c1/cond/once-"+strconv.Itoa(len(body)), bytes.NewReader(body), map[string]string{"If-None-Match": "*"})
		expectStatus(t, resp, http.StatusCreated)
		resp = c.do("PUT", "/api/v1/files/c1/cond/once-"+strconv.Itoa(len(body)), bytes.NewReader(body), map[string]string{"If-None-Match": "*"})
		if b := expectStatus(t, resp, http.StatusPreconditionFailed); errorCode(b) != "precondition_failed" {
			t.Fatalf("create-only over an existing file (%d bytes): %s", len(body), b)
		}
	}
	expectStatus(t, c.do("PUT", url, bytes.NewReader(v1), nil), http.StatusCreated)

	// GET and HEAD carry the ETag; If-None-Match with it is 304.
	resp := c.do("HEAD", url, nil, nil)
	readAll(t, resp)
	if resp.Header.Get("ETag") != etag(v1) {
		t.Fatalf("ETag %q, want %s", resp.Header.Get("ETag"), etag(v1))
	}
	resp = c.do("GET", url, nil, map[string]string{"If-None-Match": etag(v1)})
	if b := expectStatus(t, resp, http.StatusNotModified); len(b) != 0 || resp.Header.Get("ETag") != etag(v1) {
		t.Fatalf("304 with %d bytes, ETag %q", len(b), resp.Header.Get("ETag"))
	}
	if b := expectStatus(t, c.do("GET", url, nil, map[string]string{"If-None-Match": `"other", ` + etag(v2)}), http.StatusOK); !bytes.Equal(b, v1) {
		t.Fatal("If-None-Match with other tags did not get the file")
	}

	// Optimistic concurrency: If-Match with a stale tag is 412, for a
	// chunked body (refused before its bytes are stored) and a one-shot one.
	for _, body := range [][]byte{v2, v3} {
		resp := c.do("PUT", url, bytes.NewReader(body), map[string]string{"If-Match": etag(v2)})
		expectStatus(t, resp, http.StatusPreconditionFailed)
	}
	if got := expectStatus(t, c.do("GET", url, nil, nil), http.StatusOK); !bytes.Equal(got, v1) {
		t.Fatal("a refused conditional PUT changed the file")
	}

	// Ranges: a suffix; several ranges get the whole body; past the end 416.
	resp = c.do("GET", url, nil, map[string]string{"Range": "bytes=-100"})
	if b := expectStatus(t, resp, http.StatusPartialContent); !bytes.Equal(b, v1[len(v1)-100:]) ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", len(v1)-100, len(v1)-1, len(v1)) {
		t.Fatalf("suffix range: %d bytes, Content-Range %q", len(b), resp.Header.Get("Content-Range"))
	}
	resp = c.do("GET", url, nil, map[string]string{"Range": "bytes=0-9,20-29"})
	if b := expectStatus(t, resp, http.StatusOK); !bytes.Equal(b, v1) {
		t.Fatalf("multi-range: %d bytes", len(b))
	}
	resp = c.do("GET", url, nil, map[string]string{"Range": "bytes=300000-"})
	expectStatus(t, resp, http.StatusRequestedRangeNotSatisfiable)
	if resp.Header.Get("Content-Range") != fmt.Sprintf("bytes */%d", len(v1)) {
		t.Fatalf("416 Content-Range %q", resp.Header.Get("Content-Range"))
	}

	// A download resumed across an overwrite, as curl -C - with If-Range
	// and as depot's own client (which pins the version) would.
	resp = c.do("GET", url, nil, map[string]string{"Range": "bytes=0-99999"})
	first := expectStatus(t, resp, http.StatusPartialContent)
	tag, version := resp.Header.Get("ETag"), resp.Header.Get("Depot-Version")
	expectStatus(t, c.do("PUT", url, bytes.NewReader(v2), map[string]string{"If-Match": etag(v1)}), http.StatusCreated)
	resp = c.do("GET", url, nil, map[string]string{"Range": "bytes=100000-", "If-Range": tag})
	if b := expectStatus(t, resp, http.StatusOK); !bytes.Equal(b, v2) || resp.Header.Get("ETag") != etag(v2) {
		t.Fatalf("If-Range with a stale tag: %d %d bytes (ETag %q), want 200 with the whole new version",
			resp.StatusCode, len(b), resp.Header.Get("ETag"))
	}
	resp = c.do("GET", url+"?version="+version, nil, map[string]string{"Range": "bytes=100000-", "If-Range": tag})
	rest := expectStatus(t, resp, http.StatusPartialContent)
	if !bytes.Equal(append(first, rest...), v1) {
		t.Fatal("the pinned version resumed across an overwrite does not rebuild it")
	}
	resp = c.do("GET", url, nil, map[string]string{"Range": "bytes=10-19", "If-Range": etag(v2)})
	if b := expectStatus(t, resp, http.StatusPartialContent); !bytes.Equal(b, v2[10:20]) {
		t.Fatal("If-Range with the current tag did not get the range")
	}

	// The CLI: a partial download of version 1 left by an interrupted run
	// is continued for that version (--version) after the overwrite; a
	// download of the current file gets version 2 and removes the stale
	// partial file.
	dir := t.TempDir()
	dst := filepath.Join(dir, "table.csv")
	if err := os.WriteFile(dst+"."+version+".part", v1[:70_000], 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"DEPOT_URL": c.web.url(), "DEPOT_TOKEN": c.token}
	depotCLI(t, env, "download", "--version", version, "c1/cond/table.csv", dst, "-q")
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, v1) {
		t.Fatalf("download --version after an overwrite: %d bytes, not version 1", len(got))
	}
	evs := auditEvents(t, openAuditDB(t, c.dbURL), "file.download")
	if last := evs[len(evs)-1]; last.Metadata["range"] != "70000-199999" {
		t.Fatalf("the pinned download did not resume from the partial file: range %q", last.Metadata["range"])
	}
	if err := os.WriteFile(dst+"."+version+".part", v1[:70_000], 0o600); err != nil {
		t.Fatal(err)
	}
	depotCLI(t, env, "download", "c1/cond/table.csv", dst, "-q")
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, v2) {
		t.Fatalf("download of the current file: %d bytes, not version 2", len(got))
	}
	if left, _ := filepath.Glob(dst + ".*"); len(left) != 0 {
		t.Fatalf("partial files left: %v", left)
	}

	// Multipart: a part over an existing file is a new version too.
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "table.csv")
	fw.Write(v3)
	mw.Close()
	resp = c.do("POST", "/api/v1/files/c1/cond/", &body, map[string]string{"Content-Type": mw.FormDataContentType()})
	expectStatus(t, resp, http.StatusCreated)
	if ids := mustVersions(t, c, "c1/cond/table.csv"); len(ids) != 3 {
		t.Fatalf("%d versions after PUT, PUT and a multipart POST, want 3", len(ids))
	}
	if !strings.Contains(string(expectStatus(t, c.do("GET", url, nil, nil), http.StatusOK)), string(v3)) {
		t.Fatal("the multipart version is not current")
	}
}
