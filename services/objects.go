package services

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"depot"
	"depot/internal/httpx"
	"depot/internal/wire"
)

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// keyOf reads and validates the key header of r.
func keyOf(r *http.Request, header string) (string, error) {
	key, err := wire.DecodeKey(r.Header.Get(header))
	if err != nil {
		return "", depot.Errorf(depot.CodeInvalidPath, "path is not correctly encoded")
	}
	if err := depot.ValidateKey(key); err != nil {
		return "", err
	}
	return key, nil
}

// fail writes err, records a failure audit event for the operation, and logs.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, c *caller, ev *depot.AuditEvent, err error) {
	if ev != nil && depot.ErrorCode(err) != depot.CodeUnavailable && depot.ErrorCode(err) != depot.CodeForbidden && depot.ErrorCode(err) != depot.CodeUnauthorized && depot.ErrorCode(err) != depot.CodeTooMany {
		ev.Outcome = depot.OutcomeFailure
		ev.ErrorCode = string(depot.ErrorCode(err))
		ev.DurationMS = s.now().Sub(c.start).Milliseconds()
		if aerr := s.audit(r.Context(), *ev); aerr != nil {
			err = aerr
		}
	}
	if depot.ErrorCode(err) == depot.CodeInternal || depot.ErrorCode(err) == depot.CodeUnavailable {
		s.cfg.Log.Error("request failed", "method", r.Method, "route", r.Pattern, "request_id", c.requestID, "err", err)
	}
	httpx.WriteError(w, err)
}

func (s *Server) putObject(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	key, err := keyOf(r, wire.HeaderKey)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.authorize(r.Context(), c, key, depot.PermUpload); err != nil {
		httpx.WriteError(w, err)
		return
	}
	opts, err := putOptions(r)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	ev := c.event(depot.ActionUploadStarted, key)
	ev.DeclaredSize, ev.FileClass, ev.StreamStart = opts.Size, opts.Class, &c.start
	if err := s.audit(r.Context(), ev); err != nil {
		httpx.WriteError(w, err)
		return
	}
	body := httpx.NewProgressReader(w, r, s.cfg.BodyIdleTimeout)
	src, _, err := hopChecked(r, body)
	var obj depot.Object
	if err == nil {
		obj, err = s.cfg.Store.Put(r.Context(), key, src, opts)
	}
	body.Done()
	ev.BytesTransferred = body.N()
	if errors.Is(err, errHopDamaged) {
		w.Header().Set(wire.HeaderTransient, "1") // web sends the body again
	}
	if err != nil {
		ev.Action = depot.ActionUploadFailed
		s.fail(w, r, c, &ev, err)
		return
	}
	if err := s.committed(r.Context(), c, &ev, obj, ""); err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, obj)
}

// committed records a committed object: its file state and the "upload
// completed" audit record, in one transaction. If they cannot be written the
// object is removed again and the upload fails closed.
func (s *Server) committed(ctx context.Context, c *caller, ev *depot.AuditEvent, obj depot.Object, uploadID string) error {
	done := s.now()
	fs := FileState{Object: obj, Cohort: cohortOf(obj.Key), UploadedBy: c.principal.User}
	if obj.Class == depot.Temporary {
		at := done.Add(s.cfg.TempTTL)
		fs.CleanupScheduledFor = &at
	}
	ev.Action, ev.Outcome = depot.ActionUploadCompleted, depot.OutcomeSuccess
	ev.UploadID, ev.StoredSize, ev.SHA256, ev.FileClass = uploadID, obj.Size, obj.SHA256, obj.Class
	ev.StreamComplete, ev.DurationMS, ev.CleanupScheduledFor = &done, done.Sub(c.start).Milliseconds(), fs.CleanupScheduledFor
	if err := s.auditFile(ctx, *ev, &fs); err != nil {
		// Neither the record nor the new state was written. The object is
		// removed, so the state of a file it replaced must go too.
		if derr := s.cfg.Store.Delete(context.WithoutCancel(ctx), obj.Key); derr != nil {
			s.cfg.Log.Error("rollback of unaudited upload failed", "request_id", c.requestID, "err", derr)
		}
		_ = s.cfg.DB.ForgetFile(context.WithoutCancel(ctx), obj.Key)
		return err
	}
	return nil
}

func putOptions(r *http.Request) (depot.PutOptions, error) {
	opts := depot.PutOptions{Size: -1, SHA256: strings.ToLower(r.Header.Get(wire.HeaderSHA256)), Class: depot.Class(r.Header.Get(wire.HeaderClass))}
	if v := r.Header.Get(wire.HeaderSize); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return opts, depot.Errorf(depot.CodeInvalid, "invalid %s header", wire.HeaderSize)
		}
		opts.Size = n
	} else if r.ContentLength >= 0 {
		opts.Size = r.ContentLength
	}
	if opts.Class == "" {
		opts.Class = depot.Permanent
	}
	if !opts.Class.Valid() {
		return opts, depot.Errorf(depot.CodeInvalid, "file class must be permanent or temporary")
	}
	return opts, nil
}

