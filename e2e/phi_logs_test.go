package e2e

import (
	"bytes"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestNoPHIInLogsOrInternalURLs runs uploads (PUT, a PUT through a session,
// multipart, tus with a checksum), downloads, listings, deletes and a run of
// errors (not found, forbidden, bad path, too large, checksum and SHA-256
// mismatches, a wrong tus offset) with both tiers logging at debug level
// and a recorder on the internal hop. Neither tier's log, nor any internal
// URL, may hold a cohort name, a file name or a SHA-256 of a file (web used
// to log a completed tus upload's SHA-256, and the cohort travelled in the
// URL of /internal/v1/auth).
func TestNoPHIInLogsOrInternalURLs(t *testing.T) {
	var mu sync.Mutex
	var uris []string
	var target atomic.Pointer[url.URL]
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		mu.Lock()
		uris = append(uris, r.In.Method+" "+r.In.URL.RequestURI())
		mu.Unlock()
		r.SetURL(target.Load())
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	debug := map[string]string{"DEPOT_LOG_LEVEL": "debug"}
	web := map[string]string{"DEPOT_LOG_LEVEL": "debug", "DEPOT_CHUNK_SIZE": "65536", "DEPOT_MAX_UPLOAD_SIZE": strconv.Itoa(1 << 20)}
	c := newCluster(t, clusterOpts{servicesEnv: debug, webEnv: web, servicesURL: func(addr string) string {
		target.Store(&url.URL{Scheme: "http", Host: addr})
		return "http://" + ln.Addr().String()
	}})
	const cohort, name = "zebracohort", "patient-xylophone"
	depotCLI(t, c.dbEnv(), "cohorts", "add", cohort)
	depotCLI(t, c.dbEnv(), "cohorts", "grant", "alice", cohort, "manager")
	depotCLI(t, c.dbEnv(), "users", "add", "bob")
	bob := strings.TrimSpace(depotCLI(t, c.dbEnv(), "tokens", "create", "bob"))
	files := "/api/v1/files/" + cohort + "/"
	var sums []string

	small, smallSum := payloadBytes(61, 5000)
	large, largeSum := payloadBytes(62, 300_000)
	tusData, tusSum := payloadBytes(63, 200_000)
	mpData, mpSum := payloadBytes(64, 7000)
	sums = append(sums, smallSum, largeSum, tusSum, mpSum)

	expectStatus(t, c.do("PUT", files+name+"-1.csv", bytes.NewReader(small), nil), http.StatusCreated)
	expectStatus(t, c.do("PUT", files+"dir/"+name+"-2.csv", bytes.NewReader(large), nil), http.StatusCreated)
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", name+"-4.csv")
	fw.Write(mpData)
	mw.Close()
	expectStatus(t, c.do("POST", files+"mp/", &mp, map[string]string{"Content-Type": mw.FormDataContentType()}), http.StatusCreated)

	resp := tusReq(t, c.web.url(), c.token, http.MethodPost, tusPath, nil, map[string]string{
		"Upload-Length": strconv.Itoa(len(tusData)), "Upload-Metadata": tusMeta("cohort", cohort, "filename", name+"-3.csv"),
	})
	wantStatus(t, "tus creation", resp, http.StatusCreated)
	loc := resp.Header.Get("Location")
	wantStatus(t, "tus PATCH at a wrong offset", tusReq(t, c.web.url(), c.token, http.MethodPatch, loc, tusData[:10], map[string]string{"Upload-Offset": "7"}), http.StatusConflict)
	wantStatus(t, "tus PATCH with a wrong checksum", tusReq(t, c.web.url(), c.token, http.MethodPatch, loc, tusData[:50_000],
		map[string]string{"Upload-Offset": "0", "Upload-Checksum": b64sum("sha256", tusData[:10])}), 460)
	wantStatus(t, "tus PATCH 1", tusReq(t, c.web.url(), c.token, http.MethodPatch, loc, tusData[:50_000],
		map[string]string{"Upload-Offset": "0", "Upload-Checksum": b64sum("sha256", tusData[:50_000])}), http.StatusNoContent)
	wantStatus(t, "tus PATCH 2", tusReq(t, c.web.url(), c.token, http.MethodPatch, loc, tusData[50_000:],
		map[string]string{"Upload-Offset": "50000"}), http.StatusNoContent)
	wantStatus(t, "tus HEAD", tusReq(t, c.web.url(), c.token, http.MethodHead, loc, nil, nil), http.StatusOK)

	expectStatus(t, c.do("GET", files+name+"-1.csv", nil, nil), http.StatusOK)
	expectStatus(t, c.do("GET", files+"dir/"+name+"-2.csv", nil, map[string]string{"Range": "bytes=10-99"}), http.StatusPartialContent)
	expectStatus(t, c.do("HEAD", files+name+"-3.csv", nil, nil), http.StatusOK)
	expectStatus(t, c.do("GET", files, nil, nil), http.StatusOK)
	expectStatus(t, c.do("GET", files+"?after="+name+"-1.csv&limit=1", nil, nil), http.StatusOK)
	expectStatus(t, c.do("DELETE", files+"mp/"+name+"-4.csv", nil, nil), http.StatusNoContent)

	// Errors.
	expectStatus(t, c.do("GET", files+name+"-missing.csv", nil, nil), http.StatusNotFound)
	expectStatus(t, c.doAs(bob, "GET", files+name+"-1.csv", nil, nil), http.StatusForbidden)
	expectStatus(t, c.doAs(bob, "PUT", files+name+"-bob.csv", strings.NewReader("x"), nil), http.StatusForbidden)
	expectStatus(t, c.doAs("bad-token", "GET", files+name+"-1.csv", nil, nil), http.StatusUnauthorized)
	expectStatus(t, c.do("PUT", files+name+"-trailing.", strings.NewReader("x"), nil), http.StatusBadRequest)
	expectStatus(t, c.do("PUT", files+name+"-big.csv", bytes.NewReader(make([]byte, 2<<20)), nil), http.StatusRequestEntityTooLarge)
	wrong, wrongSum := payloadBytes(65, 4000)
	sums = append(sums, wrongSum)
	expectStatus(t, c.do("PUT", files+name+"-sha.csv", bytes.NewReader(wrong), map[string]string{"Depot-Sha256": smallSum}), http.StatusBadRequest)
	expectStatus(t, c.do("GET", files+name+"-1.csv", nil, map[string]string{"Range": "bytes=999999-"}), http.StatusRequestedRangeNotSatisfiable)

	logs := map[string]string{"web": c.web.logs(), "services": c.services.logs()}
	for tier, log := range logs {
		if !strings.Contains(log, `"msg":"listening"`) {
			t.Fatalf("%s log is empty", tier)
		}
		for _, secret := range append([]string{cohort, name}, sums...) {
			if strings.Contains(strings.ToLower(log), strings.ToLower(secret)) {
				for _, line := range strings.Split(log, "\n") {
					if strings.Contains(strings.ToLower(line), strings.ToLower(secret)) {
						t.Errorf("the %s log holds %q: %s", tier, secret, line)
						break
					}
				}
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(uris) < 20 {
		t.Fatalf("the recorder saw only %d internal requests", len(uris))
	}
	for _, u := range uris {
		if dec, _ := url.QueryUnescape(u); strings.Contains(dec, cohort) || strings.Contains(dec, "xylophone") {
			t.Errorf("an internal URL names a cohort or a file: %s", u)
		}
	}
}
