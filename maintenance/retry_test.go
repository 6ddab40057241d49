package maintenance

import (
	"errors"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// TestRetryWithinPeriod: a failed periodic job is retried with River's
// backoff, but never later than one period of the job, so that with short
// periods the last attempt (and its job_failed alert) comes within seconds
// and with the default periods River's policy is unchanged.
func TestRetryWithinPeriod(t *testing.T) {
	m := &Maintainer{cfg: Config{CleanupInterval: time.Hour, VerifyInterval: 24 * time.Hour, ReportInterval: 2 * time.Second}}
	p := retryPolicy{m: m, def: &river.DefaultClientRetryPolicy{}}
	job := func(kind string, errs int) *rivertype.JobRow {
		j := &rivertype.JobRow{Kind: kind, Attempt: errs + 1}
		for range errs {
			j.Errors = append(j.Errors, rivertype.AttemptError{Error: errors.New("x").Error()})
		}
		return j
	}
	now := time.Now()
	if d := p.NextRetry(job(ReportArgs{}.Kind(), 3)).Sub(now); d > 2*time.Second+100*time.Millisecond {
		t.Fatalf("report (2 s period) retried after %v", d)
	}
	// Third retry: River waits 4⁴ = 256 s ± 10 %, well within an hour.
	if d := p.NextRetry(job(CleanupArgs{}.Kind(), 3)).Sub(now); d < 200*time.Second || d > 300*time.Second {
		t.Fatalf("cleanup (1 h period) retried after %v, want River's 256 s", d)
	}
	if d := p.NextRetry(job("other", 3)).Sub(now); d < 200*time.Second {
		t.Fatalf("another kind retried after %v", d)
	}
}
