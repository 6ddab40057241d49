package maintenance

import (
	"context"
	"errors"
	"time"

	"depot"
	"depot/servicedb"
	"depot/storage"
)

// Orphan kinds (in audit metadata "kind" and CleanupResult).
const (
	OrphanObject = "object_without_record" // a stored object the files table does not know
	OrphanRecord = "record_without_object" // a files-table record whose object is missing
)

// CleanupResult summarises one cleanup run: counts only.
type CleanupResult struct {
	DryRun bool `json:"dry_run"`
	// Due temporary files.
	Due            int   `json:"due"`
	Deleted        int   `json:"deleted"`
	DeletedBytes   int64 `json:"deleted_bytes"`
	DeleteFailures int   `json:"delete_failures"` // failed attempts, each audited
	Refused        int   `json:"refused"`         // class conflict: not deleted
	// Upload sessions.
	UploadsOpen    int `json:"uploads_open"`
	UploadsExpired int `json:"uploads_expired"`
	// Orphans (reported, never deleted).
	OrphanObjects int `json:"orphan_objects"`
	OrphanRecords int `json:"orphan_records"`
	// Crash leftovers.
	Strays        int   `json:"strays"`
	StraysRemoved int   `json:"strays_removed"`
	StrayBytes    int64 `json:"stray_bytes"`
	Alerts        int   `json:"alerts"`
}

// Cleanup runs the cleanup job once: due temporary files, expired uploads,
// orphans both ways and crash leftovers. With dryRun it changes nothing
// and writes no audit records; it reports what it would do.
func (m *Maintainer) Cleanup(ctx context.Context, trigger string, dryRun bool) (CleanupResult, error) {
	res := CleanupResult{DryRun: dryRun}
	if dryRun {
		trigger += "-dry-run"
	}
	err := m.run(ctx, JobCleanup, trigger, func(ctx context.Context) (any, error) {
		now := m.now()
		if err := m.cleanupDue(ctx, now, dryRun, &res); err != nil {
			return &res, err
		}
		if err := m.expireUploads(ctx, now, dryRun, &res); err != nil {
			return &res, err
		}
		if err := m.findOrphans(ctx, now, dryRun, &res); err != nil {
			return &res, err
		}
		if err := m.removeStrays(ctx, now, dryRun, &res); err != nil {
			return &res, err
		}
		return &res, nil
	})
	return res, err
}

// cleanupDue deletes the temporary files whose cleanup time has come.
func (m *Maintainer) cleanupDue(ctx context.Context, now time.Time, dryRun bool, res *CleanupResult) error {
	after := ""
	for {
		recs, err := m.cfg.DB.ListFiles(ctx, servicedb.FileFilter{DueBefore: now, After: after, Limit: 500})
		if err != nil {
			return err
		}
		for _, rec := range recs {
			after = rec.Key
			if !dueTemporary(rec, now) { // belt and braces: the filter says so too
				continue
			}
			res.Due++
			if dryRun {
				continue
			}
			if err := m.deleteDue(ctx, rec, now, res); err != nil {
				return err
			}
		}
		if len(recs) < 500 {
			return nil
		}
	}
}

// dueTemporary reports whether rec declares a temporary file whose cleanup
// time is at or before now.
func dueTemporary(rec servicedb.FileRecord, now time.Time) bool {
	return rec.Class == depot.Temporary && rec.CleanupScheduledFor != nil && !rec.CleanupScheduledFor.After(now)
}

