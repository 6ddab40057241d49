package maintenance

import (
	"context"
	"time"

	"depot"
	"depot/servicedb"
)

// Orphan kinds (in audit metadata "kind" and CleanupResult).
const (
	OrphanObject = "object_without_version" // a stored object no version or upload refers to
	OrphanRecord = "version_without_object" // a kept version whose object is missing
)

// CleanupResult summarises one cleanup run: counts only.
type CleanupResult struct {
	DryRun bool `json:"dry_run"`
	// Temporary versions whose cleanup time has come.
	Due            int   `json:"due"`
	Deleted        int   `json:"deleted"`
	DeletedBytes   int64 `json:"deleted_bytes"`
	DeleteFailures int   `json:"delete_failures"` // failed removals of bytes, each audited
	Held           int   `json:"held"`            // due or expired, but under a retention hold
	// Deleted files whose retention ended (all their versions purged).
	RetentionEnded int `json:"retention_ended"`
	// Upload sessions.
	UploadsOpen    int `json:"uploads_open"`
	UploadsExpired int `json:"uploads_expired"`
	// Orphans: objects nothing refers to (removed) and versions whose
	// object is missing (reported, alerted).
	OrphanObjects int `json:"orphan_objects"`
	OrphanRecords int `json:"orphan_records"`
	// Crash leftovers (staging areas without a session).
	Strays        int   `json:"strays"`
	StraysRemoved int   `json:"strays_removed"`
	StrayBytes    int64 `json:"stray_bytes"`
	Alerts        int   `json:"alerts"`
}

// Cleanup runs the cleanup job once: due temporary versions, deleted files
// past their retention, expired uploads, orphans both ways and crash
// leftovers. With dryRun it changes nothing and writes no audit records; it
// reports what it would do.
func (m *Maintainer) Cleanup(ctx context.Context, trigger string, dryRun bool) (CleanupResult, error) {
	res := CleanupResult{DryRun: dryRun}
	if dryRun {
		trigger += "-dry-run"
	}
	err := m.run(ctx, JobCleanup, trigger, func(ctx context.Context) (any, error) {
		now := m.now()
		for _, step := range []func(context.Context, time.Time, bool, *CleanupResult) error{
			m.cleanupDue, m.endRetention, m.expireUploads, m.sweepObjects, m.removeStrays,
		} {
			if err := step(ctx, now, dryRun, &res); err != nil {
				return &res, err
			}
		}
		return &res, nil
	})
	return res, err
}

// cleanupDue purges the temporary versions whose cleanup time has come.
// Only versions declared temporary when they were uploaded are selected;
// a version under a hold is kept.
func (m *Maintainer) cleanupDue(ctx context.Context, now time.Time, dryRun bool, res *CleanupResult) error {
	after := ""
	for {
		vs, err := m.cfg.DB.ListVersions(ctx, servicedb.VersionFilter{DueBefore: now, After: after, Limit: 500})
		if err != nil {
			return err
		}
		for _, v := range vs {
			after = v.ID
			if v.Class != depot.Temporary || v.CleanupScheduledFor == nil || v.CleanupScheduledFor.After(now) {
				continue // belt and braces: the filter says so too
			}
			res.Due++
			if dryRun {
				continue
			}
			ev := versionEvent(depot.ActionCleanupCompleted, v)
			ev.Metadata = map[string]string{"version": v.ID, "reason": "temporary_due"}
			if err := m.purge(ctx, ev, v.Key, v.ID, res); err != nil {
				return err
			}
		}
		if len(vs) < 500 {
			return nil
		}
	}
}

// endRetention purges every version of the files deleted for longer than
// the deleted retention: the end of a delete's grace period.
func (m *Maintainer) endRetention(ctx context.Context, now time.Time, dryRun bool, res *CleanupResult) error {
	after := ""
	for {
		paths, err := m.cfg.DB.DeletedPaths(ctx, now.Add(-m.cfg.DeletedRetention), after, 500)
		if err != nil {
			return err
		}
		for _, p := range paths {
			after = p.Key
			if dryRun {
				res.RetentionEnded++
				continue
			}
			ev := depot.AuditEvent{
				Action: depot.ActionCleanupCompleted, Outcome: depot.OutcomeSuccess, Cohort: p.Cohort, Key: p.Key,
				Metadata: map[string]string{"version": "all", "reason": "deleted_retention_ended",
					"deleted": p.Deleted.UTC().Format(time.RFC3339)},
			}
			before := res.Deleted
			if err := m.purge(ctx, ev, p.Key, "", res); err != nil {
				return err
			}
			if res.Deleted > before {
				res.RetentionEnded++
			}
		}
		if len(paths) < 500 {
			return nil
		}
	}
}

