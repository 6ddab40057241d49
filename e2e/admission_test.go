package e2e

import (
	"bufio"
	"bytes"
	"fmt"
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
	"time"
)

// heldPatch is a tus PATCH whose body is sent in part and held.
type heldPatch struct {
	conn net.Conn
	rest []byte
}

// holdPatch starts a PATCH of the upload at loc from offset 0 with body,
// sends its first sent bytes and holds the rest.
func holdPatch(t *testing.T, c *cluster, loc string, body []byte, sent int) *heldPatch {
	t.Helper()
	conn, err := net.Dial("tcp", c.web.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "PATCH %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTus-Resumable: 1.0.0\r\n"+
		"Content-Type: application/offset+octet-stream\r\nUpload-Offset: 0\r\nContent-Length: %d\r\n\r\n", loc, c.token, len(body))
	if _, err := conn.Write(body[:sent]); err != nil {
		t.Fatal(err)
	}
	return &heldPatch{conn: conn, rest: body[sent:]}
}

// finish sends the rest of the body and returns the answer's status.
func (h *heldPatch) finish(t *testing.T) int {
	t.Helper()
	_ = h.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := h.conn.Write(h.rest); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(h.conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitOffset waits until the upload at loc holds at least n bytes.
func waitOffset(t *testing.T, c *cluster, loc string, n int64) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		resp := tusReq(t, c.web.url(), c.token, http.MethodHead, loc, nil, nil)
		if resp.StatusCode == http.StatusOK && tusOffset(t, resp) >= n {
			return
		}
	}
	t.Fatalf("the upload at %s never reached offset %d", loc, n)
}

// TestUploadAdmission: every entrance that takes an upload (PUT,
// multipart, tus creation with and without a body, tus PATCH) is held to
// DEPOT_MAX_UPLOAD_SIZE, declared or deferred, and to the user's
// DEPOT_MAX_UPLOADS_PER_USER slots, which tus PATCHes hold while they
// stream; Tus-Max-Size reports the configured maximum. (The review stored a
// 20 MiB tus upload under a 10 MiB limit and ran 60 PATCHes at once with 2
// slots.)
func TestUploadAdmission(t *testing.T) {
	const max = 10 << 20
	c := newCluster(t, clusterOpts{webEnv: map[string]string{
		"DEPOT_MAX_UPLOAD_SIZE": strconv.Itoa(max), "DEPOT_MAX_UPLOADS_PER_USER": "2", "DEPOT_CHUNK_SIZE": "65536",
	}})
	base := c.web.url()
	big, _ := payloadBytes(31, max+1<<20)

	t.Run("Tus-Max-Size", func(t *testing.T) {
		resp := tusReq(t, base, "", http.MethodOptions, tusPath, nil, map[string]string{"Tus-Resumable": ""})
		if got := resp.Header.Get("Tus-Max-Size"); got != strconv.Itoa(max) {
			t.Fatalf("Tus-Max-Size %q, want %d", got, max)
		}
	})
	t.Run("declared sizes over the limit", func(t *testing.T) {
		resp := tusReq(t, base, c.token, http.MethodPost, tusPath, nil, map[string]string{
			"Upload-Length": strconv.Itoa(2 * max), "Upload-Metadata": tusMeta("cohort", "c1", "filename", "big-tus.bin"),
		})
		wantStatus(t, "tus creation of 20 MiB", resp, http.StatusRequestEntityTooLarge)
		resp = tusReq(t, base, c.token, http.MethodPost, tusPath, big, map[string]string{
			"Upload-Length": strconv.Itoa(len(big)), "Upload-Metadata": tusMeta("cohort", "c1", "filename", "big-cwu.bin"),
		})
		wantStatus(t, "tus creation-with-upload of 11 MiB", resp, http.StatusRequestEntityTooLarge)
		expectStatus(t, c.do("PUT", "/api/v1/files/c1/big-put.bin", bytes.NewReader(big), nil), http.StatusRequestEntityTooLarge)
		checkAbsent(t, c, "big-tus.bin")
		checkAbsent(t, c, "big-cwu.bin")
	})
	t.Run("deferred length over the limit", func(t *testing.T) {
		resp := tusReq(t, base, c.token, http.MethodPost, tusPath, nil, map[string]string{
			"Upload-Defer-Length": "1", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "deferred.bin"),
		})
		wantStatus(t, "deferred creation", resp, http.StatusCreated)
		loc := resp.Header.Get("Location")
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, big, map[string]string{"Upload-Offset": "0"})
		wantStatus(t, "PATCH of 11 MiB without a length", resp, http.StatusRequestEntityTooLarge)
		head := tusReq(t, base, c.token, http.MethodHead, loc, nil, nil)
		if off := tusOffset(t, head); off > max {
			t.Fatalf("the upload holds %d bytes, past the limit", off)
		}
		off := tusOffset(t, head)
		resp = tusReq(t, base, c.token, http.MethodPatch, loc, big[off:], map[string]string{
			"Upload-Offset": strconv.FormatInt(off, 10), "Upload-Length": strconv.Itoa(len(big)),
		})
		wantStatus(t, "PATCH declaring a deferred length of 11 MiB", resp, http.StatusRequestEntityTooLarge)
		resp = tusReq(t, base, c.token, http.MethodPost, tusPath, big, map[string]string{
			"Upload-Defer-Length": "1", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "deferred-cwu.bin"),
		})
		wantStatus(t, "deferred creation-with-upload of 11 MiB", resp, http.StatusRequestEntityTooLarge)
		checkAbsent(t, c, "deferred.bin")
		checkAbsent(t, c, "deferred-cwu.bin")
	})
	t.Run("one user's slots, shared by every entrance", func(t *testing.T) {
		body, _ := payloadBytes(32, 1<<20)
		locs := make([]string, 22)
		for i := range locs {
			locs[i] = tusCreate(t, base, c.token, int64(len(body)), fmt.Sprintf("slot-%d.bin", i))
		}
		// Two PATCHes stream (services has bytes of both): both slots taken.
		h0 := holdPatch(t, c, locs[0], body, 256<<10)
		h1 := holdPatch(t, c, locs[1], body, 256<<10)
		waitOffset(t, c, locs[0], 65536)
		waitOffset(t, c, locs[1], 65536)

		// Twenty more PATCHes at once: every one refused with 429.
		var wg sync.WaitGroup
		var refused atomic.Int64
		for _, loc := range locs[2:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodPatch, base+loc, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+c.token)
				req.Header.Set("Tus-Resumable", "1.0.0")
				req.Header.Set("Content-Type", "application/offset+octet-stream")
				req.Header.Set("Upload-Offset", "0")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("PATCH: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusTooManyRequests {
					refused.Add(1)
				} else {
					t.Errorf("a PATCH past the slots: %d", resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		if refused.Load() != 20 {
			t.Fatalf("%d of 20 PATCHes past the slots refused", refused.Load())
		}
		// Every other entrance shares the slots.
		var mp bytes.Buffer
		mw := multipart.NewWriter(&mp)
		fw, _ := mw.CreateFormFile("file", "mp.bin")
		fw.Write([]byte("multipart"))
		mw.Close()
		expectStatus(t, c.do("POST", "/api/v1/files/c1/", &mp, map[string]string{"Content-Type": mw.FormDataContentType()}), http.StatusTooManyRequests)
		expectStatus(t, c.do("PUT", "/api/v1/files/c1/put.bin", strings.NewReader("x"), nil), http.StatusTooManyRequests)
		resp := tusReq(t, base, c.token, http.MethodPost, tusPath, []byte("x"), map[string]string{
			"Upload-Length": "1", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "cwu.bin"),
		})
		wantStatus(t, "creation-with-upload past the slots", resp, http.StatusTooManyRequests)

		// A PATCH that ends gives its slot back.
		if got := h0.finish(t); got != http.StatusNoContent {
			t.Fatalf("held PATCH: %d", got)
		}
		resp = tusReq(t, base, c.token, http.MethodPatch, locs[2], body, map[string]string{"Upload-Offset": "0"})
		wantStatus(t, "PATCH once a slot is free", resp, http.StatusNoContent)
		if got := h1.finish(t); got != http.StatusNoContent {
			t.Fatalf("held PATCH: %d", got)
		}
		checkOnDisk(t, c, "slot-0.bin", body)
		checkOnDisk(t, c, "slot-2.bin", body)
	})
}

