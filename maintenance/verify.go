package maintenance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"time"

	"depot"
	"depot/servicedb"
)

// verifyCursor names the verify job's resumable cursor in maint_cursors.
const verifyCursor = "verify"

// Integrity failure codes (audit error_code and alert code).
const (
	CodeMissing      = "missing"
	CodeSizeMismatch = "size_mismatch"
	CodeHashMismatch = "hash_mismatch"
	CodeReadError    = "read_error"
)

// VerifyResult summarises one verification run.
type VerifyResult struct {
	ResumedAfter bool    `json:"resumed"` // the run continued an interrupted pass
	Files        int     `json:"files"`
	Verified     int     `json:"verified"`
	Failed       int     `json:"failed"`
	Missing      int     `json:"missing"`
	Mismatched   int     `json:"mismatched"`
	Skipped      int     `json:"skipped"` // changed or deleted while being checked
	Bytes        int64   `json:"bytes"`
	Seconds      float64 `json:"seconds"`
	MBPerSecond  float64 `json:"mb_per_s"`
}

// Verify runs the integrity job once: it re-reads every kept version (from
// the cursor left by an interrupted run, if any), compares its SHA-256 and
// size with the version's record, audits each result and alerts at once on
// a mismatch or a missing object.
func (m *Maintainer) Verify(ctx context.Context, trigger string) (VerifyResult, error) {
	var res VerifyResult
	err := m.run(ctx, JobVerify, trigger, func(ctx context.Context) (any, error) {
		start := time.Now()
		defer func() {
			res.Seconds = time.Since(start).Seconds()
			if res.Seconds > 0 {
				res.MBPerSecond = float64(res.Bytes) / 1e6 / res.Seconds
			}
		}()
		after, err := m.cfg.DB.Cursor(ctx, verifyCursor)
		if err != nil {
			return &res, err
		}
		res.ResumedAfter = after != ""
		pace := newPacer(m.cfg.VerifyRate)
		buf := make([]byte, 1<<20)
		for {
			recs, err := m.cfg.DB.ListVersions(ctx, servicedb.VersionFilter{After: after, Limit: 200})
			if err != nil {
				return &res, err
			}
			for _, rec := range recs {
				if err := m.verifyOne(ctx, rec, pace, buf, &res); err != nil {
					return &res, err
				}
				after = rec.ID
				if err := m.cfg.DB.SetCursor(ctx, verifyCursor, after); err != nil {
					return &res, err
				}
			}
			if len(recs) < 200 {
				break
			}
		}
		return &res, m.cfg.DB.SetCursor(ctx, verifyCursor, "") // pass complete
	})
	return res, err
}

func (m *Maintainer) verifyOne(ctx context.Context, rec servicedb.Version, pace *pacer, buf []byte, res *VerifyResult) error {
	res.Files++
	size, sum, code, err := m.hashObject(ctx, rec.ID, pace, buf)
	if err != nil {
		return err // context ended
	}
	res.Bytes += size
	if code == "" && size != rec.Size {
		code = CodeSizeMismatch
	}
	if code == "" && sum != rec.SHA256 {
		code = CodeHashMismatch
	}
	ev := depot.AuditEvent{
		Cohort: rec.Cohort, Key: rec.Key, FileClass: rec.Class, StoredSize: rec.Size, SHA256: rec.SHA256,
		BytesTransferred: size, Metadata: map[string]string{"version": rec.ID},
	}
	if code == "" {
		now := m.now()
		ev.Action, ev.Outcome = depot.ActionIntegrityVerified, depot.OutcomeSuccess
		if _, err := m.audit(ctx, ev); err != nil {
			return err
		}
		if err := m.cfg.DB.SetVerified(ctx, rec.ID, now); err != nil && depot.ErrorCode(err) != depot.CodeNotFound {
			return err
		}
		res.Verified++
		return nil
	}
	// Before raising the alarm, make sure the version was not purged
	// while it was read.
	cur, err := m.cfg.DB.Version(ctx, rec.ID)
	if depot.ErrorCode(err) == depot.CodeNotFound || (err == nil && cur.Purged != nil) {
		res.Skipped++
		return nil
	}
	if err != nil {
		return err
	}
	res.Failed++
	if code == CodeMissing {
		res.Missing++
	} else {
		res.Mismatched++
	}
	ev.Action, ev.Outcome, ev.ErrorCode = depot.ActionIntegrityFailed, depot.OutcomeFailure, code
	if code != CodeMissing {
		ev.Metadata["found_sha256"], ev.Metadata["found_size"] = sum, itoa(size)
	}
	out, err := m.audit(ctx, ev)
	if err != nil {
		return err
	}
	m.alert(ctx, Alert{Kind: AlertIntegrity, Job: JobVerify, Cohort: rec.Cohort, AuditSeq: out.Seq, Code: code,
		Message: "a stored file failed integrity verification"})
	return nil
}

// hashObject reads object id at the paced rate and returns its size and
// SHA-256, or a failure code. err is set only when ctx ended.
func (m *Maintainer) hashObject(ctx context.Context, id string, pace *pacer, buf []byte) (int64, string, string, error) {
	r, err := m.cfg.Store.Open(ctx, id, 0, -1)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		return 0, "", CodeMissing, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, "", "", ctx.Err()
		}
		return 0, "", CodeReadError, nil
	}
	defer r.Close()
	h := sha256.New()
	var n int64
	for {
		k, rerr := r.Read(buf)
		if k > 0 {
			h.Write(buf[:k])
			n += int64(k)
			if err := pace.wait(ctx, k); err != nil {
				return n, "", "", err
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return n, "", "", ctx.Err()
			}
			return n, "", CodeReadError, nil
		}
	}
	return n, hex.EncodeToString(h.Sum(nil)), "", nil
}

// pacer limits a byte stream to rate bytes per second (a token bucket with
// a one-second burst). rate <= 0 means unlimited.
type pacer struct {
	rate  int64
	start time.Time
	n     int64
}

func newPacer(rate int64) *pacer { return &pacer{rate: rate, start: time.Now()} }

func (p *pacer) wait(ctx context.Context, k int) error {
	if p.rate <= 0 {
		return nil
	}
	p.n += int64(k)
	due := p.start.Add(time.Duration(float64(p.n-p.rate) / float64(p.rate) * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