// deleteDue deletes one due temporary file. It re-reads the record and the
// object's attributes first and refuses unless both say temporary. A
// failed delete is retried with backoff; every attempt is audited; an alert
// fires once the file has failed MaxFailures times. The returned error is
// for failures that must stop the run (the audit trail cannot be written).
func (m *Maintainer) deleteDue(ctx context.Context, listed servicedb.FileRecord, now time.Time, res *CleanupResult) error {
	rec, err := m.cfg.DB.GetFile(ctx, listed.Key)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		return nil // deleted meanwhile
	}
	if err != nil {
		return err
	}
	if !dueTemporary(rec, now) {
		return nil // replaced or rescheduled meanwhile
	}
	ev := depot.AuditEvent{
		Cohort: rec.Cohort, Key: rec.Key, FileClass: rec.Class, CleanupScheduledFor: rec.CleanupScheduledFor,
		StoredSize: rec.Size, SHA256: rec.SHA256,
	}
	drv := m.cfg.Store.Driver()
	info, err := drv.Stat(ctx, rec.Key)
	missing := errors.Is(err, storage.ErrNotExist)
	switch {
	case missing:
		// Nothing to delete: the record alone goes, audited as completed.
	case err != nil:
		return m.deleteFailed(ctx, rec, ev, depot.CodeUnavailable, 1, res)
	case info.Attrs.Class != string(depot.Temporary):
		// The object says permanent, or nothing: never guess.
		res.Refused++
		ev.Action, ev.Outcome, ev.ErrorCode = depot.ActionCleanupFailed, depot.OutcomeFailure, "class_conflict"
		ev.Metadata = map[string]string{"object_class": classOrUnknown(info.Attrs.Class), "record_class": string(rec.Class)}
		out, err := m.audit(ctx, ev)
		if err != nil {
			return err
		}
		res.Alerts++
		m.alert(ctx, Alert{Kind: AlertClassConflict, Job: JobCleanup, Cohort: rec.Cohort, AuditSeq: out.Seq,
			Code: "class_conflict", Message: "a due temporary file's stored object is not declared temporary; it was not deleted"})
		return nil
	}
	if !missing {
		var derr error
		for attempt := 1; attempt <= m.cfg.DeleteAttempts; attempt++ {
			derr = drv.Delete(ctx, rec.Key)
			if derr == nil || errors.Is(derr, storage.ErrNotExist) {
				derr = nil
				break
			}
			if err := m.deleteFailed(ctx, rec, ev, depot.CodeUnavailable, attempt, res); err != nil {
				return err
			}
			if attempt < m.cfg.DeleteAttempts {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(m.cfg.RetryBackoff << (attempt - 1)):
				}
			}
		}
		if derr != nil {
			return nil // counted, audited and maybe alerted; the next run retries
		}
	}
	ev.Action, ev.Outcome = depot.ActionCleanupCompleted, depot.OutcomeSuccess
	if missing {
		ev.Metadata = map[string]string{"object": "missing"}
	}
	if _, err := m.audit(ctx, ev); err != nil {
		return err
	}
	if err := m.cfg.DB.DeleteFile(context.WithoutCancel(ctx), rec.Key); err != nil && depot.ErrorCode(err) != depot.CodeNotFound {
		return err
	}
	_ = m.cfg.DB.ClearCleanupFailures(ctx, rec.Key)
	res.Deleted++
	if !missing {
		res.DeletedBytes += rec.Size
	}
	return nil
}

// deleteFailed audits one failed delete attempt, counts it, and alerts
// when the file has now failed MaxFailures times.
func (m *Maintainer) deleteFailed(ctx context.Context, rec servicedb.FileRecord, ev depot.AuditEvent, code depot.Code, attempt int, res *CleanupResult) error {
	res.DeleteFailures++
	ev.Action, ev.Outcome, ev.ErrorCode = depot.ActionCleanupFailed, depot.OutcomeFailure, string(code)
	f, err := m.cfg.DB.AddCleanupFailure(ctx, rec.Key, code)
	if err != nil {
		return err
	}
	ev.Metadata = map[string]string{"attempt": itoa(int64(attempt)), "failures": itoa(int64(f.Failures))}
	out, err := m.audit(ctx, ev)
	if err != nil {
		return err
	}
	if f.Failures >= m.cfg.MaxFailures && !f.Alerted {
		res.Alerts++
		m.alert(ctx, Alert{Kind: AlertCleanupFailing, Job: JobCleanup, Cohort: rec.Cohort, AuditSeq: out.Seq,
			Code: string(code), Count: f.Failures, Message: "a due temporary file could not be deleted"})
		_ = m.cfg.DB.MarkCleanupAlerted(ctx, rec.Key)
	}
	return nil
}

