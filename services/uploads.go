package services

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"strings"
	"time"

	"depot"
	"depot/internal/crashpoint"
	"depot/servicedb"
	"depot/storage"
)

// Session metadata keys kept with an upload session.
const (
	metaFileName    = "file_name"
	metaIfMatch     = "if_match"
	metaIfNoneMatch = "if_none_match"
	metaRequestID   = "request_id"
)

// UploadRequest starts an upload session.
type UploadRequest struct {
	Key      string
	Size     int64 // declared size, -1 unknown
	SHA256   string
	Class    depot.Class
	FileName string
	// Resumable sessions wait for their client (tus, the CLI); a plain
	// PUT's session is removed as soon as it is idle.
	Resumable bool
	// Meta is kept with the session (e.g. "protocol").
	Meta map[string]string
	// IfMatch and IfNoneMatch are checked now and again at commit.
	IfMatch, IfNoneMatch string
}

// CreateUpload starts an upload session, audited as upload.started.
func (c *Core) CreateUpload(ctx context.Context, caller depot.Caller, req UploadRequest) (depot.Upload, error) {
	cl := c.begin(caller)
	cl.fileName = req.FileName
	if err := depot.ValidateKey(req.Key); err != nil {
		return depot.Upload{}, err
	}
	if err := c.authorize(ctx, cl, req.Key, depot.PermUpload); err != nil {
		return depot.Upload{}, err
	}
	ev := cl.event(depot.ActionUploadStarted, req.Key)
	ev.DeclaredSize, ev.StreamStart = req.Size, &cl.start
	class, err := c.admit(ctx, cl, req.Key, req.Class, req.IfMatch, req.IfNoneMatch)
	ev.FileClass = class
	if err != nil {
		ev.Action = depot.ActionUploadFailed
		return depot.Upload{}, c.fail(ctx, cl, ev, err)
	}
	if err := c.scanAdmit(req.Size); err != nil {
		ev.Action = depot.ActionUploadFailed
		return depot.Upload{}, c.fail(ctx, cl, ev, err)
	}
	req.Class = class
	if req.Meta[MetaConcat] == ConcatPartial && req.Size < 0 {
		ev.Action = depot.ActionUploadFailed
		return depot.Upload{}, c.fail(ctx, cl, ev, depot.Errorf(depot.CodeInvalid, "a partial upload needs its length (Upload-Length)"))
	}
	if max := c.cfg.MaxOpenUploadsPerUser; max > 0 {
		n, err := c.cfg.DB.OpenUploads(ctx, cl.principal.User)
		if err != nil {
			return depot.Upload{}, err
		}
		if n >= max {
			// Recorded here: fail leaves too_many to the throttle, which
			// audits its own refusals.
			ev.Action, ev.Outcome, ev.ErrorCode = depot.ActionUploadFailed, depot.OutcomeDenied, string(depot.CodeTooMany)
			ev.Metadata = map[string]string{"open_uploads": strconv.Itoa(n)}
			if err := c.audit(ctx, ev); err != nil {
				return depot.Upload{}, err
			}
			return depot.Upload{}, depot.Errorf(depot.CodeTooMany,
				"you have %d unfinished uploads, the most allowed; finish or cancel one first", n)
		}
	}
	meta := maps.Clone(req.Meta)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[metaFileName], meta[metaRequestID] = req.FileName, cl.RequestID
	if req.IfMatch != "" {
		meta[metaIfMatch] = req.IfMatch
	}
	if req.IfNoneMatch != "" {
		meta[metaIfNoneMatch] = req.IfNoneMatch
	}
	u, err := c.cfg.Store.CreateUpload(ctx, depot.Upload{
		Key: req.Key, Owner: cl.principal.User, DeclaredSize: req.Size, SHA256: req.SHA256,
		Class: req.Class, Resumable: req.Resumable, Meta: meta,
	})
	if err != nil {
		ev.Action = depot.ActionUploadFailed
		return depot.Upload{}, c.fail(ctx, cl, ev, err)
	}
	ev.UploadID = u.ID
	if err := c.audit(ctx, ev); err != nil {
		_ = c.cfg.Store.Abort(context.WithoutCancel(ctx), u.ID)
		return depot.Upload{}, err
	}
	return u, nil
}

