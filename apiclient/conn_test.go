package apiclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// countingConn records the size of every Write to the connection.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes []int
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, len(p))
	c.mu.Unlock()
	return c.Conn.Write(p)
}

// TestChunkSentWhole: a chunk body leaves in one write from its buffer
// (hopConn, watched for stalls as the web tier's are), not in net/http's
// 32 KiB copy loop, and arrives intact.
// If a Go release changes how the transport copies bodies, this fails and
// the fast path needs another look (the bytes would still arrive).
func TestChunkSentWhole(t *testing.T) {
	var got [32]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = sha256.Sum256(b)
	}))
	defer srv.Close()
	var conn *countingConn
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		conn = &countingConn{Conn: c}
		return conn, nil
	}
	client := &http.Client{Transport: &http.Transport{DialContext: dialHop(dial, time.Minute), WriteBufferSize: 256 << 10}}
	defer client.CloseIdleConnections()
	chunk := bytes.Repeat([]byte{1, 2, 3, 4}, 2<<20) // 8 MiB
	req, err := http.NewRequest(http.MethodPatch, srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(chunk))
	setChunkBody(req, bytes.NewReader(chunk))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got != sha256.Sum256(chunk) {
		t.Fatal("the body arrived changed")
	}
	conn.mu.Lock()
	defer conn.mu.Unlock()
	whole := false
	for _, n := range conn.writes {
		whole = whole || n == len(chunk)
	}
	if !whole {
		t.Fatalf("no single write of the whole %d-byte body; writes: %v", len(chunk), conn.writes)
	}
}
