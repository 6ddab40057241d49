// Package web is the public tier. It authenticates every request through the
// services tier and streams bodies to and from it; it stores nothing: no
// file, no temporary file, no database. It depends only on the Backend
// interface (implemented by apiclient), never on storage or database code.
package web

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"depot"
	"depot/internal/httpx"
	"depot/metrics"
)

// Config configures a Server.
type Config struct {
	Backend Backend
	Log     *slog.Logger
	// BodyIdleTimeout cuts a client whose body delivers no byte for this
	// long. Default 60 s.
	BodyIdleTimeout time.Duration
	// ChunkSize is the size of the chunks the backend holds in memory; a
	// tus PATCH with Upload-Checksum may carry at most this much. Default
	// 8 MiB.
	ChunkSize int
	// MaxUploadSize refuses larger uploads with 413; 0 means no limit.
	MaxUploadSize int64
	// MaxUploadsPerUser bounds one user's concurrent uploads through this
	// process (429 beyond it); 0 means no limit.
	MaxUploadsPerUser int
	// Metrics, when set, instruments every request.
	Metrics *metrics.Set
	// TrustedUserHeader names a header (e.g. X-Remote-User) that carries the
	// user authenticated by a single-sign-on proxy. It is honoured only on
	// requests without a bearer token that come from TrustedProxies. Off
	// when empty.
	TrustedUserHeader string
	// TrustedProxies are the reverse proxies in front of web. A request
	// from one of them has its client's address taken from X-Forwarded-For
	// (for the audit trail and the sign-in throttle), and may carry
	// TrustedUserHeader.
	TrustedProxies []netip.Prefix
	// OIDC, when set, offers single sign-on through an OpenID Connect
	// provider (oidc.go): the page's "Sign in with …", session cookies,
	// and depot login's device flow.
	OIDC *OIDC
}

// Server is the public HTTP API.
type Server struct {
	cfg       Config
	bufs      sync.Pool
	slots     userSlots
	uploaders *uploaders
	// sftpResumes remembers the open upload session of each user's SFTP
	// transfer of a path, for reput (sftp_resume.go).
	sftpResumes *resumeTable
	// sftpBuffers is held by an SFTP writer taking its two chunk buffers.
	sftpBuffers sync.Mutex
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.BodyIdleTimeout <= 0 {
		cfg.BodyIdleTimeout = 60 * time.Second
	}
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 8 << 20
	}
	s := &Server{cfg: cfg, slots: userSlots{max: cfg.MaxUploadsPerUser}, uploaders: newUploaders(time.Now), sftpResumes: newResumeTable()}
	s.bufs.New = func() any { b := make([]byte, 1<<20); return &b }
	return s
}

// Handler returns every public route. File paths are dispatched by prefix
// before any ServeMux sees them, so that a path such as "a/../b" reaches the
// key policy (400 invalid_path) instead of being cleaned and redirected.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", httpx.Health)
	mux.HandleFunc("GET /readyz", s.ready)
	mux.HandleFunc("POST /api/v1/admin/cleanup", s.requestCleanup)
	mux.HandleFunc("GET /api/v1/holds/{cohort}", s.listHolds)
	mux.HandleFunc("POST /api/v1/holds/{cohort}", s.placeHold)
	mux.HandleFunc("DELETE /api/v1/holds/{cohort}/{hold}", s.releaseHold)
	mux.HandleFunc("GET /api/v1/me", s.me)
	mux.HandleFunc("GET /{$}", s.page)       // the upload page (page.go)
	mux.HandleFunc("GET /static/", s.static) // its embedded CSS, JS and vendored tus-js-client
	s.oidcRoutes(mux)                        // single sign-on (oidc_api.go)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		httpx.WriteError(w, depot.Errorf(depot.CodeNotFound, "no such route"))
	})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if rest, ok := strings.CutPrefix(r.URL.Path, filesPrefix); ok {
			s.files(w, r, rest)
			return
		}
		if r.URL.Path == strings.TrimSuffix(tusPrefix, "/") {
			s.tus(w, r, "")
			return
		}
		if rest, ok := strings.CutPrefix(r.URL.Path, tusPrefix); ok {
			s.tus(w, r, rest)
			return
		}
		mux.ServeHTTP(w, r)
	})
	var authed http.Handler = h
	if s.cfg.OIDC != nil {
		authed = s.withSession(h) // session cookies (oidc_session.go)
	}
	served := closeOnRefusal(logFailures(s.cfg.Log, authed))
	if s.cfg.Metrics == nil {
		return served
	}
	return s.cfg.Metrics.Instrument(routeLabel, served)
}

