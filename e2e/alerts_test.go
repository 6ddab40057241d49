//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// alertReceiver is the webhook endpoint of a test: it keeps every alert
// and report the services process POSTs, raw.
type alertReceiver struct {
	srv     *httptest.Server
	mu      sync.Mutex
	alerts  map[string][]string // kind → bodies
	reports []string
	arrived chan struct{} // pulsed on every delivery
}

func newAlertReceiver(t *testing.T) *alertReceiver {
	r := &alertReceiver{alerts: map[string][]string{}, arrived: make(chan struct{}, 1)}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		switch req.URL.Path {
		case "/alerts":
			var al struct{ Kind string }
			_ = json.Unmarshal(b, &al)
			r.alerts[al.Kind] = append(r.alerts[al.Kind], string(b))
		case "/reports":
			r.reports = append(r.reports, string(b))
		}
		r.mu.Unlock()
		select {
		case r.arrived <- struct{}{}:
		default:
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// waitFor waits until cond holds, re-checking at every delivery (and at
// least once a second), for at most d.
func (r *alertReceiver) waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.arrived:
		case <-time.After(time.Second):
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			kinds := map[string]int{}
			for k, v := range r.alerts {
				kinds[k] = len(v)
			}
			t.Fatalf("after %v still waiting for %s; alerts so far %v, reports %d", d, what, kinds, len(r.reports))
		}
	}
}

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h (chattr +i).
const fsImmutableFL = 0x10

// setImmutable sets or clears the immutable attribute of a file (chattr
// +i): not even root can then delete it. The test's real fault for a
// cleanup that keeps failing.
func setImmutable(t *testing.T, path string, on bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err == nil {
		if on {
			flags |= fsImmutableFL
		} else {
			flags &^= fsImmutableFL
		}
		err = unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(flags))
	}
	if err != nil {
		t.Fatalf("chattr %v %s: %v (the test needs a file system with the immutable attribute, such as ext4, and root)", on, path, err)
	}
}

// TestAlertsDelivered runs the services binary with DEPOT_ALERT_WEBHOOK_URL
// and DEPOT_REPORT_WEBHOOK_URL pointing at a test receiver, injects a real
// fault for every alert kind, and waits until each kind arrives:
//   - integrity_failed: a byte of a stored file flipped on disk;
//   - missing_object: a stored file's object removed behind depot's back;
//   - cleanup_failing: a due temporary file made immutable (chattr +i);
//   - job_failed: the database refuses every new report (a trigger), so the
//     report job fails all its River attempts;
//   - missed_run: the report job then has not succeeded for twice its period.
//
// Before that, a scheduled storage report arrives at the report webhook.
// Both engines.
func TestAlertsDelivered(t *testing.T) {
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		t.Parallel() // most of it is waiting for River's periods
		rcv := newAlertReceiver(t)
		// Phase 1: files uploaded with no maintenance running; each 1 s
		// after upload its temporary files are due.
		c := newCluster(t, clusterOpts{dbURL: freshURL(t, e.Engine),
			servicesEnv: map[string]string{"DEPOT_MAINTENANCE": "off", "DEPOT_TEMP_TTL": "1s"}})
		for _, f := range []struct {
			name  string
			class string
		}{{"perm.csv", "permanent"}, {"gone.csv", "permanent"}, {"stuck.csv", "temporary"}, {"tmp.csv", "temporary"}} {
			expectStatus(t, c.do("PUT", "/api/v1/files/c1/"+f.name, strings.NewReader("id,value\n1,"+f.name+"\n"),
				map[string]string{"Depot-Class": f.class}), http.StatusCreated)
		}
		c.services.stop()
		obj := func(name string) string { return c.storedPath("c1/" + name) }
		raw, err := os.ReadFile(obj("perm.csv"))
		if err != nil {
			t.Fatal(err)
		}
		raw[3] ^= 0x20
		if err := os.WriteFile(obj("perm.csv"), raw, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(obj("gone.csv")); err != nil {
			t.Fatal(err)
		}
		stuck := obj("stuck.csv")
		setImmutable(t, stuck, true)
		t.Cleanup(func() { setImmutable(t, stuck, false) })

		// Phase 2: services with every job each second.
		c.startServices(map[string]string{
			"DEPOT_ALERT_WEBHOOK_URL": rcv.srv.URL + "/alerts", "DEPOT_REPORT_WEBHOOK_URL": rcv.srv.URL + "/reports",
			"DEPOT_CLEANUP_INTERVAL": "1s", "DEPOT_VERIFY_INTERVAL": "1s", "DEPOT_REPORT_INTERVAL": "1s",
			"DEPOT_STRAY_GRACE": "1s", "DEPOT_CLEANUP_MAX_FAILURES": "1", "DEPOT_METRICS_ADDR": "127.0.0.1:0",
			"DEPOT_NODE_NAME": "svc-e2e",
		})
		rcv.waitFor(t, 40*time.Second, "a report and the storage alerts", func() bool {
			return len(rcv.reports) > 0 && len(rcv.alerts["integrity_failed"]) > 0 && len(rcv.alerts["missing_object"]) > 0 &&
				len(rcv.alerts["cleanup_failing"]) > 0
		})
		rcv.mu.Lock()
		var rep struct {
			ID    int64
			Total struct{ Files int }
		}
		if err := json.Unmarshal([]byte(rcv.reports[0]), &rep); err != nil || rep.ID == 0 || rep.Total.Files < 2 { // the permanent files; cleanup may have purged the temporary ones first
			t.Fatalf("report delivered: %v %s", err, rcv.reports[0])
		}
		rcv.mu.Unlock()

		// The database now refuses new reports.
		db, err := servicedb.Open(context.Background(), c.dbURL)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		refuse := `CREATE TRIGGER refuse_reports BEFORE INSERT ON maint_reports BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`
		if e.Engine == servicedbtest.Postgres {
			refuse = `CREATE FUNCTION refuse_reports() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
				CREATE TRIGGER refuse_reports BEFORE INSERT ON maint_reports FOR EACH ROW EXECUTE FUNCTION refuse_reports()`
		}
		if _, err := db.SQL().ExecContext(context.Background(), refuse); err != nil {
			t.Fatal(err)
		}
		rcv.waitFor(t, 40*time.Second, "job_failed and missed_run", func() bool {
			return len(rcv.alerts["job_failed"]) > 0 && len(rcv.alerts["missed_run"]) > 0
		})

		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		for kind, bodies := range rcv.alerts {
			for _, b := range bodies {
				var al struct{ Kind, Severity, Node, Message, Job string }
				if err := json.Unmarshal([]byte(b), &al); err != nil || al.Node != "svc-e2e" || al.Severity == "" || al.Message == "" {
					t.Errorf("%s alert: %v %s", kind, err, b)
				}
				for _, name := range []string{"perm.csv", "gone.csv", "stuck.csv"} {
					if strings.Contains(b, name) {
						t.Errorf("%s alert names a file: %s", kind, b)
					}
				}
			}
		}
		// The report job is the one that failed and stopped succeeding
		// (cleanup may be reported missed too: its first run can come
		// after River's leader election, later than twice its period).
		for _, kind := range []string{"job_failed", "missed_run"} {
			if !strings.Contains(strings.Join(rcv.alerts[kind], "\n"), `"job":"report"`) {
				t.Errorf("no %s alert for the report job: %s", kind, rcv.alerts[kind])
			}
		}
		// What Prometheus would see: depot_alerts_total and the runs.
		m := scrapeExposition(t, c.services.metricsAddr())
		for _, kind := range []string{"integrity_failed", "missing_object", "cleanup_failing", "job_failed", "missed_run"} {
			if v := m[fmt.Sprintf(`depot_alerts_total{kind=%q,tier="services"}`, kind)]; v < 1 {
				t.Errorf("depot_alerts_total{kind=%q} = %v", kind, v)
			}
		}
		if v := m[`depot_job_runs_total{job_name="verify",outcome="integrity_failed",tier="services"}`]; v < 1 {
			t.Errorf("verify runs with damage: %v", v)
		}
		if v := m[`depot_job_runs_total{job_name="report",outcome="failure",tier="services"}`]; v < 5 {
			t.Errorf("failed report runs: %v", v)
		}
		if audit := depotCLI(t, c.dbEnv(), "audit", "show", "--action", "job.failed"); !strings.Contains(audit, "job.failed") {
			t.Errorf("job.failed not audited: %s", audit)
		}
	})
}

