package httpx

import (
	"io"
	"net/http"
	"time"
)

// ProgressReader wraps a request body and pushes the connection's read
// deadline idle into the future whenever bytes arrive, so that a long upload
// lives as long as it makes progress while a stalled peer is cut off after
// idle. Deadlines are refreshed at most every idle/4 to keep syscalls rare.
type ProgressReader struct {
	r       io.Reader
	rc      *http.ResponseController
	idle    time.Duration
	renewed time.Time
	n       int64
}

// NewProgressReader returns a ProgressReader over r.Body. If the
// ResponseWriter cannot set deadlines, the body is read without them.
func NewProgressReader(w http.ResponseWriter, r *http.Request, idle time.Duration) *ProgressReader {
	pr := &ProgressReader{r: r.Body, rc: http.NewResponseController(w), idle: idle}
	pr.renew(time.Now())
	return pr
}

func (p *ProgressReader) renew(now time.Time) {
	if p.idle <= 0 {
		return
	}
	_ = p.rc.SetReadDeadline(now.Add(p.idle))
	p.renewed = now
}

// Read reads from the body and renews the deadline on progress. At the end
// of the body (or on a read error) it clears the deadline at once: net/http
// then starts its background read of the connection, which would otherwise
// inherit the deadline, time out while the handler still works (e.g. a
// commit that takes longer than idle), and cancel the context of every later
// request on that keep-alive connection.
func (p *ProgressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	if err != nil {
		p.Done()
		return n, err
	}
	if n > 0 && p.idle > 0 {
		if now := time.Now(); now.Sub(p.renewed) > p.idle/4 {
			p.renew(now)
		}
	}
	return n, err
}

// N returns the number of bytes read so far.
func (p *ProgressReader) N() int64 { return p.n }

// Done clears the read deadline once the body is consumed, so that the
// connection can be reused for the next request. Read calls it at the end of
// the body; call it too when a handler stops reading early.
func (p *ProgressReader) Done() { _ = p.rc.SetReadDeadline(time.Time{}) }

// CopyBuffer copies src to dst with a buffer of the given size, never letting
// io.Copy swap in a ReaderFrom or WriterTo with a smaller internal buffer.
func CopyBuffer(dst io.Writer, src io.Reader, buf []byte) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf)
}
