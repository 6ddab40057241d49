package web

// tus 1.0 resumable uploads at /api/v1/uploads/ (docs/tus.md).
//
// The protocol is implemented here rather than with tusd's handler: tusd
// v2.9.1 implements neither the checksum nor the expiration extension, and
// its model (a DataStore plus a Locker on the web host, FinishUpload after
// the last write) would have needed wrapping for authentication, checksum
// buffering, Upload-Expires, error mapping and resume auditing anyway. The
// web tier keeps nothing: every request loads the upload session from
// services (which checks the owner), so any web process can serve any
// request of any upload. This file dispatches and parses; tus_create.go
// and tus_write.go hold the requests that create and append.

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"depot"
)

const (
	tusPrefix     = "/api/v1/uploads/"
	tusVersion    = "1.0.0"
	tusExtensions = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum,concatenation"
	tusChecksums  = "sha1,sha256"
	// tusMaxSize is the largest upload the web tier accepts without a
	// configured DEPOT_MAX_UPLOAD_SIZE (1 TiB).
	tusMaxSize = int64(1) << 40
	// statusChecksumMismatch is the tus checksum extension's status.
	statusChecksumMismatch = 460
)

// tus dispatches a tus request; rest is the path after tusPrefix. Every
// refusal web makes on its own goes through refuse: services sees the
// caller's credentials first (and audits and throttles them).
func (s *Server) tus(w http.ResponseWriter, r *http.Request, rest string) {
	h := w.Header()
	h.Set("Tus-Resumable", tusVersion)
	h.Set("Cache-Control", "no-store")
	method := r.Method
	if o := r.Header.Get("X-HTTP-Method-Override"); o != "" && method == http.MethodPost {
		method = strings.ToUpper(o)
	}
	if method == http.MethodOptions {
		s.tusOptions(w)
		return
	}
	ctx, c := r.Context(), s.caller(w, r)
	if v := r.Header.Get("Tus-Resumable"); v != tusVersion {
		h.Set("Tus-Version", tusVersion)
		s.refuse(ctx, c, w, &statusError{status: http.StatusPreconditionFailed, code: "unsupported_version", msg: "Tus-Resumable must be 1.0.0"})
		return
	}
	if err := unsupportedTus(r); err != nil {
		s.refuse(ctx, c, w, err)
		return
	}
	if rest == "" {
		if method != http.MethodPost {
			h.Set("Allow", "OPTIONS, POST")
			s.refuse(ctx, c, w, errorf(depot.CodeInvalid, "method not allowed"))
			return
		}
		s.tusCreate(ctx, c, w, r)
		return
	}
	if !validUploadID(rest) {
		s.refuse(ctx, c, w, errorf(depot.CodeNotFound, "no such upload"))
		return
	}
	switch method {
	case http.MethodHead:
		s.tusHead(ctx, c, w, rest)
	case http.MethodPatch:
		s.tusPatch(ctx, c, w, r, rest)
	case http.MethodDelete:
		s.tusDelete(ctx, c, w, rest)
	default:
		h.Set("Allow", "OPTIONS, HEAD, PATCH, DELETE")
		s.refuse(ctx, c, w, errorf(depot.CodeInvalid, "method not allowed"))
	}
}

// unsupportedTus refuses a request that uses a tus extension depot does
// not implement, naming the header: ignoring it would do something else
// than the client asked (before depot implemented concatenation, each
// part of an Upload-Concat: partial upload was stored as a whole file at
// the target path).
func unsupportedTus(r *http.Request) error {
	for _, h := range []struct{ name, what string }{
		{"Upload-Complete", "the IETF resumable uploads draft"},
		{"Upload-Incomplete", "the IETF resumable uploads draft"},
		{"Upload-Draft-Interop-Version", "the IETF resumable uploads draft"},
	} {
		if _, ok := r.Header[h.name]; ok {
			return errorf(depot.CodeInvalid, "%s is not supported: depot does not implement %s", h.name, h.what)
		}
	}
	// net/http moves a chunked request's "Trailer" header into r.Trailer.
	if _, ok := r.Trailer["Upload-Checksum"]; ok {
		return errorf(depot.CodeInvalid, "Upload-Checksum as a trailer is not supported: depot does not implement the tus checksum-trailer extension")
	}
	return nil
}

// validUploadID accepts the 32 lowercase hex characters of a session ID.
func validUploadID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func (s *Server) tusOptions(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Tus-Version", tusVersion)
	h.Set("Tus-Extension", tusExtensions)
	h.Set("Tus-Max-Size", strconv.FormatInt(s.tusMaxSize(), 10))
	h.Set("Tus-Checksum-Algorithm", tusChecksums)
	w.WriteHeader(http.StatusNoContent)
}

// tusMaxSize is the largest upload accepted: DEPOT_MAX_UPLOAD_SIZE when
// set, else 1 TiB.
func (s *Server) tusMaxSize() int64 {
	if m := s.cfg.MaxUploadSize; m > 0 && m < tusMaxSize {
		return m
	}
	return tusMaxSize
}

// setUploadHeaders sets the tus state headers of u.
func setUploadHeaders(w http.ResponseWriter, u depot.Upload) {
	h := w.Header()
	if v := concatHeader(u); v != "" {
		h.Set("Upload-Concat", v)
	}
	h.Set("Upload-Offset", strconv.FormatInt(u.Offset, 10))
	if u.DeclaredSize >= 0 {
		h.Set("Upload-Length", strconv.FormatInt(u.DeclaredSize, 10))
	} else {
		h.Set("Upload-Defer-Length", "1")
	}
	if !u.Expires.IsZero() {
		h.Set("Upload-Expires", u.Expires.UTC().Format(http.TimeFormat))
	}
}

// parseTusMetadata decodes Upload-Metadata: comma-separated "key base64"
// pairs, the value optional.
func parseTusMetadata(v string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(v) == "" {
		return out, nil
	}
	for _, pair := range strings.Split(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(pair), " ")
		if k == "" {
			return nil, errors.New("empty key")
		}
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(val))
		if err != nil {
			return nil, err
		}
		out[k] = string(b)
	}
	return out, nil
}

var errChecksumMismatch = &statusError{
	status: statusChecksumMismatch, code: "checksum_mismatch",
	msg: "the body does not match Upload-Checksum; nothing was stored",
}
