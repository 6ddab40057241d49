package apiclient

import (
	"context"
	"errors"
	"io"

	"depot"
)

// inFlight is how many chunks of one upload exist at once: filled and being
// sent, or being filled. Two keep the web tier's memory at two chunks per
// upload; both may be on the wire at the same time.
const inFlight = 2

// chunk is one buffer of the upload pipeline.
type chunk struct {
	buf    *[]byte
	n      int
	offset int64
	err    error // read error that ended the stream (nil or io.EOF at the end)
}

// sending is a chunk whose Append runs in its own goroutine.
type sending struct {
	ch   chunk
	next int64
	err  error
	done chan struct{}
}

// stream appends r to session id from offset, one chunk per request. A chunk
// is sent as soon as it is full, even while the one before it is still being
// written by services: its request waits on services' session lock and its
// bytes wait in the socket, so services goes on to it without the round trip
// of a new request (a stop that cost about a tenth of the time per chunk).
// Results are taken in order. A chunk that services saw before the one
// ahead of it landed (an offset mismatch below its offset) is sent again
// once that one has landed; a chunk that fails on the network is retried at
// its offset (Append), with its CRC-32C. At most inFlight
// chunk buffers are in use per upload. When r fails part-way, the bytes
// already read are still appended and the read error is returned.
func (c *Client) stream(ctx context.Context, id string, offset int64, r io.Reader, resume bool) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk)
	slots := make(chan struct{}, inFlight)
	go c.readChunks(ctx, r, offset, chunks, slots)

	var sent int64
	var err, readErr error
	var queue []*sending
	// settle takes the result of the oldest chunk on the wire.
	settle := func() {
		s := queue[0]
		queue = queue[1:]
		<-s.done
		end := s.ch.offset + int64(s.ch.n)
		var oe OffsetError
		if err == nil && s.ch.offset > offset && errors.As(s.err, &oe) && oe.Current < s.ch.offset {
			// It overtook the chunk before it, which has landed since.
			s.next, s.err = c.Append(ctx, id, s.ch.offset, (*s.ch.buf)[:s.ch.n], false)
		}
		// A retried chunk may find the one behind it already landed: services
		// is then past its end, and that chunk's own result will tell.
		if err == nil && s.err == nil && s.next != end && !(s.next > end && len(queue) > 0) {
			s.err = depot.Errorf(depot.CodeConflict, "the services tier is at offset %d, expected %d", s.next, end)
		}
		if err == nil {
			if err = s.err; err == nil {
				sent += int64(s.ch.n)
			} else {
				cancel() // stop the reader and the chunk behind; drain what is left
			}
		}
		c.bufs.put(s.ch.buf)
		<-slots
	}
	// Take each result as soon as it is in, not only when a chunk behind it
	// needs the slot: a finished chunk must give its buffer back at once,
	// or uploads waiting for buffers of the shared pool could each hold one
	// and wait for another forever.
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
		case ch, ok := <-in:
			if !ok {
				open = false
				continue
			}
			if err == nil && ch.n > 0 {
				s := &sending{ch: ch, done: make(chan struct{})}
				first := resume && ch.offset == offset
				go func() {
					defer close(s.done)
					s.next, s.err = c.Append(ctx, id, ch.offset, (*ch.buf)[:ch.n], first)
				}()
				queue = append(queue, s)
			} else {
				c.bufs.put(ch.buf)
				<-slots
			}
			if ch.err != nil && ch.err != io.EOF {
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
	return sent, err
}

// readChunks fills chunk buffers from r and sends them on out, taking a slot
// for each (the consumer frees it); it closes out at the end of r, on a read
// error or when ctx ends.
func (c *Client) readChunks(ctx context.Context, r io.Reader, offset int64, out chan<- chunk, slots chan struct{}) {
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
		case out <- chunk{buf: bp, n: n, offset: offset, err: err}:
		case <-ctx.Done():
			c.bufs.put(bp)
			<-slots
			return
		}
		offset += int64(n)
		if err != nil {
			return
		}
	}
}