// TestAlertsToAlertmanager: with DEPOT_ALERT_FORMAT=alertmanager the alerts
// of a real services process are accepted by a real Alertmanager (POST
// /api/v2/alerts) and listed by it, with their labels.
func TestAlertsToAlertmanager(t *testing.T) {
	am := opsTool(t, "prometheus-alertmanager", "alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route: {receiver: none}\nreceivers: [{name: none}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	cmd := exec.Command(am, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=")
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	base := "http://" + addr
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(base + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("alertmanager exited:\n%s", logs.String())
		default:
		}
		if time.Since(start) > 15*time.Second {
			t.Fatalf("alertmanager not ready:\n%s", logs.String())
		}
	}

	c := newCluster(t, clusterOpts{servicesEnv: map[string]string{"DEPOT_MAINTENANCE": "off"}})
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/a.csv", strings.NewReader("a,b\n1,2\n"), nil), http.StatusCreated)
	c.services.stop()
	p := c.storedPath("c1/a.csv")
	raw, _ := os.ReadFile(p)
	raw[0] ^= 0x20
	if err := os.WriteFile(p, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	// One verification run from the command line, with the same settings
	// as the services process: it raises integrity_failed.
	env := c.servicesEnv(map[string]string{"DEPOT_ALERT_WEBHOOK_URL": base + "/api/v2/alerts", "DEPOT_ALERT_FORMAT": "alertmanager",
		"DEPOT_NODE_NAME": "svc-am"})
	if _, errOut, code := depotCLIResult(env, "verify"); code != 6 {
		t.Fatalf("verify: exit %d: %s", code, errOut)
	}
	resp, err := http.Get(base + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	var got []struct {
		Labels      map[string]string
		Annotations map[string]string
	}
	if err := json.Unmarshal(expectStatus(t, resp, http.StatusOK), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Labels["alertname"] != "DepotIntegrityFailure" || got[0].Labels["node"] != "svc-am" ||
		got[0].Labels["severity"] != "critical" || got[0].Annotations["audit_seq"] == "" {
		t.Fatalf("alertmanager lists %+v", got)
	}
}
