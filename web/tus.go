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
// request of any upload.

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"

	"depot"
	"depot/internal/httpx"
	"depot/internal/wire"
)

const (
	tusPrefix     = "/api/v1/uploads/"
	tusVersion    = "1.0.0"
	tusExtensions = "creation,creation-with-upload,creation-defer-length,termination,expiration,checksum"
	tusChecksums  = "sha1,sha256"
	// tusMaxSize is the largest upload the web tier accepts (1 TiB).
	tusMaxSize = int64(1) << 40
	// statusChecksumMismatch is the tus checksum extension's status.
	statusChecksumMismatch = 460
)

// tus dispatches a tus request; rest is the path after tusPrefix.
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
	if v := r.Header.Get("Tus-Resumable"); v != tusVersion {
		h.Set("Tus-Version", tusVersion)
		tusError(w, http.StatusPreconditionFailed, "unsupported_version", "Tus-Resumable must be 1.0.0")
		return
	}
	if bearerOrSession(r) == "" && s.trustedUser(r) == "" { // bearer token, session cookie (oidc_api.go) or trusted proxy
		writeError(w, errorf(depot.CodeUnauthorized, "missing, expired or invalid access token"))
		return
	}
	if rest == "" {
		if method != http.MethodPost {
			h.Set("Allow", "OPTIONS, POST")
			writeError(w, errorf(depot.CodeInvalid, "method not allowed"))
			return
		}
		s.tusCreate(w, r)
		return
	}
	if !validUploadID(rest) {
		writeError(w, errorf(depot.CodeNotFound, "no such upload"))
		return
	}
	switch method {
	case http.MethodHead:
		s.tusHead(w, r, rest)
	case http.MethodPatch:
		s.tusPatch(w, r, rest)
	case http.MethodDelete:
		s.tusDelete(w, r, rest)
	default:
		h.Set("Allow", "OPTIONS, HEAD, PATCH, DELETE")
		writeError(w, errorf(depot.CodeInvalid, "method not allowed"))
	}
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
	h.Set("Tus-Max-Size", strconv.FormatInt(tusMaxSize, 10))
	h.Set("Tus-Checksum-Algorithm", tusChecksums)
	w.WriteHeader(http.StatusNoContent)
}

// checksumLimit is the largest PATCH body that may carry Upload-Checksum:
// such a body is held in memory until verified, so it is bounded by the
// chunk size the web tier holds anyway.
func (s *Server) checksumLimit() int64 { return int64(s.cfg.ChunkSize) }

func tusError(w http.ResponseWriter, status int, code, msg string) {
	httpx.WriteJSON(w, status, httpx.ErrorBody{Error: httpx.ErrorDetail{Code: depot.Code(code), Message: msg}})
}

// setUploadHeaders sets the tus state headers of u.
func setUploadHeaders(w http.ResponseWriter, u depot.Upload) {
	h := w.Header()
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

// tusCreate is POST /api/v1/uploads/ (creation, creation-defer-length and
// creation-with-upload).
func (s *Server) tusCreate(w http.ResponseWriter, r *http.Request) {
	meta, err := parseTusMetadata(r.Header.Get("Upload-Metadata"))
	if err != nil {
		writeError(w, errorf(depot.CodeInvalid, "Upload-Metadata must be comma-separated key and base64 value pairs"))
		return
	}
	cohort := meta["cohort"]
	rel := meta["path"]
	if rel == "" {
		rel = meta["filename"]
	}
	if cohort == "" || rel == "" {
		writeError(w, errorf(depot.CodeInvalid, `Upload-Metadata needs "cohort" and "filename" (or "path")`))
		return
	}
	if strings.Contains(cohort, "/") || depot.ValidateKey(cohort) != nil {
		writeError(w, errorf(depot.CodeInvalidPath, "the cohort name is not allowed"))
		return
	}
	key := cohort + "/" + strings.TrimPrefix(rel, "/")
	if err := depot.ValidateKey(key); err != nil || strings.HasSuffix(rel, "/") {
		writeError(w, errorf(depot.CodeInvalidPath, "the file path is not allowed"))
		return
	}
	name := meta["filename"]
	if name == "" || strings.Contains(name, "/") {
		name = path.Base(key)
	}
	var class depot.Class // "": the class of the path's current version
	if c := meta["class"]; c != "" {
		class = depot.Class(c)
		if !class.Valid() {
			writeError(w, errorf(depot.CodeInvalid, `metadata "class" must be permanent or temporary`))
			return
		}
	}
	size := int64(-1)
	if v := r.Header.Get("Upload-Length"); v != "" {
		size, err = strconv.ParseInt(v, 10, 64)
		if err != nil || size < 0 {
			writeError(w, errorf(depot.CodeInvalid, "Upload-Length must be a non-negative integer"))
			return
		}
	} else if r.Header.Get("Upload-Defer-Length") != "1" {
		writeError(w, errorf(depot.CodeInvalid, "Upload-Length or Upload-Defer-Length: 1 is required"))
		return
	}
	if size > tusMaxSize {
		writeError(w, errorf(depot.CodeTooLarge, "Upload-Length exceeds Tus-Max-Size (%d)", tusMaxSize))
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
			writeTusErr(w, err)
			return
		}
	}

	// Services authorises the upload into the cohort when it creates the
	// session, before any byte of a creation-with-upload body is read.
	c := s.caller(w, r)
	u, err := s.cfg.Backend.CreateUpload(r.Context(), c, wire.CreateUpload{
		Key: key, Size: size, Class: class, FileName: name, Resumable: true,
		Meta: map[string]string{"protocol": "tus"},
	})
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", tusPrefix+u.ID)
	s.cfg.Log.Info("tus upload created", "upload_id", u.ID, "size", size, "request_id", w.Header().Get("X-Request-Id"))
	if withBody || size == 0 {
		u, err = s.tusWrite(r.Context(), c, w, r, u, 0, size, sum)
		if err != nil {
			// The session exists; the client may resume it with HEAD.
			writeTusErr(w, err)
			return
		}
	}
	setUploadHeaders(w, u)
	w.WriteHeader(http.StatusCreated)
}

