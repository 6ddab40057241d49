package web

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"

	"depot"
	"depot/internal/wire"
)

// tusPatch is PATCH /api/v1/uploads/{id}. It is admitted like every upload
// (admission.go) once the session is loaded: the upload's declared or
// deferred length and its offset are held to the size limit, and the
// user's slot is held while the body streams.
func (s *Server) tusPatch(ctx context.Context, c depot.Caller, w http.ResponseWriter, r *http.Request, id string) {
	if r.Header.Get("Content-Type") != "application/offset+octet-stream" {
		s.refuse(ctx, c, w, &statusError{status: http.StatusUnsupportedMediaType, code: depot.CodeInvalid,
			msg: "Content-Type must be application/offset+octet-stream"})
		return
	}
	offset, ok := parseTusInt(r.Header.Get("Upload-Offset"))
	if !ok {
		s.refuse(ctx, c, w, errorf(depot.CodeInvalid, "Upload-Offset must be a non-negative integer"))
		return
	}
	sum, err := s.parseChecksum(r)
	if err != nil {
		s.refuse(ctx, c, w, err)
		return
	}
	u, err := s.cfg.Backend.Upload(ctx, c, id, false)
	if err != nil {
		writeError(w, err)
		return
	}
	if u.Meta[wire.MetaConcat] == wire.ConcatFinal {
		s.refuse(ctx, c, w, errModifyFinal)
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
	length, err := s.patchLength(r, u, offset)
	if err != nil {
		writeError(w, err)
		return
	}
	a, err := s.admit(ctx, c, cohortOf(u.Key), offset, length)
	if err != nil {
		writeError(w, err)
		return
	}
	defer a.release()
	u, err = s.tusWrite(ctx, c, w, r, a, u, offset, length, sum)
	if err != nil {
		writeError(w, err)
		return
	}
	setUploadHeaders(w, u)
	w.WriteHeader(http.StatusNoContent)
}

// patchLength is the upload's total length as a PATCH at offset knows it:
// the declared one, or a deferred Upload-Length this PATCH sets (-1: still
// unknown).
func (s *Server) patchLength(r *http.Request, u depot.Upload, offset int64) (int64, error) {
	length := u.DeclaredSize
	v := r.Header.Get("Upload-Length")
	if v == "" {
		return length, nil
	}
	n, ok := parseTusInt(v)
	switch {
	case !ok:
		return 0, errorf(depot.CodeInvalid, "Upload-Length must be a non-negative integer")
	case length >= 0 && n != length:
		return 0, errorf(depot.CodeInvalid, "Upload-Length cannot change once set")
	case n < offset:
		return 0, errorf(depot.CodeInvalid, "Upload-Length is out of range")
	case n > s.tusMaxSize():
		return 0, errorf(depot.CodeTooLarge, "Upload-Length exceeds Tus-Max-Size (%d)", s.tusMaxSize())
	case length < 0 && r.ContentLength >= 0 && offset+r.ContentLength != n:
		// The web tier keeps no state, and services records a length only
		// at creation: a deferred length is accepted on the PATCH that
		// carries the final bytes.
		return 0, errorf(depot.CodeInvalid, "a deferred Upload-Length is accepted only with the PATCH that carries the last bytes")
	}
	return n, nil
}

// tusWrite appends r's body at offset of u and, when the upload reaches
// length (-1: unknown), completes it: the response succeeds only after
// services verified and committed the file. It returns u with its new
// offset.
func (s *Server) tusWrite(ctx context.Context, c depot.Caller, w http.ResponseWriter, r *http.Request, a *admission, u depot.Upload, offset, length int64, sum *tusChecksum) (depot.Upload, error) {
	if length >= 0 && r.ContentLength > length-offset {
		return u, errorf(depot.CodeTooLarge, "the body goes past Upload-Length")
	}
	body := a.body(w, r)
	defer body.Done()
	// net/http cancels the request context as soon as it reads EOF from a
	// client that went away, while up to two chunks read before it may still
	// be on their way to services. The bytes already received are appended
	// regardless (so the client re-sends as little as possible), and a final
	// commit is not abandoned half-way: the calls below are detached from
	// the client's connection. They end with the body: a vanished or idle
	// client ends it (BodyIdleTimeout).
	// With a known length, the PATCH that reaches it commits the upload in
	// its last chunk's request.
	// A partial upload (concatenation) is never committed by itself.
	commit := length >= 0 && u.Meta[wire.MetaConcat] != wire.ConcatPartial
	var n int64
	var obj *depot.Object
	var err error
	if sum != nil {
		n, obj, err = s.appendVerified(ctx, c, u.ID, offset, length, commit, body, sum)
	} else {
		var src io.Reader = body
		if length >= 0 {
			src = &capReader{r: body, left: length - offset}
		}
		n, obj, err = s.cfg.Backend.AppendStream(context.WithoutCancel(ctx), c, u.ID, offset, src, length, commit)
	}
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

// appendVerified appends a body that carries Upload-Checksum. It is
// verified before any byte is committed, so it is held in memory: in a
// buffer of the backend's bounded pool (DEPOT_MAX_BUFFERS ×
// DEPOT_CHUNK_SIZE for all uploads together), taken before the first byte
// is read, so that memory stays bounded whatever the headers say.
func (s *Server) appendVerified(ctx context.Context, c depot.Caller, id string, offset, length int64, commit bool, body io.Reader, sum *tusChecksum) (int64, *depot.Object, error) {
	buf, release, err := s.cfg.Backend.ChunkBuffer(ctx)
	if err != nil {
		return 0, nil, err
	}
	defer release()
	n, err := io.ReadFull(body, buf)
	switch {
	case err == nil: // the buffer is full: the body must end here
		var one [1]byte
		if k, _ := io.ReadFull(body, one[:]); k > 0 {
			return 0, nil, errorf(depot.CodeTooLarge, "a PATCH with Upload-Checksum may carry at most %d bytes", len(buf))
		}
	case err == io.EOF || err == io.ErrUnexpectedEOF:
	case depot.ErrorCode(err) != depot.CodeInternal:
		return 0, nil, err // e.g. too_large from the admission's limit
	default:
		return 0, nil, errorf(depot.CodeInvalid, "the upload was interrupted")
	}
	if length >= 0 && int64(n) > length-offset {
		return 0, nil, errorf(depot.CodeTooLarge, "the body goes past Upload-Length")
	}
	sum.h.Write(buf[:n])
	if subtle.ConstantTimeCompare(sum.h.Sum(nil), sum.want) != 1 {
		return 0, nil, errChecksumMismatch
	}
	return s.cfg.Backend.AppendChunk(context.WithoutCancel(ctx), c, id, offset, buf[:n], length, commit)
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

// tusChecksum is a parsed Upload-Checksum header.
type tusChecksum struct {
	h    hash.Hash
	want []byte
}

// parseChecksum reads Upload-Checksum. A checksummed body is held in memory
// until verified, so it may be at most one chunk (DEPOT_CHUNK_SIZE).
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
	if limit := int64(s.cfg.ChunkSize); r.ContentLength > limit {
		return nil, errorf(depot.CodeTooLarge, "a PATCH with Upload-Checksum may carry at most %d bytes", limit)
	}
	return &tusChecksum{h: h, want: want}, nil
}

// parseTusInt parses an Upload-Offset or Upload-Length value: a
// non-negative integer in decimal digits only (no sign, no spaces), that
// fits in an int64.
func parseTusInt(v string) (int64, bool) {
	if v == "" || len(v) > 19 {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
