package services

import (
	"context"
	"maps"
	"strconv"
	"strings"

	"depot"
	"depot/internal/crashpoint"
	"depot/internal/wire"
	"depot/storage"
)

// The tus concatenation extension (docs/tus.md). A partial upload is an
// upload session marked at creation (UploadRequest.Meta[MetaConcat] =
// ConcatPartial): it takes bytes like any session but is never committed,
// so it is never visible under any path. Concat builds the final upload
// from complete partials: it copies their stored bytes, in order, into a
// new session and commits that through the one commit path (complete),
// recorded by one upload.completed record naming the parts; the partials
// are then released. A partial nobody concatenates expires like any idle
// resumable session.

// Session metadata of the concatenation extension (wire.MetaConcat);
// metaConcatParts is also recorded in the final's upload.completed record.
const (
	MetaConcat      = wire.MetaConcat
	ConcatPartial   = wire.ConcatPartial
	ConcatFinal     = wire.ConcatFinal
	metaConcatParts = wire.MetaConcatParts
)

// isPartial reports whether u is a partial upload.
func isPartial(u depot.Upload) bool { return u.Meta[MetaConcat] == ConcatPartial }

// ConcatRequest creates a final upload from partial uploads.
type ConcatRequest struct {
	Key      string
	Class    depot.Class
	FileName string
	// Parts are the partial uploads' IDs, in the order of their bytes.
	Parts []string
	// Meta is kept with the final session (e.g. "protocol").
	Meta map[string]string
}

// MaxConcatParts bounds the partial uploads of one final upload.
const MaxConcatParts = 100

// Concat creates the final upload of req.Parts and commits it as a new
// version of req.Key. Every part must be a complete partial upload of the
// caller's (an administrator's included: not another user's), created for
// the cohort of req.Key, named once. The version is the concatenation of
// the parts' bytes, each verified against the size and SHA-256 of the
// bytes its session received; its ID is the final upload's. Failures
// after the checks are recorded as upload.failed; the parts are kept, so
// that the client can try again.
func (c *Core) Concat(ctx context.Context, caller depot.Caller, req ConcatRequest) (depot.Upload, depot.Object, error) {
	cl := c.begin(caller)
	cl.fileName = req.FileName
	if err := depot.ValidateKey(req.Key); err != nil {
		return depot.Upload{}, depot.Object{}, err
	}
	if err := c.authorize(ctx, cl, req.Key, depot.PermUpload); err != nil {
		return depot.Upload{}, depot.Object{}, err
	}
	ev := cl.event(depot.ActionUploadFailed, req.Key)
	ev.StreamStart = &cl.start
	fail := func(err error) (depot.Upload, depot.Object, error) {
		return depot.Upload{}, depot.Object{}, c.fail(ctx, cl, ev, err)
	}
	class, err := c.admit(ctx, cl, req.Key, req.Class, "", "")
	ev.FileClass = class
	if err != nil {
		return fail(err)
	}
	parts, total, err := c.concatParts(ctx, cl, req)
	ev.DeclaredSize = total
	if err != nil {
		return fail(err)
	}
	if err := c.scanAdmit(total); err != nil {
		return fail(err)
	}
	sealed := make([]storage.Stored, len(parts))
	for i, p := range parts {
		if sealed[i], err = c.cfg.Store.Seal(ctx, p.ID); err != nil {
			return fail(partGone(p.ID, err))
		}
	}
	meta := maps.Clone(req.Meta)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[metaFileName], meta[metaRequestID] = req.FileName, cl.RequestID
	meta[MetaConcat], meta[metaConcatParts] = ConcatFinal, strings.Join(req.Parts, " ")
	// Nobody resumes a final session: one this call leaves (a crash) is
	// removed as an abandoned plain session.
	u, err := c.cfg.Store.CreateUpload(ctx, depot.Upload{
		Key: req.Key, Owner: cl.principal.User, DeclaredSize: total, Class: class, Meta: meta,
	})
	if err != nil {
		return fail(err)
	}
	ev.UploadID = u.ID
	for i, s := range sealed {
		next, err := c.cfg.Store.AppendObject(ctx, u.ID, u.Offset, s)
		if err != nil {
			_ = c.cfg.Store.Abort(context.WithoutCancel(ctx), u.ID)
			ev.BytesTransferred = u.Offset
			return fail(partGone(s.ID, err))
		}
		u = next
		if i == 0 {
			crashpoint.Pause(crashpoint.ConcatCopying)
		}
	}
	obj, err := c.complete(ctx, cl, u, storage.Want{Size: total})
	if err != nil {
		// complete discarded the final session and recorded the failure
		// (endPlain: a final session is never resumed), whatever it was:
		// the commit finding a part gone (another final joined it), the
		// scanner or the database unavailable.
		return depot.Upload{}, depot.Object{}, err
	}
	for _, p := range parts {
		// The commit removed the parts' sessions: their sealed objects are
		// referenced no more. One that cannot be removed now is removed by
		// cleanup's sweep.
		c.scanDrop(p.ID)
		_ = c.cfg.Store.Delete(context.WithoutCancel(ctx), p.ID)
	}
	u.Completed = true
	return u, obj, nil
}