// admit checks, before any byte is read, that an upload of class to key
// may commit: its conditions hold now and only a manager changes a path's
// class (refused as access.denied). It returns the upload's class: class,
// or when it is "" the class of the path's current (or newest kept)
// version, permanent for a new path.
func (c *Core) admit(ctx context.Context, cl *call, key string, class depot.Class, ifMatch, ifNoneMatch string) (depot.Class, error) {
	check, err := c.cfg.DB.CheckPath(ctx, key)
	if err != nil {
		return class, err
	}
	switch {
	case class == "" && check.Class != "":
		class = check.Class
	case class == "":
		class = depot.Permanent
	case !class.Valid():
		return class, depot.Errorf(depot.CodeInvalid, "file class must be permanent or temporary")
	}
	commit := servicedb.Commit{
		Version: servicedb.Version{Class: class}, IfMatch: ifMatch, IfNoneMatch: ifNoneMatch,
		MayChangeClass: cl.principal.Can(cohortOf(key), depot.PermManage),
	}
	err = check.Check(commit)
	if depot.ErrorCode(err) == depot.CodeForbidden {
		ev := cl.event(depot.ActionAccessDenied, key)
		ev.Outcome, ev.ErrorCode = depot.OutcomeDenied, string(depot.CodeForbidden)
		ev.FileClass = class
		ev.Metadata = map[string]string{"permission": string(depot.PermManage), "reason": "class_change"}
		if aerr := c.audit(ctx, ev); aerr != nil {
			return class, aerr
		}
	}
	return class, err
}

// Upload returns the state of upload id for its owner: an open session, or
// a completed one (whose version has the upload's ID), so that a client
// that lost the final answer can learn that its upload is complete. resume
// records the inspection as upload.resumed. The caller must still hold the
// upload permission on the cohort.
func (c *Core) Upload(ctx context.Context, caller depot.Caller, id string, resume bool) (depot.Upload, error) {
	cl := c.begin(caller)
	u, err := c.ownUpload(ctx, cl, id)
	if err != nil {
		return depot.Upload{}, err
	}
	if resume && !u.Completed && !(isPartial(u) && u.Offset == u.DeclaredSize) {
		// The request that appended its last chunks may have ended
		// before one that made them durable (web stopped): the offset
		// told to a client that resumes must be on disk.
		if u, err = c.cfg.Store.Sync(ctx, id); err != nil {
			return depot.Upload{}, err
		}
	}
	if resume {
		ev := cl.event(depot.ActionUploadResumed, u.Key)
		ev.UploadID, ev.DeclaredSize = u.ID, u.DeclaredSize
		ev.Metadata = map[string]string{"offset": strconv.FormatInt(u.Offset, 10)}
		if err := c.audit(ctx, ev); err != nil {
			return depot.Upload{}, err
		}
	}
	return u, nil
}

// ownUpload loads upload id for cl: authenticated, its owner (or an
// admin), still allowed to upload into its cohort. To anyone else it does
// not exist, so that IDs cannot be probed (the refusal is audited).
func (c *Core) ownUpload(ctx context.Context, cl *call, id string) (depot.Upload, error) {
	u, err := c.ownedUpload(ctx, cl, id)
	if err != nil {
		return depot.Upload{}, err
	}
	if err := c.permit(ctx, cl, u.Key, depot.PermUpload); err != nil {
		return depot.Upload{}, err
	}
	return u, nil
}

// ownedUpload is ownUpload without the check of the upload permission: the
// owner may end an upload after losing it.
func (c *Core) ownedUpload(ctx context.Context, cl *call, id string) (depot.Upload, error) {
	if err := c.authenticate(ctx, cl); err != nil {
		return depot.Upload{}, err
	}
	u, err := c.cfg.Store.Upload(ctx, id)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		u, err = c.completedUpload(ctx, id)
	}
	if err != nil {
		return depot.Upload{}, err
	}
	if u.Owner != cl.principal.User && !cl.principal.Admin {
		return depot.Upload{}, c.notOwner(ctx, cl, u)
	}
	cl.fileName = u.Meta[metaFileName]
	return u, nil
}

// writableUpload is ownUpload for appending to or committing upload id:
// its owner only. An administrator may inspect or end another user's
// upload, never write to it (the version would carry the owner's name and
// another's bytes).
func (c *Core) writableUpload(ctx context.Context, cl *call, id string) (depot.Upload, error) {
	u, err := c.ownUpload(ctx, cl, id)
	if err == nil && u.Owner != cl.principal.User {
		return depot.Upload{}, c.notOwner(ctx, cl, u)
	}
	return u, err
}

