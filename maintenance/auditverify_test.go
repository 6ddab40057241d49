package maintenance_test

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/checkpoint"
	"depot/checkpoint/checkpointtest"
	"depot/maintenance"
	"depot/servicedb/servicedbtest"
)

// auditFixture is a fixture with audit checkpoints: a key, a witness
// directory and a checkpoint writer.
func auditFixture(t *testing.T, e servicedbtest.EngineURL) (*fixture, *checkpoint.Writer) {
	t.Helper()
	keyFile := filepath.Join(t.TempDir(), "audit.key")
	if _, err := checkpoint.WriteKeyFiles(keyFile, ""); err != nil {
		t.Fatal(err)
	}
	key, err := checkpoint.ReadSigningKey(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	witness := checkpoint.NewDir(t.TempDir())
	f := newFixture(t, e, nil, func(c *maintenance.Config) {
		c.Audit = &maintenance.AuditCheck{Witnesses: []checkpoint.Witness{witness}, Verifier: key.Verifier}
		c.AuditVerifyInterval = time.Hour
	})
	w, err := checkpoint.New(checkpoint.Config{DB: f.db, Key: key, Witnesses: []checkpoint.Witness{witness}, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return f, w
}

func (f *fixture) appendN(n int) {
	f.t.Helper()
	for range n {
		if _, err := f.db.Append(f.ctx, depot.AuditEvent{Action: depot.ActionList, Outcome: depot.OutcomeSuccess, Actor: "alice", Cohort: "c1"}); err != nil {
			f.t.Fatal(err)
		}
	}
}

// TestAuditVerifyJob: the job passes on an intact trail and audits it;
// after a record is rewritten with every hash recomputed it alerts, naming
// the last checkpoint that still holds.
func TestAuditVerifyJob(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		f, w := auditFixture(t, e)
		f.appendN(3)
		if _, err := w.Checkpoint(f.ctx); err != nil {
			t.Fatal(err)
		}
		f.appendN(3)
		if _, err := w.Checkpoint(f.ctx); err != nil {
			t.Fatal(err)
		}
		res, err := f.m.AuditVerify(f.ctx, maintenance.TriggerCLI)
		if err != nil || !res.OK || res.Checkpoints != 2 || res.LastGoodSize != 6 {
			t.Fatalf("AuditVerify = %+v, %v", res, err)
		}
		if ev := f.events(depot.ActionIntegrityVerified); len(ev) != 1 || ev[0].Metadata["job"] != maintenance.JobAuditVerify {
			t.Fatalf("audit of the run: %+v", ev)
		}
		if len(f.hook.kinds()) != 0 {
			t.Fatalf("alerts on an intact trail: %v", f.hook.kinds())
		}

		checkpointtest.RewriteRecord(t, f.db, 5, func(ev *depot.AuditEvent) { ev.Actor = "mallory" })
		res, err = f.m.AuditVerify(f.ctx, maintenance.TriggerSchedule)
		if err != nil || res.OK || res.LastGoodSize != 3 || res.FirstBadSize != 6 {
			t.Fatalf("AuditVerify after a rewrite = %+v, %v", res, err)
		}
		f.hook.mu.Lock()
		alerts := slices.Clone(f.hook.alerts)
		f.hook.mu.Unlock()
		if len(alerts) != 1 || alerts[0].Kind != maintenance.AlertAuditTampered || alerts[0].Details["last_good_size"] != "3" ||
			alerts[0].Job != maintenance.JobAuditVerify || alerts[0].Severity != "critical" {
			t.Fatalf("alerts %+v", alerts)
		}
		t.Logf("alert: %s", alerts[0].Message)
		if ev := f.events(depot.ActionIntegrityFailed); len(ev) != 1 || ev[0].ErrorCode != checkpoint.ProblemDiverged {
			t.Fatalf("audit of the failed run: %+v", ev)
		}
	})
}

// The watchdog counts the audit-verify job when checkpoints are on.
func TestAuditVerifyMissedRun(t *testing.T) {
	f, _ := auditFixture(t, servicedbtest.Engines(t)[0])
	if !slices.Contains(f.m.Jobs(), maintenance.JobAuditVerify) {
		t.Fatalf("jobs %v", f.m.Jobs())
	}
	up := f.clk.Now()
	for _, job := range []func() error{
		func() error { _, err := f.m.Cleanup(f.ctx, maintenance.TriggerCLI, false); return err },
	} {
		if err := job(); err != nil {
			t.Fatal(err)
		}
	}
	f.clk.Add(3 * time.Hour)
	var alerted sync.Map
	missed, err := f.m.CheckMissed(f.ctx, up, &alerted)
	if err != nil || !slices.Contains(missed, maintenance.JobAuditVerify) {
		t.Fatalf("missed %v, %v", missed, err)
	}
	if _, err := f.m.AuditVerify(f.ctx, maintenance.TriggerCLI); err != nil {
		t.Fatal(err)
	}
	missed, _ = f.m.CheckMissed(f.ctx, up, &alerted)
	if slices.Contains(missed, maintenance.JobAuditVerify) {
		t.Fatalf("audit-verify still missed after a run: %v", missed)
	}
}
