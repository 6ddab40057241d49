package maintenance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"depot"
	"depot/servicedb"
)

// Queue is the River queue of the maintenance jobs.
const Queue = "depot_maintenance"

// River job kinds.
type (
	// CleanupArgs are the (empty) arguments of the periodic cleanup job.
	CleanupArgs struct{}
	// VerifyArgs are the arguments of the periodic integrity job.
	VerifyArgs struct{}
	// ReportArgs are the arguments of the periodic report job.
	ReportArgs struct{}
	// WatchdogArgs are the arguments of the missed-run watchdog.
	WatchdogArgs struct{}
	// AuditVerifyArgs are the arguments of the periodic audit-verify job.
	AuditVerifyArgs struct{}
)

func (CleanupArgs) Kind() string     { return "depot.cleanup" }
func (VerifyArgs) Kind() string      { return "depot.verify" }
func (ReportArgs) Kind() string      { return "depot.report" }
func (WatchdogArgs) Kind() string    { return "depot.watchdog" }
func (AuditVerifyArgs) Kind() string { return "depot.audit-verify" }

// jobWorker runs one maintenance job for River.
type jobWorker[T river.JobArgs] struct {
	river.WorkerDefaults[T]
	m   *Maintainer
	job string
}

func (w *jobWorker[T]) Work(ctx context.Context, j *river.Job[T]) error {
	var err error
	switch w.job {
	case JobCleanup:
		_, err = w.m.Cleanup(ctx, TriggerSchedule, false)
	case JobVerify:
		_, err = w.m.Verify(ctx, TriggerSchedule)
	case JobScan:
		_, err = w.m.Scan(ctx, TriggerSchedule)
	case JobReport:
		var rep Report
		if rep, err = w.m.Report(ctx, TriggerSchedule); err == nil {
			// Delivery is logged when it fails; the report is kept
			// either way (depot report --id), and a retry of the job
			// would only make another.
			_ = w.m.cfg.Reports.SendReport(context.WithoutCancel(ctx), rep)
		}
	case JobAuditVerify:
		_, err = w.m.AuditVerify(ctx, TriggerSchedule)
	}
	if err != nil && j.Attempt >= j.MaxAttempts {
		w.m.alert(ctx, Alert{Kind: AlertJobFailed, Job: w.job, Code: string(depot.ErrorCode(err)), Count: j.Attempt,
			Message: "a maintenance job failed on its last attempt", Details: map[string]string{"river_job": strconv.FormatInt(j.ID, 10)}})
	}
	return err
}

type watchdogWorker struct {
	river.WorkerDefaults[WatchdogArgs]
	s *Scheduler
}

func (w *watchdogWorker) Work(ctx context.Context, _ *river.Job[WatchdogArgs]) error {
	_, err := w.s.m.CheckMissed(ctx, w.s.started, w.s.alerted)
	return err
}

// CheckMissed alerts for every job that has not succeeded within twice its
// period (counting from up, the time the scheduler started, for a job that
// never succeeded). alerted remembers the episodes already alerted, so an
// alert fires once per missed episode; nil alerts every time. It returns
// the missed jobs.
func (m *Maintainer) CheckMissed(ctx context.Context, up time.Time, alerted *sync.Map) ([]string, error) {
	now := m.now()
	var missed []string
	for _, job := range m.Jobs() {
		last, err := m.cfg.DB.LastJobSuccess(ctx, job)
		if err != nil {
			return missed, err
		}
		ref := up
		if last != nil && last.After(up) {
			ref = *last
		}
		if now.Sub(ref) <= 2*m.Interval(job) {
			continue
		}
		missed = append(missed, job)
		episode := "never"
		if last != nil {
			episode = last.Format(time.RFC3339Nano)
		}
		if alerted != nil {
			if prev, ok := alerted.Load(job); ok && prev == episode {
				continue
			}
			alerted.Store(job, episode)
		}
		al := Alert{Kind: AlertMissedRun, Job: job, Severity: "warning", Code: "missed_run",
			Message: fmt.Sprintf("job %s has not succeeded within twice its period (%s)", job, m.Interval(job))}
		if last != nil {
			al.Details = map[string]string{"last_success": last.Format(time.RFC3339)}
		}
		m.alert(ctx, al)
	}
	return missed, nil
}

// retryPolicy is River's default backoff (attempt⁴ seconds), but never
// longer than the job's period: a periodic job retried after its next
// period would only collide with that period's run. With the default
// periods (1 h, 24 h) it is River's policy unchanged.
type retryPolicy struct {
	m   *Maintainer
	def river.ClientRetryPolicy
}