// tusHead is HEAD /api/v1/uploads/{id}. A client sends it to resume, so it
// is audited as upload.resumed by services. A session whose bytes all
// arrived but whose completion was lost (e.g. the web process died between
// the last append and the commit) is completed here.
func (s *Server) tusHead(w http.ResponseWriter, r *http.Request, id string) {
	c := s.caller(w, r)
	u, err := s.cfg.Backend.Upload(r.Context(), c, id, true)
	if err != nil {
		writeTusErr(w, err)
		return
	}
	if !u.Completed && u.DeclaredSize >= 0 && u.Offset == u.DeclaredSize {
		// Every byte arrived but the commit did not happen (or its answer
		// was lost): commit now, and report the offset only if it worked,
		// so that a client never counts an uncommitted upload as done.
		if _, err := s.cfg.Backend.Complete(r.Context(), c, id, u.DeclaredSize, ""); err != nil {
			writeTusErr(w, err)
			return
		}
	}
	setUploadHeaders(w, u)
	w.WriteHeader(http.StatusOK)
}

// tusPatch is PATCH /api/v1/uploads/{id}.
func (s *Server) tusPatch(w http.ResponseWriter, r *http.Request, id string) {
	if r.Header.Get("Content-Type") != "application/offset+octet-stream" {
		tusError(w, http.StatusUnsupportedMediaType, string(depot.CodeInvalid), "Content-Type must be application/offset+octet-stream")
		return
	}
	offset, err := strconv.ParseInt(r.Header.Get("Upload-Offset"), 10, 64)
	if err != nil || offset < 0 {
		writeError(w, errorf(depot.CodeInvalid, "Upload-Offset must be a non-negative integer"))
		return
	}
	sum, err := s.parseChecksum(r)
	if err != nil {
		writeTusErr(w, err)
		return
	}
	c := s.caller(w, r)
	u, err := s.cfg.Backend.Upload(r.Context(), c, id, false)
	if err != nil {
		writeTusErr(w, err)
		return
	}
	if u.Completed && offset == u.Offset && r.ContentLength == 0 {
		setUploadHeaders(w, u) // a retried final PATCH: the upload is committed
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if offset != u.Offset {
		w.Header().Set("Upload-Offset", strconv.FormatInt(u.Offset, 10))
		writeError(w, errorf(depot.CodeOffsetMismatch, "Upload-Offset %d does not match the upload's offset %d", offset, u.Offset))
		return
	}
	length := u.DeclaredSize
	if v := r.Header.Get("Upload-Length"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		switch {
		case err != nil || n < 0:
			writeError(w, errorf(depot.CodeInvalid, "Upload-Length must be a non-negative integer"))
			return
		case length >= 0 && n != length:
			writeError(w, errorf(depot.CodeInvalid, "Upload-Length cannot change once set"))
			return
		case n < offset || n > tusMaxSize:
			writeError(w, errorf(depot.CodeInvalid, "Upload-Length is out of range"))
			return
		case length < 0 && r.ContentLength >= 0 && offset+r.ContentLength != n:
			// The web tier keeps no state, and services records a length
			// only at creation: a deferred length is accepted on the
			// PATCH that carries the final bytes.
			writeError(w, errorf(depot.CodeInvalid, "a deferred Upload-Length is accepted only with the PATCH that carries the last bytes"))
			return
		}
		length = n
	}
	u, err = s.tusWrite(r.Context(), c, w, r, u, offset, length, sum)
	if err != nil {
		writeTusErr(w, err)
		return
	}
	setUploadHeaders(w, u)
	w.WriteHeader(http.StatusNoContent)
}

// tusWrite appends r's body at offset of u and, when the upload reaches
// length (-1: unknown), completes it: the response succeeds only after
// services verified and committed the file. It returns u with its new
// offset.
func (s *Server) tusWrite(ctx context.Context, c depot.Caller, w http.ResponseWriter, r *http.Request, u depot.Upload, offset, length int64, sum *tusChecksum) (depot.Upload, error) {
	if length >= 0 && r.ContentLength > length-offset {
		return u, errorf(depot.CodeTooLarge, "the body goes past Upload-Length")
	}
	body := httpx.NewProgressReader(w, r, s.cfg.BodyIdleTimeout)
	defer body.Done()
	var src io.Reader = body
	if sum != nil {
		// A checksummed body is verified before any byte is committed, so
		// it is held in memory, bounded by checksumLimit.
		buf, err := io.ReadAll(io.LimitReader(body, sum.limit+1))
		if err != nil {
			return u, errorf(depot.CodeInvalid, "the upload was interrupted")
		}
		if int64(len(buf)) > sum.limit {
			return u, errorf(depot.CodeTooLarge, "a PATCH with Upload-Checksum may carry at most %d bytes", sum.limit)
		}
		if length >= 0 && int64(len(buf)) > length-offset {
			return u, errorf(depot.CodeTooLarge, "the body goes past Upload-Length")
		}
		sum.h.Write(buf)
		if subtle.ConstantTimeCompare(sum.h.Sum(nil), sum.want) != 1 {
			return u, errChecksumMismatch
		}
		src = bytes.NewReader(buf)
	} else if length >= 0 {
		src = &capReader{r: body, left: length - offset}
	}
	// net/http cancels the request context as soon as it reads EOF from a
	// client that went away, while up to two chunks read before it may still
	// be on their way to services. The bytes already received are appended
	// regardless (so the client re-sends as little as possible), and a final
	// commit is not abandoned half-way: the calls below are detached from
	// the client's connection. They end with the body: a vanished or idle
	// client ends it (BodyIdleTimeout).
	ctx = context.WithoutCancel(ctx)
	// With a known length, the PATCH that reaches it commits the upload
	// in its last chunk's request.
	n, obj, err := s.cfg.Backend.AppendStream(ctx, c, u.ID, offset, src, length, length >= 0)
	u.Offset = offset + n
	if err != nil {
		s.cfg.Log.Info("tus patch interrupted", "upload_id", u.ID, "offset", u.Offset, "code", string(depot.ErrorCode(err)), "request_id", w.Header().Get("X-Request-Id"))
		return u, err
	}
	if obj != nil {
		u.DeclaredSize, u.Completed = length, true
		s.cfg.Log.Info("tus upload completed", "upload_id", u.ID, "size", obj.Size, "request_id", w.Header().Get("X-Request-Id"))
	}
	return u, nil
}

// capReader reads at most left bytes and fails if the body has more.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		var one [1]byte
		n, err := c.r.Read(one[:])
		if n > 0 {
			return 0, errorf(depot.CodeTooLarge, "the body goes past Upload-Length")
		}
		if err == nil {
			return 0, nil
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// tusDelete is DELETE /api/v1/uploads/{id} (termination).
func (s *Server) tusDelete(w http.ResponseWriter, r *http.Request, id string) {
	if err := s.cfg.Backend.Abort(r.Context(), s.caller(w, r), id, ""); err != nil {
		writeTusErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// tusChecksum is a parsed Upload-Checksum header.
type tusChecksum struct {
	h     hash.Hash
	want  []byte
	limit int64
}

var errChecksumMismatch = errors.New("checksum mismatch")

func (s *Server) parseChecksum(r *http.Request) (*tusChecksum, error) {
	v := r.Header.Get("Upload-Checksum")
	if v == "" {
		return nil, nil
	}
	algo, enc, ok := strings.Cut(strings.TrimSpace(v), " ")
	var h hash.Hash
	switch strings.ToLower(algo) {
	case "sha1":
		h = sha1.New()
	case "sha256":
		h = sha256.New()
	default:
		return nil, errorf(depot.CodeInvalid, "Upload-Checksum algorithm must be sha1 or sha256")
	}
	want, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if !ok || err != nil || len(want) != h.Size() {
		return nil, errorf(depot.CodeInvalid, "Upload-Checksum must be an algorithm and a base64 digest")
	}
	limit := s.checksumLimit()
	if r.ContentLength > limit {
		return nil, errorf(depot.CodeTooLarge, "a PATCH with Upload-Checksum may carry at most %d bytes", limit)
	}
	return &tusChecksum{h: h, want: want, limit: limit}, nil
}

// writeTusErr writes err with the tus statuses where they differ from the
// rest of the API.
func writeTusErr(w http.ResponseWriter, err error) {
	if errors.Is(err, errChecksumMismatch) {
		tusError(w, statusChecksumMismatch, "checksum_mismatch", "the body does not match Upload-Checksum; nothing was stored")
		return
	}
	if cur, ok := depot.CurrentOffset(err); ok {
		w.Header().Set("Upload-Offset", strconv.FormatInt(cur, 10))
	}
	writeError(w, err)
}
