// Package maintenance holds depot's scheduled maintenance jobs on the
// services tier: cleanup (due temporary files, expired uploads, orphans,
// crash leftovers), integrity verification, storage reports and (when
// audit checkpoints are configured) the check of the audit trail against
// its signed checkpoints, with alerts to a webhook and a missed-run
// watchdog.
//
// Every job has one entry point (Maintainer.Cleanup, Verify, Report) that is
// called both by its River worker (periodic, unique per period) and by the
// CLI (`depot cleanup`, `depot verify`, `depot report`): there is one code
// path. Each run is recorded in the maint_runs table (`depot jobs`).
//
// Cleanup never guesses (docs/operations.md, "Cleanup"): it purges only versions declared
// temporary when they were uploaded, whose cleanup time has come, and the
// versions of files deleted longer ago than the deleted retention; never a
// version under a retention hold; never an upload session active within
// its expiry plus the lease. It removes stored objects only once no version
// or session refers to them (leftovers of crashes and of failed removals),
// and reports versions whose object is missing.
//
// Logs and alerts carry IDs, counts and codes only: never file names or
// storage keys (keys contain file names, which may be PHI). The audit trail
// holds the keys.
package maintenance

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"depot"
	"depot/metrics"
	"depot/scan"
	"depot/servicedb"
	"depot/storage"
)

// Job names, as recorded in maint_runs and used as River kinds.
const (
	JobCleanup     = "cleanup"
	JobVerify      = "verify"
	JobReport      = "report"
	JobAuditVerify = "audit-verify" // only when Config.Audit is set
)

// Jobs lists the job names every Maintainer runs.
var Jobs = []string{JobCleanup, JobVerify, JobReport}

// Jobs lists the jobs this Maintainer runs: Jobs, and audit-verify when
// audit checkpoints are configured.
func (m *Maintainer) Jobs() []string {
	if m.cfg.Audit != nil {
		return append(append([]string(nil), Jobs...), JobAuditVerify)
	}
	return Jobs
}

// Triggers of a run.
const (
	TriggerSchedule = "schedule"
	TriggerCLI      = "cli"
)

// dryRunSuffix ends the trigger of a cleanup dry run ("cli-dry-run").
const dryRunSuffix = servicedb.DryRunTriggerSuffix

// Config configures a Maintainer. DB and Store are required.
type Config struct {
	DB    *servicedb.DB
	Store *storage.Store
	Log   *slog.Logger
	// Alerts receives alerts; nil logs them only.
	Alerts *Alerter
	// Reports, when set, receives every scheduled storage report
	// (Alerter.SendReport); nil delivers none.
	Reports *Alerter
	// Now is the clock; nil means time.Now.
	Now  func() time.Time
	Node string // name of this process in audit records and runs

	// Lease is extra idle time granted to an upload session past its
	// expiry before cleanup removes it. Default 1h.
	Lease time.Duration
	// StrayGrace is the age a crash leftover must reach before it is
	// removed, and the age an orphan must reach before it is reported (so
	// that a commit in progress is not mistaken for one). Default 1h.
	StrayGrace time.Duration
	// DeletedRetention is how long the versions of a deleted file are
	// kept (and the file can be undeleted) before cleanup purges them.
	// Default 30 days.
	DeletedRetention time.Duration
	// MaxFailures is the number of failed attempts to delete one file after
	// which an alert fires. Default 5.
	MaxFailures int
	// DeleteAttempts is the number of attempts per run to delete one file,
	// with RetryBackoff doubling between them. Defaults 3 and 200ms.
	DeleteAttempts int
	RetryBackoff   time.Duration
	// VerifyRate limits integrity verification reads, in bytes per second;
	// 0 means unlimited.
	VerifyRate int64

	// Metrics, when set, receives job outcomes and durations
	// (depot_job_runs_total, depot_job_duration_seconds) and the storage
	// totals of each report (depot_storage_bytes, depot_storage_files).
	Metrics *metrics.Set

	// Periods of the jobs (River schedules and missed-run detection).
	// Defaults 1h, 24h, 24h.
	CleanupInterval, VerifyInterval, ReportInterval time.Duration

	// Audit, when set, runs the audit-verify job every
	// AuditVerifyInterval (default 1h): the trail checked against its
	// signed checkpoints (see AuditVerify).
	Audit               *AuditCheck
	AuditVerifyInterval time.Duration
	// Scanner, when set, is the malware scan that the scan job (rescan
	// of unscanned versions, maintenance/scan.go) uses, every
	// ScanInterval (default 1h).
	Scanner      *scan.Gate
	ScanInterval time.Duration
}

