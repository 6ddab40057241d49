package scan

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"depot"
	"depot/storage"
)

// Policy is what a Gate does beyond asking clamd.
type Policy struct {
	// FailOpen commits an upload whose scan cannot be had (clamd down or
	// too slow) as unscanned; otherwise (the default) it is refused with
	// CodeUnavailable, which the client retries.
	FailOpen bool
	// MaxSize is the largest upload the scanner accepts, in bytes (set it
	// to clamd's StreamMaxLength); 0 means no limit.
	MaxSize int64
	// Oversize is OversizeRefuse (default) or OversizeUnscanned.
	Oversize string
	// Streams bounds the overlapped streams open at once; an upload
	// beyond it is scanned from its stored bytes at completion. Default 8.
	Streams int
	// Idle drops a stream that received nothing for this long (clamd
	// closes it after its own ReadTimeout, 120 s by default). Default 2 min.
	Idle time.Duration
}

// Gate is the scan in front of every commit of services. While an upload
// session's chunks are written, Tee streams the bytes that the Store
// accepts to an INSTREAM of its own (the overlap: no second read); at
// completion Verdict ends that stream and returns clamd's verdict. When
// there is no intact stream of exactly the upload's bytes — a chunk that
// failed its check after some of it was sent, a chunk served by another
// services process, a services restart, a stream clamd closed — Verdict
// scans the stored bytes instead. It is safe for concurrent use.
type Gate struct {
	client *Client
	policy Policy
	log    *slog.Logger

	mu      sync.Mutex
	streams map[string]*entry
}

// entry is the stream of one upload session. mu is held by the append that
// feeds it, from Tee until its done function.
type entry struct {
	mu     sync.Mutex
	s      *Stream
	next   int64 // bytes sent to the stream
	last   time.Time
	broken bool // a write failed: the stream is useless
}

