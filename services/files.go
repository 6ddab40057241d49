package services

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"depot"
	"depot/internal/crashpoint"
	"depot/servicedb"
)

// versionOf returns the version of key that a read names: the current one
// (id ""), or version id of key. A deleted path's versions are visible to
// the cohort's managers only.
func (c *Core) versionOf(ctx context.Context, cl *call, key, id string) (servicedb.Version, error) {
	if id == "" {
		return c.cfg.DB.Current(ctx, key)
	}
	v, err := c.cfg.DB.Version(ctx, id)
	if err != nil || v.Key != key || v.Purged != nil {
		return servicedb.Version{}, depot.Errorf(depot.CodeNotFound, "no such version of this file")
	}
	p, err := c.cfg.DB.Path(ctx, key)
	if err != nil {
		return servicedb.Version{}, err
	}
	if p.Deleted != nil && !cl.principal.Can(cohortOf(key), depot.PermManage) {
		return servicedb.Version{}, depot.Errorf(depot.CodeNotFound, "no such version of this file")
	}
	return v, nil
}

// Download is an open download of one version: what it is, which bytes of
// it are sent, and a reader of them. Finish must be called when the body
// has been sent (or not).
type Download struct {
	Object depot.Object
	Offset int64
	Length int64
	// Partial is set when Offset and Length select a range (206).
	Partial bool
	// NotModified is set, without a Body, when If-None-Match matched.
	NotModified bool
	Body        io.ReadCloser

	core *Core
	ev   depot.AuditEvent
}

// Open opens a version of key for reading, audited as file.download before
// any byte is read; Download.Finish records how it ended. opts.IfRange
// that does not match the version makes the whole version the answer, so a
// resumed download never mixes two versions; a multi-range or
// unsatisfiable Range is the caller's to map (Range nil: whole).
func (c *Core) Open(ctx context.Context, caller depot.Caller, key string, opts depot.ReadOptions) (*Download, error) {
	cl := c.begin(caller)
	if err := depot.ValidateKey(key); err != nil {
		return nil, err
	}
	if err := c.authorize(ctx, cl, key, depot.PermRead); err != nil {
		return nil, err
	}
	ev := cl.event(depot.ActionDownload, key)
	v, err := c.versionOf(ctx, cl, key, opts.Version)
	if err == nil && v.Scan == depot.ScanInfected {
		err = depot.Errorf(depot.CodeInfected, "a rescan found malware in this version; it is no longer served")
	}
	if err != nil {
		return nil, c.fail(ctx, cl, ev, err)
	}
	d := &Download{Object: v.Object(), Length: v.Size, core: c}
	ev.StoredSize, ev.SHA256, ev.FileClass = v.Size, v.SHA256, v.Class
	ev.Metadata = map[string]string{"version": v.ID}
	if opts.IfNoneMatch != "" && servicedb.ETagMatches(opts.IfNoneMatch, v.SHA256) {
		ev.Action, ev.Metadata["answer"] = depot.ActionStat, "not_modified"
		d.NotModified = true
		return d, c.audit(ctx, ev)
	}
	if opts.Range != nil && ifRangeHolds(opts.IfRange, v) {
		off, n, ok := opts.Range.Resolve(v.Size)
		if !ok {
			return d, c.fail(ctx, cl, ev, depot.Errorf(depot.CodeRangeNotSatisf, "the range starts past the end of the file"))
		}
		d.Offset, d.Length, d.Partial = off, n, true
		ev.Metadata["range"] = fmt.Sprintf("%d-%d", off, off+n-1)
	}
	rc, err := c.cfg.Store.Open(ctx, v.ID, d.Offset, d.Length)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		c.log.Error("stored object of a version is missing", "version", v.ID, "request_id", cl.RequestID)
		err = depot.WrapError(depot.CodeInternal, "the stored bytes of this file are missing", err)
	}
	if err != nil {
		return nil, c.fail(ctx, cl, ev, err)
	}
	start := c.now()
	ev.DeclaredSize, ev.StreamStart = d.Length, &start
	if err := c.audit(ctx, ev); err != nil { // recorded before the first byte leaves
		rc.Close()
		return nil, err
	}
	d.Body, d.ev = rc, ev
	return d, nil
}

