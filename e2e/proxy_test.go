package e2e

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestForwardedClientAddress runs web behind a "reverse proxy" (the test,
// from 127.0.0.1, listed in DEPOT_TRUSTED_PROXIES): the client's address is
// taken from X-Forwarded-For, so the audit trail names the real client and
// the failed sign-in throttle blocks one client, not everyone behind the
// proxy. Without the setting the header is ignored (a client could forge it).
func TestForwardedClientAddress(t *testing.T) {
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_TRUSTED_PROXIES": "127.0.0.1/32"}})
	const attacker, alice = "203.0.113.5", "198.51.100.7"

	// The attacker's bad tokens, all at once (each is slowed after the
	// fifth), then one more: refused.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := c.doAs("not-a-token", "GET", "/api/v1/me", nil, map[string]string{"X-Forwarded-For": attacker})
			resp.Body.Close()
		}()
	}
	wg.Wait()
	expectStatus(t, c.doAs("not-a-token", "GET", "/api/v1/me", nil, map[string]string{"X-Forwarded-For": attacker}), http.StatusTooManyRequests)

	// Alice, behind the same proxy, is not blocked; her upload is audited
	// with her address, the right-most one that is not a trusted proxy
	// (the left-most was written by her client and proves nothing).
	expectStatus(t, c.doAs(c.token, "GET", "/api/v1/me", nil, map[string]string{"X-Forwarded-For": alice}), http.StatusOK)
	expectStatus(t, c.doAs(c.token, "PUT", "/api/v1/files/c1/fwd.txt", strings.NewReader("forwarded"),
		map[string]string{"X-Forwarded-For": "10.9.9.9, " + alice + ", 127.0.0.1"}), http.StatusCreated)
	recs := completedRecords(t, c, "c1/fwd.txt")
	if len(recs) != 1 || recs[0].ClientIP != alice {
		t.Fatalf("upload.completed records %+v, want one with client_ip %s", recs, alice)
	}

	// A web tier that trusts no proxy ignores the header.
	c2 := newCluster(t, clusterOpts{})
	expectStatus(t, c2.doAs(c2.token, "PUT", "/api/v1/files/c1/direct.txt", strings.NewReader("direct"),
		map[string]string{"X-Forwarded-For": alice}), http.StatusCreated)
	if recs := completedRecords(t, c2, "c1/direct.txt"); len(recs) != 1 || recs[0].ClientIP != "127.0.0.1" {
		t.Fatalf("upload.completed records %+v, want one with client_ip 127.0.0.1", recs)
	}
}