// TestOpenUploadsRefusalRelayed: when services refuses to open another
// upload session for the user (429: DEPOT_MAX_OPEN_UPLOADS_PER_USER, counted
// by services), web relays the 429 for tus and for a PUT that needs a
// session, at once: before reading the body, and without retrying (a
// recorder on the internal hop counts the session creations).
func TestOpenUploadsRefusalRelayed(t *testing.T) {
	var creations atomic.Int64
	var target atomic.Pointer[url.URL]
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		if r.In.Method == http.MethodPost && r.In.URL.Path == "/internal/v1/uploads" {
			creations.Add(1)
		}
		r.SetURL(target.Load())
	}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c := newCluster(t, clusterOpts{
		webEnv:      map[string]string{"DEPOT_CHUNK_SIZE": "65536"},
		servicesEnv: map[string]string{"DEPOT_MAX_OPEN_UPLOADS_PER_USER": "1"},
		servicesURL: func(addr string) string {
			target.Store(&url.URL{Scheme: "http", Host: addr})
			return "http://" + ln.Addr().String()
		},
	})
	tusCreate(t, c.web.url(), c.token, 100, "open-1.bin") // the user's one open upload
	creations.Store(0)

	resp := tusReq(t, c.web.url(), c.token, http.MethodPost, tusPath, nil, map[string]string{
		"Upload-Length": "100", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "open-2.bin"),
	})
	wantStatus(t, "tus creation past the open uploads", resp, http.StatusTooManyRequests)
	for name, head := range map[string]string{
		"tus creation-with-upload": "POST " + tusPath + " HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Length: 1048576\r\n" +
			"Upload-Metadata: " + tusMeta("cohort", "c1", "filename", "cwu.bin") + "\r\nContent-Type: application/offset+octet-stream\r\n",
		"PUT through a session": "PUT /api/v1/files/c1/put.bin HTTP/1.1\r\nHost: x\r\n",
	} {
		conn, err := net.Dial("tcp", c.web.addr)
		if err != nil {
			t.Fatal(err)
		}
		a := holdRequest(conn, head+"Authorization: Bearer "+c.token+"\r\nContent-Length: 1048576\r\n\r\n", 20*time.Second)
		conn.Close()
		if a.err != nil || a.status != http.StatusTooManyRequests || !a.closed {
			t.Errorf("%s with its body withheld: status %d, closed %v, err %v; want 429 at once and the connection closed", name, a.status, a.closed, a.err)
		}
	}
	if n := creations.Load(); n != 3 {
		t.Errorf("services was asked %d times to open a session, want 3 (one per request, no retry)", n)
	}
}
