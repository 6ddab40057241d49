package services

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"depot"
	"depot/internal/httpauth"
	"depot/internal/httpx"
	"depot/internal/wire"
	"depot/metrics"
	"depot/storage"
)

// ServerConfig configures the internal API's HTTP server.
type ServerConfig struct {
	Core *Core
	// Keys are the accepted internal keys; any of them is accepted so that
	// keys can be rotated without downtime. At least one is required.
	Keys []string
	Log  *slog.Logger
	// BodyIdleTimeout fails a request body that delivers no byte for this
	// long (a stalled peer). Default 60 s.
	BodyIdleTimeout time.Duration
	// ClockSkew is how far a request's signed timestamp may be from this
	// server's clock. Default 60 s.
	ClockSkew time.Duration
	Now       func() time.Time
	// Metrics, when set, instruments every request.
	Metrics *metrics.Set
}

// Server serves the internal API: it verifies each request's signature,
// decodes it into a call of the Core and encodes the answer.
type Server struct {
	cfg      ServerConfig
	core     *Core
	verifier *httpauth.Verifier
}

// NewServer returns a Server. It panics without a Core or keys: a wiring
// error caught at start-up.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Core == nil || len(cfg.Keys) == 0 {
		panic("services: a Core and at least one key are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.BodyIdleTimeout <= 0 {
		cfg.BodyIdleTimeout = 60 * time.Second
	}
	return &Server{cfg: cfg, core: cfg.Core, verifier: httpauth.NewVerifier(cfg.Keys, cfg.ClockSkew, cfg.Now)}
}

// Handler returns the internal API's routes. Health endpoints need no key;
// everything under /internal/v1/ does, checked before any body byte is read.
func (s *Server) Handler() http.Handler {
	api := http.NewServeMux()
	for _, rt := range s.routes() {
		api.HandleFunc(rt.pattern, rt.handler)
	}
	root := http.NewServeMux()
	root.HandleFunc("GET "+wire.PathHealth, httpx.Health)
	root.HandleFunc("GET "+wire.PathReady, s.ready)
	root.Handle(wire.PathPrefix, s.requireKey(api))
	root.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, depot.Errorf(depot.CodeNotFound, "no such route"))
	})
	if s.cfg.Metrics == nil {
		return root
	}
	return s.cfg.Metrics.Instrument(routeLabel, root)
}

// routeLabel is the metrics label of a served request: its mux pattern.
func routeLabel(r *http.Request) string {
	if _, p, ok := strings.Cut(r.Pattern, " "); ok {
		return p
	}
	if r.Pattern != "" {
		return r.Pattern
	}
	return "other"
}

// route is one endpoint of the internal API.
type route struct {
	pattern string // "METHOD /path", as http.ServeMux takes it
	handler http.HandlerFunc
}

// routes lists every authenticated endpoint of the internal API. The OpenAPI
// description (docs/openapi/internal.yaml) is checked against it by a test.
func (s *Server) routes() []route {
	return []route{
		{"PUT " + wire.PathObject, s.putObject},
		{"GET " + wire.PathObject, s.getObject},
		{"HEAD " + wire.PathObject, s.headObject},
		{"DELETE " + wire.PathObject, s.deleteObject},
		{"POST " + wire.PathUndelete, s.undelete},
		{"POST " + wire.PathRestore, s.restoreVersion},
		{"GET " + wire.PathVersions, s.versions},
		{"GET " + wire.PathObjects, s.listObjects},
		{"POST " + wire.PathUploads, s.createUpload},
		{"GET " + wire.UploadPrefix + "{id}", s.getUpload},
		{"PATCH " + wire.UploadPrefix + "{id}", s.appendUpload},
		{"DELETE " + wire.UploadPrefix + "{id}", s.abortUpload},
		{"POST " + wire.UploadPrefix + "{id}/complete", s.completeUpload},
		{"POST " + wire.PathConcat, s.concatUploads}, // httpconcat.go
		{"POST " + wire.PathAuth, s.authenticate},
		{"POST " + wire.PathAuthSession, s.sessionEvent}, // single sign-on (httpsession.go)
		{"GET " + wire.PathHolds, s.listHolds},
		{"POST " + wire.PathHolds, s.placeHold},
		{"DELETE " + wire.HoldPrefix + "{id}", s.releaseHold},
		{"POST " + wire.PathCleanup, s.cleanup},
	}
}

// Routes returns the patterns of every internal API endpoint, including the
// unauthenticated health checks.
func Routes() []string {
	out := []string{"GET " + wire.PathHealth, "GET " + wire.PathReady}
	for _, rt := range (&Server{}).routes() {
		out = append(out, rt.pattern)
	}
	return out
}

// requireKey rejects a request that is not signed with a valid internal key
// (or is replayed, or too old) with 401 before its body is read.
func (s *Server) requireKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.verified(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}