// partGone names partial upload id in err when err is that it (or its
// object) is missing: another final upload joined it meanwhile, or it
// expired.
func partGone(id string, err error) error {
	if depot.ErrorCode(err) != depot.CodeNotFound {
		return err
	}
	return depot.WrapError(depot.CodeConflict, "partial upload "+id+" was joined by another final upload, or expired", err)
}

// concatParts loads and checks the parts of req and returns them with
// their total size.
func (c *Core) concatParts(ctx context.Context, cl *call, req ConcatRequest) ([]depot.Upload, int64, error) {
	if len(req.Parts) == 0 || len(req.Parts) > MaxConcatParts {
		return nil, 0, depot.Errorf(depot.CodeInvalid, "a final upload needs between 1 and %d partial uploads", MaxConcatParts)
	}
	cohort := cohortOf(req.Key)
	seen := make(map[string]bool, len(req.Parts))
	parts := make([]depot.Upload, 0, len(req.Parts))
	var total int64
	for _, id := range req.Parts {
		if seen[id] {
			return nil, 0, depot.Errorf(depot.CodeInvalid, "partial upload %s is named twice", id)
		}
		seen[id] = true
		p, err := c.cfg.Store.Upload(ctx, id)
		if depot.ErrorCode(err) == depot.CodeNotFound {
			return nil, 0, depot.Errorf(depot.CodeInvalid, "partial upload %s does not exist (or was already concatenated, or expired)", id)
		}
		if err != nil {
			return nil, 0, err
		}
		if p.Owner != cl.principal.User {
			// Another user's upload does not exist for the caller: the
			// answer is the one of a missing ID, the attempt audited.
			ev := cl.event(depot.ActionAccessDenied, p.Key)
			ev.Outcome, ev.ErrorCode, ev.UploadID = depot.OutcomeDenied, string(depot.CodeForbidden), p.ID
			ev.Metadata = map[string]string{"reason": "concat_other_owner"}
			if err := c.audit(ctx, ev); err != nil {
				return nil, 0, err
			}
			return nil, 0, depot.Errorf(depot.CodeInvalid, "partial upload %s does not exist (or was already concatenated, or expired)", id)
		}
		switch {
		case !isPartial(p):
			return nil, 0, depot.Errorf(depot.CodeInvalid, "upload %s is not a partial upload (create it with Upload-Concat: partial)", id)
		case cohortOf(p.Key) != cohort:
			return nil, 0, depot.Errorf(depot.CodeInvalid, "partial upload %s was created for another cohort than the final upload's", id)
		case p.DeclaredSize < 0 || p.Offset != p.DeclaredSize:
			return nil, 0, depot.Errorf(depot.CodeConflict, "partial upload %s is not finished: %s of %s bytes received", id,
				strconv.FormatInt(p.Offset, 10), strconv.FormatInt(p.DeclaredSize, 10))
		}
		total += p.DeclaredSize
		parts = append(parts, p)
	}
	return parts, total, nil
}
