package maintenance_test

import (
	"context"
	"testing"
	"time"

	"depot/maintenance"
	"depot/servicedb/servicedbtest"
)

// TestRiverPeriodic starts the scheduler and sees the cleanup job run on its
// period; on PostgreSQL two schedulers (two services processes) share one
// database and each period's job runs once, not twice.
func TestRiverPeriodic(t *testing.T) {
	engines(t, func(t *testing.T, e servicedbtest.EngineURL) {
		const period = 2 * time.Second
		procs := 1
		if e.Engine == servicedbtest.Postgres {
			procs = 2
		}
		var first *fixture
		var scheds []*maintenance.Scheduler
		for i := 0; i < procs; i++ {
			f := newFixture(t, e, nil, func(c *maintenance.Config) {
				c.Now = time.Now
				c.CleanupInterval, c.VerifyInterval, c.ReportInterval = period, time.Hour, time.Hour
			})
			f.db.Now = nil
			if first == nil {
				first = f
			}
			s, err := maintenance.StartScheduler(f.ctx, f.m, maintenance.SchedulerOptions{DatabaseURL: e.URL, StartDelay: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			scheds = append(scheds, s)
		}
		// Until three runs have been recorded (a signal, not a guess at
		// how long that takes).
		began := time.Now()
		for deadline := began.Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			runs, err := first.db.JobRuns(first.ctx, maintenance.JobCleanup, 100)
			if err != nil {
				t.Fatal(err)
			}
			if len(runs) >= 3 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d cleanup runs in 30 s with a %s period", len(runs), period)
			}
		}
		for _, s := range scheds {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := s.Stop(ctx); err != nil {
				t.Error(err)
			}
			cancel()
		}
		runs, err := first.db.JobRuns(first.ctx, maintenance.JobCleanup, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.Trigger != maintenance.TriggerSchedule || r.Outcome != "success" {
				t.Errorf("run %+v", r)
			}
		}
		// River inserts one job per period (unique ByPeriod, leader only);
		// each job is worked once. The last job may have been inserted
		// but not yet worked when the schedulers stopped (a loaded
		// machine), so: completed jobs <= runs <= jobs.
		var jobs, completed int
		if err := first.db.SQL().QueryRowContext(first.ctx,
			`SELECT COUNT(*), COALESCE(SUM(CASE WHEN state = 'completed' THEN 1 ELSE 0 END), 0)
			 FROM river_job WHERE kind = 'depot.cleanup'`).Scan(&jobs, &completed); err != nil {
			t.Fatal(err)
		}
		elapsed := time.Since(began) + 300*time.Millisecond // and the start delay
		t.Logf("%s: %d cleanup runs, %d River jobs (%d completed) over %s with %d schedulers", e.Engine, len(runs), jobs, completed, elapsed.Round(time.Millisecond), procs)
		if len(runs) < 2 {
			t.Fatalf("only %d runs", len(runs))
		}
		// One scheduler gives at most elapsed/period + 1 (run on start)
		// runs, one more for a run recorded while stopping; two schedulers
		// that both scheduled would give about twice that.
		if max := int(elapsed/period) + 2; len(runs) > max || jobs > max || completed > len(runs) || len(runs) > jobs {
			t.Fatalf("%d runs of %d jobs (%d completed), want at most %d, one per job", len(runs), jobs, completed, max)
		}
		if e.Engine == servicedbtest.Postgres {
			rows, err := first.db.SQL().QueryContext(first.ctx,
				`SELECT FLOOR(EXTRACT(EPOCH FROM created_at) / 2)::bigint, COUNT(*) FROM river_job
				 WHERE kind = 'depot.cleanup' GROUP BY 1`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			for rows.Next() {
				var bucket, n int64
				if err := rows.Scan(&bucket, &n); err != nil {
					t.Fatal(err)
				}
				if n > 1 {
					t.Fatalf("period %d has %d jobs", bucket, n)
				}
			}
		}
		for _, job := range []string{maintenance.JobVerify, maintenance.JobReport} {
			rs, _ := first.db.JobRuns(first.ctx, job, 10)
			if len(rs) != 1 {
				t.Fatalf("%s ran %d times, want once (first run after the start delay)", job, len(rs))
			}
		}
	})
}
