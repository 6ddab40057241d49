package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"depot"
	"depot/servicedb"
)

// TestSignInThrottle runs the sign-in throttle through the real processes,
// behind a trusted proxy that names each client's address: four bad tokens
// and one good sign-in, over and over, from one address are refused after
// 20 failures (a success used to reset the count), and ten addresses of one
// /24 are refused together after 50 (spreading guesses over a network used
// to multiply them), while another network is not.
func TestSignInThrottle(t *testing.T) {
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_TRUSTED_PROXIES": "127.0.0.1/32"}})
	from := func(token, addr string) int {
		resp := c.doAs(token, "GET", "/api/v1/me", nil, map[string]string{"X-Forwarded-For": addr})
		readAll(t, resp)
		return resp.StatusCode
	}
	parallel := func(n int, f func(i int)) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); f(i) }()
		}
		wg.Wait()
	}

	const attacker = "203.0.113.7"
	for round := range 5 {
		parallel(4, func(int) {
			if got := from("not-a-token", attacker); got != http.StatusUnauthorized {
				t.Errorf("round %d: a bad token got %d, want 401", round, got)
			}
		})
		if got := from(c.token, attacker); got != http.StatusOK && round < 4 {
			t.Fatalf("round %d: a good sign-in got %d", round, got)
		}
	}
	if got := from(c.token, attacker); got != http.StatusTooManyRequests {
		t.Fatalf("after 20 failures interleaved with good sign-ins: %d, want 429", got)
	}

	parallel(10, func(i int) {
		for range 5 {
			from("not-a-token", fmt.Sprintf("198.51.100.%d", i+1))
		}
	})
	if got := from("not-a-token", "198.51.100.200"); got != http.StatusTooManyRequests {
		t.Errorf("a new address of a network with 50 failures: %d, want 429", got)
	}
	if got := from(c.token, "192.0.2.1"); got != http.StatusOK {
		t.Errorf("another network: %d, want 200", got)
	}
}

// TestEveryRouteAuditsMissingCredentials: requests without credentials, or
// with a bad token, to tus (POST, HEAD, PATCH, DELETE) and to bad paths
// reach services, which refuses them 401 and records auth.failed (before,
// web refused them itself: unaudited, unthrottled); enough of them from one
// address are throttled (429) like failed GETs. A valid token with a bad
// path still gets 400.
func TestEveryRouteAuditsMissingCredentials(t *testing.T) {
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_TRUSTED_PROXIES": "127.0.0.1/32"}})
	id := strings.Repeat("ab", 16)
	requests := []struct {
		name, method, path string
		hdr                map[string]string
	}{
		{"tus POST", "POST", tusPath, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": "1", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "x")}},
		{"tus HEAD", "HEAD", tusPath + id, map[string]string{"Tus-Resumable": "1.0.0"}},
		{"tus PATCH", "PATCH", tusPath + id, map[string]string{"Tus-Resumable": "1.0.0", "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}},
		{"tus DELETE", "DELETE", tusPath + id, map[string]string{"Tus-Resumable": "1.0.0"}},
		{"tus without Tus-Resumable", "POST", tusPath, nil},
		{"tus with a malformed id", "HEAD", tusPath + "nope", map[string]string{"Tus-Resumable": "1.0.0"}},
		{"GET of a bad path", "GET", "/api/v1/files/c1/a/../b", nil},
		{"PUT to a bad path", "PUT", "/api/v1/files/c1/a%E2%80%AEb", nil},
		{"DELETE of a folder", "DELETE", "/api/v1/files/c1/dir/", nil},
		{"a bad range", "GET", "/api/v1/files/c1/x", map[string]string{"Range": "bytes=z"}},
	}
	db := openAuditDB(t, c.dbURL)
	for i, r := range requests {
		for _, token := range []string{"", "not-a-token"} {
			addr := fmt.Sprintf("10.%d.%d.1", i, len(token)) // a network of its own: no throttle here
			hdr := map[string]string{"X-Forwarded-For": addr}
			for k, v := range r.hdr {
				hdr[k] = v
			}
			head := auditHead(t, db)
			resp := c.doAs(token, r.method, r.path, nil, hdr)
			readAll(t, resp)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s, token %q: status %d, want 401", r.name, token, resp.StatusCode)
				continue
			}
			var found bool
			for _, ev := range auditAfter(t, db, head) {
				if ev.Action == depot.ActionAuthFailed && ev.ClientIP == addr && ev.CorrelationID == resp.Header.Get("X-Request-Id") {
					found = true
				}
			}
			if !found {
				t.Errorf("%s, token %q: no auth.failed record", r.name, token)
			}
		}
	}
	// Bad paths without a token, from one address: throttled like any
	// failed sign-in.
	badPath := func() int {
		resp := c.doAs("", "GET", "/api/v1/files/c1/a/../b", nil, map[string]string{"X-Forwarded-For": "203.0.113.50"})
		readAll(t, resp)
		return resp.StatusCode
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() { defer wg.Done(); badPath() }()
	}
	wg.Wait()
	if last := badPath(); last != http.StatusTooManyRequests {
		t.Errorf("the 21st bad-path request without a token: %d, want 429", last)
	}
	evs, err := db.Events(t.Context(), servicedb.Filter{Action: depot.ActionAuthThrottled})
	if err != nil || len(evs) == 0 {
		t.Errorf("no auth.throttled record (%v)", err)
	}
	// With a valid token the same requests are the client's mistakes.
	expectStatus(t, c.do("GET", "/api/v1/files/c1/a/../b", nil, nil), http.StatusBadRequest)
	resp := tusReq(t, c.web.url(), c.token, "HEAD", tusPath+"nope", nil, nil)
	wantStatus(t, "malformed id with a token", resp, http.StatusNotFound)
}
