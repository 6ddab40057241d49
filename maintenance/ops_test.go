package maintenance_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"depot"
	"depot/maintenance"
	"depot/metrics"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// TestVerifyWithDamageIsIntegrityFailed: a verification pass that finds a
// damaged file is recorded as integrity_failed — in maint_runs and in
// depot_job_runs_total, which the alert rule DepotIntegrityFailure reads —
// not as success; it still counts as a completed run for the missed-run
// check. Before the fix both said success.
func TestVerifyWithDamageIsIntegrityFailed(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		ms := metrics.New("services")
		f := newFixture(t, e, nil, func(c *maintenance.Config) { c.Metrics = ms })
		runs := func(outcome string) float64 {
			return testutil.ToFloat64(ms.JobRuns.WithLabelValues(maintenance.JobVerify, outcome))
		}
		id := f.put("c1/a.csv", bytes.Repeat([]byte("a,b\n"), 1000), depot.Permanent, 0)
		if _, err := f.m.Verify(f.ctx, maintenance.TriggerCLI); err != nil {
			t.Fatal(err)
		}
		if runs(servicedb.RunSuccess) != 1 || runs(servicedb.RunIntegrityFailed) != 0 {
			t.Fatalf("clean pass: success %v, integrity_failed %v", runs(servicedb.RunSuccess), runs(servicedb.RunIntegrityFailed))
		}
		p := f.objectPath(id)
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		raw[7] ^= 0x01
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		f.clk.Add(time.Minute)
		res, err := f.m.Verify(f.ctx, maintenance.TriggerCLI)
		if err != nil || res.Failed != 1 {
			t.Fatalf("damaged pass: %+v %v", res, err)
		}
		if runs(servicedb.RunSuccess) != 1 || runs(servicedb.RunIntegrityFailed) != 1 {
			t.Fatalf("damaged pass: success %v, integrity_failed %v", runs(servicedb.RunSuccess), runs(servicedb.RunIntegrityFailed))
		}
		if n := testutil.ToFloat64(ms.Alerts.WithLabelValues(maintenance.AlertIntegrity)); n != 1 {
			t.Fatalf("depot_alerts_total{kind=integrity_failed} = %v", n)
		}
		last, err := f.db.JobRuns(f.ctx, maintenance.JobVerify, 1)
		if err != nil || len(last) != 1 || last[0].Outcome != servicedb.RunIntegrityFailed || last[0].ErrorCode != "integrity_failed" {
			t.Fatalf("run: %+v %v", last, err)
		}
		if at, err := f.db.LastJobSuccess(f.ctx, maintenance.JobVerify); err != nil || at == nil || !at.Equal(*last[0].Finished) {
			t.Fatalf("last complete run %v (%v), want the damaged pass at %v", at, err, last[0].Finished)
		}
		if fails, _ := f.db.JobFailuresSince(f.ctx, time.Time{}); fails[maintenance.JobVerify] != 0 {
			t.Fatalf("a pass that found damage counted as a failed job: %v", fails)
		}
	})
}

// TestDryRunIsNotACleanup: cleanup --dry-run changes nothing, so it must not
// count as the last successful cleanup: neither for the report nor for the
// missed-run check (before the fix it did, hiding a cleanup that had not
// run for days).
func TestDryRunIsNotACleanup(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		ms := metrics.New("services")
		f := newFixture(t, e, nil, func(c *maintenance.Config) { c.Metrics = ms; c.CleanupInterval = time.Hour })
		up := f.clk.Now()
		f.clk.Add(3 * time.Hour)
		if _, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, true); err != nil {
			t.Fatal(err)
		}
		if at, err := f.db.LastJobSuccess(f.ctx, maintenance.JobCleanup); err != nil || at != nil {
			t.Fatalf("a dry run counted as the last cleanup: %v %v", at, err)
		}
		missed, err := f.m.CheckMissed(f.ctx, up, &sync.Map{})
		if err != nil || len(missed) == 0 || missed[0] != maintenance.JobCleanup {
			t.Fatalf("missed after a dry run only: %v %v", missed, err)
		}
		rep, err := f.m.Report(f.ctx, maintenance.TriggerCLI)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range rep.Jobs {
			if j.Job == maintenance.JobCleanup && (j.LastSuccess != nil || !j.Missed) {
				t.Fatalf("report after a dry run: %+v", j)
			}
		}
		if n := testutil.ToFloat64(ms.JobRuns.WithLabelValues(maintenance.JobCleanup, "dry_run")); n != 1 {
			t.Fatalf("depot_job_runs_total{outcome=dry_run} = %v", n)
		}
		if n := testutil.ToFloat64(ms.JobRuns.WithLabelValues(maintenance.JobCleanup, servicedb.RunSuccess)); n != 0 {
			t.Fatalf("a dry run counted as success in metrics: %v", n)
		}
		if _, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false); err != nil {
			t.Fatal(err)
		}
		if at, _ := f.db.LastJobSuccess(f.ctx, maintenance.JobCleanup); at == nil {
			t.Fatal("a real cleanup not counted")
		}
	})
}

