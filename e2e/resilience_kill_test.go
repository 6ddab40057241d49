package e2e

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"
)

// killMidUpload runs one tus upload of size bytes through cl and, once
// proxy has forwarded killAt bytes, calls kill (which SIGKILLs a tier and
// starts it again). It checks that the client resumed from a durable
// offset > 0 after the kill and that the file is byte-exact with one
// upload.completed record.
func killMidUpload(t *testing.T, c *cluster, cl *tusClient, proxy *faultProxy, name string, seed uint64, size, killAt int64, kill func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var offsets []int64
	killed := make(chan int64, 1)
	go func() {
		for proxy.up.Load() < killAt {
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
		kill()
		mu.Lock()
		killed <- int64(len(offsets))
		mu.Unlock()
	}()
	wantSHA := payloadSHA(seed, size)
	r, err := cl.upload(ctx, name, seed, size, func(off int64) {
		mu.Lock()
		offsets = append(offsets, off)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	var before int64
	select {
	case before = <-killed:
	default:
		t.Fatalf("the upload finished before the kill (%d bytes through the proxy)", proxy.up.Load())
	}
	mu.Lock()
	after := offsets[before:]
	mu.Unlock()
	t.Logf("PATCH offsets %v (kill after %d PATCHes); %d resumes, %d MiB re-sent", offsets, before, r.resumes, r.resent>>20)
	if r.resumes == 0 || len(after) == 0 || after[0] == 0 {
		t.Errorf("after the kill the client resumed at %v, want a durable offset > 0", after)
	}
	got, n, err := fileSHA(c.storedPath("c1/" + name))
	if kek := c.svcEnv["DEPOT_KEK_FILE"]; kek != "" && err == nil { // encryption at rest
		var b []byte
		if b, err = os.ReadFile(c.storedPath("c1/" + name)); err == nil {
			b, err = ageDecrypt(kek, b)
		}
		got, n = sha(b), int64(len(b))
	}
	if err != nil || n != size || got != wantSHA {
		t.Fatalf("stored c1/%s: err %v, %d bytes, sha %s, want %d bytes sha %s", name, err, n, got, size, wantSHA)
	}
	if n := len(completedRecords(t, c, "c1/"+name)); n != 1 {
		t.Fatalf("%d upload.completed records, want 1", n)
	}
}

// TestResilienceServicesKilled SIGKILLs the services process in the middle
// of a tus upload and starts it again on the same data. The web tier keeps
// its services URL (a proxy that is re-pointed at the new process); the
// client, retrying HEAD until services answers, resumes from the last
// durable offset and the file completes byte-exact.
func TestResilienceServicesKilled(t *testing.T) {
	webEnv, svcEnv := resilienceEnv(8)
	var back *faultProxy
	c := newCluster(t, clusterOpts{webEnv: webEnv, servicesEnv: svcEnv, servicesURL: func(addr string) string {
		back = newFaultProxy(t, addr, nil)
		return back.url()
	}})
	cl := newTusClient(c.web.url, c.token)
	defer cl.close()
	killMidUpload(t, c, cl, back, "kill/services.bin", 301, 96<<20, 24<<20, func() {
		old := c.services.pid()
		c.services.kill()
		// Stay down longer than web's chunk retries (about 1.3 s), so
		// that the client, not only the web tier, has to resume.
		time.Sleep(2 * time.Second)
		c.startServices(svcEnv)
		back.setTarget(c.services.addr)
		t.Logf("services pid %d killed, pid %d started", old, c.services.pid())
	})
}

// TestResilienceWebKilled SIGKILLs the web process in the middle of a tus
// upload and starts another; the client's address (a proxy) now leads to the
// new process, and the upload resumes from the durable offset.
func TestResilienceWebKilled(t *testing.T) {
	webEnv, svcEnv := resilienceEnv(8)
	c := newCluster(t, clusterOpts{webEnv: webEnv, servicesEnv: svcEnv})
	front := newFaultProxy(t, c.web.addr, nil)
	cl := newTusClient(front.url, c.token)
	defer cl.close()
	killMidUpload(t, c, cl, front, "kill/web.bin", 302, 96<<20, 24<<20, func() {
		old := c.web.pid()
		c.web.kill()
		c.startWeb(c.services.url(), webEnv)
		front.setTarget(c.web.addr)
		t.Logf("web pid %d killed, pid %d started", old, c.web.pid())
	})
}