// Finish closes the body and records how the download ended: the bytes
// sent and whether all of them were (download.completed; a failure with
// code "incomplete" when the client went away). err is the sender's.
func (d *Download) Finish(ctx context.Context, sent int64, err error) {
	if d.Body == nil {
		return
	}
	d.Body.Close()
	ev := d.ev
	ev.Time = time.Time{}
	ev.Action, ev.BytesTransferred = depot.ActionDownloadCompleted, sent
	end := d.core.now()
	ev.DurationMS = end.Sub(*ev.StreamStart).Milliseconds()
	if err == nil && sent == d.Length {
		ev.StreamComplete = &end
	} else {
		ev.Outcome, ev.ErrorCode = depot.OutcomeFailure, "incomplete"
	}
	if aerr := d.core.audit(context.WithoutCancel(ctx), ev); aerr != nil {
		d.core.log.Error("download end not recorded", "request_id", ev.CorrelationID, "err", aerr)
	}
}

// ifRangeHolds reports whether an If-Range validator (an entity tag or an
// HTTP date; "" is none) matches v, so that its Range applies.
func ifRangeHolds(validator string, v servicedb.Version) bool {
	switch {
	case validator == "":
		return true
	case strings.HasPrefix(validator, `"`):
		return validator == `"`+v.SHA256+`"`
	case strings.HasPrefix(validator, "W/"):
		return false // a weak tag never validates a range
	}
	t, err := http.ParseTime(validator)
	return err == nil && v.Created.Truncate(time.Second).Equal(t)
}

// Stat describes a version of key (id "": the current one).
func (c *Core) Stat(ctx context.Context, caller depot.Caller, key, id string) (depot.Object, error) {
	cl := c.begin(caller)
	if err := depot.ValidateKey(key); err != nil {
		return depot.Object{}, err
	}
	if err := c.authorize(ctx, cl, key, depot.PermRead); err != nil {
		return depot.Object{}, err
	}
	ev := cl.event(depot.ActionStat, key)
	v, err := c.versionOf(ctx, cl, key, id)
	if err != nil {
		return depot.Object{}, c.fail(ctx, cl, ev, err)
	}
	ev.StoredSize, ev.SHA256, ev.FileClass = v.Size, v.SHA256, v.Class
	ev.Metadata = map[string]string{"version": v.ID}
	return v.Object(), c.audit(ctx, ev)
}

// MaxListLimit bounds one page of a listing.
const MaxListLimit = 1000

// List returns one page of the visible files under prefix (a cohort, or a
// folder of it, ending in "/"), after the key after.
func (c *Core) List(ctx context.Context, caller depot.Caller, prefix, after string, limit int) (depot.ListPage, error) {
	cl := c.begin(caller)
	if depot.ValidatePrefix(prefix) != nil || !strings.HasSuffix(prefix, "/") {
		return depot.ListPage{}, depot.Errorf(depot.CodeInvalidPath, "invalid listing prefix")
	}
	if err := c.authorize(ctx, cl, prefix, depot.PermList); err != nil {
		return depot.ListPage{}, err
	}
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	ev := cl.event(depot.ActionList, prefix)
	vs, err := c.cfg.DB.ListCurrent(ctx, prefix, after, limit+1)
	if err != nil {
		return depot.ListPage{}, c.fail(ctx, cl, ev, err)
	}
	page := depot.ListPage{Objects: make([]depot.Object, 0, min(len(vs), limit))}
	for i, v := range vs {
		if i == limit {
			page.Next = vs[i-1].Key
			break
		}
		page.Objects = append(page.Objects, v.Object())
	}
	ev.Metadata = map[string]string{"count": strconv.Itoa(len(page.Objects))}
	return page, c.audit(ctx, ev)
}

