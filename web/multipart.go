package web

import (
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path"
	"strconv"
	"strings"

	"depot"
	"depot/internal/httpx"
)

// postMultipart stores every part named "file" of a multipart body under the
// folder t, part by part, streaming: the body is read with a
// multipart.Reader and never spooled to memory or disk.
func (s *Server) postMultipart(w http.ResponseWriter, r *http.Request, t target) {
	c := s.caller(w, r)
	ctx := r.Context()
	a, err := s.admit(ctx, c, t.cohort, 0, -1)
	if err != nil {
		writeError(w, err)
		return
	}
	defer a.release()
	boundary, err := multipartBoundary(r)
	if err != nil {
		writeError(w, err)
		return
	}
	body := a.body(w, r)
	defer body.Done()
	// Part headers are held in memory while they are parsed: bound them
	// (mime/multipart would take up to 10 MiB of them per part).
	headers := &headerBudget{r: body.progress}
	mr := multipart.NewReader(headers, boundary)
	dir := strings.TrimSuffix(t.rest, "/")
	var stored []FileJSON
	for {
		headers.arm(maxPartHeaderBytes)
		part, err := mr.NextPart()
		headers.arm(-1)
		if err == io.EOF {
			break
		}
		if err != nil {
			writeError(w, errorf(depot.CodeInvalid, "the multipart body is malformed or was cut off"))
			return
		}
		obj, err := s.storePart(ctx, c, a, t.cohort, dir, part)
		part.Close()
		if err != nil {
			writeError(w, err)
			return
		}
		if obj != nil {
			stored = append(stored, publicObject(*obj, t.cohort))
		}
	}
	if len(stored) == 0 {
		writeError(w, errorf(depot.CodeInvalid, `no part named "file" with a file name`))
		return
	}
	httpx.WriteJSON(w, http.StatusCreated, stored)
}

// multipartBoundary returns the boundary of a multipart/form-data body.
func multipartBoundary(r *http.Request) (string, error) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return "", errorf(depot.CodeInvalid, "expected a multipart/form-data body")
	}
	return params["boundary"], nil
}

// maxPartHeaderBytes bounds the bytes read while the headers of one part
// (and the boundary before them) are parsed.
const maxPartHeaderBytes = 64 << 10

// headerBudget fails a multipart body whose part headers run past a
// budget: it counts the bytes read while armed.
type headerBudget struct {
	r    io.Reader
	left int64 // < 0: not armed
}

func (h *headerBudget) arm(n int64) { h.left = n }

func (h *headerBudget) Read(p []byte) (int, error) {
	if h.left < 0 {
		return h.r.Read(p)
	}
	if h.left == 0 {
		return 0, errorf(depot.CodeInvalid, "the headers of a multipart part are too large")
	}
	if int64(len(p)) > h.left {
		p = p[:h.left]
	}
	n, err := h.r.Read(p)
	h.left -= int64(n)
	return n, err
}

func (s *Server) storePart(ctx context.Context, c depot.Caller, a *admission, cohort, dir string, part *multipart.Part) (*depot.Object, error) {
	if part.FormName() != "file" || part.FileName() == "" {
		_, err := io.Copy(io.Discard, a.limit(part, 0))
		return nil, err
	}
	name := part.FileName()
	if strings.Contains(name, "/") {
		return nil, errorf(depot.CodeInvalidPath, "the file name of a part may not contain a slash")
	}
	key := cohort + "/" + name
	if dir != "" {
		key = cohort + "/" + dir + "/" + name
	}
	key, err := depot.CleanKey(key)
	if err != nil {
		return nil, local(err)
	}
	opts := depot.PutOptions{Size: -1}
	if sz := part.Header.Get("Content-Length"); sz != "" {
		if n, err := strconv.ParseInt(sz, 10, 64); err == nil && n >= 0 {
			opts.Size = n
		}
	}
	if opts.Size > 0 && s.cfg.MaxUploadSize > 0 && opts.Size > s.cfg.MaxUploadSize {
		return nil, s.tooLarge()
	}
	obj, err := s.cfg.Backend.Put(ctx, c, key, a.limit(part, 0), opts, path.Base(key))
	if err != nil {
		return nil, err
	}
	return &obj, nil
}
