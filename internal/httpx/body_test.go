package httpx

import (
	"context"
	"io"
	"log/slog"

	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestProgressReaderKeepsConnectionUsable: a handler that reads its whole
// body through a ProgressReader and then works for longer than the idle
// timeout (as a final commit may) leaves the keep-alive connection usable:
// the next request on it does not start with a cancelled context.
func TestProgressReaderKeepsConnectionUsable(t *testing.T) {
	const idle = 200 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.Context().Err(); err != nil {
			http.Error(w, "context at entry: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		if r.Method == http.MethodPut {
			body := NewProgressReader(w, r, idle)
			defer body.Done()
			if _, err := io.Copy(io.Discard, body); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			time.Sleep(3 * idle) // work after the body ended
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	for i, method := range []string{http.MethodPut, http.MethodHead, http.MethodHead} {
		req, _ := http.NewRequest(method, srv.URL, nil)
		if method == http.MethodPut {
			// The body arrives in pieces, the last one more than idle/4
			// after the previous: the read that ends the body is one that
			// would renew the deadline.
			req.Body = io.NopCloser(&slowReader{pieces: 4, size: 4 << 10, pause: idle / 2})
			req.ContentLength = 4 * 4 << 10
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("request %d (%s): %d", i, method, resp.StatusCode)
		}
	}
}

// slowReader yields pieces of size bytes, pausing before each piece.
type slowReader struct {
	pieces, size int
	pause        time.Duration
	left         int // bytes of the current piece still to give
}

func (s *slowReader) Read(p []byte) (int, error) {
	if s.left == 0 {
		if s.pieces == 0 {
			return 0, io.EOF
		}
		time.Sleep(s.pause)
		s.pieces--
		s.left = s.size
	}
	n := min(len(p), s.left)
	copy(p[:n], strings.Repeat("x", n))
	s.left -= n
	return n, nil
}

// TestCancelledConnectionIsClosed: a request that arrives with its context
// already ended is answered 503 with Connection: close (so the client
// reconnects) and never reaches the handler; a live one does.
func TestCancelledConnectionIsClosed(t *testing.T) {
	reached := 0
	h := closeCancelled(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }), slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/api/v1/uploads/x", nil).WithContext(ctx))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Connection") != "close" || reached != 0 {
		t.Fatalf("cancelled: status %d, Connection %q, handler reached %d times", rec.Code, rec.Header().Get("Connection"), reached)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/api/v1/uploads/x", nil))
	if reached != 1 || rec.Header().Get("Connection") != "" {
		t.Fatalf("live request: handler reached %d times, Connection %q", reached, rec.Header().Get("Connection"))
	}
}
