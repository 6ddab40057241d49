package maintenance

import (
	"context"
	"time"

	"depot"
	"depot/servicedb"
	"depot/storage"
)

// sweepObjects merges the stored objects with the kept versions, both in ID
// order. An object that no version and no upload session refers to, older
// than StrayGrace (a commit in progress publishes its object just before
// recording it), is a leftover of a crash or of a purge whose removal
// failed: it is removed. A kept version whose object is missing is
// reported and alerted: its bytes are lost.
func (m *Maintainer) sweepObjects(ctx context.Context, now time.Time, dryRun bool, res *CleanupResult) error {
	objs := &pager[storage.ObjectInfo]{next: func(after string) ([]storage.ObjectInfo, error) {
		return m.cfg.Store.Objects(ctx, after, 1000)
	}, id: func(o storage.ObjectInfo) string { return o.ID }}
	vers := &pager[servicedb.Version]{next: func(after string) ([]servicedb.Version, error) {
		return m.cfg.DB.ListVersions(ctx, servicedb.VersionFilter{After: after, Limit: 1000})
	}, id: func(v servicedb.Version) string { return v.ID }}
	young := now.Add(-m.cfg.StrayGrace)
	for {
		o, oerr := objs.peek()
		v, verr := vers.peek()
		if oerr != nil {
			return oerr
		}
		if verr != nil {
			return verr
		}
		switch {
		case o == nil && v == nil:
			return nil
		case v == nil || (o != nil && o.ID < v.ID):
			objs.advance()
			if o.ModTime.After(young) {
				continue
			}
			if err := m.removeUnreferenced(ctx, *o, dryRun, res); err != nil {
				return err
			}
		case o == nil || v.ID < o.ID:
			vers.advance()
			if v.Created.After(young) {
				continue
			}
			if err := m.reportMissing(ctx, *v, dryRun, res); err != nil {
				return err
			}
		default: // both sides
			objs.advance()
			vers.advance()
		}
	}
}

// removeUnreferenced removes object o if, checked again, nothing refers to
// it.
func (m *Maintainer) removeUnreferenced(ctx context.Context, o storage.ObjectInfo, dryRun bool, res *CleanupResult) error {
	if ref, err := m.cfg.DB.Referenced(ctx, o.ID); err != nil || ref {
		return err
	}
	res.OrphanObjects++
	if dryRun {
		return nil
	}
	ev := depot.AuditEvent{
		Action: depot.ActionCleanupCompleted, Outcome: depot.OutcomeSuccess, StoredSize: o.Size,
		Metadata: map[string]string{"kind": OrphanObject, "object": o.ID},
	}
	if _, err := m.audit(ctx, ev); err != nil {
		return err
	}
	if err := m.cfg.Store.Delete(ctx, o.ID); err != nil {
		res.DeleteFailures++
		ev.Action, ev.Outcome, ev.ErrorCode = depot.ActionCleanupFailed, depot.OutcomeFailure, string(depot.CodeUnavailable)
		_, aerr := m.audit(ctx, ev)
		return aerr
	}
	return nil
}

// reportMissing reports a kept version whose object is missing, once it
// is sure: the version is still kept and the object still absent.
func (m *Maintainer) reportMissing(ctx context.Context, v servicedb.Version, dryRun bool, res *CleanupResult) error {
	if cur, err := m.cfg.DB.Version(ctx, v.ID); err != nil || cur.Purged != nil {
		return nil // purged meanwhile
	}
	if _, err := m.cfg.Store.Stat(ctx, v.ID); depot.ErrorCode(err) != depot.CodeNotFound {
		return nil // present after all, or cannot tell
	}
	res.OrphanRecords++
	if dryRun {
		return nil
	}
	ev := versionEvent(depot.ActionOrphanDetected, v)
	ev.ErrorCode = OrphanRecord
	ev.Metadata = map[string]string{"kind": OrphanRecord, "version": v.ID}
	out, err := m.audit(ctx, ev)
	if err != nil {
		return err
	}
	res.Alerts++
	m.alert(ctx, Alert{Kind: AlertMissingObject, Job: JobCleanup, Cohort: v.Cohort, AuditSeq: out.Seq,
		Code: OrphanRecord, Message: "a kept version's stored object is missing"})
	return nil
}

// removeStrays removes staging areas older than StrayGrace whose session
// no longer exists (crash leftovers).
func (m *Maintainer) removeStrays(ctx context.Context, now time.Time, dryRun bool, res *CleanupResult) error {
	strays, err := m.cfg.Store.Strays(ctx)
	if err != nil {
		return err
	}
	cutoff := now.Add(-m.cfg.StrayGrace)
	for _, s := range strays {
		if s.ModTime.After(cutoff) {
			continue
		}
		if s.SessionID != "" {
			if _, err := m.cfg.DB.Session(ctx, s.SessionID); err == nil {
				continue // a session owns it
			}
		}
		res.Strays++
		if dryRun {
			res.StraysRemoved++
			res.StrayBytes += s.Size
			continue
		}
		ev := depot.AuditEvent{
			Action: depot.ActionCleanupCompleted, Outcome: depot.OutcomeSuccess, UploadID: s.SessionID,
			StoredSize: s.Size, Metadata: map[string]string{"kind": "crash_leftover"},
		}
		removed, err := m.cfg.Store.RemoveStray(ctx, s)
		if err != nil {
			ev.Action, ev.Outcome, ev.ErrorCode = depot.ActionCleanupFailed, depot.OutcomeFailure, string(depot.CodeUnavailable)
			if _, aerr := m.audit(ctx, ev); aerr != nil {
				return aerr
			}
			res.DeleteFailures++
			continue
		}
		if !removed {
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

// pager pages through a listing in ID order.
type pager[T any] struct {
	next  func(after string) ([]T, error)
	id    func(T) string
	buf   []T
	after string
	done  bool
}

func (p *pager[T]) peek() (*T, error) {
	if len(p.buf) == 0 && !p.done {
		page, err := p.next(p.after)
		if err != nil {
			return nil, err
		}
		p.buf = page
		if len(page) == 0 {
			p.done = true
		} else {
			p.after = p.id(page[len(page)-1])
		}
	}
	if len(p.buf) == 0 {
		return nil, nil
	}
	return &p.buf[0], nil
}

func (p *pager[T]) advance() { p.buf = p.buf[1:] }
