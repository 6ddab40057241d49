package web

import (
	"context"
	"net/http"
	"path"
	"strings"

	"depot"
	"depot/internal/wire"
)

// tusCreate is POST /api/v1/uploads/ (creation, creation-defer-length and
// creation-with-upload). It is admitted like every upload (admission.go):
// authorised, held to the size limit and counted against the user's slots
// before services creates the session and before any body byte is read.
func (s *Server) tusCreate(ctx context.Context, c depot.Caller, w http.ResponseWriter, r *http.Request) {
	req, err := parseCreation(r)
	if err != nil {
		s.refuse(ctx, c, w, err)
		return
	}
	if req.concat == wire.ConcatFinal {
		s.tusConcat(ctx, c, w, r, req) // tus_concat.go
		return
	}
	a, err := s.admit(ctx, c, req.cohort, 0, req.size)
	if err != nil {
		writeError(w, err)
		return
	}
	defer a.release()
	if req.size > s.tusMaxSize() {
		writeError(w, errorf(depot.CodeTooLarge, "Upload-Length exceeds Tus-Max-Size (%d)", s.tusMaxSize()))
		return
	}
	withBody := r.ContentLength > 0 || (r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody)
	if withBody && r.Header.Get("Content-Type") != "application/offset+octet-stream" {
		writeError(w, errorf(depot.CodeInvalid, "a creation-with-upload body needs Content-Type: application/offset+octet-stream"))
		return
	}
	var sum *tusChecksum
	if withBody {
		if sum, err = s.parseChecksum(r); err != nil {
			writeError(w, err)
			return
		}
	}
	meta := map[string]string{"protocol": "tus"}
	if req.concat == wire.ConcatPartial {
		meta[wire.MetaConcat] = wire.ConcatPartial
		w.Header().Set("Upload-Concat", wire.ConcatPartial)
	}
	u, err := s.cfg.Backend.CreateUpload(ctx, c, wire.CreateUpload{
		Key: req.key, Size: req.size, Class: req.class, FileName: req.name, Resumable: true, Meta: meta,
	})
	if err != nil {
		writeError(w, err) // e.g. 429: too many open uploads (services)
		return
	}
	w.Header().Set("Location", tusPrefix+u.ID)
	s.cfg.Log.Info("tus upload created", "upload_id", u.ID, "size", req.size, "request_id", w.Header().Get("X-Request-Id"))
	if withBody || req.size == 0 {
		u, err = s.tusWrite(ctx, c, w, r, a, u, 0, req.size, sum)
		if err != nil {
			// The session exists; the client may resume it with HEAD.
			writeError(w, err)
			return
		}
	}
	setUploadHeaders(w, u)
	w.WriteHeader(http.StatusCreated)
}

// creation is a parsed tus creation request.
type creation struct {
	cohort, key, name string
	class             depot.Class
	size              int64 // -1: deferred
	// concat is "", wire.ConcatPartial or wire.ConcatFinal (Upload-Concat),
	// parts a final upload's partial upload IDs.
	concat string
	parts  []string
}