// NewGate returns a Gate over client.
func NewGate(client *Client, p Policy, log *slog.Logger) *Gate {
	if p.Streams <= 0 {
		p.Streams = 8
	}
	if p.Idle <= 0 {
		p.Idle = 2 * time.Minute
	}
	if p.Oversize == "" {
		p.Oversize = OversizeRefuse
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Gate{client: client, policy: p, log: log, streams: map[string]*entry{}}
}

// Client returns the gate's clamd client.
func (g *Gate) Client() *Client { return g.client }

// Admit refuses, before any byte is read, an upload whose declared size
// (-1 unknown) the scanner cannot take, when the oversize policy refuses.
func (g *Gate) Admit(size int64) error {
	if g.policy.MaxSize > 0 && size > g.policy.MaxSize && g.policy.Oversize == OversizeRefuse {
		return depot.Errorf(depot.CodeTooLarge, "the upload is larger than the malware scanner accepts (%d bytes)", g.policy.MaxSize)
	}
	return nil
}

// Tee returns c with a body that also sends its bytes to upload id's
// stream, and the function to call with the outcome of the append: its
// error and the session's offset after it. Only a chunk at offset 0 opens
// a stream; a stream that did not receive exactly the bytes the Store
// accepted is dropped. Tee never makes an append fail: a clamd that fails
// only drops the stream.
func (g *Gate) Tee(ctx context.Context, id string, c storage.Chunk) (storage.Chunk, func(err error, offset int64)) {
	e := g.lockEntry(ctx, id, c.Offset)
	if e == nil {
		return c, func(error, int64) {}
	}
	release := func() { e.last = time.Now(); e.mu.Unlock() }
	switch {
	case c.Offset == e.next && !e.broken && (g.policy.MaxSize <= 0 || c.Offset+c.Length <= g.policy.MaxSize):
		t := &tee{r: c.Body, e: e}
		c.Body = t
		return c, func(err error, offset int64) {
			if err != nil || t.n != c.Length || offset != e.next {
				g.drop(id, e)
			}
			release()
		}
	case c.Length > 0 && c.Offset+c.Length == e.next:
		// A retry of the chunk that fed the stream last: the Store answers
		// it without reading it, unless the session is elsewhere.
		return c, func(err error, offset int64) {
			if err == nil && offset != e.next {
				g.drop(id, e)
			}
			release()
		}
	}
	g.drop(id, e)
	e.mu.Unlock()
	return c, func(error, int64) {}
}

// lockEntry returns the locked stream of upload id, opening one for a
// chunk at offset 0; nil when there is none to feed.
func (g *Gate) lockEntry(ctx context.Context, id string, offset int64) *entry {
	g.mu.Lock()
	e := g.streams[id]
	if e != nil {
		g.mu.Unlock()
		e.mu.Lock() // a concurrent append of the same session
		g.mu.Lock()
		current := g.streams[id] == e
		g.mu.Unlock()
		if !current {
			e.mu.Unlock()
			return nil
		}
		return e
	}
	g.sweepLocked()
	if offset != 0 || len(g.streams) >= g.policy.Streams {
		g.mu.Unlock()
		return nil
	}
	e = &entry{}
	e.mu.Lock()
	g.streams[id] = e
	g.mu.Unlock()
	s, err := g.client.Open(ctx)
	if err != nil {
		g.log.Warn("scan stream not opened; the upload will be scanned at completion", "upload_id", id, "err", err.Error())
		g.drop(id, e)
		e.mu.Unlock()
		return nil
	}
	e.s, e.last = s, time.Now()
	return e
}

// sweepLocked drops the streams idle for longer than the policy allows
// (sessions aborted or expired elsewhere); g.mu is held.
func (g *Gate) sweepLocked() {
	for id, e := range g.streams {
		if !e.mu.TryLock() {
			continue
		}
		if time.Since(e.last) > g.policy.Idle {
			delete(g.streams, id)
			if e.s != nil {
				e.s.Close()
			}
		}
		e.mu.Unlock()
	}
}

// drop forgets and closes e, the stream of id; e.mu is held.
func (g *Gate) drop(id string, e *entry) {
	g.mu.Lock()
	if g.streams[id] == e {
		delete(g.streams, id)
	}
	g.mu.Unlock()
	e.broken = true
	if e.s != nil {
		e.s.Close()
	}
}

// take removes and returns the stream of id if no append holds it.
func (g *Gate) take(id string) *entry {
	g.mu.Lock()
	defer g.mu.Unlock()
	e := g.streams[id]
	if e == nil || !e.mu.TryLock() {
		return nil
	}
	delete(g.streams, id)
	return e
}

// Drop abandons the stream of upload id, if any (an aborted upload).
func (g *Gate) Drop(id string) {
	if e := g.take(id); e != nil {
		e.broken = true
		if e.s != nil {
			e.s.Close()
		}
		e.mu.Unlock()
	}
}

// Streams returns the number of streams open.
func (g *Gate) Streams() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.streams)
}

// tee passes a chunk's body to the Store and its bytes to a stream.
type tee struct {
	r io.Reader
	e *entry
	n int64
}

func (t *tee) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.n += int64(n)
		if !t.e.broken {
			if _, werr := t.e.s.Write(p[:n]); werr != nil {
				t.e.broken = true
			}
		}
		t.e.next += int64(n)
	}
	return n, err
}

