package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/checkpoint"
	"depot/checkpoint/checkpointtest"
	"depot/maintenance"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// alertChannel is the operator's alert webhook: every alert POSTed to it
// arrives on the channel.
type alertChannel struct {
	url    string
	alerts chan maintenance.Alert
}

func newAlertChannel(t *testing.T) *alertChannel {
	t.Helper()
	r := &alertChannel{alerts: make(chan maintenance.Alert, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var a maintenance.Alert
		if err := json.NewDecoder(req.Body).Decode(&a); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case r.alerts <- a:
		default:
		}
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// wait returns the first alert of kind from job ("" for any job), failing
// after a minute.
func (r *alertChannel) wait(t *testing.T, kind, job string) maintenance.Alert {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case a := <-r.alerts:
			if a.Kind == kind && (job == "" || a.Job == job) {
				return a
			}
			t.Logf("alert on the way: %s (%s): %s", a.Kind, a.Job, a.Message)
		case <-deadline:
			t.Fatalf("no %s alert from %q within a minute", kind, job)
		}
	}
}

// auditKeys runs depot keys generate-signing and returns the key file and
// the public key file.
func auditKeys(t *testing.T) (string, string) {
	t.Helper()
	key := filepath.Join(t.TempDir(), "audit.key")
	pub := strings.TrimSpace(depotCLI(t, nil, "keys", "generate-signing", key, "--name", "e2e.example/depot"))
	if b, err := os.ReadFile(key + ".pub"); err != nil || strings.TrimSpace(string(b)) != pub {
		t.Fatalf("public key file %q, printed %q: %v", b, pub, err)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("signing key mode: %v %v", st, err)
	}
	return key, key + ".pub"
}

// witnessedTrail runs a cluster with checkpoints into a witness directory:
// two uploads, a checkpoint on demand, optionally a backup (into
// backupDir), two more uploads, and a stop, which writes the last
// checkpoint. It returns the witnessed sizes.
type witnessed struct {
	dbURL, key, pub, witness, storage string
	onDemand, atStop                  int64
}

func witnessedTrail(t *testing.T, engine, backupDir string) witnessed {
	t.Helper()
	w := witnessed{dbURL: freshURL(t, engine), witness: filepath.Join(t.TempDir(), "witness")}
	w.key, w.pub = auditKeys(t)
	c := newCluster(t, clusterOpts{dbURL: w.dbURL, servicesEnv: map[string]string{
		"DEPOT_AUDIT_SIGNING_KEY_FILE": w.key, "DEPOT_AUDIT_WITNESS_DIR": w.witness,
	}})
	w.storage = "file://" + c.storageDir()
	put := func(i int) {
		data, _ := payloadBytes(uint64(500+i), 1000+i)
		expectStatus(t, c.do("PUT", fmt.Sprintf("/api/v1/files/c1/w/%d.csv", i), bytes.NewReader(data), nil), http.StatusCreated)
	}
	put(0)
	put(1)
	out := depotCLI(t, w.env(), "audit", "checkpoint")
	w.onDemand = sizeOf(t, out)
	if backupDir != "" {
		depotCLI(t, w.env(), "backup", backupDir)
	}
	put(2)
	put(3)
	c.web.stop()
	c.services.stop()
	w.atStop = latestSize(t, w)
	if w.atStop <= w.onDemand {
		t.Fatalf("no checkpoint at shutdown: the latest covers %d records, the on-demand one %d", w.atStop, w.onDemand)
	}
	return w
}

// env is the operator's environment for the audit commands.
func (w witnessed) env() map[string]string {
	return map[string]string{"DEPOT_DATABASE_URL": w.dbURL, "DEPOT_STORAGE_URL": w.storage,
		"DEPOT_AUDIT_SIGNING_KEY_FILE": w.key, "DEPOT_AUDIT_WITNESS_DIR": w.witness}
}

// sizeOf reads the size from "checkpoint: N records, …".
func sizeOf(t *testing.T, out string) int64 {
	t.Helper()
	rest, ok := strings.CutPrefix(out, "checkpoint: ")
	n, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
	if !ok || err != nil {
		t.Fatalf("depot audit checkpoint printed %q", out)
	}
	return n
}

func latestSize(t *testing.T, w witnessed) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.witness, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.Split(string(b), "\n")[1], 10, 64)
	if err != nil {
		t.Fatalf("checkpoint %q", b)
	}
	return n
}

// verifyCheckpoints runs depot audit verify --checkpoints with the public
// key only.
func verifyCheckpoints(t *testing.T, w witnessed) (string, int) {
	t.Helper()
	out, errOut, code := depotCLIResult(map[string]string{"DEPOT_DATABASE_URL": w.dbURL, "DEPOT_AUDIT_PUBLIC_KEY_FILE": w.pub},
		"audit", "verify", "--checkpoints", w.witness)
	if code != 0 && code != exitIntegrity {
		t.Fatalf("depot audit verify --checkpoints: exit %d: %s%s", code, out, errOut)
	}
	return out, code
}

