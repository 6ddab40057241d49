package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMaintenanceCLI uploads through the real web tier, then runs the
// maintenance commands against the same data directory: cleanup --dry-run,
// verify and report --format json succeed with sane figures; a flipped byte
// in a stored file makes verify fail with the integrity exit status.
func TestMaintenanceCLI(t *testing.T) {
	c := newCluster(t, clusterOpts{servicesEnv: map[string]string{"DEPOT_MAINTENANCE": "off"}})
	perm := bytes.Repeat([]byte("permanent,row\n"), 50_000)
	temp := []byte("scratch,row\n")
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/perm.csv", bytes.NewReader(perm), nil), http.StatusCreated)
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/sub/temp.csv", bytes.NewReader(temp),
		map[string]string{"Depot-Class": "temporary"}), http.StatusCreated)

	env := map[string]string{
		"DEPOT_DATABASE_URL": c.dbURL,
		"DEPOT_STORAGE_URL":  "file://" + c.storageDir(),
	}

	var clean struct {
		DryRun        bool `json:"dry_run"`
		Due           int  `json:"due"`
		Deleted       int  `json:"deleted"`
		OrphanObjects int  `json:"orphan_objects"`
		OrphanRecords int  `json:"orphan_records"`
	}
	out := depotCLI(t, env, "cleanup", "--dry-run", "--json")
	if err := json.Unmarshal([]byte(out), &clean); err != nil {
		t.Fatalf("cleanup output: %v: %s", err, out)
	}
	if !clean.DryRun || clean.Due != 0 || clean.Deleted != 0 || clean.OrphanObjects != 0 || clean.OrphanRecords != 0 {
		t.Fatalf("cleanup --dry-run: %+v", clean)
	}
	if text := depotCLI(t, env, "cleanup", "--dry-run"); !strings.Contains(text, "dry run") {
		t.Fatalf("cleanup text output: %s", text)
	}

	var ver struct {
		Files, Verified, Failed int
		Bytes                   int64
	}
	out = depotCLI(t, env, "verify", "--json")
	if err := json.Unmarshal([]byte(out), &ver); err != nil {
		t.Fatalf("verify output: %v: %s", err, out)
	}
	if ver.Files != 2 || ver.Verified != 2 || ver.Failed != 0 || ver.Bytes != int64(len(perm)+len(temp)) {
		t.Fatalf("verify: %+v", ver)
	}

	var rep struct {
		Total struct {
			Files, TemporaryFiles, PermanentFiles int
			Bytes                                 int64
			PendingCleanups                       int `json:"pending_cleanups"`
		}
		Cohorts []struct{ Cohort string }
	}
	out = depotCLI(t, env, "report", "--format", "json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report output: %v: %s", err, out)
	}
	if rep.Total.Files != 2 || rep.Total.Bytes != int64(len(perm)+len(temp)) || len(rep.Cohorts) != 1 ||
		rep.Cohorts[0].Cohort != "c1" || rep.Total.PendingCleanups != 1 {
		t.Fatalf("report: %s", out)
	}
	if strings.Contains(out, "perm.csv") {
		t.Fatal("file name in report")
	}
	if html := depotCLI(t, env, "report", "--format", "html"); !strings.Contains(html, "<svg") {
		t.Fatal("html report without chart")
	}
	if list := depotCLI(t, env, "report", "--list"); strings.Count(list, "\n") != 3 {
		t.Fatalf("report --list: %q", list)
	}
	if jobs := depotCLI(t, env, "jobs"); !strings.Contains(jobs, "verify") || !strings.Contains(jobs, "success") {
		t.Fatalf("jobs: %s", jobs)
	}

	// Flip one byte of the stored permanent file.
	p := c.storedPath("c1/perm.csv")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x20
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := depotCLIResult(env, "verify")
	if code != 6 {
		t.Fatalf("verify after corruption: exit %d, want 6\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "failed: 1") || strings.Contains(stderr+stdout, "perm.csv") {
		t.Fatalf("verify output: %s / %s", stdout, stderr)
	}
	audit := depotCLI(t, map[string]string{"DEPOT_DATABASE_URL": c.dbURL}, "audit", "show", "--action", "integrity.failed")
	if !strings.Contains(audit, "perm.csv") {
		t.Fatalf("integrity.failed not audited: %s", audit)
	}
}

// TestMaintenanceScheduled runs the services process with the River
// scheduler on a 1 s cleanup period: a temporary file whose TTL has passed
// disappears without any command, a permanent one stays, and the runs are
// listed by depot jobs.
func TestMaintenanceScheduled(t *testing.T) {
	c := newCluster(t, clusterOpts{servicesEnv: map[string]string{
		"DEPOT_CLEANUP_INTERVAL": "1s", "DEPOT_TEMP_TTL": "1s",
	}})
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/keep.csv", strings.NewReader("keep"), nil), http.StatusCreated)
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/tmp.csv", strings.NewReader("tmp"),
		map[string]string{"Depot-Class": "temporary"}), http.StatusCreated)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp := c.do("HEAD", "/api/v1/files/c1/tmp.csv", nil, nil)
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("temporary file still there after 20 s (status %d)", resp.StatusCode)
		}
		time.Sleep(250 * time.Millisecond)
	}
	expectStatus(t, c.do("HEAD", "/api/v1/files/c1/keep.csv", nil, nil), http.StatusOK)
	jobs := depotCLI(t, map[string]string{"DEPOT_DATABASE_URL": c.dbURL}, "jobs", "--job", "cleanup")
	if !strings.Contains(jobs, "schedule") || !strings.Contains(jobs, "success") {
		t.Fatalf("depot jobs: %s", jobs)
	}
	audit := depotCLI(t, map[string]string{"DEPOT_DATABASE_URL": c.dbURL}, "audit", "show", "--action", "cleanup.completed")
	if !strings.Contains(audit, "tmp.csv") {
		t.Fatalf("cleanup not audited: %s", audit)
	}
}
