package httpx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"time"
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
		Handler:           h,
		ReadHeaderTimeout: opts.ReadHeaderTimeout,
		IdleTimeout:       opts.IdleTimeout,
		MaxHeaderBytes:    opts.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
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
