// Command resumable is the resumable-upload benchmark: it starts the real
// depot binary as a services and a web process (SQLite, local storage) and
// uploads the same generated stream through the web tier (a) as one plain
// streamed PUT and (b) as a tus upload (POST, then one PATCH of the whole
// body), and prints MB/s of each and their ratio. Then (c) it sends a tus
// upload through a TCP proxy that resets the client↔web connection once
// half the body has passed, resumes from HEAD's offset, and reports how
// many bytes had to be sent again: the client's sent bytes minus the offset
// after the resume (this includes what sat in socket buffers) and the bytes
// that reached web minus that offset (what web lost; at most one chunk).
//
//	go run ./bench/resumable -size 2GiB -runs 3
package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"depot/bench/internal/benchkit"
	"depot/internal/httpauth"
)

func main() {
	size := flag.String("size", "2GiB", "bytes per upload (suffix MiB or GiB)")
	runs := flag.Int("runs", 1, "runs of (a) and (b); the median is reported")
	chunk := flag.Int("chunk", 8<<20, "DEPOT_CHUNK_SIZE of the web tier")
	flag.Parse()
	n, err := benchkit.ParseSize(*size)
	if err != nil {
		fail(err)
	}
	if err := run(n, *runs, *chunk); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

var key = httpauth.NewKey()

func run(size int64, runs, chunk int) error {
	dir, err := os.MkdirTemp("", "depot-bench-resumable-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := benchkit.Build(dir)
	if err != nil {
		return err
	}
	db := "sqlite://" + filepath.Join(dir, "depot.db")
	token, err := benchkit.Account(bin, db)
	if err != nil {
		return err
	}
	svc, svcAddr, err := benchkit.Serve(bin, "DEPOT_ROLE=services", "DEPOT_INTERNAL_ADDR=127.0.0.1:0", "DEPOT_INTERNAL_KEYS="+key,
		"DEPOT_STORAGE_URL=file://"+filepath.Join(dir, "files"), "DEPOT_DATABASE_URL="+db)
	if err != nil {
		return err
	}
	defer benchkit.Stop(svc)
	web, webAddr, err := benchkit.Serve(bin, "DEPOT_ROLE=web", "DEPOT_ADDR=127.0.0.1:0", "DEPOT_SERVICES_URL=http://"+svcAddr,
		"DEPOT_INTERNAL_KEY="+key, "DEPOT_CHUNK_SIZE="+strconv.Itoa(chunk))
	if err != nil {
		return err
	}
	defer benchkit.Stop(web)
	c := &client{token: token, hc: &http.Client{Transport: &http.Transport{DisableCompression: true}}}

	var a, b []float64
	for i := range runs { // interleave so that both see the same machine state
		t0 := time.Now()
		if err := c.put("http://"+webAddr, fmt.Sprintf("put-%d.bin", i), size, i); err != nil {
			return fmt.Errorf("PUT: %w", err)
		}
		ra := mibps(size, time.Since(t0))
		os.Remove(filepath.Join(dir, "files", "b", fmt.Sprintf("put-%d.bin", i)))
		t0 = time.Now()
		loc, err := c.create("http://"+webAddr, fmt.Sprintf("tus-%d.bin", i), size)
		if err != nil {
			return fmt.Errorf("tus: %w", err)
		}
		if off, _, err := c.patch("http://"+webAddr, loc, size, 0, i); err != nil || off != size {
			return fmt.Errorf("tus PATCH: offset %d: %v", off, err)
		}
		rb := mibps(size, time.Since(t0))
		os.Remove(filepath.Join(dir, "files", "b", fmt.Sprintf("tus-%d.bin", i)))
		a, b = append(a, ra), append(b, rb)
		fmt.Printf("run %d: PUT %.0f MiB/s, tus %.0f MiB/s\n", i+1, ra, rb)
	}

	// (c) one reset on the client↔web hop at half the body.
	cutAt := size / 2
	px, err := newCutProxy(webAddr, cutAt)
	if err != nil {
		return err
	}
	defer px.ln.Close()
	base := "http://" + px.ln.Addr().String()
	t0 := time.Now()
	loc, err := c.create(base, "tus-fault.bin", size)
	if err != nil {
		return err
	}
	off, sent, err := c.patch(base, loc, size, 0, 99)
	if err == nil {
		return fmt.Errorf("the fault did not interrupt the PATCH (offset %d)", off)
	}
	forwarded := px.bodyAtCut.Load()
	// web may still be appending what it read before the cut: the durable
	// offset is the one HEAD reports once it stops moving.
	resume, err := c.stableOffset(base, loc)
	if err != nil {
		return err
	}
	off2, _, err := c.patch(base, loc, size, resume, 99)
	if err != nil || off2 != size {
		return fmt.Errorf("resumed PATCH: offset %d: %v", off2, err)
	}
	faultTime := time.Since(t0)

	ma, mb := benchkit.Median(a), benchkit.Median(b)
	fmt.Printf("\nsize %d MiB, chunk %d MiB, %d run(s) (medians)\n", size>>20, chunk>>20, runs)
	fmt.Printf("(a) plain streamed PUT through web      : %7.0f MiB/s\n", ma)
	fmt.Printf("(b) tus POST + PATCH through web        : %7.0f MiB/s\n", mb)
	fmt.Printf("ratio (b)/(a)                           : %7.2f   (target >= 0.90)\n", mb/ma)
	fmt.Printf("(c) tus with one reset at %4d MiB       : %7.0f MiB/s overall\n", cutAt>>20, mibps(size, faultTime))
	fmt.Printf("    client had sent                     : %10d bytes\n", sent)
	fmt.Printf("    reached web before the reset        : %10d bytes\n", forwarded)
	fmt.Printf("    offset after resume (HEAD)          : %10d bytes\n", resume)
	fmt.Printf("    re-sent by the client (sent-offset) : %10d bytes (%.2f MiB)\n", sent-resume, float64(sent-resume)/(1<<20))
	fmt.Printf("    lost by web (reached-offset)        : %10d bytes (%.2f chunks; target <= 1)\n", forwarded-resume, float64(forwarded-resume)/float64(chunk))
	return nil
}

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

type client struct {
	token string
	hc    *http.Client
}

func (c *client) put(base, name string, size int64, seed int) error {
	req, err := http.NewRequest("PUT", base+"/api/v1/files/b/"+name, benchkit.Payload(size, seed, 0))
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return nil
}

func (c *client) tus(method, url string, body io.Reader, n int64, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.ContentLength = n
		req.Header.Set("Content-Type", "application/offset+octet-stream")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func (c *client) create(base, name string, size int64) (string, error) {
	meta := "cohort " + base64.StdEncoding.EncodeToString([]byte("b")) + ",filename " + base64.StdEncoding.EncodeToString([]byte(name))
	resp, err := c.tus("POST", base+"/api/v1/uploads/", nil, 0, map[string]string{"Upload-Length": strconv.FormatInt(size, 10), "Upload-Metadata": meta})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("POST: status %d", resp.StatusCode)
	}
	return resp.Header.Get("Location"), nil
}

type counter struct {
	r io.Reader
	n int64
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// patch sends bytes [off, size) and returns the new offset and the body
// bytes the transport took.
func (c *client) patch(base, loc string, size, off int64, seed int) (int64, int64, error) {
	body := &counter{r: benchkit.Payload(size, seed, off)}
	resp, err := c.tus("PATCH", base+loc, body, size-off, map[string]string{"Upload-Offset": strconv.FormatInt(off, 10)})
	if err != nil {
		return 0, body.n, err
	}
	if resp.StatusCode != http.StatusNoContent {
		return 0, body.n, fmt.Errorf("PATCH: status %d", resp.StatusCode)
	}
	n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	return n, body.n, err
}

func (c *client) stableOffset(base, loc string) (int64, error) {
	last := int64(-1)
	for range 100 {
		resp, err := c.tus("HEAD", base+loc, nil, 0, nil)
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("HEAD: status %d", resp.StatusCode)
		}
		if n == last {
			return n, nil
		}
		last = n
		time.Sleep(300 * time.Millisecond)
	}
	return 0, fmt.Errorf("the offset never settled")
}

// cutProxy forwards TCP connections to target and resets the one that
// carries byte cutAt of the total client→server stream.
type cutProxy struct {
	ln        net.Listener
	target    string
	cutAt     int64
	forwarded atomic.Int64 // client→server bytes, all connections
	bodyAtCut atomic.Int64 // PATCH body bytes forwarded on the connection that was cut
	mu        sync.Mutex
	cut       bool
}

func newCutProxy(target string, cutAt int64) (*cutProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &cutProxy{ln: ln, target: target, cutAt: cutAt}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go p.handle(in.(*net.TCPConn))
		}
	}()
	return p, nil
}

