// Package apiclient is the web tier's "remote storage driver": it implements
// depot.Files over the services tier's internal API. Bodies are streamed in
// chunks held only in memory; a chunk that fails on the network is retried at
// its offset with backoff; connections are pooled and kept alive; there is no
// whole-request timeout, only dial and TLS timeouts and a bound on time
// without progress on a connection (ProgressTimeout).
package apiclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"depot"
	"depot/internal/httpauth"
	"depot/internal/httpx"
	"depot/internal/wire"
)

// Config configures a Client.
type Config struct {
	BaseURL string // e.g. http://127.0.0.1:8081
	Key     string // internal key
	// ChunkSize is the size of one appended chunk, held in memory. Default 8 MiB.
	ChunkSize int
	// Retries is how many times a failed chunk is retried. Default 5.
	Retries int
	// Backoff is the first retry delay, doubled per attempt (capped at 5 s).
	// Default 100 ms.
	Backoff time.Duration
	// ProgressTimeout bounds how long a request to services may wait with
	// no byte moving on its connection in either direction (a hung or
	// stopped services tier): the request then fails with a *StallError
	// (unavailable, 503 to the user) and is not retried. It is pushed back
	// by every byte, so it never cuts a transfer that moves. 0: no bound.
	ProgressTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for response headers after a
	// request was written; failures are retried. Default 60 s without a
	// ProgressTimeout, none with one (the progress bound covers the wait).
	ResponseHeaderTimeout time.Duration
	// TLS configures HTTPS to services (mutual TLS when it has a client
	// certificate). nil means plain HTTP.
	TLS *tls.Config
	// WebNode names this web process in audit records.
	WebNode string
	// MaxBuffers bounds the chunk buffers of all uploads together (memory =
	// MaxBuffers × ChunkSize). An upload holds at most two. When all are in
	// use new chunks wait. Default 16.
	MaxBuffers int
	// OnRetry, when set, is called before each retry of a failed request.
	OnRetry func()
}

// Client talks to the services tier. It is safe for concurrent use.
type Client struct {
	key  atomic.Value // string: the internal key, replaceable by SetKey
	cfg  Config
	http *http.Client
	bufs *bufferPool
}

// New returns a Client.
func New(cfg Config) *Client {
	if cfg.ChunkSize <= 0 {
		cfg.ChunkSize = 8 << 20
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	} else if cfg.Retries == 0 {
		cfg.Retries = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.ResponseHeaderTimeout <= 0 && cfg.ProgressTimeout <= 0 {
		cfg.ResponseHeaderTimeout = 60 * time.Second
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	c := &Client{cfg: cfg}
	tr := &http.Transport{
		Proxy:                 nil, // the internal hop never goes through a proxy
		DialContext:           dialHop((&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext, cfg.ProgressTimeout),
		TLSClientConfig:       cfg.TLS,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		WriteBufferSize:       256 << 10,
		ReadBufferSize:        256 << 10,
		ForceAttemptHTTP2:     false,
	}
	if cfg.MaxBuffers < 2 {
		cfg.MaxBuffers = 16
	}
	// No http.Client.Timeout: it would bound whole streams.
	c.http, c.bufs = &http.Client{Transport: tr}, newBufferPool(cfg.ChunkSize, cfg.MaxBuffers)
	c.key.Store(cfg.Key)
	return c
}

// SetKey replaces the internal key used to sign requests (key rotation).
func (c *Client) SetKey(key string) { c.key.Store(key) }

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// ChunkSize returns the configured chunk size.
func (c *Client) ChunkSize() int { return c.cfg.ChunkSize }

// newRequest builds an internal request with the caller's headers.
func (c *Client) newRequest(ctx context.Context, cl depot.Caller, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.cfg.BaseURL+path, body)
	if err != nil {
		return nil, depot.WrapError(depot.CodeInternal, "bad internal request", err)
	}
	if br, ok := body.(*bytes.Reader); ok && br.Len() > 0 {
		setChunkBody(req, br)
	}
	h := req.Header
	if cl.Token != "" {
		h.Set(wire.HeaderUserToken, cl.Token)
	} else if cl.SSHKey != "" {
		h.Set(wire.HeaderSSHKey, cl.SSHKey)
	} else if cl.TrustedUser != "" {
		h.Set(wire.HeaderTrustedUser, cl.TrustedUser)
	}
	if cl.RequestID != "" {
		h.Set(wire.HeaderRequestID, cl.RequestID)
	}
	if cl.ClientIP != "" {
		h.Set(wire.HeaderClientIP, cl.ClientIP)
	}
	if cl.UserAgent != "" {
		h.Set(wire.HeaderUserAgent, sanitizeHeader(cl.UserAgent))
	}
	if c.cfg.WebNode != "" {
		h.Set(wire.HeaderWebNode, c.cfg.WebNode)
	}
	return req, nil
}

// do sends req and turns transport failures and error statuses into
// *depot.Error. On success the caller owns resp.Body.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	httpauth.Sign(req, []byte(c.key.Load().(string)), time.Now())
	resp, err := c.http.Do(req)
	if err != nil {
		if se := (*StallError)(nil); errors.As(err, &se) {
			// Not a netError: retrying a hung services tier would hold
			// the user for another ProgressTimeout per retry.
			return nil, depot.WrapError(depot.CodeUnavailable, "the services tier stopped answering", se)
		}
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, depot.WrapError(depot.CodeUnavailable, "request cancelled", context.Cause(req.Context()))
		}
		return nil, &netError{err: depot.WrapError(depot.CodeUnavailable, "the services tier is unreachable", err)}
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		spec := resp.Header.Get("Content-Range")
		if total, ok := strings.CutPrefix(spec, "bytes */"); ok {
			if size, err := strconv.ParseInt(total, 10, 64); err == nil {
				return nil, &rangeError{size: size, err: decodeError(resp)}
			}
		}
	}
	return nil, decodeError(resp)
}