// notOwner audits cl's attempt on another user's upload u as
// access.denied and answers that it does not exist.
func (c *Core) notOwner(ctx context.Context, cl *call, u depot.Upload) error {
	ev := cl.event(depot.ActionAccessDenied, u.Key)
	ev.Outcome, ev.ErrorCode, ev.UploadID = depot.OutcomeDenied, string(depot.CodeForbidden), u.ID
	if err := c.audit(ctx, ev); err != nil {
		return err
	}
	return depot.Errorf(depot.CodeNotFound, "no such upload")
}

// completedUpload describes the upload that became version id.
func (c *Core) completedUpload(ctx context.Context, id string) (depot.Upload, error) {
	if !storage.ValidID(id) {
		return depot.Upload{}, depot.Errorf(depot.CodeNotFound, "no such upload")
	}
	v, err := c.cfg.DB.Version(ctx, id)
	if err != nil || v.Purged != nil {
		return depot.Upload{}, depot.Errorf(depot.CodeNotFound, "no such upload")
	}
	u := depot.Upload{
		ID: v.ID, Key: v.Key, Owner: v.UploadedBy, Offset: v.Size, DeclaredSize: v.Size, SHA256: v.SHA256,
		Class: v.Class, Created: v.Created, Updated: v.Created, Completed: true, Resumable: true,
	}
	// A final upload of the concatenation extension is told by its
	// record, which names its parts.
	evs, err := c.cfg.DB.Events(ctx, servicedb.Filter{UploadID: id, Action: depot.ActionUploadCompleted, Limit: 1})
	if err != nil {
		return depot.Upload{}, err
	}
	if len(evs) == 1 && evs[0].Metadata[metaConcatParts] != "" {
		u.Meta = map[string]string{MetaConcat: ConcatFinal, metaConcatParts: evs[0].Metadata[metaConcatParts]}
	}
	return u, nil
}

// AppendRequest is one chunk of an upload session.
type AppendRequest struct {
	Chunk storage.Chunk
	// Resume marks the first chunk of a client request that continues an
	// earlier one (audited as upload.resumed).
	Resume bool
	// Complete commits the upload after this chunk (its final one), with
	// Size the expected total (-1: the declared one): one round trip for
	// the last chunk and the commit.
	Complete bool
	Size     int64
}

// Append appends a chunk to upload id and, with Complete, commits it. It
// returns the session's state and, when committed, the new version. A
// fatal failure of a plain (not resumable) upload ends it: its session is
// discarded and upload.failed recorded with the code.
func (c *Core) Append(ctx context.Context, caller depot.Caller, id string, req AppendRequest) (depot.Upload, *depot.Object, error) {
	cl := c.begin(caller)
	u, err := c.writableUpload(ctx, cl, id)
	if err != nil {
		return depot.Upload{}, nil, err
	}
	if u.Completed {
		return c.appendAfterCommit(ctx, u, req)
	}
	if isPartial(u) && req.Chunk.Length == 0 && u.Offset == u.DeclaredSize {
		return u, nil, nil // a sealed partial's staging area may be gone
	}
	if req.Resume {
		ev := cl.event(depot.ActionUploadResumed, u.Key)
		ev.UploadID, ev.DeclaredSize = u.ID, u.DeclaredSize
		ev.Metadata = map[string]string{"offset": strconv.FormatInt(req.Chunk.Offset, 10)}
		if err := c.audit(ctx, ev); err != nil {
			return u, nil, err
		}
	}
	if req.Chunk.Offset > u.Offset {
		// Sent while the chunk before it was still on its way: wait for
		// that one (before the scan's tee, which follows the session's order).
		c.cfg.Store.AwaitOffset(ctx, id, req.Chunk.Offset)
	}
	chunk, fed := req.Chunk, func(error, int64) {}
	if !isPartial(u) {
		// A partial is never scanned by itself: its final upload is,
		// whole, from storage. A stream would only hold one of the
		// scanner's few until it idled out.
		chunk, fed = c.scanTee(ctx, id, req.Chunk)
	}
	next, err := c.cfg.Store.Append(ctx, id, chunk)
	fed(err, next.Offset)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		// The session was committed while this request waited for it: a
		// retry of the final chunk sent while its commit (a long malware
		// scan) was still running.
		if done, derr := c.completedUpload(ctx, id); derr == nil {
			return c.appendAfterCommit(ctx, done, req)
		}
	}
	if next.ID != "" {
		u = next
	}
	if err != nil {
		return u, nil, c.endPlain(ctx, cl, u, err)
	}
	if !req.Complete || isPartial(u) {
		return u, nil, nil // a partial is never committed on its own
	}
	obj, err := c.complete(ctx, cl, u, storage.Want{Size: req.Size})
	if err != nil {
		return u, nil, err
	}
	u.Completed = true
	return u, &obj, nil
}