// TestAuditCheckpointsCatchTampering: each way of rewriting history that a
// recomputed hash chain hides — a record rewritten with every hash
// recomputed, a forged append, a cut tail, a restore of an older backup —
// is caught by depot audit verify --checkpoints, which names the last
// checkpoint that still holds, and by the scheduled audit-verify job, whose
// alert reaches the operator's webhook.
func TestAuditCheckpointsCatchTampering(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		backup  bool
		tamper  func(t *testing.T, w witnessed, db func() *servicedb.DB, backupDir string)
		problem string
		// lastHolds is the size of the last checkpoint that holds.
		lastHolds func(w witnessed) int64
	}{
		{"rewrite with the chain recomputed", false, func(t *testing.T, w witnessed, db func() *servicedb.DB, _ string) {
			checkpointtest.RewriteRecord(t, db(), w.onDemand+2, func(ev *depot.AuditEvent) {
				ev.Actor, ev.ClientIP = "mallory", "203.0.113.66"
			})
			if out, code := auditVerify(t, w.dbURL); code != 0 {
				t.Fatalf("the chain alone should still verify after a full rewrite: %s", out)
			}
		}, checkpoint.ProblemDiverged, func(w witnessed) int64 { return w.onDemand }},
		{"forged append", false, func(t *testing.T, w witnessed, open func() *servicedb.DB, _ string) {
			db := open()
			evs := auditAfter(t, db, 0)
			forged := evs[len(evs)-1]
			forged.Action, forged.Key, forged.FileName = depot.ActionDownload, "c1/w/secret.csv", "secret.csv"
			forged.Time = evs[0].Time.Add(-time.Hour) // "alice downloaded it an hour before"
			checkpointtest.AppendForged(t, db, forged)
		}, checkpoint.ProblemBackdated, func(w witnessed) int64 { return w.atStop }},
		{"cut tail", false, func(t *testing.T, w witnessed, db func() *servicedb.DB, _ string) {
			checkpointtest.CutTail(t, db(), w.atStop-w.onDemand-1)
		}, checkpoint.ProblemMissing, func(w witnessed) int64 { return w.onDemand }},
		{"rollback to an older backup", true, func(t *testing.T, w witnessed, _ func() *servicedb.DB, backupDir string) {
			depotCLI(t, w.env(), "restore", backupDir, "--force")
		}, "", func(w witnessed) int64 { return w.onDemand }},
	}
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				backupDir := ""
				if tc.backup {
					backupDir = filepath.Join(t.TempDir(), "backup")
				}
				w := witnessedTrail(t, e.Engine, backupDir)
				if out, code := verifyCheckpoints(t, w); code != 0 || !strings.Contains(out, "matches its checkpoints") {
					t.Fatalf("before tampering: exit %d:\n%s", code, out)
				}
				var db *servicedb.DB
				tc.tamper(t, w, func() *servicedb.DB { db = openAuditDB(t, w.dbURL); return db }, backupDir)
				if db != nil {
					db.Close()
				}

				out, code := verifyCheckpoints(t, w)
				t.Logf("depot audit verify --checkpoints after %s:\n%s", tc.name, out)
				if code != exitIntegrity || !strings.Contains(out, "does NOT match its checkpoints") {
					t.Fatalf("exit %d, want %d", code, exitIntegrity)
				}
				if tc.problem != "" && !strings.Contains(out, "PROBLEM "+tc.problem+":") {
					t.Fatalf("the output does not name the problem %q", tc.problem)
				}
				if want := fmt.Sprintf("last checkpoint that holds: size %d ", tc.lastHolds(w)); !strings.Contains(out, want) {
					t.Fatalf("the output does not say %q", want)
				}

				// The scheduled job finds it too and alerts.
				hook := newAlertChannel(t)
				c := &cluster{t: t, dataDir: t.TempDir(), key: testKey, dbURL: w.dbURL, storageURL: w.storage}
				c.startServices(map[string]string{
					"DEPOT_AUDIT_SIGNING_KEY_FILE": w.key, "DEPOT_AUDIT_WITNESS_DIR": w.witness,
					"DEPOT_AUDIT_VERIFY_INTERVAL": "1s", "DEPOT_ALERT_WEBHOOK_URL": hook.url,
				})
				a := hook.wait(t, maintenance.AlertAuditTampered, maintenance.JobAuditVerify)
				if a.Severity != "critical" || a.Details["last_good_size"] != strconv.FormatInt(tc.lastHolds(w), 10) {
					t.Fatalf("alert %+v", a)
				}
				if tc.problem != "" && !strings.Contains(a.Details["problems"], tc.problem) {
					t.Fatalf("alert problems %q, want %s", a.Details["problems"], tc.problem)
				}
				if strings.Contains(a.Message, "secret.csv") || strings.Contains(a.Message, "c1/") {
					t.Fatalf("the alert carries a file name: %s", a.Message)
				}
				t.Logf("alert: %s", a.Message)
			})
		}
	})
}

