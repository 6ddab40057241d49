package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// loadGen uploads, overwrites, deletes and purges files of cohort c1
// through the web tier until stopped, remembering the bytes of every
// version it made.
type loadGen struct {
	c       *cluster
	mu      sync.Mutex
	content map[string][]byte // version → bytes
	ops     atomic.Int64
	stop    chan struct{}
	wg      sync.WaitGroup
	errs    chan error
}

func newLoadGen(c *cluster) *loadGen {
	return &loadGen{c: c, content: map[string][]byte{}, stop: make(chan struct{}), errs: make(chan error, 16)}
}

// put uploads one version and records its bytes.
func (g *loadGen) put(name string, seed uint64) (string, error) {
	data, _ := payloadBytes(seed, 1_000+int(seed%61)*1_000)
	resp, err := g.c.tryPut("/api/v1/files/c1/"+name, data)
	if err != nil {
		return "", err
	}
	var v versionJSON
	if err := json.Unmarshal(resp, &v); err != nil || v.Version == "" {
		return "", fmt.Errorf("PUT %s: %v: %s", name, err, resp)
	}
	g.mu.Lock()
	g.content[v.Version] = data
	g.mu.Unlock()
	return v.Version, nil
}

// run starts workers, each on files of its own, cycling through
// upload, overwrite, delete and purge of an older version.
func (g *loadGen) run(workers int) {
	for w := range workers {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-g.stop:
					return
				default:
				}
				name := fmt.Sprintf("load/w%d/f%d.csv", w, i/4)
				var err error
				switch i % 4 {
				case 0, 1: // create, overwrite
					_, err = g.put(name, uint64(w*1_000_000+i))
				case 2: // purge the older version for good
					if old := g.older(name); old == "" {
						err = fmt.Errorf("%s has no older version", name)
					} else {
						err = g.c.expect("DELETE", "/api/v1/files/c1/"+name+"?purge&version="+old, http.StatusNoContent)
					}
				case 3: // delete: a marker; cleanup purges it when the retention ends
					err = g.c.expect("DELETE", "/api/v1/files/c1/"+name, http.StatusNoContent)
				}
				if err != nil {
					g.errs <- err
					return
				}
				g.ops.Add(1)
			}
		}()
	}
}

// older returns the ID of the non-current version of c1/name.
func (g *loadGen) older(name string) string {
	resp, err := g.c.tryDoBody("GET", "/api/v1/files/c1/"+name+"?versions")
	if err != nil {
		return ""
	}
	var h struct {
		Versions []struct {
			Version string `json:"version"`
			Current bool   `json:"current"`
		} `json:"versions"`
	}
	_ = json.Unmarshal(resp, &h)
	for _, v := range h.Versions {
		if !v.Current {
			return v.Version
		}
	}
	return ""
}

func (g *loadGen) finish(t *testing.T) {
	t.Helper()
	close(g.stop)
	g.wg.Wait()
	select {
	case err := <-g.errs:
		t.Fatalf("load: %v", err)
	default:
	}
}

// tryPut PUTs data as alice and returns the body of a 201 answer.
func (c *cluster) tryPut(path string, data []byte) ([]byte, error) {
	req, err := http.NewRequest("PUT", c.web.url()+path, bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusCreated {
		err = fmt.Errorf("PUT: status %d: %s", resp.StatusCode, b)
	}
	return b, err
}

// tryDoBody sends a request as alice and returns the body of a 200 answer.
func (c *cluster) tryDoBody(method, path string) ([]byte, error) {
	req, err := http.NewRequest(method, c.web.url()+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: status %d: %s", method, resp.StatusCode, b)
	}
	return b, err
}

// expect sends a body-less request as alice and checks its status.
func (c *cluster) expect(method, path string, status int) error {
	resp, err := c.tryDo(method, path, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != status {
		return fmt.Errorf("%s %s: status %d, want %d", method, path, resp.StatusCode, status)
	}
	return nil
}