// purge records ev and marks the versions purged in one transaction, then
// removes their bytes. A hold keeps them (counted, no record); a version
// purged meanwhile is skipped.
func (m *Maintainer) purge(ctx context.Context, ev depot.AuditEvent, key, id string, res *CleanupResult) error {
	var purged []servicedb.Version
	_, err := m.auditWith(ctx, ev, servicedb.Purge(key, id, &purged))
	switch {
	case err == servicedb.ErrHeld:
		res.Held++
		return nil
	case depot.ErrorCode(err) == depot.CodeNotFound:
		return nil
	case err != nil:
		return err
	}
	for _, v := range purged {
		res.Deleted++
		res.DeletedBytes += v.Size
		if err := m.removeObject(ctx, v, res); err != nil {
			return err
		}
	}
	return nil
}

// removeObject deletes the object of a purged version, retrying with
// backoff. Every failed attempt is audited; an alert fires once the object
// has failed MaxFailures times. An object left behind is one nothing
// refers to: the sweep of a later run removes it. The returned error is for
// failures that must stop the run (the audit trail cannot be written).
func (m *Maintainer) removeObject(ctx context.Context, v servicedb.Version, res *CleanupResult) error {
	var err error
	for attempt := 1; attempt <= m.cfg.DeleteAttempts; attempt++ {
		if err = m.cfg.Store.Delete(ctx, v.ID); err == nil {
			_ = m.cfg.DB.ClearCleanupFailures(ctx, v.ID)
			return nil
		}
		if aerr := m.deleteFailed(ctx, v, attempt, res); aerr != nil {
			return aerr
		}
		if attempt < m.cfg.DeleteAttempts {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(m.cfg.RetryBackoff << (attempt - 1)):
			}
		}
	}
	return nil
}

// deleteFailed audits one failed removal, counts it, and alerts when the
// object has now failed MaxFailures times.
func (m *Maintainer) deleteFailed(ctx context.Context, v servicedb.Version, attempt int, res *CleanupResult) error {
	res.DeleteFailures++
	code := depot.CodeUnavailable
	f, err := m.cfg.DB.AddCleanupFailure(ctx, v.ID, code)
	if err != nil {
		return err
	}
	ev := versionEvent(depot.ActionCleanupFailed, v)
	ev.Outcome, ev.ErrorCode = depot.OutcomeFailure, string(code)
	ev.Metadata = map[string]string{"version": v.ID, "attempt": itoa(int64(attempt)), "failures": itoa(int64(f.Failures))}
	out, err := m.audit(ctx, ev)
	if err != nil {
		return err
	}
	if f.Failures >= m.cfg.MaxFailures && !f.Alerted {
		res.Alerts++
		m.alert(ctx, Alert{Kind: AlertCleanupFailing, Job: JobCleanup, Cohort: v.Cohort, AuditSeq: out.Seq,
			Code: string(code), Count: f.Failures, Message: "the bytes of a purged version could not be removed"})
		_ = m.cfg.DB.MarkCleanupAlerted(ctx, v.ID)
	}
	return nil
}

// versionEvent starts a record about version v.
func versionEvent(action depot.Action, v servicedb.Version) depot.AuditEvent {
	return depot.AuditEvent{
		Action: action, Outcome: depot.OutcomeSuccess, Cohort: v.Cohort, Key: v.Key, FileClass: v.Class,
		CleanupScheduledFor: v.CleanupScheduledFor, StoredSize: v.Size, SHA256: v.SHA256,
	}
}

// expireUploads removes upload sessions idle for longer than their expiry
// (last activity plus the expiry configured now, plus the lease for
// resumable ones). A session locked by an operation in progress is active
// and kept (storage.Store.Expire checks it again under its lock).
func (m *Maintainer) expireUploads(ctx context.Context, now time.Time, dryRun bool, res *CleanupResult) error {
	after := ""
	for {
		sessions, err := m.cfg.DB.Uploads(ctx, servicedb.UploadFilter{After: after, Limit: 500})
		if err != nil {
			return err
		}
		for _, s := range sessions {
			after = s.ID
			res.UploadsOpen++
			expires := m.cfg.Store.Expiry(s.Upload)
			if s.Resumable {
				expires = expires.Add(m.cfg.Lease)
			}
			if !expires.Before(now) {
				continue
			}
			if dryRun {
				res.UploadsExpired++
				continue
			}
			u, ok, err := m.cfg.Store.Expire(ctx, s.ID, now.Add(-expires.Sub(s.Updated)))
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			res.UploadsExpired++
			ev := depot.AuditEvent{
				Action: depot.ActionUploadExpired, Outcome: depot.OutcomeFailure, ErrorCode: "expired",
				Cohort: cohortOf(u.Key), Key: u.Key, UploadID: u.ID, DeclaredSize: u.DeclaredSize,
				BytesTransferred: u.Offset, FileClass: u.Class,
				Metadata: map[string]string{"last_activity": u.Updated.UTC().Format(time.RFC3339)},
			}
			if _, err := m.audit(ctx, ev); err != nil {
				return err
			}
		}
		if len(sessions) < 500 {
			return nil
		}
	}
}
