package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestServicesHangNoticed stops the services process (SIGSTOP: it still
// accepts connections and bytes into its socket buffers, so nothing fails
// on web's side) while a PUT and a tus PATCH stream, and asks web for
// /api/v1/me and a download. Every one is answered 503 once nothing has
// moved for DEPOT_SERVICES_TIMEOUT (the review waited 150 s for the PUT and
// /api/v1/me); after SIGCONT the tus upload resumes from its offset and the
// aborted PUT left nothing visible.
func TestServicesHangNoticed(t *testing.T) {
	const timeout = 2 * time.Second
	c := newCluster(t, clusterOpts{webEnv: map[string]string{
		"DEPOT_SERVICES_TIMEOUT": timeout.String(), "DEPOT_CHUNK_SIZE": strconv.Itoa(1 << 20),
	}})
	stored, _ := payloadBytes(51, 3<<20)
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/hang/stored.bin", bytes.NewReader(stored), nil), http.StatusCreated)
	tusData, _ := payloadBytes(52, 8<<20)
	loc := tusCreate(t, c.web.url(), c.token, int64(len(tusData)), "hang/tus.bin")

	// A PUT and a tus PATCH stream: services has taken bytes of both.
	put := streamRequest(t, c, http.MethodPut, "/api/v1/files/c1/hang/put.bin", 64<<20, nil)
	patch := streamRequest(t, c, http.MethodPatch, loc, int64(len(tusData)), map[string]string{
		"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream", "Upload-Offset": "0",
	})
	block, _ := payloadBytes(53, 1<<20)
	readBefore := procReadBytes(t, c.services.pid())
	for i := range 3 {
		put.write(block)
		patch.write(tusData[i<<20 : (i+1)<<20])
	}
	for procReadBytes(t, c.services.pid())-readBefore < 4<<20 {
		time.Sleep(20 * time.Millisecond)
	}

	if err := syscall.Kill(c.services.pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	waitState(t, c.services.pid(), 'T') // the signal is delivered asynchronously
	stopped := time.Now()
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			_ = syscall.Kill(c.services.pid(), syscall.SIGCONT)
		}
	}
	t.Cleanup(resume)
	go put.feed(block, true)
	go patch.feed(tusData[3<<20:], false)

	type answer struct {
		what   string
		status int
		after  time.Duration
	}
	answers := make(chan answer, 4)
	var wg sync.WaitGroup
	for what, do := range map[string]func() int{
		"in-flight PUT":       put.status,
		"in-flight tus PATCH": patch.status,
		"GET /api/v1/me":      func() int { return statusOf(t, c.do("GET", "/api/v1/me", nil, nil)) },
		"download of a file":  func() int { return statusOf(t, c.do("GET", "/api/v1/files/c1/hang/stored.bin", nil, nil)) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := do()
			answers <- answer{what, st, time.Since(stopped)}
		}()
	}
	wg.Wait()
	close(answers)
	for a := range answers {
		t.Logf("%s: %d after %v (DEPOT_SERVICES_TIMEOUT %v)", a.what, a.status, a.after.Round(10*time.Millisecond), timeout)
		if a.status != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d while services is stopped, want 503", a.what, a.status)
		}
		// Noticed within 1¼ timeouts of the last byte; a PUT then spends
		// up to one more asking services to drop its session.
		if limit := 4 * timeout; a.after > limit {
			t.Errorf("%s: answered after %v, want within %v", a.what, a.after, limit)
		}
	}

	// Resume as a tus client does: HEAD, then PATCH from its offset; a 409
	// means services has since taken an append that web had sent before it
	// gave up (queued in services' socket while it was stopped): ask again.
	resume()
	full, _ := payloadBytes(52, 8<<20)
	for attempt := 0; ; attempt++ {
		head := tusReq(t, c.web.url(), c.token, http.MethodHead, loc, nil, nil)
		wantStatus(t, "HEAD after SIGCONT", head, http.StatusOK)
		off := tusOffset(t, head)
		resp := tusReq(t, c.web.url(), c.token, http.MethodPatch, loc, full[off:], map[string]string{"Upload-Offset": strconv.FormatInt(off, 10)})
		if resp.StatusCode == http.StatusConflict && attempt < 5 {
			continue
		}
		wantStatus(t, "PATCH resuming at the offset", resp, http.StatusNoContent)
		break
	}
	checkOnDisk(t, c, "hang/tus.bin", full)
	expectStatus(t, c.do("GET", "/api/v1/files/c1/hang/put.bin", nil, nil), http.StatusNotFound)
	if got := expectStatus(t, c.do("GET", "/api/v1/files/c1/hang/stored.bin", nil, nil), http.StatusOK); string(got) != string(stored) {
		t.Fatalf("the stored file changed")
	}
}

// streamed is a request whose body the test writes as it goes.
type streamed struct {
	pw   *io.PipeWriter
	resp chan *http.Response
	t    *testing.T
}

func streamRequest(t *testing.T, c *cluster, method, path string, length int64, hdr map[string]string) *streamed {
	t.Helper()
	pr, pw := io.Pipe()
	s := &streamed{pw: pw, resp: make(chan *http.Response, 1), t: t}
	req, err := http.NewRequest(method, c.web.url()+path, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set("Authorization", "Bearer "+c.token)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, path, err)
			pr.CloseWithError(err)
		}
		s.resp <- resp
	}()
	t.Cleanup(func() { pw.CloseWithError(io.ErrClosedPipe) })
	return s
}

func (s *streamed) write(b []byte) {
	if _, err := s.pw.Write(b); err != nil {
		s.t.Fatalf("body write: %v", err)
	}
}

// feed writes b, again and again if repeat, until the request ends.
func (s *streamed) feed(b []byte, repeat bool) {
	for {
		if _, err := s.pw.Write(b); err != nil || !repeat {
			return
		}
	}
}

// status waits for the answer; the body writer is then closed.
func (s *streamed) status() int {
	resp := <-s.resp
	s.pw.CloseWithError(io.ErrClosedPipe)
	if resp == nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func statusOf(t *testing.T, resp *http.Response) int {
	readAll(t, resp)
	return resp.StatusCode
}

// waitState waits until the process pid is in the given state (the third
// field of /proc/<pid>/stat: 'T' stopped, 'S' sleeping, …).
func waitState(t *testing.T, pid int, state byte) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) && b[i+2] == state {
			return
		}
	}
	t.Fatalf("process %d never reached state %c", pid, state)
}