// verified checks r's internal signature; when it is refused it answers
// 401 marked with HeaderKeyRejected (so that web reports a configuration
// fault, not a user's bad token) and returns false.
func (s *Server) verified(w http.ResponseWriter, r *http.Request) bool {
	err := s.verifier.Verify(r)
	if err == nil {
		return true
	}
	s.cfg.Log.Warn("internal request rejected", "remote", remoteHost(r), "reason", err.Error(), "request_id", r.Header.Get(wire.HeaderRequestID))
	w.Header().Set("Connection", "close")
	w.Header().Set(wire.HeaderKeyRejected, "1")
	httpx.WriteError(w, depot.Errorf(depot.CodeUnauthorized, "missing or invalid internal key"))
	return false
}

// SetKeys replaces the accepted internal keys, so that a key rotation needs
// no restart.
func (s *Server) SetKeys(keys []string) { s.verifier.SetKeys(keys) }

// ready answers /readyz: the database and the storage answer. It needs no
// signature (load balancers probe it), but a signed probe (web's) has its
// signature checked too, so that a web tier without a valid key is not
// reported ready.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(httpauth.Header) != "" && !s.verified(w, r) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	rd, err := s.core.Ready(ctx)
	if err != nil {
		httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": depot.ErrorMessage(err)})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, struct {
		Status string `json:"status"`
		Readiness
	}{"ready", rd})
}

// callerOf reads the caller of r from the headers web sets.
func callerOf(r *http.Request) depot.Caller {
	c := depot.Caller{
		Token:       r.Header.Get(wire.HeaderUserToken),
		TrustedUser: r.Header.Get(wire.HeaderTrustedUser),
		RequestID:   r.Header.Get(wire.HeaderRequestID),
		WebNode:     r.Header.Get(wire.HeaderWebNode),
		ClientIP:    r.Header.Get(wire.HeaderClientIP),
		UserAgent:   r.Header.Get(wire.HeaderUserAgent),
	}
	if c.RequestID == "" {
		c.RequestID = httpx.NewID()
	}
	if c.ClientIP == "" {
		c.ClientIP = remoteHost(r)
	}
	return c
}

// header decodes a percent-encoded header; a malformed one is invalid.
func header(r *http.Request, name string) (string, error) {
	v, err := wire.DecodeKey(r.Header.Get(name))
	if err != nil {
		return "", depot.Errorf(depot.CodeInvalid, "%s is not correctly encoded", name)
	}
	return v, nil
}

// keyOf reads the key of r (HeaderKey).
func keyOf(r *http.Request) (string, error) {
	key, err := header(r, wire.HeaderKey)
	if err != nil {
		return "", depot.Errorf(depot.CodeInvalidPath, "path is not correctly encoded")
	}
	return key, nil
}

// writeError writes err for web: the code and message, the current offset
// of an offset mismatch, and HeaderTransient for bytes damaged in transit
// (which web sends again).
func writeError(w http.ResponseWriter, err error) {
	if errors.Is(err, storage.ErrDamaged) {
		w.Header().Set(wire.HeaderTransient, "1")
	}
	if cur, ok := depot.CurrentOffset(err); ok {
		w.Header().Set(wire.HeaderOffset, strconv.FormatInt(cur, 10))
		httpx.WriteErrorDetail(w, httpx.ErrorDetail{Code: depot.CodeOffsetMismatch, Message: depot.ErrorMessage(err), Offset: &cur})
		return
	}
	httpx.WriteError(w, err)
}

// decodeBody decodes r's JSON body into v (an empty body only when
// allowEmpty). A body cut short in transit is not the caller's mistake: it
// is answered 503 marked HeaderTransient, which web retries; malformed JSON
// is 400. It reports whether v was decoded, having answered otherwise.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) bool {
	err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v)
	switch {
	case err == nil, err == io.EOF && allowEmpty:
		return true
	case errors.Is(err, io.ErrUnexpectedEOF) || r.ContentLength > 0 && err == io.EOF:
		w.Header().Set(wire.HeaderTransient, "1")
		httpx.WriteError(w, depot.Errorf(depot.CodeUnavailable, "the request body was cut short in transit"))
	default:
		httpx.WriteError(w, depot.Errorf(depot.CodeInvalid, "invalid JSON body"))
	}
	return false
}

// chunkOf reads the body of r as a chunk at offset: its length
// (Content-Length) and CRC-32C (HeaderCRC32C) are required.
func (s *Server) chunkOf(w http.ResponseWriter, r *http.Request, offset int64) (storage.Chunk, *httpx.ProgressReader, error) {
	v := r.Header.Get(wire.HeaderCRC32C)
	crc, err := strconv.ParseUint(v, 16, 32)
	if err != nil || len(v) != 8 {
		return storage.Chunk{}, nil, depot.Errorf(depot.CodeInvalid, "a body needs %s (8 hexadecimal digits)", wire.HeaderCRC32C)
	}
	if r.ContentLength < 0 {
		return storage.Chunk{}, nil, depot.Errorf(depot.CodeInvalid, "a body needs a Content-Length")
	}
	body := httpx.NewProgressReader(w, r, s.cfg.BodyIdleTimeout)
	return storage.Chunk{Offset: offset, Length: r.ContentLength, CRC32C: uint32(crc), Body: body}, body, nil
}

func remoteHost(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return host
}
