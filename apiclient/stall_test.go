package apiclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"depot"
	"depot/internal/wire"
)

// stall is the ProgressTimeout of these tests: short, but long enough
// that a busy machine (the race detector, other packages' tests) answers a
// request well within it.
const stall = time.Second

// silentServer accepts connections and reads what arrives (readBody) or
// nothing at all, but never answers: a services tier that hangs after
// accepting, as a SIGSTOPped process does (its kernel still accepts).
func silentServer(t *testing.T, readBody bool) (url string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns = append(conns, c)
			if readBody {
				go io.Copy(io.Discard, c)
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String(), accepted
}

// TestStalledServicesNoticed: a request to a services tier that accepts
// but never answers fails after ProgressTimeout as unavailable, once (not
// retried), whether it waits for an answer or for the services tier to
// take the rest of its body.
func TestStalledServicesNoticed(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, tc := range []struct {
		name     string
		readBody bool
		call     func(c *Client) error
	}{
		{"waiting for an answer", true, func(c *Client) error {
			_, err := c.Authorize(t.Context(), depot.Caller{}, "c1", depot.PermUpload)
			return err
		}},
		{"writing a chunk nobody reads", false, func(c *Client) error {
			_, _, err := c.AppendChunk(t.Context(), depot.Caller{}, "0123456789abcdef0123456789abcdef", 0, make([]byte, 32<<20), -1, false)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, accepted := silentServer(t, tc.readBody)
			c := New(Config{BaseURL: url, Key: "k", ProgressTimeout: stall, Backoff: time.Millisecond})
			defer c.Close()
			start := time.Now()
			err := tc.call(c)
			took := time.Since(start)
			var se *StallError
			var ne *netError
			if !errors.As(err, &se) || depot.ErrorCode(err) != depot.CodeUnavailable || errors.As(err, &ne) {
				t.Fatalf("err %v (%T), want an unavailable StallError that is not retried", err, err)
			}
			if n := accepted.Load(); n != 1 {
				t.Errorf("%d connections: the stalled request was retried", n)
			}
			t.Logf("noticed after %v (ProgressTimeout %v)", took.Round(time.Millisecond), stall)
		})
	}
}

// TestSlowProgressIsNotAStall: a services tier that takes a body far more
// slowly than ProgressTimeout in all, but never pauses that long, and an
// answer read with pauses longer than ProgressTimeout between reads (web
// waiting on a slow public client), both complete.
func TestSlowProgressIsNotAStall(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPatch {
			buf := make([]byte, 64<<10)
			var n int64
			for {
				k, err := r.Body.Read(buf)
				n += int64(k)
				if err != nil {
					break
				}
				time.Sleep(stall / 15) // slow, but moving: 64 KiB every fifteenth of stall
			}
			json.NewEncoder(w).Encode(wire.AppendResult{Upload: depot.Upload{ID: "u", Offset: n}})
			return
		}
		w.Header().Set("Content-Length", "3145728")
		w.Write(bytes.Repeat([]byte("x"), 3<<20))
	}))
	// A small receive buffer: the bytes the server has not read wait in
	// the client's send queue, where the client sees them drain.
	srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		c.(*net.TCPConn).SetReadBuffer(64 << 10)
		return ctx
	}
	srv.Start()
	defer srv.Close()
	c := New(Config{BaseURL: srv.URL, Key: "k", ProgressTimeout: stall})
	defer c.Close()

	chunk := make([]byte, 3<<20) // 48 × stall/15 to take
	start := time.Now()
	n, _, err := c.AppendChunk(t.Context(), depot.Caller{}, "0123456789abcdef0123456789abcdef", 0, chunk, -1, false)
	if err != nil || n != int64(len(chunk)) {
		t.Fatalf("slow append: %d bytes, %v", n, err)
	}
	if took := time.Since(start); took < 2*stall {
		t.Fatalf("the append took %v; the test needs it slower than %v", took, 2*stall)
	}

	d, err := c.Open(t.Context(), depot.Caller{}, "c1/a", depot.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rc := d.Body
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 4096)
	var got int
	for i := 0; ; i++ {
		b, err := br.Peek(1)
		if err == io.EOF {
			break
		}
		if err != nil || len(b) != 1 {
			t.Fatalf("download after %d bytes: %v", got, err)
		}
		n, _ := br.Discard(br.Buffered())
		got += n
		if i < 2 {
			time.Sleep(3 * stall / 2) // the public client is slow; web is not reading
		}
	}
	if got != 3<<20 {
		t.Fatalf("downloaded %d bytes", got)
	}

	// A connection left idle in the pool past ProgressTimeout is closed;
	// the next request opens another and succeeds.
	time.Sleep(3 * stall / 2)
	if _, _, err := c.AppendChunk(t.Context(), depot.Caller{}, "0123456789abcdef0123456789abcdef", 0, []byte("x"), -1, false); err != nil {
		t.Fatalf("request after an idle period: %v", err)
	}
}
