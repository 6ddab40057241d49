package web

import (
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"depot"
	"depot/internal/httpx"
)

const filesPrefix = "/api/v1/files/"

// target is a parsed /api/v1/files/{cohort}/{path...} request path.
type target struct {
	cohort string
	rest   string // path inside the cohort, may be "" or end with "/"
	isDir  bool
}

func (t target) key() string { return t.cohort + "/" + t.rest }

func parseTarget(rest string) (target, error) {
	cohort, p, _ := strings.Cut(rest, "/")
	if err := depot.ValidateKey(cohort); err != nil {
		return target{}, local(err)
	}
	t := target{cohort: cohort, rest: p, isDir: p == "" || strings.HasSuffix(p, "/")}
	if t.isDir && p != "" {
		if err := depot.ValidateKey(strings.TrimSuffix(p, "/")); err != nil {
			return target{}, local(err)
		}
	}
	return t, nil
}

func (s *Server) files(w http.ResponseWriter, r *http.Request, rest string) {
	t, err := parseTarget(rest)
	if err != nil {
		writeError(w, err)
		return
	}
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet:
		switch {
		case t.isDir:
			s.list(w, r, t)
		case q.Has("versions"):
			s.history(w, r, t)
		default:
			s.download(w, r, t)
		}
	case http.MethodHead:
		s.stat(w, r, t)
	case http.MethodPut:
		s.put(w, r, t)
	case http.MethodPost:
		switch {
		case q.Has("undelete"):
			s.undelete(w, r, t)
		case q.Has("restore"):
			s.restore(w, r, t)
		default:
			s.postMultipart(w, r, t)
		}
	case http.MethodDelete:
		if q.Has("purge") {
			s.purge(w, r, t)
		} else {
			s.delete(w, r, t)
		}
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, POST, DELETE")
		writeError(w, errorf(depot.CodeInvalid, "method not allowed"))
	}
}

// fileKey validates t as a file (not folder) key.
func fileKey(t target) (string, error) {
	if t.isDir {
		return "", errorf(depot.CodeInvalidPath, "the path names a folder, not a file")
	}
	key := t.key()
	if err := depot.ValidateKey(key); err != nil {
		return "", local(err)
	}
	return key, nil
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, t target) {
	key, err := fileKey(t)
	if err != nil {
		writeError(w, err)
		return
	}
	c := s.caller(w, r)
	release, err := s.beginUpload(r.Context(), c, t.cohort, r.ContentLength)
	if err != nil {
		writeError(w, err)
		return
	}
	defer release()
	opts, err := putOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	body := httpx.NewProgressReader(w, r, s.cfg.BodyIdleTimeout)
	obj, err := s.cfg.Backend.Put(r.Context(), c, key, s.limitBody(body), opts, path.Base(key))
	body.Done()
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, publicObject(obj, t.cohort))
}

// putOptions reads the declared size, checksum, class and conditions
// (If-Match, If-None-Match) of a raw upload.
func putOptions(r *http.Request) (depot.PutOptions, error) {
	opts := depot.PutOptions{Size: r.ContentLength,
		IfMatch: r.Header.Get("If-Match"), IfNoneMatch: r.Header.Get("If-None-Match")}
	if v := r.Header.Get("Depot-Sha256"); v != "" {
		opts.SHA256 = strings.ToLower(v)
	}
	if v := r.Header.Get("Depot-Class"); v != "" {
		opts.Class = depot.Class(v)
		if !opts.Class.Valid() {
			return opts, errorf(depot.CodeInvalid, "Depot-Class must be permanent or temporary")
		}
	}
	return opts, nil
}

