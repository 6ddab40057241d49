package e2e

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"testing"
	"time"

	"depot/internal/httpauth"
	"depot/internal/wire"
)

// TestTruncatedInternalBody sends services a signed upload creation whose
// JSON body stops half-way (the connection half-closed inside it, as a
// faulty network does): the answer is 503 marked Depot-Transient, which web
// retries, not 400, which web would pass on to its client as the client's
// mistake. Malformed JSON that arrived whole is still 400.
func TestTruncatedInternalBody(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	body := []byte(`{"key":"c1/truncated.csv","size":10,"class":"permanent"}`)
	send := func(payload []byte, contentLength int) *http.Response {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, c.services.url()+wire.PathUploads, bytes.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(contentLength)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(wire.HeaderUserToken, c.token)
		httpauth.Sign(req, []byte(c.key), time.Now())
		conn, err := net.Dial("tcp", c.services.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var head bytes.Buffer
		head.WriteString("POST " + wire.PathUploads + " HTTP/1.1\r\nHost: " + c.services.addr + "\r\n")
		req.Header.Set("Content-Length", itoa(int64(contentLength)))
		req.Header.Write(&head)
		head.WriteString("\r\n")
		head.Write(payload)
		if _, err := conn.Write(head.Bytes()); err != nil {
			t.Fatal(err)
		}
		if len(payload) < contentLength {
			conn.(*net.TCPConn).CloseWrite() // the rest never comes
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := send(body[:len(body)/2], len(body))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(wire.HeaderTransient) != "1" {
		t.Errorf("truncated body: %d %s=%q, want 503 marked transient", resp.StatusCode, wire.HeaderTransient, resp.Header.Get(wire.HeaderTransient))
	}
	bad := []byte(`{"key": nonsense}`)
	if resp := send(bad, len(bad)); resp.StatusCode != http.StatusBadRequest || resp.Header.Get(wire.HeaderTransient) != "" {
		t.Errorf("malformed body: %d, want 400 unmarked", resp.StatusCode)
	}
	if resp := send(body, len(body)); resp.StatusCode != http.StatusCreated {
		t.Errorf("whole body: %d, want 201", resp.StatusCode)
	}
}
