// Package services is the services tier's internal API: upload sessions,
// one-shot uploads, downloads with ranges, stat, delete and listing over a
// storage.Store, with every operation authenticated by an internal key,
// authorised per user and cohort, and audited before it is acknowledged.
package services

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"depot"
	"depot/internal/httpauth"
	"depot/internal/httpx"
	"depot/internal/wire"
	"depot/metrics"
	"depot/storage"
)

// Database is what the services tier needs from its database: the audit
// trail, user authentication and the table of current file state.
type Database interface {
	depot.AuditLog
	Authenticate(ctx context.Context, token string) (depot.Principal, error)
	// PrincipalOf loads an enabled user without a token, for identities
	// vouched for by the web tier's trusted single-sign-on proxy.
	PrincipalOf(ctx context.Context, user string) (depot.Principal, error)
	// AppendWithFile appends ev to the audit trail (as Append) and stores f
	// as the current state of a committed file, both or neither.
	AppendWithFile(ctx context.Context, ev depot.AuditEvent, f FileState) (depot.AuditEvent, error)
	// ForgetFile removes the current state of a deleted file.
	ForgetFile(ctx context.Context, key string) error
	Ping(ctx context.Context) error
}

// FileState is the current state of a committed file.
type FileState struct {
	Object              depot.Object
	Cohort              string
	UploadedBy          string
	CleanupScheduledFor *time.Time
}

// Config configures a Server.
type Config struct {
	Store *storage.Store
	DB    Database
	// Keys are the accepted internal keys; any of them is accepted so that
	// keys can be rotated without downtime. At least one is required.
	Keys []string
	Log  *slog.Logger
	// TempTTL is how long a temporary file lives before cleanup is due.
	TempTTL time.Duration
	// BodyIdleTimeout fails a request body that delivers no byte for this
	// long (a stalled peer). Default 60 s.
	BodyIdleTimeout time.Duration
	// ClockSkew is how far a request's signed timestamp may be from this
	// server's clock. Default 60 s.
	ClockSkew time.Duration
	Now       func() time.Time
	// Metrics, when set, receives audit latencies and failures.
	Metrics *metrics.Set
	// Cleanup runs the cleanup job now (an operator's request forwarded by
	// the web tier) and returns its result; nil disables the endpoint.
	Cleanup func(ctx context.Context, dryRun bool) (any, error)
	// TrustWebUsers accepts the user named by the web tier in
	// Depot-Trusted-User (a signed header) when no token is forwarded. Only
	// for deployments whose web tier sits behind a single-sign-on proxy.
	TrustWebUsers bool
	// OIDC, when set, accepts OpenID Connect ID tokens as user tokens
	// (checked against the provider's keys; see identity.go) and serves
	// the sign-in events of PathAuthSession.
	OIDC *OIDC
	// CheckpointBytes is how many bytes of a streaming append are made
	// durable and recorded at a time. Default 8 MiB.
	CheckpointBytes int64
}

// Server serves the internal API.
type Server struct {
	cfg      Config
	verifier *httpauth.Verifier
	throttle *throttle
}

// New returns a Server. It panics if cfg lacks a store, a database or keys:
// those are wiring errors caught at start-up.
func New(cfg Config) *Server {
	if cfg.Store == nil || cfg.DB == nil || len(cfg.Keys) == 0 {
		panic("services: Store, DB and at least one key are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.TempTTL <= 0 {
		cfg.TempTTL = 7 * 24 * time.Hour
	}
	if cfg.BodyIdleTimeout <= 0 {
		cfg.BodyIdleTimeout = 60 * time.Second
	}
	if cfg.CheckpointBytes <= 0 {
		cfg.CheckpointBytes = 8 << 20
	}
	s := &Server{cfg: cfg, throttle: newThrottle(cfg.Now)}
	s.verifier = httpauth.NewVerifier(cfg.Keys, cfg.ClockSkew, cfg.Now)
	return s
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
		{"GET " + wire.PathObjects, s.listObjects},
		{"POST " + wire.PathUploads, s.createUpload},
		{"GET " + wire.UploadPrefix + "{id}", s.getUpload},
		{"PATCH " + wire.UploadPrefix + "{id}", s.appendUpload},
		{"DELETE " + wire.UploadPrefix + "{id}", s.abortUpload},
		{"POST " + wire.UploadPrefix + "{id}/complete", s.completeUpload},
		{"POST " + wire.PathAuth, s.authenticate},
		{"POST " + wire.PathAuthSession, s.sessionEvent},
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
// (or is replayed, or too old) with 401 before its body is read. Every
// configured key is tried, compared in constant time.
func (s *Server) requireKey(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.verified(w, r) {
			return
		}
		next.ServeHTTP(w, r)
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
	if err := s.cfg.DB.Ping(ctx); err != nil {
		httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database unavailable"})
		return
	}
	if _, err := s.cfg.Store.List(ctx, "", "", 1); err != nil {
		httpx.WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "storage unavailable"})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) now() time.Time {
	if s.cfg.Now != nil {
		return s.cfg.Now().UTC()
	}
	return time.Now().UTC()
}

func remoteHost(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return host
}