// FileJSON is a file version as the public API shows it: path relative to
// its cohort.
type FileJSON struct {
	Cohort     string    `json:"cohort"`
	Path       string    `json:"path"`
	Version    string    `json:"version"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	Modified   time.Time `json:"modified,omitzero"`
	Class      string    `json:"class,omitempty"`
	UploadedBy string    `json:"uploaded_by,omitempty"`
	Scan       string    `json:"scan,omitempty"` // malware scan: clean, unscanned, infected; absent when scanning was off
}

func publicObject(obj depot.Object, cohort string) FileJSON {
	return FileJSON{
		Cohort: cohort, Path: strings.TrimPrefix(obj.Key, cohort+"/"), Version: obj.Version, Size: obj.Size,
		SHA256: obj.SHA256, Modified: obj.ModTime, Class: string(obj.Class), UploadedBy: obj.UploadedBy,
		Scan: string(obj.Scan),
	}
}

// postMultipart stores every part named "file" of a multipart body under the
// folder t, part by part, streaming: the body is read with MultipartReader
// and never spooled to memory or disk.
func (s *Server) postMultipart(w http.ResponseWriter, r *http.Request, t target) {
	c := s.caller(w, r)
	ctx := r.Context()
	release, err := s.beginUpload(ctx, c, t.cohort, -1)
	if err != nil {
		writeError(w, err)
		return
	}
	defer release()
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, errorf(depot.CodeInvalid, "expected a multipart/form-data body"))
		return
	}
	body := httpx.NewProgressReader(w, r, s.cfg.BodyIdleTimeout)
	r.Body = io.NopCloser(body)
	dir := strings.TrimSuffix(t.rest, "/")
	var stored []FileJSON
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeError(w, errorf(depot.CodeInvalid, "the multipart body is malformed or was cut off"))
			return
		}
		obj, err := s.storePart(ctx, c, t.cohort, dir, part)
		part.Close()
		if err != nil {
			writeError(w, err)
			return
		}
		if obj != nil {
			stored = append(stored, publicObject(*obj, t.cohort))
		}
	}
	body.Done()
	if len(stored) == 0 {
		writeError(w, errorf(depot.CodeInvalid, `no part named "file" with a file name`))
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, stored)
}

func (s *Server) storePart(ctx context.Context, c depot.Caller, cohort, dir string, part *multipart.Part) (*depot.Object, error) {
	if part.FormName() != "file" || part.FileName() == "" {
		_, err := io.Copy(io.Discard, part)
		return nil, err
	}
	name := part.FileName()
	key := cohort + "/" + name
	if dir != "" {
		key = cohort + "/" + dir + "/" + name
	}
	if err := depot.ValidateKey(key); err != nil || strings.Contains(name, "/") {
		return nil, errorf(depot.CodeInvalidPath, "the file name of a part is not allowed")
	}
	opts := depot.PutOptions{Size: -1}
	if sz := part.Header.Get("Content-Length"); sz != "" {
		if n, err := strconv.ParseInt(sz, 10, 64); err == nil && n >= 0 {
			opts.Size = n
		}
	}
	obj, err := s.cfg.Backend.Put(ctx, c, key, s.limitBody(part), opts, name)
	if err != nil {
		return nil, err
	}
	return &obj, nil
}

func (s *Server) download(w http.ResponseWriter, r *http.Request, t target) {
	key, err := fileKey(t)
	if err != nil {
		writeError(w, err)
		return
	}
	opts := depot.ReadOptions{
		Version: r.URL.Query().Get("version"), IfRange: r.Header.Get("If-Range"), IfNoneMatch: r.Header.Get("If-None-Match"),
	}
	if opts.Range, err = httpx.ParseRange(r.Header.Get("Range")); err != nil {
		writeError(w, local(err))
		return
	}
	d, err := s.cfg.Backend.Open(r.Context(), s.caller(w, r), key, opts)
	if err != nil {
		if depot.ErrorCode(err) == depot.CodeRangeNotSatisf {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", d.Object.Size))
		}
		writeError(w, err)
		return
	}
	setFileHeaders(w, d.Object)
	if d.NotModified {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	defer d.Body.Close()
	status := http.StatusOK
	if d.Partial {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", d.Offset, d.Offset+d.Length-1, d.Object.Size))
		status = http.StatusPartialContent
	}
	w.Header().Set("Content-Length", strconv.FormatInt(d.Length, 10))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", "attachment")
	w.WriteHeader(status)
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	if _, err := httpx.CopyBuffer(w, d.Body, *bp); err != nil {
		s.cfg.Log.Warn("download interrupted", "request_id", w.Header().Get("X-Request-Id"))
	}
}

// setFileHeaders describes a version: its entity tag is its SHA-256.
func setFileHeaders(w http.ResponseWriter, obj depot.Object) {
	h := w.Header()
	h.Set("Depot-Sha256", obj.SHA256)
	h.Set("Depot-Version", obj.Version)
	h.Set("ETag", `"`+obj.SHA256+`"`)
	h.Set("Accept-Ranges", "bytes")
	if obj.Class != "" {
		h.Set("Depot-Class", string(obj.Class))
	}
	if !obj.ModTime.IsZero() {
		h.Set("Last-Modified", obj.ModTime.UTC().Format(http.TimeFormat))
	}
}

func (s *Server) stat(w http.ResponseWriter, r *http.Request, t target) {
	key, err := fileKey(t)
	if err != nil {
		writeError(w, err)
		return
	}
	obj, err := s.cfg.Backend.Stat(r.Context(), s.caller(w, r), key, r.URL.Query().Get("version"))
	if err != nil {
		writeError(w, err)
		return
	}
	setFileHeaders(w, obj)
	w.Header().Set("Content-Length", strconv.FormatInt(obj.Size, 10))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, t target) {
	key, err := fileKey(t)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.cfg.Backend.Delete(r.Context(), s.caller(w, r), key); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// ListJSON is a folder listing.
type ListJSON struct {
	Cohort string     `json:"cohort"`
	Prefix string     `json:"prefix"`
	Files  []FileJSON `json:"files"`
	Next   string     `json:"next,omitempty"` // pass as ?after= for the next page
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, t target) {
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	after := ""
	if a := q.Get("after"); a != "" {
		after = t.cohort + "/" + a
	}
	page, err := s.cfg.Backend.List(r.Context(), s.caller(w, r), t.cohort+"/"+t.rest, after, limit)
	if err != nil {
		writeError(w, err)
		return
	}
	out := ListJSON{Cohort: t.cohort, Prefix: t.rest, Files: make([]FileJSON, 0, len(page.Objects))}
	for _, o := range page.Objects {
		out.Files = append(out.Files, publicObject(o, t.cohort))
	}
	if page.Next != "" {
		out.Next = strings.TrimPrefix(page.Next, t.cohort+"/")
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