func classOrUnknown(c string) string {
	if c == "" {
		return "unknown"
	}
	return c
}

// expireUploads removes upload sessions idle for longer than their expiry
// plus the lease. It uses a Store over the same driver whose clock runs
// Lease behind: storage.Store.ExpireUploads then removes exactly the
// sessions whose Expires (last activity + upload expiry) is before
// now - Lease, and skips sessions locked by an operation in progress.
func (m *Maintainer) expireUploads(ctx context.Context, now time.Time, dryRun bool, res *CleanupResult) error {
	cutoff := now.Add(-m.cfg.Lease)
	ups, err := m.cfg.Store.Uploads(ctx)
	if err != nil {
		return err
	}
	res.UploadsOpen = len(ups)
	if dryRun {
		for _, u := range ups {
			if u.Expires.Before(cutoff) {
				res.UploadsExpired++
			}
		}
		return nil
	}
	lagged := storage.New(m.cfg.Store.Driver(), storage.Options{Now: func() time.Time { return cutoff }})
	expired, err := lagged.ExpireUploads(ctx)
	for _, u := range expired {
		res.UploadsExpired++
		ev := depot.AuditEvent{
			Action: depot.ActionUploadExpired, Outcome: depot.OutcomeSuccess,
			Cohort: cohortOf(u.Key), Key: u.Key, UploadID: u.ID, DeclaredSize: u.DeclaredSize,
			BytesTransferred: u.Offset, FileClass: u.Class,
			Metadata: map[string]string{"last_activity": u.Updated.UTC().Format(time.RFC3339)},
		}
		if _, aerr := m.audit(ctx, ev); aerr != nil {
			return aerr
		}
	}
	return err
}

// findOrphans merges the sorted object listing with the sorted files table
// and reports keys present on one side only. Entries younger than
// StrayGrace are skipped: a commit records its file just after publishing
// the object, and a delete forgets it just after removing it.
func (m *Maintainer) findOrphans(ctx context.Context, now time.Time, dryRun bool, res *CleanupResult) error {
	objs := &objectCursor{d: m.cfg.Store.Driver(), ctx: ctx}
	recs := &recordCursor{db: m.cfg.DB, ctx: ctx}
	young := now.Add(-m.cfg.StrayGrace)
	for {
		o, oerr := objs.peek()
		r, rerr := recs.peek()
		if oerr != nil {
			return oerr
		}
		if rerr != nil {
			return rerr
		}
		switch {
		case o == nil && r == nil:
			return nil
		case r == nil || (o != nil && o.Key < r.Key):
			objs.next()
			if o.ModTime.After(young) {
				continue
			}
			res.OrphanObjects++
			if err := m.reportOrphan(ctx, dryRun, OrphanObject, o.Key, o.Size, o.Attrs.SHA256, depot.Class(o.Attrs.Class)); err != nil {
				return err
			}
		case o == nil || r.Key < o.Key:
			recs.next()
			if r.Updated.After(young) {
				continue
			}
			if dueTemporary(*r, now) && !dryRun {
				continue // its object is gone and the cleanup above finished it (or will)
			}
			// Re-check: the file may have been deleted since it was listed.
			if _, err := m.cfg.Store.Driver().Stat(ctx, r.Key); !errors.Is(err, storage.ErrNotExist) {
				continue
			}
			if _, err := m.cfg.DB.GetFile(ctx, r.Key); depot.ErrorCode(err) == depot.CodeNotFound {
				continue
			}
			res.OrphanRecords++
			if err := m.reportOrphan(ctx, dryRun, OrphanRecord, r.Key, r.Size, r.SHA256, r.Class); err != nil {
				return err
			}
		default: // same key on both sides
			objs.next()
			recs.next()
		}
	}
}