func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	next := p.def.NextRetry(job)
	var iv time.Duration
	switch job.Kind {
	case CleanupArgs{}.Kind():
		iv = p.m.Interval(JobCleanup)
	case VerifyArgs{}.Kind():
		iv = p.m.Interval(JobVerify)
	case ReportArgs{}.Kind():
		iv = p.m.Interval(JobReport)
	case ScanArgs{}.Kind():
		iv = p.m.Interval(JobScan)
	default:
		return next
	}
	if limit := time.Now().UTC().Add(max(iv, time.Second)); next.After(limit) {
		return limit
	}
	return next
}

// SchedulerOptions tune the River client.
type SchedulerOptions struct {
	// DatabaseURL is needed on PostgreSQL, where River gets its own pgx
	// pool on the same database (and schema, via search_path).
	DatabaseURL string
	// WatchdogInterval is how often missed runs are checked; default a
	// quarter of the shortest job period, between 1 s and 5 min.
	WatchdogInterval time.Duration
	// Logger for River itself; nil discards River's own logs.
	Logger *slog.Logger
	// StartDelay is how long after the scheduler starts a job that is
	// overdue (never succeeded, or last succeeded more than a period ago)
	// first runs; default 1 min. A job that succeeded within its period
	// keeps its rhythm across restarts: it next runs a period after that
	// success.
	StartDelay time.Duration
}

// catchUp is a River schedule: every iv, except that the first run after
// the scheduler starts comes a period after the job's last success, or
// after delay when that is already past.
type catchUp struct {
	m       *Maintainer
	job     string
	iv      time.Duration
	delay   time.Duration
	mu      sync.Mutex
	started bool
}

