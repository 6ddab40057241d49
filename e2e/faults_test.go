package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultProxy forwards TCP connections to target. Every third connection is
// reset (SO_LINGER 0, then close: the peer sees RST) once a random number of
// request bytes has passed and the stream is well inside a request body, so
// that the cut lands in the middle of a chunk. At most maxFaults resets are
// injected.
type faultProxy struct {
	ln        net.Listener
	target    string
	maxFaults int64
	conns     atomic.Int64
	faults    atomic.Int64
	wg        sync.WaitGroup
	mu        sync.Mutex
	open      map[net.Conn]bool
}

func newFaultProxy(t *testing.T, target string, maxFaults int64) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{ln: ln, target: target, maxFaults: maxFaults, open: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *faultProxy) addr() string { return p.ln.Addr().String() }

func (p *faultProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.open {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *faultProxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.open[c] = true
	} else {
		delete(p.open, c)
	}
}

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		n := p.conns.Add(1)
		cutAt := int64(-1)
		if n%3 == 1 {
			cutAt = rand.Int64N(4 << 20) // somewhere in the first few chunks
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.handle(client.(*net.TCPConn), cutAt)
		}()
	}
}

// reqLineMark ends every HTTP/1.1 request line; the bytes after the last one
// seen tell how deep into a request the stream is.
var reqLineMark = []byte(" HTTP/1.1\r\n")

func (p *faultProxy) handle(client *net.TCPConn, cutAt int64) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	server := up.(*net.TCPConn)
	p.track(client, true)
	p.track(server, true)
	defer p.track(client, false)
	defer p.track(server, false)
	done := make(chan struct{})
	go func() { // services → web, untouched
		io.Copy(client, server)
		client.CloseWrite()
		close(done)
	}()
	buf := make([]byte, 32<<10)
	var pos, lastReq int64
	var tail []byte
	for {
		n, err := client.Read(buf)
		if n > 0 {
			data := buf[:n]
			scan := append(tail, data...)
			if i := bytes.LastIndex(scan, reqLineMark); i >= 0 {
				lastReq = pos - int64(len(tail)) + int64(i)
			}
			tail = append([]byte(nil), scan[max(0, len(scan)-len(reqLineMark)):]...)
			if cutAt >= 0 && pos+int64(n) > cutAt && pos+int64(n)-lastReq > 128<<10 {
				if p.faults.Add(1) <= p.maxFaults {
					// Forward part of this read, then reset both sides.
					k := max(1, (int(cutAt-pos)%n+n)%n)
					server.Write(data[:k])
					client.SetLinger(0)
					server.SetLinger(0)
					client.Close()
					server.Close()
					<-done
					return
				}
				p.faults.Add(-1)
				cutAt = -1
			}
			pos += int64(n)
			if _, werr := server.Write(data); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	server.CloseWrite()
	<-done
	client.Close()
	server.Close()
}

// TestChunkRetry puts a connection-resetting proxy between web and services:
// concurrent uploads still complete byte-exact, and a listing polled all the
// while never shows a partial file.
func TestChunkRetry(t *testing.T) {
	var proxy *faultProxy
	c := newCluster(t, clusterOpts{
		webEnv: map[string]string{"DEPOT_CHUNK_SIZE": fmt.Sprint(1 << 20), "DEPOT_CHUNK_BACKOFF": "10ms", "DEPOT_CHUNK_RETRIES": "8"},
		servicesURL: func(addr string) string {
			proxy = newFaultProxy(t, addr, 40)
			return "http://" + proxy.addr()
		},
	})

	type upload struct {
		name string
		data []byte
		sum  string
	}
	var ups []upload
	want := map[string]upload{}
	for i := range 8 {
		n := 5<<20 + rand.IntN(15<<20)
		data, sum := payloadBytes(uint64(100+i), n)
		u := upload{fmt.Sprintf("retry/file-%d.bin", i), data, sum}
		ups = append(ups, u)
		want[u.name] = u
	}

	// Poll the listing during the uploads.
	stop := make(chan struct{})
	var polls, seen atomic.Int64
	pollErr := make(chan error, 1)
	go func() {
		defer close(pollErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			req, _ := http.NewRequestWithContext(context.Background(), "GET", c.web.url()+"/api/v1/files/c1/retry/", nil)
			req.Header.Set("Authorization", "Bearer "+c.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				pollErr <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				// The listing call itself may hit an injected fault and fail
				// after its retries; that is not a partial file.
				time.Sleep(5 * time.Millisecond)
				continue
			}
			var page struct {
				Files []fileJSON `json:"files"`
			}
			if err := json.Unmarshal(b, &page); err != nil {
				pollErr <- fmt.Errorf("listing: %v: %s", err, b)
				return
			}
			polls.Add(1)
			for _, f := range page.Files {
				u, ok := want[f.Path]
				if !ok || f.Size != int64(len(u.data)) || f.SHA256 != u.sum {
					pollErr <- fmt.Errorf("listing shows %+v, not a final file", f)
					return
				}
				seen.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, len(ups))
	for _, u := range ups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(context.Background(), "PUT", c.web.url()+"/api/v1/files/c1/"+u.name, bytes.NewReader(u.data))
			req.Header.Set("Authorization", "Bearer "+c.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var got fileJSON
			if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &got) != nil || got.Size != int64(len(u.data)) || got.SHA256 != u.sum {
				errs <- fmt.Errorf("PUT %s: status %d: %s", u.name, resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := <-pollErr; err != nil {
		t.Error(err)
	}
	t.Logf("proxy: %d connections, %d resets; %d listings polled, %d entries seen", proxy.conns.Load(), proxy.faults.Load(), polls.Load(), seen.Load())
	if proxy.faults.Load() == 0 {
		t.Error("the proxy injected no fault; the test proves nothing")
	}
	if polls.Load() == 0 {
		t.Error("no listing was polled during the uploads")
	}
	for _, u := range ups {
		b, err := os.ReadFile(filepath.Join(c.storageDir(), "c1", u.name))
		if err != nil || !bytes.Equal(b, u.data) {
			t.Errorf("stored %s: err %v, %d bytes, sha %s, want %s", u.name, err, len(b), sha(b), u.sum)
		}
	}
}
