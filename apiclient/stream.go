package apiclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"depot"
	"depot/internal/wire"
)

// ringChunks is how many chunk buffers one streaming upload may hold: the
// bytes sent to services but not yet known to be durable there. It bounds
// the web tier's memory per upload (ringChunks × ChunkSize).
const ringChunks = 2

// stream appends r to session id from offset in one long streaming PATCH,
// so that bytes flow to services without a stop at every chunk. Services
// makes the data durable one checkpoint (a chunk) at a time. The chunks this
// side has sent are kept until services reports them durable; if the PATCH
// fails, the stream resumes from services' durable offset, replaying the kept
// chunks. Reading from r (and hashing into h) overlaps sending. When r fails
// part-way, the bytes already read are still appended and the read error is
// returned with their count.
func (c *Client) stream(ctx context.Context, id string, offset int64, r io.Reader, h io.Writer, resume bool) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rg := newRing(c.bufs, offset, ringChunks)
	defer rg.close()
	go rg.fill(ctx, r, c.cfg.ChunkSize, h)

	durable, failures := offset, 0
	for {
		next, err := c.patchFrom(ctx, id, durable, rg, resume && durable == offset)
		if err == nil {
			durable = next
			break
		}
		var oe OffsetError
		switch {
		case errors.As(err, &oe):
			next = oe.Current
		case IsNetwork(err):
			u, uerr := c.Upload(ctx, id)
			if uerr != nil {
				return durable - offset, uerr
			}
			next = u.Offset
		default:
			return durable - offset, err
		}
		if next > durable {
			failures = 0 // progress was made: the retry budget starts again
		} else if failures++; failures > c.cfg.Retries {
			return durable - offset, err
		}
		if next < rg.start() {
			return durable - offset, depot.WrapError(depot.CodeUnavailable, "the services tier lost bytes that are no longer held; resume the upload", err)
		}
		durable = next
		rg.release(durable)
		if c.cfg.OnRetry != nil {
			c.cfg.OnRetry()
		}
		if err := sleep(ctx, c.cfg.Backoff); err != nil {
			return durable - offset, err
		}
	}
	if err := rg.readError(); err != nil {
		if depot.ErrorCode(err) == depot.CodeInternal { // not a coded error of the reader
			err = depot.WrapError(depot.CodeInvalid, "the upload was interrupted", err)
		}
		return durable - offset, err
	}
	return durable - offset, nil
}

// patchFrom sends one PATCH carrying the ring's bytes from `from` to the end
// of the stream and returns services' offset when it answers. While it runs,
// a poller asks services for its durable offset whenever the ring is full,
// so that chunks can be released and reading can go on.
func (c *Client) patchFrom(ctx context.Context, id string, from int64, rg *ring, resume bool) (int64, error) {
	pr, pw := io.Pipe()
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go rg.writeTo(pctx, pw, from)
	go c.pollDurable(pctx, id, rg)

	req, err := c.newRequest(ctx, http.MethodPatch, wire.UploadPrefix+id, pr)
	if err != nil {
		pr.CloseWithError(err)
		return from, err
	}
	req.ContentLength = -1 // streamed (chunked transfer encoding)
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set(wire.HeaderOffset, strconv.FormatInt(from, 10))
	// Services must make data durable at least once per held chunk, or the
	// ring could fill with bytes that are never confirmed.
	req.Header.Set(wire.HeaderCheckpoint, strconv.Itoa(c.cfg.ChunkSize))
	if resume {
		req.Header.Set(wire.HeaderResume, "1")
	}
	var u depot.Upload
	err = c.doJSON(req, &u)
	pr.CloseWithError(errors.New("request finished"))
	if err != nil {
		return from, err
	}
	rg.release(u.Offset)
	return u.Offset, nil
}

