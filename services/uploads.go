package services

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"depot"
	"depot/internal/httpx"
	"depot/internal/wire"
	"depot/storage"
)

// Session metadata keys kept with an upload session.
const (
	metaOwner    = "owner"
	metaFileName = "file_name"
	metaStarted  = "request_id"
)

func (s *Server) createUpload(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	var req wire.CreateUpload
	if !decodeBody(w, r, &req, false) {
		return
	}
	if err := depot.ValidateKey(req.Key); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.authorize(r.Context(), c, req.Key, depot.PermUpload); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if req.FileName != "" {
		c.fileName = req.FileName
	}
	meta := map[string]string{}
	for k, v := range req.Meta {
		meta[k] = v
	}
	meta[metaOwner], meta[metaFileName], meta[metaStarted] = c.principal.User, c.fileName, c.requestID
	if req.Class == "" {
		req.Class = depot.Permanent
	}
	ev := c.event(depot.ActionUploadStarted, req.Key)
	ev.DeclaredSize, ev.FileClass, ev.StreamStart = req.Size, req.Class, &c.start
	u, err := s.cfg.Store.CreateUpload(r.Context(), req.Key, storage.UploadOptions{Size: req.Size, SHA256: req.SHA256, Class: req.Class, Meta: meta})
	if err != nil {
		ev.Action = depot.ActionUploadFailed
		s.fail(w, r, c, &ev, err)
		return
	}
	ev.UploadID = u.ID
	if err := s.audit(r.Context(), ev); err != nil {
		_ = s.cfg.Store.Abort(r.Context(), u.ID)
		httpx.WriteError(w, err)
		return
	}
	w.Header().Set(wire.HeaderOffset, "0")
	httpx.WriteJSON(w, http.StatusCreated, u)
}

// decodeBody decodes r's JSON body into v (an empty body only when
// allowEmpty). A body cut short in transit (a connection that failed inside
// it) is not the caller's mistake: it is answered 503 marked
// HeaderTransient, which web retries; malformed JSON is 400. It reports
// whether v was decoded, having answered otherwise.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) bool {
	err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v)
	switch {
	case err == nil, err == io.EOF && allowEmpty:
		return true
	case errors.Is(err, io.ErrUnexpectedEOF) || r.ContentLength > 0 && err == io.EOF:
		w.Header().Set(wire.HeaderTransient, "1")
		httpx.WriteError(w, depot.Errorf(depot.CodeUnavailable, "the request body was cut short in transit"))
	default:
		httpx.WriteError(w, depot.Errorf(depot.CodeInvalid, "invalid JSON body"))
	}
	return false
}

// ownUpload loads upload id and checks that the caller created it (or is an
// admin). Anyone else gets not-found, so that upload IDs cannot be probed.
// A request with wire.HeaderPermission also needs that permission on the
// upload's cohort (forbidden otherwise, audited like any refusal).
func (s *Server) ownUpload(r *http.Request, c *caller) (depot.Upload, error) {
	if err := s.authenticate1(r.Context(), c); err != nil {
		return depot.Upload{}, err
	}
	u, err := s.cfg.Store.Upload(r.Context(), r.PathValue("id"))
	if err != nil {
		return depot.Upload{}, err
	}
	if u.Meta[metaOwner] != c.principal.User && !c.principal.Admin {
		ev := c.event(depot.ActionAccessDenied, u.Key)
		ev.Outcome, ev.ErrorCode, ev.UploadID = depot.OutcomeDenied, string(depot.CodeForbidden), u.ID
		if err := s.audit(r.Context(), ev); err != nil {
			return depot.Upload{}, err
		}
		return depot.Upload{}, depot.Errorf(depot.CodeNotFound, "no such upload")
	}
	c.fileName = u.Meta[metaFileName]
	if perm := depot.Permission(r.Header.Get(wire.HeaderPermission)); perm != "" {
		if err := s.permit(r.Context(), c, u.Key, perm); err != nil {
			return depot.Upload{}, err
		}
	}
	return u, nil
}

func (s *Server) getUpload(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	u, err := s.ownUpload(r, c)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if r.Header.Get(wire.HeaderResume) == "1" {
		ev := c.event(depot.ActionUploadResumed, u.Key)
		ev.UploadID, ev.DeclaredSize, ev.Metadata = u.ID, u.DeclaredSize, withMeta(ev.Metadata, "offset", strconv.FormatInt(u.Offset, 10))
		if err := s.audit(r.Context(), ev); err != nil {
			httpx.WriteError(w, err)
			return
		}
	}
	w.Header().Set(wire.HeaderOffset, strconv.FormatInt(u.Offset, 10))
	httpx.WriteJSON(w, http.StatusOK, u)
}

