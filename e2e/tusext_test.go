package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestTusUnsupportedExtensionsRefused: a tus request that uses an extension
// depot does not implement (checksum trailers, the IETF draft's headers;
// concatenation is implemented, see tusconcat_test.go) is refused with 400 and a message naming the header,
// never ignored, and opens no session.
func TestTusUnsupportedExtensionsRefused(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	loc := tusCreate(t, c.web.url(), c.token, 10, "ext.bin")
	for _, tc := range []struct {
		name, method, path string
		hdr                map[string]string
		names              string
	}{
		{"malformed Upload-Concat", "POST", tusPath, map[string]string{"Upload-Concat": "parallel", "Upload-Length": "10"}, "Upload-Concat"},
		{"PATCH with the IETF draft's header", "PATCH", loc, map[string]string{"Upload-Complete": "?1", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}, "Upload-Complete"},
		{"checksum trailer", "POST", tusPath, map[string]string{"Upload-Length": "10", "Content-Type": "application/offset+octet-stream"}, "Upload-Checksum"},
		{"IETF draft", "POST", tusPath, map[string]string{"Upload-Complete": "?1", "Upload-Length": "10"}, "Upload-Complete"},
	} {
		hdr := map[string]string{"Upload-Metadata": tusMeta("cohort", "c1", "filename", "concat.bin")}
		for k, v := range tc.hdr {
			hdr[k] = v
		}
		req, _ := http.NewRequest(tc.method, c.web.url()+tc.path, nil)
		if tc.name == "checksum trailer" { // a chunked body announcing the checksum as a trailer
			req.Body = io.NopCloser(strings.NewReader("0123456789"))
			req.ContentLength = -1
			req.Trailer = http.Header{"Upload-Checksum": nil}
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Tus-Resumable", "1.0.0")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), tc.names) {
			t.Errorf("%s: %d %s, want 400 naming %s", tc.name, resp.StatusCode, body, tc.names)
		}
	}
	checkAbsent(t, c, "concat.bin")
	head := tusReq(t, c.web.url(), c.token, http.MethodHead, loc, nil, nil)
	if tusOffset(t, head) != 0 {
		t.Errorf("the refused PATCH wrote to the upload")
	}
	db := openAuditDB(t, c.dbURL)
	started := 0
	for _, ev := range auditAfter(t, db, 0) {
		if ev.Action == "upload.started" {
			started++
		}
	}
	if started != 1 {
		t.Errorf("%d upload.started records, want 1 (the upload made for the PATCH case)", started)
	}
}