// rangeError is an unsatisfiable range, with the size of the file.
type rangeError struct {
	size int64
	err  error
}

func (e *rangeError) Error() string { return e.err.Error() }
func (e *rangeError) Unwrap() error { return e.err }

// decodeError reads an internal error body. Messages from services are
// client-safe by construction; the offset of a mismatch is preserved.
func decodeError(resp *http.Response) error {
	if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get(wire.HeaderKeyRejected) != "" {
		// Web and services share no internal key: a fault of the
		// deployment, not of the user's credentials.
		return ErrKeyRejected
	}
	transient := resp.Header.Get(wire.HeaderTransient) != ""
	var body httpx.ErrorBody
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body); err != nil || body.Error.Code == "" {
		code := httpx.CodeOfStatus(resp.StatusCode)
		e := depot.Errorf(code, "the services tier answered %d", resp.StatusCode)
		if resp.StatusCode >= 500 {
			return &netError{err: e} // e.g. a proxy's 502: worth a retry
		}
		if resp.StatusCode == http.StatusBadRequest {
			// Not an answer of a services handler (those are JSON) but
			// net/http's own "400 Bad Request" to a request that arrived
			// truncated or garbled: damaged in transit, worth a retry, and
			// when retries run out a transient failure (503), not the
			// client's fault.
			return &netError{err: depot.Errorf(depot.CodeUnavailable, "a request to the services tier was damaged in transit")}
		}
		return e
	}
	e := &depot.Error{Code: body.Error.Code, Message: body.Error.Message}
	if body.Error.Offset != nil {
		e.Err = depot.OffsetError{Current: *body.Error.Offset}
	}
	if transient {
		return &netError{err: e} // damaged in transit: retried
	}
	return e
}

// ErrKeyRejected is the error of every call that services refused because
// of this web tier's internal key (unavailable: 503 to the user).
var ErrKeyRejected = depot.Errorf(depot.CodeUnavailable, "the services tier does not accept this web tier's internal key")

// netError marks a failure that may succeed when retried.
type netError struct{ err *depot.Error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

func sanitizeHeader(s string) string {
	if len(s) > 512 {
		s = s[:512]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// Ready checks that services answers its readiness probe, which it checks
// signed: a web tier whose key services refuses is not ready.
func (c *Client) Ready(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.BaseURL+wire.PathReady, nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req) // signed: a refused key is ErrKeyRejected
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}