// History returns the versions of key whose bytes are kept, newest first.
// A deleted path's history is its cohort managers' only.
func (c *Core) History(ctx context.Context, caller depot.Caller, key string) (depot.History, error) {
	cl := c.begin(caller)
	if err := depot.ValidateKey(key); err != nil {
		return depot.History{}, err
	}
	if err := c.authorize(ctx, cl, key, depot.PermRead); err != nil {
		return depot.History{}, err
	}
	ev := cl.event(depot.ActionStat, key)
	ev.Metadata = map[string]string{"answer": "versions"}
	p, vs, err := c.cfg.DB.History(ctx, key)
	if err == nil && (len(vs) == 0 || (p.Deleted != nil && !cl.principal.Can(cohortOf(key), depot.PermManage))) {
		err = depot.Errorf(depot.CodeNotFound, "no such file")
	}
	if err != nil {
		return depot.History{}, c.fail(ctx, cl, ev, err)
	}
	h := depot.History{Key: key, Deleted: p.Deleted, Versions: make([]depot.VersionInfo, len(vs))}
	for i, v := range vs {
		h.Versions[i] = depot.VersionInfo{Object: v.Object(), Current: v.ID == p.Current}
	}
	ev.Metadata["count"] = strconv.Itoa(len(vs))
	return h, c.audit(ctx, ev)
}

// Delete hides key behind a delete marker (file.delete); its versions are
// kept for the deleted retention, and a manager can undelete it.
func (c *Core) Delete(ctx context.Context, caller depot.Caller, key string) error {
	cl := c.begin(caller)
	if err := depot.ValidateKey(key); err != nil {
		return err
	}
	if err := c.authorize(ctx, cl, key, depot.PermDelete); err != nil {
		return err
	}
	ev := cl.event(depot.ActionDelete, key)
	if v, err := c.cfg.DB.Current(ctx, key); err == nil {
		ev.StoredSize, ev.SHA256, ev.FileClass = v.Size, v.SHA256, v.Class
		ev.Metadata = map[string]string{"version": v.ID}
	}
	if err := c.auditWith(ctx, ev, servicedb.MarkDeleted(key, cl.principal.User)); err != nil {
		return c.fail(ctx, cl, ev, err)
	}
	return nil
}

// Undelete removes key's delete marker (a manager's).
func (c *Core) Undelete(ctx context.Context, caller depot.Caller, key string) (depot.Object, error) {
	return c.manage(ctx, caller, key, depot.ActionUndelete, nil, servicedb.Undelete(key))
}

// RestoreVersion makes version id of key its current one (a manager's).
func (c *Core) RestoreVersion(ctx context.Context, caller depot.Caller, key, id string) (depot.Object, error) {
	return c.manage(ctx, caller, key, depot.ActionRestoreVersion, map[string]string{"version": id}, servicedb.RestoreVersion(key, id))
}

// manage applies a manager's change of key's history, audited as action,
// and returns the version key shows afterwards.
func (c *Core) manage(ctx context.Context, caller depot.Caller, key string, action depot.Action, meta map[string]string, change servicedb.Change) (depot.Object, error) {
	cl := c.begin(caller)
	if err := depot.ValidateKey(key); err != nil {
		return depot.Object{}, err
	}
	if err := c.authorize(ctx, cl, key, depot.PermManage); err != nil {
		return depot.Object{}, err
	}
	ev := cl.event(action, key)
	ev.Metadata = meta
	if err := c.auditWith(ctx, ev, change); err != nil {
		return depot.Object{}, c.fail(ctx, cl, ev, err)
	}
	v, err := c.cfg.DB.Current(ctx, key)
	return v.Object(), err
}

// Purge removes for good version id of key, or every version of key when
// id is "" (a manager's; refused under a hold): file.purge is recorded and
// the versions marked purged in one transaction, then their bytes go.
func (c *Core) Purge(ctx context.Context, caller depot.Caller, key, id string) error {
	cl := c.begin(caller)
	if err := depot.ValidateKey(key); err != nil {
		return err
	}
	if err := c.authorize(ctx, cl, key, depot.PermManage); err != nil {
		return err
	}
	ev := cl.event(depot.ActionPurge, key)
	ev.Metadata = map[string]string{"version": id}
	if id == "" {
		ev.Metadata["version"] = "all"
	}
	var purged []servicedb.Version
	if err := c.auditWith(ctx, ev, servicedb.Purge(key, id, &purged)); err != nil {
		return c.fail(ctx, cl, ev, err)
	}
	crashpoint.Reach(crashpoint.AfterPurge)
	c.removeBytes(ctx, purged)
	return nil
}

// removeBytes deletes the objects of purged versions. A failure leaves an
// object no version references, which cleanup removes later.
func (c *Core) removeBytes(ctx context.Context, purged []servicedb.Version) {
	for _, v := range purged {
		if err := c.cfg.Store.Delete(context.WithoutCancel(ctx), v.ID); err != nil {
			c.log.Warn("bytes of a purged version not removed; cleanup will", "version", v.ID, "err", err)
		}
	}
}

