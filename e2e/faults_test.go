package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestChunkRetry puts a connection-resetting proxy between web and services:
// concurrent uploads still complete byte-exact, and a listing polled all the
// while never shows a partial file.
func TestChunkRetry(t *testing.T) { testChunkRetry(t, clusterOpts{}) }

// testChunkRetry runs TestChunkRetry on a cluster made with o (whose webEnv
// and servicesURL it sets; see TestS3ChunkRetry).
func testChunkRetry(t *testing.T, o clusterOpts) {
	var proxy *faultProxy
	o.webEnv = map[string]string{"DEPOT_CHUNK_SIZE": fmt.Sprint(1 << 20), "DEPOT_CHUNK_BACKOFF": "10ms", "DEPOT_CHUNK_RETRIES": "8"}
	o.servicesURL = func(addr string) string {
		// Every third connection is reset once a random number of request
		// bytes has passed and the stream is well inside a request body, so
		// that the cut lands in the middle of a chunk; at most 40 of them.
		var planned atomic.Int64
		proxy = newFaultProxy(t, addr, func(n int64) fault {
			if n%3 != 1 || planned.Add(1) > 40 {
				return fault{}
			}
			return fault{kind: faultReset, at: rand.Int64N(4 << 20), inBody: 128 << 10}
		})
		return "http://" + proxy.addr()
	}
	c := newCluster(t, o)

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
	t.Logf("proxy: %d connections, %d resets; %d listings polled, %d entries seen", proxy.conns.Load(), proxy.faults(), polls.Load(), seen.Load())
	if proxy.faults() == 0 {
		t.Error("the proxy injected no fault; the test proves nothing")
	}
	if polls.Load() == 0 {
		t.Error("no listing was polled during the uploads")
	}
	for _, u := range ups {
		b, err := c.stored("c1/" + u.name)
		if kek := c.svcEnv["DEPOT_KEK_FILE"]; kek != "" && err == nil {
			b, err = ageDecrypt(kek, b) // encryption at rest (TestEncryptedChunkRetry)
		}
		if err != nil || !bytes.Equal(b, u.data) {
			t.Errorf("stored %s: err %v, %d bytes, sha %s, want %s", u.name, err, len(b), sha(b), u.sum)
		}
	}
}