func setObjectHeaders(w http.ResponseWriter, obj depot.Object) {
	h := w.Header()
	h.Set(wire.HeaderSHA256, obj.SHA256)
	h.Set(wire.HeaderSize, strconv.FormatInt(obj.Size, 10))
	h.Set(wire.HeaderModified, obj.ModTime.UTC().Format(time.RFC3339Nano))
	h.Set(wire.HeaderClass, string(obj.Class))
	h.Set("Last-Modified", obj.ModTime.UTC().Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
}

func (s *Server) headObject(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	key, err := keyOf(r, wire.HeaderKey)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.authorize(r.Context(), c, key, depot.PermRead); err != nil {
		httpx.WriteError(w, err)
		return
	}
	ev := c.event(depot.ActionStat, key)
	obj, err := s.cfg.Store.Stat(r.Context(), key)
	if err != nil {
		s.fail(w, r, c, &ev, err)
		return
	}
	ev.StoredSize, ev.SHA256 = obj.Size, obj.SHA256
	if err := s.audit(r.Context(), ev); err != nil {
		httpx.WriteError(w, err)
		return
	}
	setObjectHeaders(w, obj)
	w.Header().Set("Content-Length", strconv.FormatInt(obj.Size, 10))
	w.WriteHeader(http.StatusOK)
}

func (s *Server) getObject(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	key, err := keyOf(r, wire.HeaderKey)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.authorize(r.Context(), c, key, depot.PermRead); err != nil {
		httpx.WriteError(w, err)
		return
	}
	ev := c.event(depot.ActionDownload, key)
	rng, err := httpx.ParseRange(r.Header.Get("Range"))
	if err != nil {
		s.fail(w, r, c, &ev, err)
		return
	}
	obj, rc, err := s.cfg.Store.Open(r.Context(), key, rng)
	if err != nil {
		if depot.ErrorCode(err) == depot.CodeRangeNotSatisf {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", obj.Size))
		}
		s.fail(w, r, c, &ev, err)
		return
	}
	defer rc.Close()
	start, length := int64(0), obj.Size
	if rng != nil {
		start = rng.Offset
		length = obj.Size - start
		if rng.Length >= 0 && rng.Length < length {
			length = rng.Length
		}
		ev.Metadata = withMeta(ev.Metadata, "range", fmt.Sprintf("%d-%d", start, start+length-1))
	}
	ev.StoredSize, ev.SHA256, ev.StreamStart, ev.BytesTransferred = obj.Size, obj.SHA256, &c.start, length
	if err := s.audit(r.Context(), ev); err != nil { // audited before the first byte leaves
		httpx.WriteError(w, err)
		return
	}
	setObjectHeaders(w, obj)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	status := http.StatusOK
	if rng != nil {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, start+length-1, obj.Size))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	if err := sendBody(w, rc); err != nil {
		s.cfg.Log.Warn("download interrupted", "request_id", c.requestID, "err", err)
	}
}

// fileRange is implemented by readers of local files (localstore.Reader).
type fileRange interface {
	File() *os.File
	Range() (offset, length int64)
}

// sendBody copies rc to w. A range of a local file goes through the kernel's
// fast path (sendfile on a plain TCP connection) via the ResponseWriter's
// ReadFrom; anything else is copied through a 1 MiB buffer.
func sendBody(w http.ResponseWriter, rc io.Reader) error {
	if fr, ok := rc.(fileRange); ok {
		if rf, ok := w.(io.ReaderFrom); ok {
			off, n := fr.Range()
			f := fr.File()
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				_, err := rf.ReadFrom(io.LimitReader(f, n))
				return err
			}
		}
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	_, err := httpx.CopyBuffer(w, rc, *bp)
	return err
}

func (s *Server) deleteObject(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	key, err := keyOf(r, wire.HeaderKey)
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	if err := s.authorize(r.Context(), c, key, depot.PermDelete); err != nil {
		httpx.WriteError(w, err)
		return
	}
	ev := c.event(depot.ActionDelete, key)
	obj, err := s.cfg.Store.Stat(r.Context(), key)
	if err != nil {
		s.fail(w, r, c, &ev, err)
		return
	}
	ev.StoredSize, ev.SHA256, ev.FileClass = obj.Size, obj.SHA256, obj.Class
	if err := s.audit(r.Context(), ev); err != nil { // audited before anything is removed
		httpx.WriteError(w, err)
		return
	}
	if err := s.cfg.Store.Delete(r.Context(), key); err != nil {
		ev.Action = depot.ActionCleanupFailed
		ev.Metadata = withMeta(ev.Metadata, "operation", "delete")
		s.fail(w, r, c, &ev, err)
		return
	}
	if err := s.cfg.DB.ForgetFile(context.WithoutCancel(r.Context()), key); err != nil {
		s.cfg.Log.Error("forget deleted file", "request_id", c.requestID, "err", err)
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) listObjects(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	prefix, err := wire.DecodeKey(r.Header.Get(wire.HeaderPrefix))
	if err != nil || depot.ValidatePrefix(prefix) != nil || !strings.HasSuffix(prefix, "/") {
		httpx.WriteError(w, depot.Errorf(depot.CodeInvalidPath, "invalid listing prefix"))
		return
	}
	after, err := wire.DecodeKey(r.Header.Get(wire.HeaderAfter))
	if err != nil {
		httpx.WriteError(w, depot.Errorf(depot.CodeInvalid, "invalid listing cursor"))
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if err := s.authorize(r.Context(), c, prefix, depot.PermList); err != nil {
		httpx.WriteError(w, err)
		return
	}
	ev := c.event(depot.ActionList, prefix)
	page, err := s.cfg.Store.List(r.Context(), prefix, after, limit)
	if err != nil {
		s.fail(w, r, c, &ev, err)
		return
	}
	ev.Metadata = withMeta(ev.Metadata, "count", strconv.Itoa(len(page.Objects)))
	if err := s.audit(r.Context(), ev); err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}