func (p *cutProxy) handle(in *net.TCPConn) {
	o, err := net.Dial("tcp", p.target)
	if err != nil {
		in.Close()
		return
	}
	out := o.(*net.TCPConn)
	go func() { io.Copy(in, out); in.CloseWrite() }()
	buf := make([]byte, 64<<10)
	var connBytes int64
	headerSeen := false
	for {
		n, err := in.Read(buf)
		if n > 0 {
			data := buf[:n]
			if !headerSeen {
				if i := strings.Index(string(data), "\r\n\r\n"); i >= 0 && strings.HasPrefix(string(data), "PATCH") {
					headerSeen = true
					connBytes = -int64(i + 4) // count the PATCH body only
				}
			}
			p.mu.Lock()
			total := p.forwarded.Load()
			if !p.cut && total+int64(n) > p.cutAt {
				p.cut = true
				k := p.cutAt - total
				out.Write(data[:k])
				p.forwarded.Add(k)
				p.bodyAtCut.Store(connBytes + k)
				p.mu.Unlock()
				in.SetLinger(0)
				out.SetLinger(0)
				in.Close()
				out.Close()
				return
			}
			p.forwarded.Add(int64(n))
			p.mu.Unlock()
			connBytes += int64(n)
			if _, err := out.Write(data); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	out.CloseWrite()
}