func (s *Server) appendUpload(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	offset, err := strconv.ParseInt(r.Header.Get(wire.HeaderOffset), 10, 64)
	if err != nil || offset < 0 {
		httpx.WriteError(w, depot.Errorf(depot.CodeInvalid, "missing or invalid %s header", wire.HeaderOffset))
		return
	}
	u, err := s.ownUpload(r, c)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if r.Header.Get(wire.HeaderResume) == "1" {
		ev := c.event(depot.ActionUploadResumed, u.Key)
		ev.UploadID, ev.DeclaredSize, ev.Metadata = u.ID, u.DeclaredSize, withMeta(ev.Metadata, "offset", strconv.FormatInt(offset, 10))
		if err := s.audit(r.Context(), ev); err != nil {
			httpx.WriteError(w, err)
			return
		}
	}
	body := httpx.NewProgressReader(w, r, s.cfg.BodyIdleTimeout)
	src, whole, err := hopChecked(r, body)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	// A checked body is one segment: its bytes count only if all of them
	// match the sender's CRC-32C.
	u, err = s.appendCheckpointed(r.Context(), u, offset, src, max(s.cfg.CheckpointBytes, whole))
	body.Done()
	w.Header().Set(wire.HeaderOffset, strconv.FormatInt(u.Offset, 10))
	if errors.Is(err, errHopDamaged) {
		w.Header().Set(wire.HeaderTransient, "1") // web sends the chunk again
	}
	if err != nil {
		if cur, ok := storage.CurrentOffset(err); ok {
			httpx.WriteErrorDetail(w, httpx.ErrorDetail{Code: depot.CodeOffsetMismatch, Message: depot.ErrorMessage(err), Offset: &cur})
			return
		}
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, u)
}

// appendCheckpointed appends a body of any length in segments of checkpoint
// bytes (CheckpointBytes): each segment is made durable and recorded in
// order, so a long streaming PATCH loses at most the segments not yet
// durable when it is cut. A segment is made durable while the next one is
// written (Store.StartAppend). The body's position is tracked apart from
// the session's offset so that a body starting before the current offset
// (a replay) is compared, not appended twice.
func (s *Server) appendCheckpointed(ctx context.Context, u depot.Upload, offset int64, body io.Reader, checkpoint int64) (depot.Upload, error) {
	pos := offset
	var prev func() (depot.Upload, error) // the segment being made durable
	settle := func(wait func() (depot.Upload, error)) error {
		next, err := wait()
		if next.ID != "" {
			u = next
		}
		return err
	}
	for {
		seg := &countingReader{r: io.LimitReader(body, checkpoint)}
		wait := s.cfg.Store.StartAppend(ctx, u.ID, pos, seg)
		pos += seg.n
		if prev != nil {
			if err := settle(prev); err != nil {
				_, _ = wait() // fails with prev, or ends on its own
				return u, err
			}
		}
		prev = wait
		if seg.n < checkpoint {
			return u, settle(prev)
		}
		// Go on only when the body has more: a body that ends exactly at
		// a segment boundary (web's chunks do) must not cost an empty
		// Append, that is a lock, a record read and an fsync per chunk.
		var one [1]byte
		n, rerr := io.ReadFull(body, one[:])
		switch {
		case n == 1:
			body = io.MultiReader(bytes.NewReader(one[:]), body)
		case rerr == io.EOF:
			return u, settle(prev)
		default: // let Append meet the read error, as it would have
			body = failingReader{rerr}
		}
	}
}

// failingReader returns err from every Read.
type failingReader struct{ err error }

func (f failingReader) Read([]byte) (int, error) { return 0, f.err }

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (s *Server) completeUpload(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	var req wire.CompleteUpload
	req.Size = -1
	if !decodeBody(w, r, &req, true) {
		return
	}
	u, err := s.ownUpload(r, c)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	c.start = u.Created
	ev := c.event(depot.ActionUploadCompleted, u.Key)
	ev.UploadID, ev.DeclaredSize, ev.FileClass, ev.StreamStart, ev.BytesTransferred = u.ID, u.DeclaredSize, u.Class, &u.Created, u.Offset
	obj, err := s.cfg.Store.Complete(r.Context(), u.ID, req.Size, req.SHA256)
	var done *storage.AlreadyCompleted
	if errors.As(err, &done) { // a retry of a completion that succeeded: answer again, record nothing
		httpx.WriteJSON(w, http.StatusCreated, done.Object)
		return
	}
	if err != nil {
		if depot.ErrorCode(err) == depot.CodeHashMismatch || depot.ErrorCode(err) == depot.CodeSizeMismatch {
			ev.Action = depot.ActionUploadFailed
			s.fail(w, r, c, &ev, err)
			return
		}
		httpx.WriteError(w, err)
		return
	}
	if err := s.committed(r.Context(), c, &ev, obj, u.ID); err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, obj)
}

func (s *Server) abortUpload(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	u, err := s.ownUpload(r, c)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if u.Completed {
		httpx.WriteError(w, depot.Errorf(depot.CodeConflict, "the upload is complete; delete the file instead"))
		return
	}
	ev := c.event(depot.ActionUploadAborted, u.Key)
	ev.UploadID, ev.DeclaredSize, ev.BytesTransferred = u.ID, u.DeclaredSize, u.Offset
	if err := s.audit(r.Context(), ev); err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.cfg.Store.Abort(r.Context(), u.ID); err != nil {
		httpx.WriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