func (c *catchUp) Next(t time.Time) time.Time {
	c.mu.Lock()
	first := !c.started
	c.started = true
	c.mu.Unlock()
	if !first {
		return t.Add(c.iv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	soon := t.Add(min(c.delay, c.iv))
	last, err := c.m.cfg.DB.LastJobSuccess(ctx, c.job)
	if err != nil || last == nil {
		return soon
	}
	next := last.Add(c.iv)
	if next.After(t.Add(c.iv)) { // a clock step: do not wait longer than a period
		next = t.Add(c.iv)
	}
	if next.Before(soon) {
		return soon
	}
	return next
}

// Scheduler runs the maintenance jobs as River periodic jobs. Several
// services processes may each run one on a shared PostgreSQL database: only
// the elected leader schedules, and each job is unique per period.
type Scheduler struct {
	m       *Maintainer
	started time.Time
	alerted *sync.Map
	pool    *pgxpool.Pool
	stop    func(context.Context) error
}

// MigrateRiver applies River's migrations to db (on PostgreSQL through a
// pool opened from url). It is idempotent; on PostgreSQL concurrent callers
// are serialised by an advisory lock.
func MigrateRiver(ctx context.Context, db *servicedb.DB, url string) error {
	switch db.Engine() {
	case servicedb.EngineSQLite:
		return migrate(ctx, riversqlite.New(db.SQL()))
	case servicedb.EnginePostgres:
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			return depot.WrapError(depot.CodeUnavailable, "river: cannot connect", err)
		}
		defer pool.Close()
		return migratePG(ctx, pool)
	}
	return depot.Errorf(depot.CodeInternal, "river: unknown engine")
}

func migratePG(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return depot.WrapError(depot.CodeUnavailable, "river: cannot connect", err)
	}
	defer conn.Release()
	const lock = "SELECT pg_advisory_lock(1685091442, hashtext(current_schema()))"
	if _, err := conn.Exec(ctx, lock); err != nil {
		return depot.WrapError(depot.CodeUnavailable, "river: migration lock", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(1685091442, hashtext(current_schema()))")
	return migrate(ctx, riverpgxv5.New(pool))
}

func migrate[TTx any](ctx context.Context, drv riverdriver.Driver[TTx]) error {
	mig, err := rivermigrate.New(drv, nil)
	if err != nil {
		return depot.WrapError(depot.CodeInternal, "river: migrator", err)
	}
	if _, err := mig.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return depot.WrapError(depot.CodeUnavailable, "river: migrate", err)
	}
	return nil
}

// StartScheduler migrates River's tables and starts a River client that
// runs the maintenance jobs periodically. Stop it with Stop.
func StartScheduler(ctx context.Context, m *Maintainer, opts SchedulerOptions) (*Scheduler, error) {
	s := &Scheduler{m: m, started: m.now(), alerted: &sync.Map{}}
	workers := river.NewWorkers()
	river.AddWorker(workers, &jobWorker[CleanupArgs]{m: m, job: JobCleanup})
	river.AddWorker(workers, &jobWorker[VerifyArgs]{m: m, job: JobVerify})
	river.AddWorker(workers, &jobWorker[ReportArgs]{m: m, job: JobReport})
	river.AddWorker(workers, &watchdogWorker{s: s})
	if m.cfg.Audit != nil {
		river.AddWorker(workers, &jobWorker[AuditVerifyArgs]{m: m, job: JobAuditVerify})
	}
	if m.cfg.Scanner != nil {
		river.AddWorker(workers, &jobWorker[ScanArgs]{m: m, job: JobScan})
	}

	shortest := min(m.cfg.CleanupInterval, m.cfg.VerifyInterval, m.cfg.ReportInterval)
	if m.cfg.Audit != nil {
		shortest = min(shortest, m.cfg.AuditVerifyInterval)
	}
	wd := opts.WatchdogInterval
	if wd <= 0 {
		wd = min(max(shortest/4, time.Second), 5*time.Minute)
	}
	delay := opts.StartDelay
	if delay <= 0 {
		delay = time.Minute
	}
	periodic := func(iv time.Duration, args river.JobArgs, id string, job string) *river.PeriodicJob {
		iv = max(iv, time.Second) // River's minimum
		var sched river.PeriodicSchedule = river.PeriodicInterval(iv)
		if job != "" {
			sched = &catchUp{m: m, job: job, iv: iv, delay: delay}
		}
		return river.NewPeriodicJob(sched, func() (river.JobArgs, *river.InsertOpts) {
			return args, &river.InsertOpts{Queue: Queue, UniqueOpts: river.UniqueOpts{ByPeriod: iv}}
		}, &river.PeriodicJobOpts{ID: id})
	}
	longest := max(m.cfg.CleanupInterval, m.cfg.VerifyInterval, m.cfg.ReportInterval)
	periodics := []*river.PeriodicJob{
		periodic(m.cfg.CleanupInterval, CleanupArgs{}, JobCleanup, JobCleanup),
		periodic(m.cfg.VerifyInterval, VerifyArgs{}, JobVerify, JobVerify),
		periodic(m.cfg.ReportInterval, ReportArgs{}, JobReport, JobReport),
		periodic(wd, WatchdogArgs{}, "watchdog", ""),
	}
	if m.cfg.Audit != nil {
		periodics = append(periodics, periodic(m.cfg.AuditVerifyInterval, AuditVerifyArgs{}, JobAuditVerify, JobAuditVerify))
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg := &river.Config{
		ID:           "depot-" + sanitizeID(m.cfg.Node) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		Logger:       logger,
		Queues:       map[string]river.QueueConfig{Queue: {MaxWorkers: 4}},
		PeriodicJobs: periodics,
		Workers:      workers,
		MaxAttempts:  5,
		RetryPolicy:  retryPolicy{m: m, def: &river.DefaultClientRetryPolicy{}},
		// Verification of a large store may run for hours: no timeout,
		// and a job is considered stuck only after twice the longest period.
		JobTimeout:           -1,
		RescueStuckJobsAfter: max(2*longest, time.Hour),
	}
	if m.cfg.Scanner != nil {
		cfg.PeriodicJobs = append(cfg.PeriodicJobs, periodic(m.cfg.ScanInterval, ScanArgs{}, JobScan, JobScan))
	}
	db := m.cfg.DB
	switch db.Engine() {
	case servicedb.EngineSQLite:
		drv := riversqlite.New(db.SQL())
		if err := migrate(ctx, drv); err != nil {
			return nil, err
		}
		c, err := river.NewClient(drv, cfg)
		if err != nil {
			return nil, depot.WrapError(depot.CodeInternal, "river: client", err)
		}
		if err := c.Start(ctx); err != nil {
			return nil, depot.WrapError(depot.CodeUnavailable, "river: start", err)
		}
		s.stop = c.Stop
	case servicedb.EnginePostgres:
		if opts.DatabaseURL == "" {
			return nil, depot.Errorf(depot.CodeInternal, "river: PostgreSQL needs the database URL")
		}
		pool, err := pgxpool.New(ctx, opts.DatabaseURL)
		if err != nil {
			return nil, depot.WrapError(depot.CodeUnavailable, "river: cannot connect", err)
		}
		s.pool = pool
		if err := migratePG(ctx, pool); err != nil {
			pool.Close()
			return nil, err
		}
		c, err := river.NewClient(riverpgxv5.New(pool), cfg)
		if err != nil {
			pool.Close()
			return nil, depot.WrapError(depot.CodeInternal, "river: client", err)
		}
		if err := c.Start(ctx); err != nil {
			pool.Close()
			return nil, depot.WrapError(depot.CodeUnavailable, "river: start", err)
		}
		s.stop = c.Stop
	default:
		return nil, depot.Errorf(depot.CodeInternal, "river: unknown engine")
	}
	return s, nil
}

// Stop stops the River client, letting running jobs finish until ctx ends,
// and closes its pool.
func (s *Scheduler) Stop(ctx context.Context) error {
	var err error
	if s.stop != nil {
		err = s.stop(ctx)
	}
	if s.pool != nil {
		s.pool.Close()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	return err
}

func sanitizeID(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}
