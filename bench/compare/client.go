package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// block is the pre-generated 1 MiB random block every upload body repeats, so
// that producing the body costs the client almost nothing (like curl reading a
// file that is in page cache).
var block []byte

// conn is a minimal HTTP/1.1 client connection. net/http's Transport writes a
// request body through io.Copy with a 32 KiB buffer; on this VM, where
// syscalls are expensive, that would make the client the bottleneck. Here the
// body goes to the socket in 1 MiB writes, Content-Length is always set, and
// the connection is kept alive between requests.
type conn struct {
	addr string
	c    net.Conn
	br   *bufio.Reader
	hdr  bytes.Buffer
}

func newConn(addr string) *conn { return &conn{addr: addr} }

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// do sends one request with a body of n bytes (the repeated block) and
// returns the response with its body read.
func (c *conn) do(method, uri string, h http.Header, n int64) (*http.Response, []byte, error) {
	if c.c == nil {
		nc, err := net.Dial("tcp", c.addr)
		if err != nil {
			return nil, nil, err
		}
		c.c, c.br = nc, bufio.NewReaderSize(nc, 64<<10)
	}
	c.hdr.Reset()
	fmt.Fprintf(&c.hdr, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", method, uri, c.addr, n)
	for k, vs := range h {
		for _, v := range vs {
			fmt.Fprintf(&c.hdr, "%s: %s\r\n", k, v)
		}
	}
	c.hdr.WriteString("\r\n")
	var werr error
	if n <= 64<<10 { // small body: one write with the header
		c.hdr.Write(block[:n])
		_, werr = c.c.Write(c.hdr.Bytes())
	} else if _, werr = c.c.Write(c.hdr.Bytes()); werr == nil {
		for left := n; left > 0 && werr == nil; {
			p := block
			if int64(len(p)) > left {
				p = p[:left]
			}
			var k int
			k, werr = c.c.Write(p)
			left -= int64(k)
		}
	}
	if werr != nil { // the server may have answered early (an error); try to read it
		c.c.SetReadDeadline(time.Now().Add(2 * time.Second))
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.close()
		if werr != nil {
			return nil, nil, werr
		}
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || werr != nil || resp.Close {
		c.close()
	}
	if err == nil && werr != nil && resp.StatusCode < 300 {
		err = werr
	}
	return resp, body, err
}

// call is do plus a status check (any 2xx when want is empty).
func (c *conn) call(method, uri string, h http.Header, n int64, want ...int) (*http.Response, error) {
	resp, body, err := c.do(method, uri, h, n)
	return expect(resp, body, err, want...)
}

// expect checks a response's status.
func expect(resp *http.Response, body []byte, err error, want ...int) (*http.Response, error) {
	if err != nil {
		return nil, err
	}
	if len(want) == 0 && resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	for _, w := range want {
		if resp.StatusCode == w {
			return resp, nil
		}
	}
	if len(body) > 300 {
		body = body[:300]
	}
	return nil, fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(body))
}

// bulk runs streams concurrent uploads (one connection each) and returns the
// wall time until the last one finished.
func bulk(streams int, one func(i int) error) (time.Duration, error) {
	errs := make(chan error, streams)
	start := make(chan struct{})
	for i := range streams {
		go func() { <-start; errs <- one(i) }()
	}
	t0 := time.Now()
	close(start)
	var first error
	for range streams {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return time.Since(t0), first
}

// small runs up to n requests from workers concurrent clients (each with its
// own keep-alive connection), stopping early after limit, and returns the
// number done, the wall time and each request's latency.
func small(n, workers int, limit time.Duration, one func(c *conn, i int) error, addr string) (int, time.Duration, []time.Duration, error) {
	type res struct {
		lat []time.Duration
		err error
	}
	out := make(chan res, workers)
	next := make(chan int, n)
	for i := range n {
		next <- i
	}
	close(next)
	t0 := time.Now()
	deadline := t0.Add(limit)
	for range workers {
		go func() {
			c := newConn(addr)
			defer c.close()
			var r res
			for i := range next {
				if time.Now().After(deadline) {
					break
				}
				s := time.Now()
				if err := one(c, i); err != nil {
					r.err = err
					break
				}
				r.lat = append(r.lat, time.Since(s))
			}
			out <- r
		}()
	}
	var lat []time.Duration
	var first error
	for range workers {
		r := <-out
		lat = append(lat, r.lat...)
		if r.err != nil && first == nil {
			first = r.err
		}
	}
	wall := time.Since(t0)
	if len(lat) == 0 && first == nil {
		first = errors.New("no request finished")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return len(lat), wall, lat, first
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
