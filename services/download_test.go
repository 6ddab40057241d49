package services

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/internal/httpauth"
	"depot/internal/httpx"
	"depot/internal/wire"
	"depot/servicedb/servicedbtest"
)

// TestDownloadTakesKernelFastPath: a download from local storage reaches
// the connection's ReadFrom with the file itself, through every wrapper the
// services process puts around a response (httpx's server, the metrics
// middleware, the key check), which is where net.TCPConn uses sendfile(2)
// and the bytes never pass through user space. A wrapper that hides
// ReadFrom, or a handler that copies through a buffer, fails it. Whole
// files and ranges both; the bytes must also be right.
func TestDownloadTakesKernelFastPath(t *testing.T) {
	ctx := t.Context()
	fx := newFixture(t, servicedbtest.SQLiteURL(t))
	content := make([]byte, 3<<20+123)
	for i := range content {
		content[i] = byte(i * 7)
	}
	if _, err := fx.put(ctx, "up", "c/big.csv", content, depot.Permanent); err != nil {
		t.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rec := &readFromRecorder{}
	hs := httpx.NewServer(ctx, fx.handler, slog.New(slog.DiscardHandler), httpx.ServerOptions{})
	go hs.Serve(recordingListener{ln, rec})
	defer hs.Close()

	get := func(rng string) []byte {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ln.Addr().String()+wire.PathObject, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(wire.HeaderKey, wire.EncodeKey("c/big.csv"))
		req.Header.Set(wire.HeaderUserToken, fx.tokens["rd"])
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		httpauth.Sign(req, []byte(fixtureKey), time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode/100 != 2 {
			t.Fatalf("GET %q: %d %v %s", rng, resp.StatusCode, err, body)
		}
		return body
	}
	for _, tc := range []struct {
		rng        string
		start, end int
	}{{"", 0, len(content)}, {"bytes=1000-2099999", 1000, 2100000}} {
		before := rec.fileBytes()
		if got := get(tc.rng); !bytes.Equal(got, content[tc.start:tc.end]) {
			t.Fatalf("range %q: wrong bytes (%d of them)", tc.rng, len(got))
		}
		// net/http copies the first 512 bytes of a body itself (for
		// content sniffing) before it hands the rest to ReadFrom.
		if sent, want := rec.fileBytes()-before, int64(tc.end-tc.start-512); sent != want {
			t.Errorf("range %q: %d bytes went from the file to the connection's ReadFrom, want %d (the rest copied through user space?)",
				tc.rng, sent, want)
		}
	}
}

// readFromRecorder counts the bytes that connections' ReadFrom took from
// an *os.File, alone or behind an io.LimitedReader: what net.TCPConn
// sends with sendfile(2).
type readFromRecorder struct {
	mu    sync.Mutex
	bytes int64
}

func (r *readFromRecorder) fileBytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bytes
}

type recordingListener struct {
	net.Listener
	rec *readFromRecorder
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return recordingConn{c.(*net.TCPConn), l.rec}, nil
}

// recordingConn is a TCP connection that notes what its ReadFrom is given
// before handing it to net.TCPConn's own.
type recordingConn struct {
	*net.TCPConn
	rec *readFromRecorder
}

func (c recordingConn) ReadFrom(src io.Reader) (int64, error) {
	_, isFile := src.(*os.File)
	if lr, ok := src.(*io.LimitedReader); ok {
		_, isFile = lr.R.(*os.File)
	}
	n, err := c.TCPConn.ReadFrom(src)
	if isFile {
		c.rec.mu.Lock()
		c.rec.bytes += n
		c.rec.mu.Unlock()
	}
	return n, err
}
