package maintenance

import (
	"context"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"depot"
	"depot/checkpoint"
)

// AuditCheck enables the audit-verify job: where the signed checkpoints of
// the audit trail are kept and the key they must be signed with.
type AuditCheck struct {
	Witnesses []checkpoint.Witness
	Verifier  note.Verifier
	// Allowance for records dated before the checkpoint they follow;
	// default checkpoint.DefaultAllowance.
	Allowance time.Duration
}

// AuditVerifyResult summarises one audit-verify run: counts, sizes, times
// and problem names only.
type AuditVerifyResult struct {
	Records      int64     `json:"records"`
	Checkpoints  int       `json:"checkpoints"`
	Ignored      int       `json:"ignored"` // notes in a witness not signed by the key
	OK           bool      `json:"ok"`
	Problems     []string  `json:"problems,omitempty"`
	LastGoodSize int64     `json:"last_good_size,omitempty"`
	LastGoodTime time.Time `json:"last_good_time,omitzero"`
	FirstBadSize int64     `json:"first_bad_size,omitempty"`
	FirstBadTime time.Time `json:"first_bad_time,omitzero"`
	// Report is the full verification (not stored with the run).
	Report *checkpoint.Report `json:"-"`
}

// AuditVerify runs the audit-verify job once: it reads every checkpoint
// kept by the witnesses and checks the trail against them (see
// checkpoint.Verify). A trail that does not match raises an
// AlertAuditTampered alert naming the last checkpoint that still holds; the
// run itself succeeds (the check was done) and is audited as
// integrity.verified or integrity.failed with the job's name in metadata.
// A witness that cannot be read fails the run.
func (m *Maintainer) AuditVerify(ctx context.Context, trigger string) (AuditVerifyResult, error) {
	var res AuditVerifyResult
	chk := m.cfg.Audit
	if chk == nil {
		return res, depot.Errorf(depot.CodeInvalid, "audit checkpoints are not configured")
	}
	err := m.run(ctx, JobAuditVerify, trigger, func(ctx context.Context) (any, error) {
		var notes []checkpoint.Signed
		for _, w := range chk.Witnesses {
			got, err := w.List(ctx)
			if err != nil {
				return &res, depot.WrapError(depot.CodeUnavailable, "read the checkpoints of the "+w.Kind()+" witness", err)
			}
			notes = append(notes, got...)
		}
		rep, err := checkpoint.Verify(ctx, m.cfg.DB, notes, chk.Verifier, checkpoint.Options{Allowance: chk.Allowance})
		if err != nil {
			return &res, err
		}
		res.Report, res.Records, res.Checkpoints, res.Ignored, res.OK = rep, rep.Records, len(rep.Checkpoints), len(rep.Ignored), rep.OK()
		for _, f := range rep.Findings {
			res.Problems = append(res.Problems, f.Problem)
		}
		if g := rep.LastGood; g != nil {
			res.LastGoodSize, res.LastGoodTime = g.Check.Size, g.Check.Time
		}
		if b := rep.FirstBad; b != nil {
			res.FirstBadSize, res.FirstBadTime = b.Check.Size, b.Check.Time
		}
		ev := depot.AuditEvent{Action: depot.ActionIntegrityVerified, Outcome: depot.OutcomeSuccess, StoredSize: -1,
			Metadata: map[string]string{"job": JobAuditVerify, "records": itoa(res.Records), "checkpoints": strconv.Itoa(res.Checkpoints)}}
		if !res.OK {
			ev.Action, ev.Outcome, ev.ErrorCode = depot.ActionIntegrityFailed, depot.OutcomeFailure, res.Problems[0]
			ev.Metadata["problems"] = strings.Join(res.Problems, ",")
			m.alertTampered(ctx, rep, res)
		}
		if _, err := m.audit(ctx, ev); err != nil {
			return &res, err
		}
		return &res, nil
	})
	return res, err
}

// alertTampered raises the alert of a trail that does not match its
// checkpoints. Sizes, seqs and times only: the details are in the report.
func (m *Maintainer) alertTampered(ctx context.Context, rep *checkpoint.Report, res AuditVerifyResult) {
	d := map[string]string{"records": itoa(res.Records), "problems": strings.Join(res.Problems, ",")}
	if res.LastGoodSize > 0 || !res.LastGoodTime.IsZero() {
		d["last_good_size"], d["last_good_time"] = itoa(res.LastGoodSize), res.LastGoodTime.UTC().Format(time.RFC3339Nano)
	}
	if !res.FirstBadTime.IsZero() {
		d["first_bad_size"], d["first_bad_time"] = itoa(res.FirstBadSize), res.FirstBadTime.UTC().Format(time.RFC3339Nano)
	}
	var seq int64
	if len(rep.Findings) > 0 {
		seq = rep.Findings[0].Seq
	}
	m.alert(ctx, Alert{Kind: AlertAuditTampered, Job: JobAuditVerify, Code: res.Problems[0], Count: len(res.Problems),
		AuditSeq: seq, Message: "the audit trail does not match its signed checkpoints: " + rep.Findings[0].Detail, Details: d})
}
