package maintenance

import (
	"context"
	"io"

	"depot"
	"depot/servicedb"
)

// JobScan is the rescan of versions committed unscanned (fail-open, or
// larger than the scanner takes): `depot scan` and, with scanning on, a
// River periodic job every DEPOT_SCAN_INTERVAL. It is not in Jobs: it
// exists only where scanning is configured.
const JobScan = "scan"

// AlertInfected fires when the scanner finds malware: an upload refused,
// or a committed version a rescan found infected (no longer served).
const AlertInfected = "infected"

// ScanArgs are the arguments of the periodic rescan job.
type ScanArgs struct{}

func (ScanArgs) Kind() string { return "depot.scan" }

// ScanResult is the summary of a rescan (counts only).
type ScanResult struct {
	Scanned  int   `json:"scanned"`
	Clean    int   `json:"clean"`
	Infected int   `json:"infected"`
	TooLarge int   `json:"too_large"` // larger than the scanner takes: still unscanned
	Bytes    int64 `json:"bytes"`
}

// Raise sends an alert raised outside the jobs (services: an infected
// upload), counted in depot_alerts_total like the jobs' own.
func (m *Maintainer) Raise(ctx context.Context, al Alert) { m.alert(ctx, al) }

// Scan rescans every kept version committed unscanned, records each
// verdict (file.scanned, with the version's new scan status in the same
// transaction) and alerts for each infected one, which downloads then
// refuse. A scanner that is unavailable fails the run (River retries it);
// versions larger than the scanner takes stay unscanned. Without a
// scanner configured it is CodeInvalid.
func (m *Maintainer) Scan(ctx context.Context, trigger string) (ScanResult, error) {
	var res ScanResult
	if m.cfg.Scanner == nil {
		return res, depot.Errorf(depot.CodeInvalid, "malware scanning is off: set DEPOT_SCAN=clamav and DEPOT_CLAMD_ADDR")
	}
	err := m.run(ctx, JobScan, trigger, func(ctx context.Context) (any, error) {
		after := ""
		for {
			vs, err := m.cfg.DB.Unscanned(ctx, after, 100)
			if err != nil {
				return &res, err
			}
			for _, v := range vs {
				after = v.ID
				if err := m.rescan(ctx, v, &res); err != nil {
					return &res, err
				}
			}
			if len(vs) < 100 {
				return &res, nil
			}
		}
	})
	return res, err
}

func (m *Maintainer) rescan(ctx context.Context, v servicedb.Version, res *ScanResult) error {
	verdict, err := m.cfg.Scanner.Rescan(ctx, v.Size, func(ctx context.Context) (io.ReadCloser, error) {
		return m.cfg.Store.Open(ctx, v.ID, 0, -1)
	})
	if err != nil {
		return err
	}
	if verdict.Status == depot.ScanUnscanned {
		res.TooLarge++
		return nil
	}
	res.Scanned++
	res.Bytes += v.Size
	ev := depot.AuditEvent{
		Action: depot.ActionFileScanned, Outcome: depot.OutcomeSuccess, Cohort: v.Cohort, Key: v.Key,
		StoredSize: v.Size, SHA256: v.SHA256, FileClass: v.Class, Metadata: map[string]string{"version": v.ID},
	}
	verdict.AddTo(&ev.Metadata)
	if verdict.Status == depot.ScanInfected {
		ev.Outcome, ev.ErrorCode = depot.OutcomeFailure, string(depot.CodeInfected)
	}
	rec, err := m.auditWith(ctx, ev, servicedb.SetScan(v.ID, verdict.Status))
	if depot.ErrorCode(err) == depot.CodeConflict {
		return nil // rescanned by another run, or purged, meanwhile
	}
	if err != nil {
		return err
	}
	if verdict.Status == depot.ScanInfected {
		res.Infected++
		m.alert(ctx, Alert{Kind: AlertInfected, Code: string(depot.CodeInfected), AuditSeq: rec.Seq,
			Message: "a rescan found malware in a committed version; downloads of it are refused",
			Details: map[string]string{"version": v.ID, "signature": verdict.Signature}})
		return nil
	}
	res.Clean++
	return nil
}