// TestAuditCheckpointWitnesses: checkpoints reach a directory, an S3
// prefix and an HTTP witness, on demand and at shutdown; a witness that is
// down costs no upload, raises one alert and gets the checkpoints it
// missed; and a record's inclusion is proved to a reviewer who holds only
// the public key.
func TestAuditCheckpointWitnesses(t *testing.T) {
	t.Parallel()
	key, pub := auditKeys(t)
	dir := filepath.Join(t.TempDir(), "witness")
	web := checkpointtest.NewWitnessServer()
	webSrv := httptest.NewServer(web)
	t.Cleanup(webSrv.Close)
	hook := newAlertChannel(t)
	storageURL, s3env := s3Storage(t)
	s3Witness := strings.Replace(storageURL, "/files?", "/audit-witness?", 1)
	env := map[string]string{
		"DEPOT_AUDIT_SIGNING_KEY_FILE": key, "DEPOT_AUDIT_WITNESS_DIR": dir, "DEPOT_AUDIT_WITNESS_S3": s3Witness,
		"DEPOT_AUDIT_WITNESS_URL": webSrv.URL + "/checkpoints?token=s3cret", "DEPOT_AUDIT_CHECKPOINT_RECORDS": "1",
		"DEPOT_ALERT_WEBHOOK_URL": hook.url,
	}
	for k, v := range s3env {
		env[k] = v
	}
	web.SetDown(true)
	c := newCluster(t, clusterOpts{storageURL: storageURL, storageEnv: s3env, servicesEnv: env})
	for i := range 3 {
		data, _ := payloadBytes(uint64(700+i), 2000)
		expectStatus(t, c.do("PUT", fmt.Sprintf("/api/v1/files/c1/p/%d.csv", i), bytes.NewReader(data), nil), http.StatusCreated)
	}
	a := hook.wait(t, maintenance.AlertWitnessDown, "")
	if a.Details["witness"] != "webhook" || strings.Contains(a.Message+fmt.Sprint(a.Details), "s3cret") {
		t.Fatalf("alert %+v", a)
	}
	web.SetDown(false)
	<-web.Got // the missed checkpoints are retried

	cli := map[string]string{"DEPOT_DATABASE_URL": c.dbURL}
	for k, v := range env {
		cli[k] = v
	}
	onDemand := sizeOf(t, depotCLI(t, cli, "audit", "checkpoint"))
	c.web.stop()
	c.services.stop()
	head, _, err := openAuditDB(t, c.dbURL).Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{dir, s3Witness, webSrv.URL + "/checkpoints?token=s3cret"} {
		venv := map[string]string{"DEPOT_DATABASE_URL": c.dbURL, "DEPOT_AUDIT_PUBLIC_KEY_FILE": pub}
		for k, v := range s3env {
			venv[k] = v
		}
		out := depotCLI(t, venv, "audit", "verify", "--checkpoints", src, "-v")
		if !strings.Contains(out, fmt.Sprintf("size %d signed", onDemand)) || !strings.Contains(out, fmt.Sprintf("last checkpoint that holds: size %d ", head)) {
			t.Fatalf("witness %s lacks the on-demand checkpoint (%d) or the one at shutdown (%d):\n%s", strings.SplitN(src, "?", 2)[0], onDemand, head, out)
		}
	}

	// Proof bundle for the reviewer, checked with the public key alone.
	bundle := depotCLI(t, cli, "audit", "export", "--proofs", "--checkpoints", dir, "--action", "upload.completed")
	path := filepath.Join(t.TempDir(), "bundle.jsonl")
	if err := os.WriteFile(path, []byte(bundle), 0o600); err != nil {
		t.Fatal(err)
	}
	reviewer := map[string]string{"DEPOT_AUDIT_PUBLIC_KEY_FILE": pub}
	if out := depotCLI(t, reviewer, "audit", "check-proof", path); !strings.Contains(out, "3 of 3 records proven") {
		t.Fatalf("check-proof: %s", out)
	}
	forged := strings.Replace(bundle, `"path":"c1/p/1.csv"`, `"path":"c1/p/9.csv"`, 1)
	if forged == bundle {
		t.Fatal("test bug: nothing replaced")
	}
	os.WriteFile(path, []byte(forged), 0o600)
	out, _, code := depotCLIResult(reviewer, "audit", "check-proof", path)
	if code != exitIntegrity || !strings.Contains(out, "2 of 3 records proven") {
		t.Fatalf("check-proof of an edited bundle: exit %d: %s", code, out)
	}
}