// Verdict returns the verdict on upload id, whose size bytes the Store
// verified, before its commit: from its stream when that holds exactly
// those bytes, otherwise by reading them with open. The error is
// CodeInfected (VerdictOf gives the verdict), CodeTooLarge (oversize,
// refused), CodeUnavailable (clamd unavailable, fail-closed) or a failure
// of open. Under fail-open, or oversize "unscanned", the verdict is
// unscanned with its reason and no error.
func (g *Gate) Verdict(ctx context.Context, id string, size int64, open func(context.Context) (io.ReadCloser, error)) (Verdict, error) {
	start := time.Now()
	f, source, err := g.finding(ctx, id, size, open)
	v := Verdict{Source: source}
	switch {
	case err == nil:
		if ver, verr := g.client.Version(ctx); verr == nil {
			v.Engine, v.Database = splitVersion(ver)
		}
		v.Status = depot.ScanClean
		if f.Infected {
			v.Status, v.Signature = depot.ScanInfected, f.Signature
		}
	case errors.Is(err, ErrTooLarge):
		if g.policy.Oversize != OversizeUnscanned {
			return v, depot.WrapError(depot.CodeTooLarge, "the upload is larger than the malware scanner accepts; nothing was stored", err)
		}
		v.Status, v.Reason, v.Source = depot.ScanUnscanned, ReasonTooLarge, ""
	case errors.Is(err, ErrUnavailable):
		if !g.policy.FailOpen {
			g.log.Warn("scan unavailable: upload refused (fail closed)", "upload_id", id, "err", err.Error())
			return v, depot.WrapError(depot.CodeUnavailable, "the malware scanner is unavailable; nothing was stored yet, try again", err)
		}
		g.log.Warn("scan unavailable: upload committed unscanned (fail open)", "upload_id", id, "err", err.Error())
		v.Status, v.Reason, v.Source = depot.ScanUnscanned, ReasonUnavailable, ""
	default:
		return v, err // reading the stored bytes failed
	}
	g.log.Info("scan verdict", "upload_id", id, "result", string(v.Status), "source", v.Source, "size", size,
		"scan_ms", time.Since(start).Milliseconds())
	if v.Status == depot.ScanInfected {
		return v, infected(v)
	}
	return v, nil
}

// finding asks clamd about upload id: through its stream when it carried
// exactly size bytes, else by sending the bytes open reads.
func (g *Gate) finding(ctx context.Context, id string, size int64, open func(context.Context) (io.ReadCloser, error)) (Finding, string, error) {
	if g.policy.MaxSize > 0 && size > g.policy.MaxSize {
		g.Drop(id)
		return Finding{}, "", ErrTooLarge
	}
	if e := g.take(id); e != nil {
		usable := !e.broken && e.next == size && e.s != nil
		var f Finding
		var err error
		if usable {
			f, err = e.s.Finish(ctx)
		} else if e.s != nil {
			e.s.Close()
		}
		e.mu.Unlock()
		if usable && (err == nil || errors.Is(err, ErrTooLarge) || isTimeout(err)) {
			// A clamd too slow to answer would be as slow to scan again.
			return f, SourceStream, err
		}
		if usable {
			g.log.Info("scan stream lost; scanning the stored bytes", "upload_id", id, "err", err.Error())
		}
	}
	rc, err := open(ctx)
	if err != nil {
		return Finding{}, SourceStored, err
	}
	defer rc.Close()
	f, err := g.client.Scan(ctx, rc)
	return f, SourceStored, err
}

// isTimeout reports whether err is a deadline that passed.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Rescan scans a committed version's bytes (depot scan): the verdict, or
// an error when clamd is unavailable (whatever the fail-open policy) or
// the bytes cannot be read. A version larger than the scanner accepts is
// unscanned with reason too_large.
func (g *Gate) Rescan(ctx context.Context, size int64, open func(context.Context) (io.ReadCloser, error)) (Verdict, error) {
	if g.policy.MaxSize > 0 && size > g.policy.MaxSize {
		return Verdict{Status: depot.ScanUnscanned, Reason: ReasonTooLarge}, nil
	}
	rc, err := open(ctx)
	if err != nil {
		return Verdict{}, err
	}
	defer rc.Close()
	f, err := g.client.Scan(ctx, rc)
	switch {
	case errors.Is(err, ErrTooLarge):
		return Verdict{Status: depot.ScanUnscanned, Reason: ReasonTooLarge}, nil
	case errors.Is(err, ErrUnavailable):
		return Verdict{}, depot.WrapError(depot.CodeUnavailable, "the malware scanner is unavailable", err)
	case err != nil:
		return Verdict{}, err
	}
	v := Verdict{Status: depot.ScanClean, Source: SourceStored}
	if f.Infected {
		v.Status, v.Signature = depot.ScanInfected, f.Signature
	}
	if ver, verr := g.client.Version(ctx); verr == nil {
		v.Engine, v.Database = splitVersion(ver)
	}
	return v, nil
}