// PlaceHold places a retention hold on a cohort ("" path) or a path or
// folder of it (a manager's).
func (c *Core) PlaceHold(ctx context.Context, caller depot.Caller, cohort, path, reason string) (servicedb.Hold, error) {
	cl := c.begin(caller)
	if depot.ValidateKey(cohort) != nil || strings.Contains(cohort, "/") {
		return servicedb.Hold{}, depot.Errorf(depot.CodeInvalidPath, "invalid cohort name")
	}
	if path != "" {
		if err := depot.ValidatePrefix(path); err != nil {
			return servicedb.Hold{}, err
		}
		path = cohort + "/" + path
	}
	if err := c.authorize(ctx, cl, cohort+"/", depot.PermManage); err != nil {
		return servicedb.Hold{}, err
	}
	h := servicedb.Hold{Cohort: cohort, Path: path, Reason: reason, CreatedBy: cl.principal.User}
	ev := cl.event(depot.ActionHoldPlaced, path)
	ev.Cohort = cohort
	ev.Metadata = map[string]string{"reason": reason}
	if err := c.auditWith(ctx, ev, servicedb.PlaceHold(&h)); err != nil {
		return servicedb.Hold{}, c.fail(ctx, cl, ev, err)
	}
	return h, nil
}

// ReleaseHold ends hold id of cohort (a manager's).
func (c *Core) ReleaseHold(ctx context.Context, caller depot.Caller, cohort string, id int64) error {
	cl := c.begin(caller)
	if depot.ValidateKey(cohort) != nil || strings.Contains(cohort, "/") {
		return depot.Errorf(depot.CodeInvalidPath, "invalid cohort name")
	}
	if err := c.authorize(ctx, cl, cohort+"/", depot.PermManage); err != nil {
		return err
	}
	ev := cl.event(depot.ActionHoldReleased, "")
	ev.Cohort = cohort
	ev.Metadata = map[string]string{"hold": strconv.FormatInt(id, 10)}
	if err := c.auditWith(ctx, ev, servicedb.ReleaseHold(cohort, id, cl.principal.User)); err != nil {
		return c.fail(ctx, cl, ev, err)
	}
	return nil
}

// Holds lists the holds in force in cohort (anyone who may list it).
func (c *Core) Holds(ctx context.Context, caller depot.Caller, cohort string) ([]servicedb.Hold, error) {
	cl := c.begin(caller)
	if depot.ValidateKey(cohort) != nil || strings.Contains(cohort, "/") {
		return nil, depot.Errorf(depot.CodeInvalidPath, "invalid cohort name")
	}
	if err := c.authorize(ctx, cl, cohort+"/", depot.PermList); err != nil {
		return nil, err
	}
	return c.cfg.DB.Holds(ctx, cohort, false)
}

// RequestCleanup runs the cleanup job now for an administrator (audited as
// cleanup.scheduled; the job audits what it does).
func (c *Core) RequestCleanup(ctx context.Context, caller depot.Caller, dryRun bool) (any, error) {
	cl := c.begin(caller)
	if err := c.authenticate(ctx, cl); err != nil {
		return nil, err
	}
	ev := cl.event(depot.ActionCleanupScheduled, "")
	ev.Metadata = map[string]string{"trigger": "request", "dry_run": strconv.FormatBool(dryRun)}
	if !cl.principal.Admin {
		ev.Action, ev.Outcome, ev.ErrorCode = depot.ActionAccessDenied, depot.OutcomeDenied, string(depot.CodeForbidden)
		if err := c.audit(ctx, ev); err != nil {
			return nil, err
		}
		return nil, depot.Errorf(depot.CodeForbidden, "only administrators may request a cleanup")
	}
	if c.cfg.Cleanup == nil {
		return nil, depot.Errorf(depot.CodeUnavailable, "cleanup is not available on this services instance")
	}
	if err := c.audit(ctx, ev); err != nil {
		return nil, err
	}
	res, err := c.cfg.Cleanup(ctx, dryRun)
	if err != nil {
		return nil, depot.WrapError(depot.CodeUnavailable, "the cleanup run failed; see the services log and depot jobs", err)
	}
	return res, nil
}