// appendAfterCommit answers a chunk for upload u, which is committed: a
// retry of the final chunk whose answer was lost gets the version.
func (c *Core) appendAfterCommit(ctx context.Context, u depot.Upload, req AppendRequest) (depot.Upload, *depot.Object, error) {
	if req.Chunk.Offset+req.Chunk.Length == u.Offset && (req.Complete || req.Chunk.Length == 0) {
		obj, err := c.versionObject(ctx, u.ID)
		return u, &obj, err
	}
	return u, nil, depot.Errorf(depot.CodeConflict, "the upload is already complete")
}

// Complete verifies and commits upload id as a new version of its path.
// A retried completion of a committed upload returns its version.
func (c *Core) Complete(ctx context.Context, caller depot.Caller, id string, want storage.Want) (depot.Object, error) {
	cl := c.begin(caller)
	u, err := c.writableUpload(ctx, cl, id)
	if err != nil {
		return depot.Object{}, err
	}
	if u.Completed {
		obj, err := c.versionObject(ctx, u.ID)
		if err == nil && ((want.Size >= 0 && want.Size != obj.Size) || (want.SHA256 != "" && want.SHA256 != obj.SHA256)) {
			return depot.Object{}, depot.Errorf(depot.CodeConflict, "the upload was completed with other content")
		}
		return obj, err
	}
	if isPartial(u) {
		return depot.Object{}, depot.Errorf(depot.CodeConflict, "a partial upload is never committed on its own: create the final upload (Upload-Concat: final;...)")
	}
	return c.complete(ctx, cl, u, want)
}

// complete commits session u: the Store verifies and publishes its bytes,
// then the version, the path's pointer, the removal of the session and the
// upload.completed record are written in one transaction.
func (c *Core) complete(ctx context.Context, cl *call, u depot.Upload, want storage.Want) (depot.Object, error) {
	ev := cl.event(depot.ActionUploadCompleted, u.Key)
	ev.UploadID, ev.DeclaredSize, ev.FileClass, ev.StreamStart, ev.BytesTransferred = u.ID, u.DeclaredSize, u.Class, &u.Created, u.Offset
	if parts := u.Meta[metaConcatParts]; parts != "" {
		ev.Metadata = map[string]string{metaConcatParts: parts}
	}
	var obj depot.Object
	crashpoint.Reach(crashpoint.Staged)
	_, err := c.cfg.Store.Complete(ctx, u.ID, want, func(ctx context.Context, s storage.Stored) error {
		crashpoint.Reach(crashpoint.BeforeCommit)
		v := c.newVersion(s, u.Key, u.Class, u.Owner)
		if err := c.scanVerdict(ctx, u.ID, s, &v, &ev); err != nil {
			return err
		}
		if err := c.reauthorize(ctx, cl, u.Key, depot.PermUpload); err != nil {
			return err
		}
		c.fillCommitted(&ev, v)
		obj = v.Object()
		commit := servicedb.Commit{
			Version: v, UploadID: u.ID, IfMatch: u.Meta[metaIfMatch], IfNoneMatch: u.Meta[metaIfNoneMatch],
			MayChangeClass: cl.principal.Can(cohortOf(u.Key), depot.PermManage),
			Parts:          strings.Fields(u.Meta[metaConcatParts]),
		}
		return c.auditWith(ctx, ev, servicedb.CommitVersion(commit))
	})
	if err == nil {
		crashpoint.Reach(crashpoint.AfterCommit)
		return obj, nil
	}
	ev.Action, ev.StoredSize, ev.SHA256 = depot.ActionUploadFailed, -1, ""
	switch depot.ErrorCode(err) {
	case depot.CodeHashMismatch: // the Store discarded the session
		return depot.Object{}, c.fail(ctx, cl, ev, err)
	case depot.CodePrecondition, depot.CodeForbidden, depot.CodeInfected, depot.CodeTooLarge:
		// The commit (or the scan before it) refused: the upload can
		// never succeed.
		_ = c.cfg.Store.Abort(context.WithoutCancel(ctx), u.ID)
		after := c.scanRefused(ctx, &ev, err)
		ev.Outcome, ev.ErrorCode = depot.OutcomeFailure, string(depot.ErrorCode(err))
		if aerr := c.audit(ctx, ev); aerr != nil {
			return depot.Object{}, aerr
		}
		after()
		return depot.Object{}, err
	}
	return depot.Object{}, c.endPlain(ctx, cl, u, err)
}

