package apiclient

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// hopConn is one connection of the internal hop. It does two things:
//
// It lets the transport send a chunk straight from its buffer. net/http
// copies a request body of known length with io.Copy(conn,
// io.LimitReader(body, length)); the LimitedReader hides bytes.Reader's
// WriterTo, so net.TCPConn falls back to 32 KiB writes through an
// intermediate buffer (a copy of every byte, and 256 write(2)s per 8 MiB
// chunk: a fifth of the web tier's CPU, profiled). ReadFrom recognises a
// LimitedReader that covers a whole bytes.Reader and writes the reader's
// bytes in one call, without a copy. Over TLS the transport writes to a
// tls.Conn instead, which writes its records here.
//
// And it notices a services tier that stopped answering (a hung or
// SIGSTOPped process still accepts connections and bytes into its socket
// buffers, so neither dialling nor writing fails): when a Read or Write has
// waited for stall with no byte moving on the connection in either
// direction, every pending and later call fails with a *StallError and the
// transport drops the connection. The clock starts when a call begins to
// wait and is pushed back by every byte read or written, so a long upload
// or download lives as long as it moves, and a download whose public client
// is slow is not timed while web is not reading. A connection resting in
// the transport's pool has a read waiting on it (the transport watches for
// the server closing it), so it is closed after stall of idleness; the next
// request opens a new one.
type hopConn struct {
	net.Conn
	watch *stallWatch // nil: no bound
}

// writePiece bounds one write where the system cannot tell how much of a
// blocked write its peer took (see unsentBytes), so that progress inside a
// large chunk is seen between pieces. On Linux a chunk goes in one write.
const writePiece = 1 << 20

// StallError is the error of a request to services on whose connection no
// byte moved for After while web waited for it. It is not retried: a hung
// services tier would hold the user for every retry.
type StallError struct{ After time.Duration }

func (e *StallError) Error() string {
	return "no byte moved to or from the services tier for " + e.After.String()
}

// Timeout reports true: a StallError is a timeout (net.Error).
func (e *StallError) Timeout() bool { return true }

// Temporary reports false (net.Error).
func (e *StallError) Temporary() bool { return false }

func (c *hopConn) Read(p []byte) (int, error) {
	c.watch.begin()
	n, err := c.Conn.Read(p)
	c.watch.end(n)
	return n, c.watch.explain(err)
}

func (c *hopConn) Write(p []byte) (int, error) {
	size := len(p)
	if c.watch != nil && !unsentKnown {
		size = writePiece
	}
	var done int
	for done < len(p) {
		piece := p[done:min(len(p), done+size)]
		c.watch.begin()
		n, err := c.Conn.Write(piece)
		c.watch.end(n)
		done += n
		if err != nil {
			return done, c.watch.explain(err)
		}
	}
	return done, nil
}

// ReadFrom implements io.ReaderFrom (see hopConn).
func (c *hopConn) ReadFrom(r io.Reader) (int64, error) {
	if lr, ok := r.(*io.LimitedReader); ok {
		if b, ok := lr.R.(chunkBody); ok && int64(b.Len()) <= lr.N {
			n, err := b.WriteTo(struct{ io.Writer }{c})
			lr.N -= n
			return n, err
		}
	}
	return io.Copy(struct{ io.Writer }{c}, r)
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *hopConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *hopConn) Close() error {
	c.watch.stop()
	return c.Conn.Close()
}

// chunkBody is the request body of an in-memory chunk: a bytes.Reader whose
// length hopConn can see (io.NopCloser would hide it).
type chunkBody struct{ *bytes.Reader }

func (chunkBody) Close() error { return nil }

// setChunkBody makes req send br as a chunkBody, also when the transport
// asks for the body again to retry the request.
func setChunkBody(req *http.Request, br *bytes.Reader) {
	snapshot := *br
	req.Body = chunkBody{br}
	req.GetBody = func() (io.ReadCloser, error) {
		r := snapshot
		return chunkBody{&r}, nil
	}
}

// dialHop wraps dial's connections in hopConn, each watched for stalls of
// stall (0: not watched).
func dialHop(dial func(ctx context.Context, network, addr string) (net.Conn, error), stall time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &hopConn{Conn: conn, watch: newStallWatch(conn, stall)}, nil
	}
}

// stallWatch times the waits of one connection (see hopConn). Calls record
// progress with two atomic stores; a timer looks every quarter period, and
// also counts bytes its peer acknowledged since its last look (on Linux) as
// progress, so a write blocked on a full socket buffer that the peer drains
// slowly is not a stall. A stall is noticed between after and 1¼ × after.
type stallWatch struct {
	conn       net.Conn
	after      time.Duration
	origin     time.Time    // monotonic base of last
	last       atomic.Int64 // since origin: the last byte moved or wait begun
	lastUnsent atomic.Int64 // unacknowledged bytes at the timer's last look
	waiting    atomic.Int32 // calls blocked in Read or Write
	stalled    atomic.Bool
	stopped    atomic.Bool
	timer      *time.Timer
}

func newStallWatch(conn net.Conn, after time.Duration) *stallWatch {
	if after <= 0 {
		return nil
	}
	w := &stallWatch{conn: conn, after: after, origin: time.Now()}
	w.timer = time.AfterFunc(after/4, w.check)
	return w
}

func (w *stallWatch) begin() {
	if w != nil {
		w.last.Store(int64(time.Since(w.origin)))
		w.waiting.Add(1)
	}
}

func (w *stallWatch) end(n int) {
	if w != nil {
		if n > 0 {
			w.last.Store(int64(time.Since(w.origin)))
		}
		w.waiting.Add(-1)
	}
}

// check runs on the timer: it cuts the connection if a call has waited for
// w.after without progress.
func (w *stallWatch) check() {
	if w.stopped.Load() {
		return
	}
	now := time.Since(w.origin)
	if q, ok := unsentBytes(w.conn); ok {
		if int64(q) < w.lastUnsent.Load() {
			w.last.Store(int64(now)) // the peer took bytes since the last look
		}
		w.lastUnsent.Store(int64(q))
	}
	if w.waiting.Load() > 0 && now-time.Duration(w.last.Load()) >= w.after {
		w.stalled.Store(true)
		_ = w.conn.SetDeadline(time.Unix(1, 0)) // wakes every pending call; later ones fail at once
		return
	}
	w.timer.Reset(w.after / 4)
}

// explain turns the error of a call cut by the watch into a *StallError.
func (w *stallWatch) explain(err error) error {
	if err != nil && w != nil && w.stalled.Load() {
		return &StallError{After: w.after}
	}
	return err
}

func (w *stallWatch) stop() {
	if w != nil {
		w.stopped.Store(true)
		w.timer.Stop()
	}
}
