package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestTrustedUserHeader signs a user in through a single-sign-on proxy's
// header: honoured only when web is configured for it, the request comes
// from a trusted proxy address, and services trusts web's users.
func TestTrustedUserHeader(t *testing.T) {
	c := newCluster(t, clusterOpts{
		webEnv:      map[string]string{"DEPOT_TRUSTED_USER_HEADER": "X-Remote-User", "DEPOT_TRUSTED_PROXIES": "127.0.0.1/32"},
		servicesEnv: map[string]string{"DEPOT_TRUST_WEB_USERS": "on"},
	})
	resp := c.doAs("", "GET", "/api/v1/me", nil, map[string]string{"X-Remote-User": "alice"})
	var me struct {
		User    string `json:"user"`
		Method  string `json:"auth_method"`
		Cohorts []struct{ Name, Role string }
	}
	if err := json.Unmarshal(expectStatus(t, resp, http.StatusOK), &me); err != nil {
		t.Fatal(err)
	}
	if me.User != "alice" || me.Method != "trusted_header" || len(me.Cohorts) != 1 || me.Cohorts[0].Name != "c1" {
		t.Fatalf("me: %+v", me)
	}
	expectStatus(t, c.doAs("", "PUT", "/api/v1/files/c1/sso.txt", strings.NewReader("via sso"), map[string]string{"X-Remote-User": "alice"}), http.StatusCreated)
	expectStatus(t, c.doAs("", "GET", "/api/v1/me", nil, map[string]string{"X-Remote-User": "nobody"}), http.StatusUnauthorized)

	// A web tier that is not configured for it ignores the header.
	web2 := start(t, map[string]string{
		"DEPOT_ROLE": "web", "DEPOT_ADDR": "127.0.0.1:0", "DEPOT_SERVICES_URL": c.services.url(), "DEPOT_INTERNAL_KEY": c.key,
	})
	req, _ := http.NewRequest("GET", web2.url()+"/api/v1/me", nil)
	req.Header.Set("X-Remote-User", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	expectStatus(t, resp, http.StatusUnauthorized)

	// Services that does not trust web's users refuses the vouched user.
	c2 := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_TRUSTED_USER_HEADER": "X-Remote-User", "DEPOT_TRUSTED_PROXIES": "127.0.0.1"}})
	expectStatus(t, c2.doAs("", "GET", "/api/v1/me", nil, map[string]string{"X-Remote-User": "alice"}), http.StatusUnauthorized)
}
