package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"time"

	"depot"
	"depot/internal/wire"
)

// ServerOptions tune NewServer.
type ServerOptions struct {
	ReadHeaderTimeout time.Duration // default 10 s (slow-header protection)
	IdleTimeout       time.Duration // default 120 s
	MaxHeaderBytes    int           // default 64 KiB
}

// NewServer returns an *http.Server for long streaming requests: it bounds
// header reading and idle connections but sets no ReadTimeout or
// WriteTimeout, which would kill long uploads and downloads. Handlers extend
// their own deadlines as data moves. BaseContext is base, so cancelling base
// cancels every in-flight request.
func NewServer(base context.Context, h http.Handler, log *slog.Logger, opts ServerOptions) *http.Server {
	if opts.ReadHeaderTimeout == 0 {
		opts.ReadHeaderTimeout = 10 * time.Second
	}
	if opts.IdleTimeout == 0 {
		opts.IdleTimeout = 120 * time.Second
	}
	if opts.MaxHeaderBytes == 0 {
		opts.MaxHeaderBytes = 64 << 10
	}
	return &http.Server{
		Handler:           closeCancelled(h, log),
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// closeCancelled answers a request whose context has already ended when it
// arrives with 503 and closes its connection. net/http cancels a
// connection's context when a background read on it fails (for instance a
// read deadline still set from streaming the previous body); every later
// request on that keep-alive connection then starts cancelled and fails at
// once, and a client that reuses the connection retries into the same
// failure: resilience tests saw uploads loop on HEAD, answered 503 in
// milliseconds, until their deadline. Closing the connection makes the
// client reconnect (web's client to services retries at once: the answer
// is marked wire.HeaderTransient). A server shutting down (base cancelled) answers the
// same way.
func closeCancelled(h http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Context().Err() != nil {
			w.Header().Set("Connection", "close")
			w.Header().Set(wire.HeaderTransient, "1") // web's client to services retries it
			log.Warn("request arrived on a cancelled connection; closing it", "method", r.Method, "cause", context.Cause(r.Context()).Error())
			WriteError(w, depot.Errorf(depot.CodeUnavailable, "the connection can no longer be used; retry"))
			return
		}
		h.ServeHTTP(w, r)
	})
}

// NewID returns a random 96-bit hex identifier for requests and correlation.
func NewID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Health answers GET /healthz with 200 {"status":"ok"}.
func Health(w http.ResponseWriter, _ *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