// routeLabel is the metrics label of a public request: its API area, never
// its path (which names files).
func routeLabel(r *http.Request) string {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, filesPrefix):
		return "files"
	case strings.HasPrefix(p, "/api/v1/uploads"):
		return "uploads"
	case p == "/healthz" || p == "/readyz":
		return p[1:]
	case p == "/" || strings.HasPrefix(p, "/static/"):
		return "page"
	}
	return "other"
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if err := s.cfg.Backend.Ready(ctx); err != nil {
		s.cfg.Log.Warn("not ready: services", "err", err.Error())
		httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "services unavailable"})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

// caller describes who makes r, for every internal call made for it, and
// sets the response's request ID.
func (s *Server) caller(w http.ResponseWriter, r *http.Request) depot.Caller {
	id := httpx.NewID()
	w.Header().Set("X-Request-Id", id)
	token := bearerOrSession(r) // a session cookie's ID token when there is no bearer token
	c := depot.Caller{Token: token, RequestID: id, ClientIP: s.clientIP(r), UserAgent: r.UserAgent()}
	if token == "" {
		c.TrustedUser = s.trustedUser(r)
	}
	return c
}

// writeError writes err for a public client. Messages that came from the
// services tier are replaced by this tier's own wording, so that nothing of
// services (paths, hosts, internals) reaches the client.
func writeError(w http.ResponseWriter, err error) {
	noteCause(w, err)
	var se *statusError
	if errors.As(err, &se) {
		httpx.WriteJSON(w, se.status, httpx.ErrorBody{Error: httpx.ErrorDetail{Code: se.code, Message: se.msg}})
		return
	}
	if cur, ok := depot.CurrentOffset(err); ok {
		w.Header().Set("Upload-Offset", strconv.FormatInt(cur, 10))
	}
	code := depot.ErrorCode(err)
	var local *localError
	if asLocal(err, &local) {
		httpx.WriteError(w, local.err)
		return
	}
	httpx.WriteErrorDetail(w, httpx.ErrorDetail{Code: code, Message: publicMessage(code)})
}

func publicMessage(code depot.Code) string {
	switch code {
	case depot.CodeInvalidPath:
		return "the file path is not allowed"
	case depot.CodeInvalid:
		return "the request is not valid"
	case depot.CodeNotFound:
		return "no such file or upload"
	case depot.CodeConflict, depot.CodeOffsetMismatch:
		return "the request conflicts with the current state of the upload"
	case depot.CodeSizeMismatch:
		return "the upload's size does not match its declared size"
	case depot.CodeHashMismatch:
		return "the upload's SHA-256 does not match the declared one; nothing was stored"
	case depot.CodeTooLarge:
		return "the upload is too large"
	case depot.CodeUnauthorized:
		return "missing, expired or invalid access token"
	case depot.CodeForbidden:
		return "you do not have access to this cohort"
	case depot.CodeRangeNotSatisf:
		return "the requested range is not satisfiable"
	case depot.CodeTooMany:
		return "too many requests or unfinished uploads; finish or cancel an upload, or try again later"
	case depot.CodeUnavailable:
		return "the service is temporarily unavailable; try again"
	case depot.CodeStorageFull:
		return "the storage is full; nothing was stored"
	case depot.CodePrecondition:
		return "the file changed: the request's condition does not hold"
	case depot.CodeInfected:
		return "the malware scanner found a threat in this file; nothing was stored"
	}
	return "internal error"
}