// endPlain ends a plain upload that failed for good (a full store, a body
// too long or short, a hash mismatch): no client can resume it, so its
// session is discarded now and the failure recorded. A resumable upload,
// and any upload after a transient failure, are left as they are.
//
// A final upload (concatenation) is never resumed: whatever its failure,
// its session is discarded and the failure recorded (its partials stay).
func (c *Core) endPlain(ctx context.Context, cl *call, u depot.Upload, err error) error {
	if u.Meta[MetaConcat] != ConcatFinal {
		if u.Resumable || errors.Is(err, storage.ErrDamaged) {
			return err
		}
		switch depot.ErrorCode(err) {
		case depot.CodeStorageFull, depot.CodeSizeMismatch, depot.CodeTooLarge, depot.CodeInvalid:
		default:
			return err
		}
	}
	_ = c.cfg.Store.Abort(context.WithoutCancel(ctx), u.ID)
	c.scanDrop(u.ID)
	ev := cl.event(depot.ActionUploadFailed, u.Key)
	ev.UploadID, ev.DeclaredSize, ev.FileClass, ev.BytesTransferred = u.ID, u.DeclaredSize, u.Class, u.Offset
	return c.fail(ctx, cl, ev, err)
}

// newVersion describes the version that stored object s becomes.
func (c *Core) newVersion(s storage.Stored, key string, class depot.Class, owner string) servicedb.Version {
	v := servicedb.Version{
		ID: s.ID, Key: key, Cohort: cohortOf(key), Size: s.Size, SHA256: s.SHA256, Class: class,
		UploadedBy: owner, Created: c.now(),
	}
	if class == depot.Temporary {
		at := v.Created.Add(c.cfg.TempTTL)
		v.CleanupScheduledFor = &at
	}
	return v
}

// fillCommitted completes the upload.completed record ev of v.
func (c *Core) fillCommitted(ev *depot.AuditEvent, v servicedb.Version) {
	done := v.Created
	start := done
	if ev.StreamStart != nil {
		start = *ev.StreamStart
	}
	ev.Time, ev.Outcome = done, depot.OutcomeSuccess
	ev.StoredSize, ev.SHA256, ev.FileClass = v.Size, v.SHA256, v.Class
	ev.StreamComplete, ev.DurationMS, ev.CleanupScheduledFor = &done, done.Sub(start).Milliseconds(), v.CleanupScheduledFor
}

func (c *Core) versionObject(ctx context.Context, id string) (depot.Object, error) {
	v, err := c.cfg.DB.Version(ctx, id)
	if err != nil {
		return depot.Object{}, err
	}
	return v.Object(), nil
}

// Abort discards upload id, audited as upload.aborted: a success when its
// client ended it (tus termination), a failure with reason as the code
// when the web tier gave up on it (its client went away, a failure). The
// record is written before the bytes go.
func (c *Core) Abort(ctx context.Context, caller depot.Caller, id string, reason depot.Code) error {
	cl := c.begin(caller)
	u, err := c.ownedUpload(ctx, cl, id)
	if err != nil {
		return err
	}
	if u.Completed {
		return depot.Errorf(depot.CodeConflict, "the upload is complete; delete the file instead")
	}
	ev := cl.event(depot.ActionUploadAborted, u.Key)
	ev.UploadID, ev.DeclaredSize, ev.BytesTransferred, ev.FileClass = u.ID, u.DeclaredSize, u.Offset, u.Class
	if reason != "" {
		ev.Outcome, ev.ErrorCode = depot.OutcomeFailure, string(reason)
	}
	if err := c.audit(ctx, ev); err != nil {
		return err
	}
	c.scanDrop(u.ID)
	return c.cfg.Store.Abort(ctx, u.ID)
}

// PutRequest is a one-shot upload: a body small enough to be sent, and
// retried, whole.
type PutRequest struct {
	Key      string
	Chunk    storage.Chunk // the whole body, at offset 0
	SHA256   string
	Class    depot.Class
	FileName string
	IfMatch  string
	// IfNoneMatch "*" is a create-only upload.
	IfNoneMatch string
}

