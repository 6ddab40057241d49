package apiclient

import (
	"context"
	"io"

	"depot"
)

// chunk is one buffer read from the stream.
type chunk struct {
	buf *[]byte
	n   int
	err error // the read error that ended the stream (io.EOF at its end)
}

// AppendStream appends r to upload id from offset, one chunk per request,
// in order. While a chunk is sent, the next one is read from r: this is the
// one place where the upload path overlaps work, and it costs at most two
// chunk buffers per upload. end is the upload's total size when known (-1
// unknown). With complete, the chunk that ends the upload (at end, or the
// last of r when end is unknown) commits it in the same request; an
// explicit completion follows only when a stream of unknown size ends
// exactly at a chunk boundary. It returns
// the bytes appended and, when committed, the version. When r fails
// part-way, the bytes read before the failure are still appended (so a
// client that resumes re-sends as little as possible) and the read error is
// returned.
func (c *Client) AppendStream(ctx context.Context, cl depot.Caller, id string, offset int64, r io.Reader, end int64, complete bool) (int64, *depot.Object, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk) // unbuffered: the reader holds at most one filled buffer
	go c.readChunks(ctx, r, chunks)
	pos := offset
	var obj *depot.Object
	var err, readErr error
	for ch := range chunks {
		if err == nil && ch.n > 0 {
			next := pos + int64(ch.n)
			final := complete && ((end >= 0 && next == end) || (end < 0 && ch.err == io.EOF))
			var committed *depot.Object
			_, committed, err = c.append(ctx, cl, id, appendChunk{offset: pos, data: (*ch.buf)[:ch.n], final: final, total: end})
			if err == nil {
				pos, obj = next, committed
			} else {
				cancel() // stop the reader; drain what it already read
			}
		}
		c.bufs.put(ch.buf)
		if ch.err != nil && ch.err != io.EOF && readErr == nil {
			readErr = ch.err
			if depot.ErrorCode(readErr) == depot.CodeInternal { // not a coded error of the reader
				readErr = depot.WrapError(depot.CodeInvalid, "the upload was interrupted", ch.err)
			}
		}
	}
	if err == nil {
		err = readErr // after the bytes read before it were appended
	}
	if err == nil && ctx.Err() != nil { // the caller gave up while the reader waited
		err = depot.WrapError(depot.CodeUnavailable, "upload cancelled", context.Cause(ctx))
	}
	if err == nil && complete && obj == nil && (end < 0 || pos == end) {
		var o depot.Object
		if o, err = c.Complete(ctx, cl, id, pos, ""); err == nil {
			obj = &o
		}
	}
	return pos - offset, obj, err
}

// readChunks fills chunk buffers from r and sends them on out, in order,
// until r ends or fails or ctx ends; then it closes out. A chunk ending at
// the end of r carries io.EOF.
func (c *Client) readChunks(ctx context.Context, r io.Reader, out chan<- chunk) {
	defer close(out)
	for {
		bp, err := c.bufs.get(ctx)
		if err != nil {
			return
		}
		n, err := io.ReadFull(r, *bp)
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		select {
		case out <- chunk{buf: bp, n: n, err: err}:
		case <-ctx.Done():
			c.bufs.put(bp)
			return
		}
		if err != nil {
			return
		}
	}
}