// Maintainer runs the maintenance jobs.
type Maintainer struct {
	cfg Config
	log *slog.Logger
}

// New returns a Maintainer; it panics without a DB or a Store (a wiring
// error).
func New(cfg Config) *Maintainer {
	if cfg.DB == nil || cfg.Store == nil {
		panic("maintenance: DB and Store are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Lease, time.Hour)
	def(&cfg.StrayGrace, time.Hour)
	def(&cfg.DeletedRetention, 30*24*time.Hour)
	def(&cfg.RetryBackoff, 200*time.Millisecond)
	def(&cfg.CleanupInterval, time.Hour)
	def(&cfg.VerifyInterval, 24*time.Hour)
	def(&cfg.ReportInterval, 24*time.Hour)
	def(&cfg.AuditVerifyInterval, time.Hour)
	def(&cfg.ScanInterval, time.Hour)
	if cfg.MaxFailures <= 0 {
		cfg.MaxFailures = 5
	}
	if cfg.DeleteAttempts <= 0 {
		cfg.DeleteAttempts = 3
	}
	if cfg.Alerts == nil {
		cfg.Alerts = &Alerter{}
	}
	if cfg.Alerts.Log == nil {
		cfg.Alerts.Log = cfg.Log
	}
	if cfg.Reports != nil && cfg.Reports.Log == nil {
		cfg.Reports.Log = cfg.Log
	}
	if ms := cfg.Metrics; ms != nil {
		// Every series exists from the start at 0, so that increase() in an
		// alert rule sees the first failure, not only the second.
		for _, job := range Jobs {
			ms.JobDuration.WithLabelValues(job)
			for _, o := range []string{servicedb.RunSuccess, servicedb.RunFailure, servicedb.RunInterrupted, servicedb.RunIntegrityFailed, outcomeDryRun} {
				if o == servicedb.RunIntegrityFailed && job != JobVerify || o == outcomeDryRun && job != JobCleanup {
					continue
				}
				ms.JobRuns.WithLabelValues(job, o)
			}
		}
		for _, kind := range AlertKinds {
			ms.Alerts.WithLabelValues(kind)
		}
	}
	return &Maintainer{cfg: cfg, log: cfg.Log.With("component", "maintenance")}
}

// outcomeDryRun is the depot_job_runs_total outcome of a cleanup dry run:
// it is recorded as a success of trigger "…-dry-run" in maint_runs, and is
// not a cleanup that ran (servicedb.DB.LastJobSuccess skips it).
const outcomeDryRun = "dry_run"

// runOutcome makes a verification pass that found damaged or missing files
// a run of its own outcome: it completed (its cursor is cleared, the missed
// run check counts it), but it is not a success.
func (r *VerifyResult) runOutcome() string {
	if r.Failed > 0 {
		return servicedb.RunIntegrityFailed
	}
	return servicedb.RunSuccess
}

// Interval returns the period of job.
func (m *Maintainer) Interval(job string) time.Duration {
	switch job {
	case JobCleanup:
		return m.cfg.CleanupInterval
	case JobVerify:
		return m.cfg.VerifyInterval
	case JobAuditVerify:
		return m.cfg.AuditVerifyInterval
	case JobScan:
		return m.cfg.ScanInterval
	default:
		return m.cfg.ReportInterval
	}
}

func (m *Maintainer) now() time.Time { return m.cfg.Now().UTC() }

// run records one run of job around fn. fn returns a summary (marshalled to
// JSON; counts only) and an error.
func (m *Maintainer) run(ctx context.Context, job, trigger string, fn func(ctx context.Context) (any, error)) error {
	start := time.Now() // real time for durations, whatever the clock
	id, err := m.cfg.DB.StartJobRun(ctx, job, trigger, m.cfg.Node)
	if err != nil {
		return err
	}
	summary, err := fn(ctx)
	outcome, code := servicedb.RunSuccess, ""
	switch {
	case err == nil:
		if o, ok := summary.(interface{ runOutcome() string }); ok {
			if outcome = o.runOutcome(); outcome != servicedb.RunSuccess {
				code = outcome
			}
		}
	case ctx.Err() != nil:
		// Cut short by a shutdown (or a caller giving up): not a failure
		// of the job. Verification resumes from its cursor next time.
		outcome, code = servicedb.RunInterrupted, "interrupted"
	default:
		outcome, code = servicedb.RunFailure, string(depot.ErrorCode(err))
		if code == "" {
			code = "internal"
		}
	}
	b, _ := json.Marshal(summary)
	if ferr := m.cfg.DB.FinishJobRun(context.WithoutCancel(ctx), id, outcome, code, string(b)); ferr != nil && err == nil {
		err = ferr
	}
	dur := time.Since(start)
	if ms := m.cfg.Metrics; ms != nil {
		label := outcome
		if strings.HasSuffix(trigger, dryRunSuffix) && outcome == servicedb.RunSuccess {
			label = outcomeDryRun
		}
		ms.JobRuns.WithLabelValues(job, label).Inc()
		ms.JobDuration.WithLabelValues(job).Observe(dur.Seconds())
	}
	switch {
	case outcome == servicedb.RunInterrupted:
		m.log.Warn("job interrupted", "job", job, "run", id, "trigger", trigger, "duration_ms", dur.Milliseconds())
	case outcome == servicedb.RunIntegrityFailed:
		m.log.Error("job found damaged files", "job", job, "run", id, "trigger", trigger, "duration_ms", dur.Milliseconds(), "summary", json.RawMessage(b))
	case err != nil:
		m.log.Error("job failed", "job", job, "run", id, "trigger", trigger, "code", code, "duration_ms", dur.Milliseconds())
		_, _ = m.audit(context.WithoutCancel(ctx), depot.AuditEvent{
			Action: depot.ActionJobFailed, Outcome: depot.OutcomeFailure, ErrorCode: code,
			Metadata: map[string]string{"job": job, "run": itoa(id), "trigger": trigger},
		})
	default:
		m.log.Info("job done", "job", job, "run", id, "trigger", trigger, "duration_ms", dur.Milliseconds(), "summary", json.RawMessage(b))
	}
	return err
}

// audit appends ev as the system actor. The error must be honoured: an
// operation whose audit record cannot be written must not proceed.
func (m *Maintainer) audit(ctx context.Context, ev depot.AuditEvent) (depot.AuditEvent, error) {
	return m.auditWith(ctx, ev, nil)
}

// auditWith is audit that also applies change in the record's transaction
// (servicedb.AppendWith). A change that refuses returns its own error.
func (m *Maintainer) auditWith(ctx context.Context, ev depot.AuditEvent, change servicedb.Change) (depot.AuditEvent, error) {
	ev.Actor, ev.AuthMethod, ev.ServerRole, ev.WebNode = "system", "job", "services", m.cfg.Node
	if ev.UploadID == "" {
		ev.DeclaredSize = -1 // not an upload
	}
	var out depot.AuditEvent
	var err error
	if change != nil {
		out, err = m.cfg.DB.AppendWith(ctx, ev, change)
	} else {
		out, err = m.cfg.DB.Append(ctx, ev)
	}
	if depot.ErrorCode(err) == depot.CodeUnavailable {
		m.log.Error("audit write failed", "action", string(ev.Action), "code", string(depot.ErrorCode(err)))
	}
	return out, err
}

// cohortOf returns the cohort of a storage key: its first segment.
func cohortOf(key string) string {
	c, _, _ := strings.Cut(key, "/")
	return c
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
