package web

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"depot"
	"depot/internal/wire"
)

// The tus concatenation extension (docs/tus.md). A client uploads parts of
// a file in parallel as partial uploads (Upload-Concat: partial), then
// creates the final upload from them (Upload-Concat: final;<urls>). Services
// keeps partials as upload sessions that are never committed, so none is
// ever visible under a path; the final upload is verified and committed as
// one version with one upload.completed record, and the partials are then
// released.

// maxConcatParts bounds the parts of one final upload (services has the
// same bound).
const maxConcatParts = 100

var errModifyFinal = &statusError{
	status: http.StatusForbidden, code: "modify_final",
	msg: "a final upload (Upload-Concat: final) takes no bytes: its content is its partial uploads'",
}

// parseConcat reads Upload-Concat: "" (not set), "partial", or "final;"
// followed by space-separated URLs (absolute, or paths) of partial uploads
// of this server, each /api/v1/uploads/{id}.
func parseConcat(v string, all []string) (kind string, parts []string, err error) {
	if len(all) > 1 {
		return "", nil, errorf(depot.CodeInvalid, "Upload-Concat may be sent once")
	}
	switch {
	case v == "":
		if len(all) == 1 {
			return "", nil, errorf(depot.CodeInvalid, `Upload-Concat must be "partial" or "final;" followed by the partial uploads' URLs`)
		}
		return "", nil, nil
	case v == wire.ConcatPartial:
		return wire.ConcatPartial, nil, nil
	case !strings.HasPrefix(v, "final;"):
		return "", nil, errorf(depot.CodeInvalid, `Upload-Concat must be "partial" or "final;" followed by the partial uploads' URLs`)
	}
	for _, f := range strings.Fields(strings.TrimPrefix(v, "final;")) {
		id, ok := uploadIDOf(f)
		if !ok {
			return "", nil, errorf(depot.CodeInvalid, "Upload-Concat: %q is not the URL of an upload of this server (%s{id})", f, tusPrefix)
		}
		parts = append(parts, id)
	}
	if len(parts) == 0 || len(parts) > maxConcatParts {
		return "", nil, errorf(depot.CodeInvalid, "Upload-Concat: final needs between 1 and %d partial upload URLs", maxConcatParts)
	}
	return wire.ConcatFinal, parts, nil
}

// uploadIDOf returns the upload ID of an upload URL: an absolute URL or a
// path ending in /api/v1/uploads/{id} (the host is not checked: web
// processes behind a balancer have several names).
func uploadIDOf(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	id, ok := strings.CutPrefix(u.Path, tusPrefix)
	if !ok || !validUploadID(id) {
		return "", false
	}
	return id, true
}

// concatHeader is the Upload-Concat header of u, "" for an upload that is
// neither partial nor final.
func concatHeader(u depot.Upload) string {
	switch u.Meta[wire.MetaConcat] {
	case wire.ConcatPartial:
		return wire.ConcatPartial
	case wire.ConcatFinal:
		var b strings.Builder
		b.WriteString("final;")
		for i, id := range strings.Fields(u.Meta[wire.MetaConcatParts]) {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(tusPrefix + id)
		}
		return b.String()
	}
	return ""
}

// tusConcat is POST /api/v1/uploads/ with Upload-Concat: final. The parts
// are looked up first (each one the caller's, or services answers that it
// does not exist), so that refusals name their reason (services checks
// again, and its messages are not shown), and so that the final upload is admitted with its size, the
// parts' sum: held to the size limit and counted against the user's slots
// while services concatenates and commits. The answer comes after the
// commit.
func (s *Server) tusConcat(ctx context.Context, c depot.Caller, w http.ResponseWriter, r *http.Request, req creation) {
	// A body of any kind: one sent chunked (no Content-Length) is refused
	// too, never silently dropped.
	withBody := r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
	if withBody || r.Header.Get("Content-Type") == "application/offset+octet-stream" {
		s.refuse(ctx, c, w, errModifyFinal)
		return
	}
	var total int64
	seen := make(map[string]bool, len(req.parts))
	for _, id := range req.parts {
		if seen[id] {
			s.refuse(ctx, c, w, errorf(depot.CodeInvalid, "partial upload %s is named twice", id))
			return
		}
		seen[id] = true
		u, err := s.cfg.Backend.Upload(ctx, c, id, false)
		if depot.ErrorCode(err) == depot.CodeNotFound {
			err = errorf(depot.CodeInvalid, "partial upload %s does not exist for you (it may be another user's, already concatenated, or expired)", id)
		}
		if err != nil {
			writeError(w, err)
			return
		}
		if u.Meta[wire.MetaConcat] != wire.ConcatPartial {
			writeError(w, errorf(depot.CodeInvalid, "upload %s is not a partial upload (create it with Upload-Concat: partial)", id))
			return
		}
		if cohortOf(u.Key) != req.cohort {
			writeError(w, errorf(depot.CodeInvalid, "partial upload %s was created for another cohort than the final upload's", id))
			return
		}
		if u.DeclaredSize < 0 || u.Offset != u.DeclaredSize {
			writeError(w, errorf(depot.CodeConflict, "partial upload %s is not finished: %d of %d bytes received", id, u.Offset, u.DeclaredSize))
			return
		}
		total += u.DeclaredSize
	}
	if req.size >= 0 && req.size != total {
		writeError(w, errorf(depot.CodeInvalid, "Upload-Length %d differs from the partial uploads' total %d", req.size, total))
		return
	}
	a, err := s.admit(ctx, c, req.cohort, 0, total)
	if err != nil {
		writeError(w, err)
		return
	}
	defer a.release()
	if total > s.tusMaxSize() {
		writeError(w, errorf(depot.CodeTooLarge, "the partial uploads' total exceeds Tus-Max-Size (%d)", s.tusMaxSize()))
		return
	}
	// The copy and commit are not abandoned half-way when the client goes.
	u, obj, err := s.cfg.Backend.Concat(context.WithoutCancel(ctx), c, wire.ConcatUpload{
		Key: req.key, Class: req.class, FileName: req.name, Parts: req.parts,
		Meta: map[string]string{"protocol": "tus"},
	})
	if err != nil {
		writeError(w, err)
		return
	}
	s.cfg.Log.Info("tus upload completed", "upload_id", u.ID, "size", obj.Size, "parts", len(req.parts), "request_id", w.Header().Get("X-Request-Id"))
	w.Header().Set("Location", tusPrefix+u.ID)
	u.Offset, u.DeclaredSize = obj.Size, obj.Size
	setUploadHeaders(w, u)
	w.WriteHeader(http.StatusCreated)
}
