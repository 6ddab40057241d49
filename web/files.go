package web

import (
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"depot"
	"depot/internal/httpx"
)

const filesPrefix = "/api/v1/files/"

// target is a parsed /api/v1/files/{cohort}/{path...} request path, in
// Unicode NFC (depot.CleanKey).
type target struct {
	cohort string
	rest   string // path inside the cohort, may be "" or end with "/"
	isDir  bool
}

func (t target) key() string { return t.cohort + "/" + t.rest }

func parseTarget(rest string) (target, error) {
	cohort, p, _ := strings.Cut(rest, "/")
	cohort, err := depot.CleanKey(cohort)
	if err != nil {
		return target{}, local(err)
	}
	t := target{cohort: cohort, isDir: p == "" || strings.HasSuffix(p, "/")}
	if p != "" {
		clean, err := depot.CleanKey(strings.TrimSuffix(p, "/"))
		if err != nil {
			return target{}, local(err)
		}
		t.rest = clean
		if t.isDir {
			t.rest += "/"
		}
	}
	return t, nil
}

// files serves /api/v1/files/. Every refusal that web makes on its own
// goes through refuse, so that services sees (and audits, and throttles)
// the caller's credentials first.
func (s *Server) files(w http.ResponseWriter, r *http.Request, rest string) {
	t, err := parseTarget(rest)
	if err != nil {
		s.refuse(r.Context(), s.caller(w, r), w, err)
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
		s.refuse(r.Context(), s.caller(w, r), w, errorf(depot.CodeInvalid, "method not allowed"))
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
	c := s.caller(w, r)
	key, err := fileKey(t)
	if err != nil {
		s.refuse(r.Context(), c, w, err)
		return
	}
	a, err := s.admit(r.Context(), c, t.cohort, 0, r.ContentLength)
	if err != nil {
		writeError(w, err)
		return
	}
	defer a.release()
	opts, err := putOptions(r)
	if err != nil {
		writeError(w, err)
		return
	}
	body := a.body(w, r)
	obj, err := s.cfg.Backend.Put(r.Context(), c, key, body, opts, path.Base(key))
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

func (s *Server) download(w http.ResponseWriter, r *http.Request, t target) {
	c := s.caller(w, r)
	key, err := fileKey(t)
	if err != nil {
		s.refuse(r.Context(), c, w, err)
		return
	}
	opts := depot.ReadOptions{
		Version: r.URL.Query().Get("version"), IfRange: r.Header.Get("If-Range"), IfNoneMatch: r.Header.Get("If-None-Match"),
	}
	if opts.Range, err = httpx.ParseRange(r.Header.Get("Range")); err != nil {
		s.refuse(r.Context(), c, w, local(err))
		return
	}
	d, err := s.cfg.Backend.Open(r.Context(), c, key, opts)
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
	c := s.caller(w, r)
	key, err := fileKey(t)
	if err != nil {
		s.refuse(r.Context(), c, w, err)
		return
	}
	obj, err := s.cfg.Backend.Stat(r.Context(), c, key, r.URL.Query().Get("version"))
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
	c := s.caller(w, r)
	key, err := fileKey(t)
	if err != nil {
		s.refuse(r.Context(), c, w, err)
		return
	}
	if err := s.cfg.Backend.Delete(r.Context(), c, key); err != nil {
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
	c := s.caller(w, r)
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	after := ""
	if a := q.Get("after"); a != "" {
		clean, err := depot.CleanKey(t.cohort + "/" + a)
		if err != nil {
			s.refuse(r.Context(), c, w, local(err))
			return
		}
		after = clean
	}
	page, err := s.cfg.Backend.List(r.Context(), c, t.cohort+"/"+t.rest, after, limit)
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
