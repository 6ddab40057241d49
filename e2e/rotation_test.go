package e2e

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"depot/internal/httpauth"
)

// TestKeyRotationWithoutDowntime rotates the internal key the way
// docs/deployment.md says — add the new key on services, switch web, drop
// the old key — while uploads keep running, and expects not one to fail.
func TestKeyRotationWithoutDowntime(t *testing.T) {
	dir := t.TempDir()
	svcKeys, webKey := filepath.Join(dir, "internal-keys"), filepath.Join(dir, "internal-key")
	oldKey, newKey := httpauth.NewKey(), httpauth.NewKey()
	write := func(path string, keys ...string) {
		t.Helper()
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(svcKeys, oldKey)
	write(webKey, oldKey)
	c := newCluster(t, clusterOpts{
		servicesEnv: map[string]string{"DEPOT_INTERNAL_KEYS": "", "DEPOT_INTERNAL_KEYS_FILE": svcKeys},
		webEnv:      map[string]string{"DEPOT_INTERNAL_KEY": "", "DEPOT_INTERNAL_KEY_FILE": webKey},
	})

	var failures, done atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := strings.Repeat(fmt.Sprintf("w%d-%d;", w, i), 2000)
				req, _ := http.NewRequest("PUT", fmt.Sprintf("%s/api/v1/files/c1/rot/%d-%d.txt", c.web.url(), w, i), strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+c.token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil || resp.StatusCode != http.StatusCreated {
					failures.Add(1)
					if resp != nil {
						t.Logf("upload failed: %d", resp.StatusCode)
					}
				}
				if resp != nil {
					resp.Body.Close()
				}
				done.Add(1)
			}
		}()
	}
	pause := func() { time.Sleep(3 * keyReloadPause) }
	pause()
	write(svcKeys, oldKey, newKey) // 1. services accepts both
	pause()
	write(webKey, newKey) // 2. web signs with the new key
	pause()
	write(svcKeys, newKey) // 3. the old key is retired
	pause()
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || done.Load() < 10 {
		t.Fatalf("%d of %d uploads failed during the rotation", failures.Load(), done.Load())
	}
	// The old key no longer opens the internal API.
	req, _ := http.NewRequest("GET", c.services.url()+"/internal/v1/objects?limit=1", nil)
	req.Header.Set("Depot-Prefix", "c1/")
	req.Header.Set("Depot-User-Token", c.token)
	signInternal(req, oldKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, resp, http.StatusUnauthorized)
	if !strings.Contains(c.services.logs(), "internal keys reloaded") || !strings.Contains(c.web.logs(), "internal keys reloaded") {
		t.Fatal("the tiers did not log the key reloads")
	}
}

// keyReloadPause is the key files' polling interval in the tiers.
const keyReloadPause = 2 * time.Second
