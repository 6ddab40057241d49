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
		s.refuse(s.withCaller(w, r, ""), w, err)
		return
	}
	switch r.Method {
	case http.MethodGet:
		if t.isDir {
			s.list(w, r, t)
		} else {
			s.download(w, r, t)
		}
	case http.MethodHead:
		s.stat(w, r, t)
	case http.MethodPut:
		s.put(w, r, t)
	case http.MethodPost:
		s.postMultipart(w, r, t)
	case http.MethodDelete:
		s.delete(w, r, t)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT, POST, DELETE")
		s.refuse(s.withCaller(w, r, ""), w, errorf(depot.CodeInvalid, "method not allowed"))
	}
}

// fileKey returns t as a file (not folder) key.
func fileKey(t target) (string, error) {
	if t.isDir {
		return "", errorf(depot.CodeInvalidPath, "the path names a folder, not a file")
	}
	key := t.key()
	if err := depot.ValidateKey(key); err != nil { // the whole key's length
		return "", local(err)
	}
	return key, nil
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, t target) {
	key, err := fileKey(t)
	if err != nil {
		s.refuse(s.withCaller(w, r, ""), w, err)
		return
	}
	ctx := s.withCaller(w, r, path.Base(key))
	a, err := s.admit(ctx, t.cohort, 0, r.ContentLength)
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
	obj, err := s.cfg.Backend.Put(ctx, key, body, opts)
	body.Done()
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, publicObject(obj, t.cohort))
}

// putOptions reads the declared size, checksum and class of a raw upload.
func putOptions(r *http.Request) (depot.PutOptions, error) {
	opts := depot.PutOptions{Size: r.ContentLength, Class: depot.Permanent}
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

// FileJSON is a file as the public API shows it: path relative to its cohort.
type FileJSON struct {
	Cohort   string    `json:"cohort"`
	Path     string    `json:"path"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	Modified time.Time `json:"modified,omitzero"`
	Class    string    `json:"class,omitempty"`
}

func publicObject(obj depot.Object, cohort string) FileJSON {
	return FileJSON{
		Cohort: cohort, Path: strings.TrimPrefix(obj.Key, cohort+"/"), Size: obj.Size,
		SHA256: obj.SHA256, Modified: obj.ModTime, Class: string(obj.Class),
	}
}

func (s *Server) download(w http.ResponseWriter, r *http.Request, t target) {
	ctx := s.withCaller(w, r, "")
	key, err := fileKey(t)
	if err != nil {
		s.refuse(ctx, w, err)
		return
	}
	rng, err := httpx.ParseRange(r.Header.Get("Range"))
	if err != nil {
		s.refuse(ctx, w, local(err))
		return
	}
	obj, rc, err := s.cfg.Backend.Open(ctx, key, rng)
	if err != nil {
		if depot.ErrorCode(err) == depot.CodeRangeNotSatisf {
			if st, serr := s.cfg.Backend.Stat(ctx, key); serr == nil {
				w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", st.Size))
			}
		}
		writeError(w, err)
		return
	}
	defer rc.Close()
	setFileHeaders(w, obj)
	status, length := http.StatusOK, obj.Size
	if rng != nil {
		end := obj.Size - 1
		if rng.Length >= 0 && rng.Offset+rng.Length-1 < end {
			end = rng.Offset + rng.Length - 1
		}
		length = end - rng.Offset + 1
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", rng.Offset, end, obj.Size))
		status = http.StatusPartialContent
	}
	w.Header().Set("Content-Length", strconv.FormatInt(length, 10))
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", "attachment")
	w.WriteHeader(status)
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	if _, err := httpx.CopyBuffer(w, rc, *bp); err != nil {
		s.cfg.Log.Warn("download interrupted", "request_id", w.Header().Get("X-Request-Id"))
	}
}

func setFileHeaders(w http.ResponseWriter, obj depot.Object) {
	h := w.Header()
	h.Set("Depot-Sha256", obj.SHA256)
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
	ctx := s.withCaller(w, r, "")
	key, err := fileKey(t)
	if err != nil {
		s.refuse(ctx, w, err)
		return
	}
	obj, err := s.cfg.Backend.Stat(ctx, key)
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
	ctx := s.withCaller(w, r, "")
	key, err := fileKey(t)
	if err != nil {
		s.refuse(ctx, w, err)
		return
	}
	if err := s.cfg.Backend.Delete(ctx, key); err != nil {
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
	ctx := s.withCaller(w, r, "")
	q := r.URL.Query()
	limit, _ := strconv.Atoi(q.Get("limit"))
	after := ""
	if a := q.Get("after"); a != "" {
		clean, err := depot.CleanKey(t.cohort + "/" + a)
		if err != nil {
			s.refuse(ctx, w, local(err))
			return
		}
		after = clean
	}
	page, err := s.cfg.Backend.List(ctx, t.cohort+"/"+t.rest, after, limit)
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
