package services

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"depot"
	"depot/internal/httpx"
	"depot/internal/wire"
)

func (s *Server) putObject(w http.ResponseWriter, r *http.Request) {
	key, err := keyOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	name, err := header(r, wire.HeaderFileName)
	if err != nil {
		writeError(w, err)
		return
	}
	chunk, body, err := s.chunkOf(w, r, 0)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := s.core.Put(r.Context(), callerOf(r), PutRequest{
		Key: key, Chunk: chunk, SHA256: r.Header.Get(wire.HeaderSHA256), Class: depot.Class(r.Header.Get(wire.HeaderClass)),
		FileName: name, IfMatch: r.Header.Get("If-Match"), IfNoneMatch: r.Header.Get("If-None-Match"),
	})
	body.Done()
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, obj)
}

// setObjectHeaders describes obj in the headers of an answer.
func setObjectHeaders(w http.ResponseWriter, obj depot.Object) {
	h := w.Header()
	h.Set(wire.HeaderVersion, obj.Version)
	h.Set(wire.HeaderSHA256, obj.SHA256)
	h.Set(wire.HeaderSize, strconv.FormatInt(obj.Size, 10))
	h.Set(wire.HeaderModified, obj.ModTime.UTC().Format(time.RFC3339Nano))
	h.Set(wire.HeaderClass, string(obj.Class))
	h.Set(wire.HeaderUploadedBy, wire.EncodeKey(obj.UploadedBy))
	h.Set("ETag", `"`+obj.SHA256+`"`)
	h.Set("Last-Modified", obj.ModTime.UTC().Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
}

func (s *Server) getObject(w http.ResponseWriter, r *http.Request) {
	key, err := keyOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	opts := depot.ReadOptions{
		Version: r.Header.Get(wire.HeaderVersion), IfRange: r.Header.Get("If-Range"), IfNoneMatch: r.Header.Get("If-None-Match"),
	}
	if opts.Range, err = httpx.ParseRange(r.Header.Get("Range")); err != nil {
		writeError(w, err)
		return
	}
	d, err := s.core.Open(r.Context(), callerOf(r), key, opts)
	if err != nil {
		if depot.ErrorCode(err) == depot.CodeRangeNotSatisf && d != nil {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", d.Object.Size))
		}
		writeError(w, err)
		return
	}
	setObjectHeaders(w, d.Object)
	if d.NotModified {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(d.Length, 10))
	status := http.StatusOK
	if d.Partial {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", d.Offset, d.Offset+d.Length-1, d.Object.Size))
		status = http.StatusPartialContent
	}
	w.WriteHeader(status)
	n, err := sendBody(w, d.Body)
	d.Finish(r.Context(), n, err)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 1<<20); return &b }}

// fileRange is implemented by readers of local files (localstore.Reader).
type fileRange interface {
	File() *os.File
	Range() (offset, length int64)
}

// sendBody copies rc to w and returns the bytes sent. A range of a local
// file goes through the kernel's fast path (sendfile on a plain TCP
// connection) via the ResponseWriter's ReadFrom; anything else is copied
// through a 1 MiB buffer.
func sendBody(w http.ResponseWriter, rc io.Reader) (int64, error) {
	if fr, ok := rc.(fileRange); ok {
		if rf, ok := w.(io.ReaderFrom); ok {
			off, n := fr.Range()
			f := fr.File()
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				return rf.ReadFrom(io.LimitReader(f, n))
			}
		}
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	return httpx.CopyBuffer(w, rc, *bp)
}

func (s *Server) headObject(w http.ResponseWriter, r *http.Request) {
	key, err := keyOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := s.core.Stat(r.Context(), callerOf(r), key, r.Header.Get(wire.HeaderVersion))
	if err != nil {
		writeError(w, err)
		return
	}
	setObjectHeaders(w, obj)
	w.Header().Set("Content-Length", strconv.FormatInt(obj.Size, 10))
	w.WriteHeader(http.StatusOK)
}