func (m *Maintainer) reportOrphan(ctx context.Context, dryRun bool, kind, key string, size int64, sum string, class depot.Class) error {
	if dryRun {
		return nil
	}
	if !class.Valid() {
		class = ""
	}
	out, err := m.audit(ctx, depot.AuditEvent{
		Action: depot.ActionOrphanDetected, Outcome: depot.OutcomeSuccess, ErrorCode: kind,
		Cohort: cohortOf(key), Key: key, StoredSize: size, SHA256: sum, FileClass: class,
		Metadata: map[string]string{"kind": kind},
	})
	if err != nil {
		return err
	}
	if kind == OrphanRecord {
		m.alert(ctx, Alert{Kind: AlertMissingObject, Job: JobCleanup, Cohort: cohortOf(key), AuditSeq: out.Seq,
			Code: kind, Message: "a committed file's stored object is missing"})
	}
	return nil
}

// removeStrays removes crash leftovers older than StrayGrace whose session
// (if they name one) no longer exists.
func (m *Maintainer) removeStrays(ctx context.Context, now time.Time, dryRun bool, res *CleanupResult) error {
	drv := m.cfg.Store.Driver()
	strays, err := drv.Strays(ctx)
	if err != nil {
		return err
	}
	cutoff := now.Add(-m.cfg.StrayGrace)
	for _, s := range strays {
		res.Strays++
		if s.ModTime.After(cutoff) {
			continue
		}
		if s.SessionID != "" {
			if _, err := drv.GetSession(ctx, s.SessionID); err == nil {
				continue // its session came back: not a leftover
			}
		}
		if dryRun {
			res.StraysRemoved++
			res.StrayBytes += s.Size
			continue
		}
		ev := depot.AuditEvent{
			Action: depot.ActionCleanupCompleted, Outcome: depot.OutcomeSuccess, UploadID: s.SessionID,
			StoredSize: s.Size, Metadata: map[string]string{"kind": "crash_leftover"},
		}
		if err := drv.RemoveStray(ctx, s); err != nil {
			ev.Action, ev.Outcome, ev.ErrorCode = depot.ActionCleanupFailed, depot.OutcomeFailure, string(depot.CodeUnavailable)
			if _, aerr := m.audit(ctx, ev); aerr != nil {
				return aerr
			}
			res.DeleteFailures++
			continue
		}
		if _, err := m.audit(ctx, ev); err != nil {
			return err
		}
		res.StraysRemoved++
		res.StrayBytes += s.Size
	}
	return nil
}

// objectCursor pages through every stored object in key order.
type objectCursor struct {
	d     storage.Driver
	ctx   context.Context
	buf   []storage.ObjectInfo
	after string
	done  bool
}

func (c *objectCursor) peek() (*storage.ObjectInfo, error) {
	if len(c.buf) == 0 && !c.done {
		page, err := c.d.List(c.ctx, "", c.after, 1000)
		if err != nil {
			return nil, err
		}
		c.buf = page
		if len(page) < 1000 {
			c.done = true
		}
		if len(page) > 0 {
			c.after = page[len(page)-1].Key
		}
	}
	if len(c.buf) == 0 {
		return nil, nil
	}
	return &c.buf[0], nil
}

func (c *objectCursor) next() { c.buf = c.buf[1:] }

// recordCursor pages through every files-table record in key order.
type recordCursor struct {
	db    *servicedb.DB
	ctx   context.Context
	buf   []servicedb.FileRecord
	after string
	done  bool
}

func (c *recordCursor) peek() (*servicedb.FileRecord, error) {
	if len(c.buf) == 0 && !c.done {
		page, err := c.db.ListFiles(c.ctx, servicedb.FileFilter{After: c.after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		c.buf = page
		if len(page) < 1000 {
			c.done = true
		}
		if len(page) > 0 {
			c.after = page[len(page)-1].Key
		}
	}
	if len(c.buf) == 0 {
		return nil, nil
	}
	return &c.buf[0], nil
}

func (c *recordCursor) next() { c.buf = c.buf[1:] }