// Put stores a one-shot upload as a new version, recorded as one
// upload.completed (or upload.failed) record; the version's ID is the
// upload's ID in it.
func (c *Core) Put(ctx context.Context, caller depot.Caller, req PutRequest) (depot.Object, error) {
	cl := c.begin(caller)
	cl.fileName = req.FileName
	if err := depot.ValidateKey(req.Key); err != nil {
		return depot.Object{}, err
	}
	if err := c.authorize(ctx, cl, req.Key, depot.PermUpload); err != nil {
		return depot.Object{}, err
	}
	ev := cl.event(depot.ActionUploadCompleted, req.Key)
	ev.DeclaredSize, ev.StreamStart, ev.BytesTransferred = req.Chunk.Length, &cl.start, req.Chunk.Length
	fail := func(err error) (depot.Object, error) {
		ev.Action = depot.ActionUploadFailed
		return depot.Object{}, c.fail(ctx, cl, ev, err)
	}
	class, err := c.admit(ctx, cl, req.Key, req.Class, req.IfMatch, req.IfNoneMatch)
	ev.FileClass, req.Class = class, class
	if err != nil {
		return fail(err)
	}
	if err := c.scanAdmit(req.Chunk.Length); err != nil {
		return fail(err)
	}
	scanID := "put-" + storage.NewID() // the scan stream of this one-shot body
	chunk, fed := c.scanTee(ctx, scanID, req.Chunk)
	s, err := c.cfg.Store.Put(ctx, chunk, req.SHA256)
	fed(err, s.Size)
	if err != nil {
		c.scanDrop(scanID)
		return fail(err)
	}
	ev.UploadID = s.ID
	crashpoint.Reach(crashpoint.BeforeCommit)
	v := c.newVersion(s, req.Key, req.Class, cl.principal.User)
	if err := c.scanVerdict(ctx, scanID, s, &v, &ev); err != nil {
		_ = c.cfg.Store.Delete(context.WithoutCancel(ctx), s.ID)
		after := c.scanRefused(ctx, &ev, err)
		obj, err := fail(err)
		after()
		return obj, err
	}
	if err := c.reauthorize(ctx, cl, req.Key, depot.PermUpload); err != nil {
		_ = c.cfg.Store.Delete(context.WithoutCancel(ctx), s.ID)
		return fail(err)
	}
	c.fillCommitted(&ev, v)
	commit := servicedb.Commit{
		Version: v, IfMatch: req.IfMatch, IfNoneMatch: req.IfNoneMatch,
		MayChangeClass: cl.principal.Can(cohortOf(req.Key), depot.PermManage),
	}
	if err := c.auditWith(ctx, ev, servicedb.CommitVersion(commit)); err != nil {
		// Nothing refers to the object: remove it now (or cleanup will).
		_ = c.cfg.Store.Delete(context.WithoutCancel(ctx), s.ID)
		if isAuditFailure(err) {
			return depot.Object{}, err
		}
		ev.StoredSize, ev.SHA256, ev.StreamComplete = -1, "", nil
		return fail(err)
	}
	crashpoint.Reach(crashpoint.AfterCommit)
	return v.Object(), nil
}

// ExpireIdlePlain removes the sessions of plain (not resumable) uploads
// idle for longer than the store's plain expiry: their request ended
// without a commit (the web process or its client died), so nothing can
// continue them. Each is recorded as upload.aborted with the code
// "abandoned". It returns how many it removed.
func (c *Core) ExpireIdlePlain(ctx context.Context, idle time.Duration) (int, error) {
	sessions, err := c.cfg.DB.Uploads(ctx, servicedb.UploadFilter{IdleBefore: c.now().Add(-idle)})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range sessions {
		if s.Resumable {
			continue
		}
		u, ok, err := c.cfg.Store.Expire(ctx, s.ID, c.now().Add(-idle))
		if err != nil || !ok {
			continue
		}
		n++
		ev := depot.AuditEvent{
			Action: depot.ActionUploadAborted, Outcome: depot.OutcomeFailure, ErrorCode: "abandoned",
			Actor: "system", AuthMethod: "job", ServerRole: "services", WebNode: c.cfg.Node,
			Cohort: cohortOf(u.Key), Key: u.Key, UploadID: u.ID, DeclaredSize: u.DeclaredSize,
			BytesTransferred: u.Offset, StoredSize: -1, FileClass: u.Class,
			Metadata: map[string]string{"last_activity": u.Updated.UTC().Format(time.RFC3339)},
		}
		if err := c.audit(ctx, ev); err != nil {
			return n, err
		}
		c.scanDrop(u.ID)
	}
	return n, nil
}