// parseCreation reads the target, file name, class and length of a
// creation request; names follow the key policy (depot.CleanKey). A
// partial upload (Upload-Concat: partial) needs only "cohort": its bytes
// become no file by themselves, and a path, if given, only names it in
// the audit trail.
func parseCreation(r *http.Request) (creation, error) {
	meta, err := parseTusMetadata(r.Header.Get("Upload-Metadata"))
	if err != nil {
		return creation{}, errorf(depot.CodeInvalid, "Upload-Metadata must be comma-separated key and base64 value pairs")
	}
	c := creation{size: -1} // class "": the class of the path's current version
	if c.concat, c.parts, err = parseConcat(r.Header.Get("Upload-Concat"), r.Header.Values("Upload-Concat")); err != nil {
		return creation{}, err
	}
	rel := meta["path"]
	if rel == "" {
		rel = meta["filename"]
	}
	if rel == "" && c.concat == wire.ConcatPartial && meta["cohort"] != "" {
		rel = "partial"
	}
	switch {
	case meta["cohort"] == "" && c.concat == wire.ConcatPartial:
		return creation{}, errorf(depot.CodeInvalid, `a partial upload needs "cohort" in Upload-Metadata (tus-js-client: metadataForPartialUploads), the cohort of the final upload`)
	case meta["cohort"] == "" || rel == "":
		return creation{}, errorf(depot.CodeInvalid, `Upload-Metadata needs "cohort" and "filename" (or "path")`)
	}
	if strings.Contains(meta["cohort"], "/") {
		return creation{}, errorf(depot.CodeInvalidPath, "the cohort name may not contain a slash")
	}
	if c.cohort, err = depot.CleanKey(meta["cohort"]); err != nil {
		return creation{}, local(err)
	}
	if strings.HasSuffix(rel, "/") {
		return creation{}, errorf(depot.CodeInvalidPath, "the file path names a folder, not a file")
	}
	if c.key, err = depot.CleanKey(c.cohort + "/" + strings.TrimPrefix(rel, "/")); err != nil {
		return creation{}, local(err)
	}
	// The file name is shown in the audit trail: it follows the key
	// policy too, so that it cannot be spoofed there.
	c.name = path.Base(c.key)
	if n := meta["filename"]; n != "" && !strings.Contains(n, "/") {
		if c.name, err = depot.CleanKey(n); err != nil {
			return creation{}, local(err)
		}
	}
	if v := meta["class"]; v != "" {
		c.class = depot.Class(v)
		if !c.class.Valid() {
			return creation{}, errorf(depot.CodeInvalid, `metadata "class" must be permanent or temporary`)
		}
	}
	if v := r.Header.Get("Upload-Length"); v != "" {
		var ok bool
		if c.size, ok = parseTusInt(v); !ok {
			return creation{}, errorf(depot.CodeInvalid, "Upload-Length must be a non-negative integer")
		}
	} else if c.concat == wire.ConcatPartial {
		return creation{}, errorf(depot.CodeInvalid, "a partial upload needs Upload-Length (its length cannot be deferred)")
	} else if c.concat == "" && r.Header.Get("Upload-Defer-Length") != "1" {
		return creation{}, errorf(depot.CodeInvalid, "Upload-Length or Upload-Defer-Length: 1 is required")
	}
	return c, nil
}

// tusHead is HEAD /api/v1/uploads/{id}. A client sends it to resume, so it
// is audited as upload.resumed by services. A partial upload (concatenation)
// is never completed by itself. A session whose bytes all
// arrived but whose completion was lost (e.g. the web process died between
// the last append and the commit) is completed here.
func (s *Server) tusHead(ctx context.Context, c depot.Caller, w http.ResponseWriter, id string) {
	u, err := s.cfg.Backend.Upload(ctx, c, id, true)
	if err != nil {
		writeError(w, err)
		return
	}
	if !u.Completed && u.DeclaredSize >= 0 && u.Offset == u.DeclaredSize && u.Meta[wire.MetaConcat] != wire.ConcatPartial {
		// Every byte arrived but the commit did not happen (or its answer
		// was lost): commit now, and report the offset only if it worked,
		// so that a client never counts an uncommitted upload as done.
		if _, err := s.cfg.Backend.Complete(ctx, c, id, u.DeclaredSize, ""); err != nil {
			writeError(w, err)
			return
		}
	}
	setUploadHeaders(w, u)
	w.WriteHeader(http.StatusOK)
}

// tusDelete is DELETE /api/v1/uploads/{id} (termination).
func (s *Server) tusDelete(ctx context.Context, c depot.Caller, w http.ResponseWriter, id string) {
	if err := s.cfg.Backend.Abort(ctx, c, id, ""); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// cohortOf returns the cohort of a key: its first segment.
func cohortOf(key string) string {
	cohort, _, _ := strings.Cut(key, "/")
	return cohort
}