// pollDurable releases ring chunks that services reports durable, asking
// only while the ring is full (the reader waits for room).
func (c *Client) pollDurable(ctx context.Context, id string, rg *ring) {
	for rg.waitFull(ctx) {
		r, err := c.newRequest(ctx, http.MethodGet, wire.UploadPrefix+id, nil)
		if err != nil {
			return
		}
		var u depot.Upload
		if err := c.doJSON(r, &u); err == nil && rg.release(u.Offset) {
			continue
		}
		if sleep(ctx, 5*time.Millisecond) != nil {
			return
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return depot.WrapError(depot.CodeUnavailable, "request cancelled", context.Cause(ctx))
	}
}

// ring holds the chunks of one upload from the oldest not yet known durable
// to the newest read, in order and contiguous.
type ring struct {
	mu      sync.Mutex
	cond    *sync.Cond
	pool    *bufferPool
	max     int
	chunks  []ringChunk
	base    int64 // offset of the first held byte
	end     int64 // offset after the last byte read
	done    bool  // the reader has finished
	readErr error // why it finished, nil at a clean end
	closed  bool
}

type ringChunk struct {
	off int64
	buf *[]byte
	n   int
}

func newRing(pool *bufferPool, offset int64, max int) *ring {
	rg := &ring{pool: pool, max: max, base: offset, end: offset}
	rg.cond = sync.NewCond(&rg.mu)
	return rg
}

// fill reads r into chunks of size until its end, hashing into h.
func (rg *ring) fill(ctx context.Context, r io.Reader, size int, h io.Writer) {
	for {
		rg.mu.Lock()
		for len(rg.chunks) >= rg.max && !rg.closed {
			rg.cond.Wait()
		}
		closed := rg.closed
		rg.mu.Unlock()
		if closed {
			return
		}
		bp, err := rg.pool.get(ctx)
		if err != nil {
			rg.finish(err)
			return
		}
		n, err := io.ReadFull(r, (*bp)[:size])
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			err = nil
			if n < size {
				err = io.EOF
			}
		}
		if h != nil && n > 0 {
			h.Write((*bp)[:n])
		}
		rg.mu.Lock()
		if n > 0 && !rg.closed {
			rg.chunks = append(rg.chunks, ringChunk{off: rg.end, buf: bp, n: n})
			rg.end += int64(n)
		} else {
			rg.pool.put(bp)
		}
		rg.cond.Broadcast()
		rg.mu.Unlock()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			rg.finish(err)
			return
		}
	}
}

func (rg *ring) finish(err error) {
	rg.mu.Lock()
	rg.done, rg.readErr = true, err
	rg.cond.Broadcast()
	rg.mu.Unlock()
}

func (rg *ring) readError() error {
	rg.mu.Lock()
	defer rg.mu.Unlock()
	return rg.readErr
}

func (rg *ring) start() int64 {
	rg.mu.Lock()
	defer rg.mu.Unlock()
	return rg.base
}

// release frees the chunks wholly below durable and reports whether any was.
func (rg *ring) release(durable int64) bool {
	rg.mu.Lock()
	defer rg.mu.Unlock()
	freed := false
	for len(rg.chunks) > 0 && rg.chunks[0].off+int64(rg.chunks[0].n) <= durable {
		rg.pool.put(rg.chunks[0].buf)
		rg.base = rg.chunks[0].off + int64(rg.chunks[0].n)
		rg.chunks = rg.chunks[1:]
		freed = true
	}
	if freed {
		rg.cond.Broadcast()
	}
	return freed
}

// waitFull blocks until the ring is full while the reader still has more to
// read (true), or until ctx ends or the reader is done (false).
func (rg *ring) waitFull(ctx context.Context) bool {
	stop := context.AfterFunc(ctx, func() { rg.mu.Lock(); rg.cond.Broadcast(); rg.mu.Unlock() })
	defer stop()
	rg.mu.Lock()
	defer rg.mu.Unlock()
	for ctx.Err() == nil && !rg.done && !rg.closed && len(rg.chunks) < rg.max {
		rg.cond.Wait()
	}
	return ctx.Err() == nil && !rg.done && !rg.closed
}

// writeTo writes the stream's bytes from `from` to pw as they are read, and
// closes pw at the end of the stream or with an error.
func (rg *ring) writeTo(ctx context.Context, pw *io.PipeWriter, from int64) {
	stop := context.AfterFunc(ctx, func() { rg.mu.Lock(); rg.cond.Broadcast(); rg.mu.Unlock() })
	defer stop()
	pos := from
	for {
		rg.mu.Lock()
		for pos >= rg.end && !rg.done && !rg.closed && ctx.Err() == nil {
			rg.cond.Wait()
		}
		if ctx.Err() != nil || rg.closed {
			rg.mu.Unlock()
			pw.CloseWithError(errors.New("stream stopped"))
			return
		}
		if pos >= rg.end { // done: the whole stream was written
			rg.mu.Unlock()
			pw.Close()
			return
		}
		if pos < rg.base {
			rg.mu.Unlock()
			pw.CloseWithError(errors.New("bytes to resend are no longer held"))
			return
		}
		var data []byte
		for _, ch := range rg.chunks {
			if pos >= ch.off && pos < ch.off+int64(ch.n) {
				data = (*ch.buf)[pos-ch.off : ch.n]
				break
			}
		}
		rg.mu.Unlock()
		// The chunk stays held while it is written: it is released only once
		// services has it, which is after this write returns.
		if _, err := pw.Write(data); err != nil {
			return
		}
		pos += int64(len(data))
	}
}

// close returns every held buffer; the reader stops at its next chunk.
func (rg *ring) close() {
	rg.mu.Lock()
	defer rg.mu.Unlock()
	rg.closed = true
	for _, ch := range rg.chunks {
		rg.pool.put(ch.buf)
	}
	rg.chunks = nil
	rg.cond.Broadcast()
}
