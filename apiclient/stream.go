package apiclient

import (
	"context"
	"io"

	"depot"
)

// inFlight is how many chunks of one upload exist at once: on the wire, or
// being read from the client. Two bound the web tier's memory to two chunk
// buffers per upload.
const inFlight = 2

// chunk is one buffer read from the stream.
type chunk struct {
	buf *[]byte
	n   int
	err error // the read error that ended the stream (io.EOF at its end)
}

// sending is a chunk whose append runs in its own goroutine.
type sending struct {
	ch   chunk
	req  appendChunk
	obj  *depot.Object
	err  error
	done chan struct{}
}

// AppendStream appends r to upload id from offset, one chunk per request,
// in order. This is the one place where the upload path overlaps work: a
// chunk is sent as soon as it is read, while the answer to the one before
// it is still awaited, and the next is read from r meanwhile, within two
// chunk buffers per upload. services lets a chunk that arrives ahead of its
// session wait for the one before it (storage.Store.AwaitOffset), so it
// follows at once, without the round trip of a new request; the rare one
// that still finds the session behind it (an offset mismatch below its
// offset) is sent again once the one before it has landed. Answers are taken
// in order. Every chunk but the last of r goes lazy (wire.HeaderLazy):
// services may answer it before it is durable; the last one, or an empty
// one after it when r ends at a chunk boundary, makes all of them durable
// before AppendStream returns. end is the upload's total size when known
// (-1 unknown). With
// complete, the chunk that ends the upload (at end, or the last of r when
// end is unknown) commits it in the same request; an explicit completion
// follows only when a stream of unknown size ends exactly at a chunk
// boundary. It returns the bytes appended and, when committed, the version.
// When r fails part-way, the bytes read before the failure are still
// appended (so a client that resumes re-sends as little as possible) and
// the read error is returned.
func (c *Client) AppendStream(ctx context.Context, cl depot.Caller, id string, offset int64, r io.Reader, end int64, complete bool) (int64, *depot.Object, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk)
	slots := make(chan struct{}, inFlight)
	go c.readChunks(ctx, r, chunks, slots)

	pos, landed := offset, offset // the end of the chunks sent, and of those that landed
	lazy := false                 // the last chunk that landed was lazy
	var obj *depot.Object
	var err, readErr error
	var queue []*sending // on the wire, oldest first
	settle := func() {
		s := queue[0]
		queue = queue[1:]
		if cur, ok := depot.CurrentOffset(s.err); ok && err == nil && s.req.offset > offset && cur < s.req.offset {
			// It found the session behind it; the chunk before has landed since.
			_, s.obj, s.err = c.append(ctx, cl, id, s.req)
		}
		if err == nil {
			if err = s.err; err == nil {
				landed, obj, lazy = s.req.offset+int64(len(s.req.data)), s.obj, s.req.lazy
			} else {
				cancel() // stop the reader; drain what it already read
			}
		}
		c.bufs.put(s.ch.buf)
		<-slots
	}
	// An answer is taken as soon as it is in, not only when a chunk behind
	// it needs the slot: a buffer of the shared pool must go back at once,
	// or uploads waiting for buffers could each hold one and wait forever.
	for open := true; open || len(queue) > 0; {
		in := chunks
		if !open {
			in = nil
		}
		var oldest chan struct{}
		if len(queue) > 0 {
			oldest = queue[0].done
		}
		select {
		case <-oldest:
			settle()
			continue
		case ch, ok := <-in:
			if !ok {
				open = false
				continue
			}
			if err != nil || ch.n == 0 {
				c.bufs.put(ch.buf)
				<-slots
			} else {
				next := pos + int64(ch.n)
				final := complete && ((end >= 0 && next == end) || (end < 0 && ch.err == io.EOF))
				s := &sending{ch: ch, req: appendChunk{offset: pos, data: (*ch.buf)[:ch.n], final: final, total: end, lazy: ch.err == nil && !final},
					done: make(chan struct{})}
				go func() {
					defer close(s.done)
					_, s.obj, s.err = c.append(ctx, cl, id, s.req)
				}()
				pos = next
				queue = append(queue, s)
			}
			if ch.err != nil && ch.err != io.EOF && readErr == nil {
				readErr = ch.err
				if depot.ErrorCode(readErr) == depot.CodeInternal { // not a coded error of the reader
					readErr = depot.WrapError(depot.CodeInvalid, "the upload was interrupted", ch.err)
				}
			}
		}
	}
	if err == nil {
		err = readErr // after the bytes read before it were appended
	}
	if err == nil && ctx.Err() != nil { // the caller gave up while the reader waited
		err = depot.WrapError(depot.CodeUnavailable, "upload cancelled", context.Cause(ctx))
	}
	if err == nil && lazy && !(complete && (end < 0 || landed == end)) {
		// The stream ended at a chunk boundary after a lazy chunk: an
		// empty chunk makes what this request appended durable.
		_, _, err = c.append(ctx, cl, id, appendChunk{offset: landed})
	}
	if err == nil && complete && obj == nil && (end < 0 || landed == end) {
		var o depot.Object
		if o, err = c.Complete(ctx, cl, id, landed, ""); err == nil {
			obj = &o
		}
	}
	return landed - offset, obj, err
}

// readChunks fills chunk buffers from r and sends them on out, in order,
// taking one of slots for each (AppendStream frees it when it is done with
// the chunk), until r ends or fails or ctx ends; then it closes out. A chunk
// ending at the end of r carries io.EOF.
func (c *Client) readChunks(ctx context.Context, r io.Reader, out chan<- chunk, slots chan struct{}) {
	defer close(out)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		bp, err := c.bufs.get(ctx)
		if err != nil {
			<-slots
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
			<-slots
			return
		}
		if err != nil {
			return
		}
	}
}