// deleteObject hides a file (a delete marker), or with ?purge=1 removes a
// version (HeaderVersion) or all of them for good.
func (s *Server) deleteObject(w http.ResponseWriter, r *http.Request) {
	key, err := keyOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if r.URL.Query().Get("purge") == "1" {
		err = s.core.Purge(r.Context(), callerOf(r), key, r.Header.Get(wire.HeaderVersion))
	} else {
		err = s.core.Delete(r.Context(), callerOf(r), key)
	}
	if err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) undelete(w http.ResponseWriter, r *http.Request) {
	key, err := keyOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := s.core.Undelete(r.Context(), callerOf(r), key)
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, obj)
}

func (s *Server) restoreVersion(w http.ResponseWriter, r *http.Request) {
	key, err := keyOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := s.core.RestoreVersion(r.Context(), callerOf(r), key, r.Header.Get(wire.HeaderVersion))
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, obj)
}

func (s *Server) versions(w http.ResponseWriter, r *http.Request) {
	key, err := keyOf(r)
	if err != nil {
		writeError(w, err)
		return
	}
	h, err := s.core.History(r.Context(), callerOf(r), key)
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, h)
}

func (s *Server) listObjects(w http.ResponseWriter, r *http.Request) {
	prefix, err := header(r, wire.HeaderPrefix)
	if err != nil {
		writeError(w, depot.Errorf(depot.CodeInvalidPath, "invalid listing prefix"))
		return
	}
	after, err := header(r, wire.HeaderAfter)
	if err != nil {
		writeError(w, err)
		return
	}
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	page, err := s.core.List(r.Context(), callerOf(r), prefix, after, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, page)
}

// authenticate answers POST /internal/v1/auth: who is behind the forwarded
// credential and, with HeaderCohort and HeaderPermission, may they do that
// permission in that cohort.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) {
	cohort, err := header(r, wire.HeaderCohort)
	if err != nil {
		writeError(w, err)
		return
	}
	perm := depot.Permission(r.Header.Get(wire.HeaderPermission))
	if perm == "" {
		cohort = ""
	}
	p, err := s.core.Authorize(r.Context(), callerOf(r), cohort, perm)
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, p)
}

func (s *Server) listHolds(w http.ResponseWriter, r *http.Request) {
	cohort, err := header(r, wire.HeaderCohort)
	if err != nil {
		writeError(w, err)
		return
	}
	holds, err := s.core.Holds(r.Context(), callerOf(r), cohort)
	if err != nil {
		writeError(w, err)
		return
	}
	out := make([]wire.Hold, len(holds))
	for i, h := range holds {
		out[i] = holdJSON(h.ID, h.Cohort, h.Path, h.Reason, h.CreatedBy, h.Created)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

func (s *Server) placeHold(w http.ResponseWriter, r *http.Request) {
	var req wire.PlaceHold
	if !decodeBody(w, r, &req, false) {
		return
	}
	h, err := s.core.PlaceHold(r.Context(), callerOf(r), req.Cohort, req.Path, req.Reason)
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, holdJSON(h.ID, h.Cohort, h.Path, h.Reason, h.CreatedBy, h.Created))
}

// holdJSON shows a hold with its path relative to its cohort.
func holdJSON(id int64, cohort, path, reason, by string, created time.Time) wire.Hold {
	if path != "" {
		path = path[len(cohort)+1:]
	}
	return wire.Hold{ID: id, Cohort: cohort, Path: path, Reason: reason, CreatedBy: by, Created: created}
}

func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		writeError(w, depot.Errorf(depot.CodeNotFound, "no such hold"))
		return
	}
	cohort, err := header(r, wire.HeaderCohort)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.core.ReleaseHold(r.Context(), callerOf(r), cohort, id); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// cleanup answers POST /internal/v1/cleanup?dry_run=1: an administrator's
// request to run the cleanup job now.
func (s *Server) cleanup(w http.ResponseWriter, r *http.Request) {
	res, err := s.core.RequestCleanup(r.Context(), callerOf(r), r.URL.Query().Get("dry_run") == "1")
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}