// TestMetricsExistBeforeEvents: every job outcome and alert kind is
// exported at 0 from the start, so that an alert rule's increase() sees
// the first event (a series born at 1 has no increase).
func TestMetricsExistBeforeEvents(t *testing.T) {
	ms := metrics.New("services")
	newFixture(t, servicedbtest.Engines(t)[0], nil, func(c *maintenance.Config) { c.Metrics = ms })
	rec := httptest.NewRecorder()
	ms.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	text := rec.Body.String()
	for _, want := range []string{
		`depot_job_runs_total{job_name="verify",outcome="integrity_failed",tier="services"} 0`,
		`depot_job_runs_total{job_name="report",outcome="failure",tier="services"} 0`,
		`depot_job_runs_total{job_name="cleanup",outcome="interrupted",tier="services"} 0`,
		`depot_job_runs_total{job_name="cleanup",outcome="dry_run",tier="services"} 0`,
		`process_resident_memory_bytes{tier="services"}`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("missing %s", want)
		}
	}
	for _, kind := range maintenance.AlertKinds {
		if want := `depot_alerts_total{kind="` + kind + `",tier="services"} 0`; !strings.Contains(text, want) {
			t.Errorf("missing %s", want)
		}
	}
}

// receiver records the raw bodies POSTed to it.
type receiver struct {
	mu     sync.Mutex
	bodies [][]byte
	srv    *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		if req.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) last(t *testing.T) []byte {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bodies) == 0 {
		t.Fatal("nothing delivered")
	}
	return r.bodies[len(r.bodies)-1]
}

// TestAlertFormats: each webhook format carries the alert in the shape its
// receiver expects (Slack's text, a Teams Adaptive Card message,
// Alertmanager's postable alerts), without the cohort; reports go out in
// the json, slack and teams formats; an unknown format is refused.
func TestAlertFormats(t *testing.T) {
	ctx := t.Context()
	al := maintenance.Alert{Time: time.Date(2026, 11, 29, 17, 20, 0, 0, time.UTC), Kind: maintenance.AlertIntegrity,
		Severity: "critical", Job: "verify", Node: "svc-1", Message: "a stored file failed integrity verification",
		Code: "hash_mismatch", AuditSeq: 4711, Cohort: "secret-cohort"}
	rc := newReceiver(t)
	send := func(format string) []byte {
		t.Helper()
		a := &maintenance.Alerter{URL: rc.srv.URL, Format: format, Retries: 1, Backoff: time.Millisecond}
		if err := a.Send(ctx, al); err != nil {
			t.Fatalf("%s: %v", format, err)
		}
		return rc.last(t)
	}

	var plain maintenance.Alert
	if err := json.Unmarshal(send("json"), &plain); err != nil || plain.Kind != al.Kind || plain.AuditSeq != 4711 {
		t.Fatalf("json: %+v %v", plain, err)
	}
	var slack struct{ Text string }
	if body := send("slack"); json.Unmarshal(body, &slack) != nil || !strings.Contains(slack.Text, "integrity_failed") ||
		!strings.Contains(slack.Text, "4711") || strings.Contains(string(body), "secret-cohort") {
		t.Fatalf("slack: %s", body)
	}
	var teams struct {
		Type        string
		Attachments []struct {
			ContentType string
			Content     struct {
				Type, Version string
				Body          []map[string]any
			}
		}
	}
	if body := send("teams"); json.Unmarshal(body, &teams) != nil || teams.Type != "message" || len(teams.Attachments) != 1 ||
		teams.Attachments[0].ContentType != "application/vnd.microsoft.card.adaptive" ||
		teams.Attachments[0].Content.Type != "AdaptiveCard" || len(teams.Attachments[0].Content.Body) < 2 ||
		strings.Contains(string(body), "secret-cohort") {
		t.Fatalf("teams: %s", body)
	}
	var am []struct {
		Labels      map[string]string
		Annotations map[string]string
		StartsAt    time.Time
	}
	if body := send("alertmanager"); json.Unmarshal(body, &am) != nil || len(am) != 1 ||
		am[0].Labels["alertname"] != "DepotIntegrityFailure" || am[0].Labels["severity"] != "critical" ||
		am[0].Annotations["audit_seq"] != "4711" || !am[0].StartsAt.Equal(al.Time) || strings.Contains(string(body), "secret-cohort") {
		t.Fatalf("alertmanager: %s", body)
	}
	if err := (&maintenance.Alerter{URL: rc.srv.URL, Format: "pager"}).Send(ctx, al); err == nil {
		t.Fatal("unknown format accepted")
	}

	rep := maintenance.Report{ID: 9, Generated: al.Time, Total: maintenance.CohortStats{Cohort: "total", Files: 3, Bytes: 2048}}
	for _, format := range maintenance.ReportFormats {
		a := &maintenance.Alerter{URL: rc.srv.URL, Format: format, Retries: 1, Backoff: time.Millisecond}
		if err := a.SendReport(ctx, rep); err != nil {
			t.Fatalf("report %s: %v", format, err)
		}
		body := string(rc.last(t))
		if !strings.Contains(body, `"total"`) && !strings.Contains(body, "total") {
			t.Fatalf("report %s: %s", format, body)
		}
	}
	if err := (&maintenance.Alerter{URL: rc.srv.URL, Format: "alertmanager"}).SendReport(ctx, rep); err == nil {
		t.Fatal("a report in the alertmanager format accepted")
	}
}
