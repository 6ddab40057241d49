package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestCleanupRequestForwarded sends an operator's cleanup request to the web
// tier, which forwards it to services: only an admin may ask, a due temporary
// file is removed, a permanent one stays, nothing is deleted on web.
func TestCleanupRequestForwarded(t *testing.T) {
	// Temporary files are due at once.
	c := newCluster(t, clusterOpts{servicesEnv: map[string]string{"DEPOT_TEMP_TTL": "1ms", "DEPOT_MAINTENANCE": "off"}})
	depotCLI(t, c.dbEnv(), "users", "add", "root", "--admin")
	admin := strings.TrimSpace(depotCLI(t, c.dbEnv(), "tokens", "create", "root"))

	expectStatus(t, c.do("PUT", "/api/v1/files/c1/tmp/scratch.csv", strings.NewReader("temporary"), map[string]string{"Depot-Class": "temporary"}), http.StatusCreated)
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/keep/submission.csv", strings.NewReader("permanent"), nil), http.StatusCreated)

	expectStatus(t, c.doAs(c.token, "POST", "/api/v1/admin/cleanup", nil, nil), http.StatusForbidden)
	var res struct {
		DryRun  bool `json:"dry_run"`
		Due     int  `json:"due"`
		Deleted int  `json:"deleted"`
	}
	body := expectStatus(t, c.doAs(admin, "POST", "/api/v1/admin/cleanup?dry_run=1", nil, nil), http.StatusOK)
	if err := json.Unmarshal(body, &res); err != nil || !res.DryRun || res.Due != 1 || res.Deleted != 0 {
		t.Fatalf("dry run answered %s (%v)", body, err)
	}
	expectStatus(t, c.do("GET", "/api/v1/files/c1/tmp/scratch.csv", nil, nil), http.StatusOK) // a dry run deletes nothing
	body = expectStatus(t, c.doAs(admin, "POST", "/api/v1/admin/cleanup", nil, nil), http.StatusOK)
	res = struct {
		DryRun  bool `json:"dry_run"`
		Due     int  `json:"due"`
		Deleted int  `json:"deleted"`
	}{}
	if err := json.Unmarshal(body, &res); err != nil || res.DryRun || res.Due != 1 || res.Deleted != 1 {
		t.Fatalf("cleanup answered %s (%v)", body, err)
	}
	expectStatus(t, c.do("GET", "/api/v1/files/c1/tmp/scratch.csv", nil, nil), http.StatusNotFound)
	expectStatus(t, c.do("GET", "/api/v1/files/c1/keep/submission.csv", nil, nil), http.StatusOK)
}
