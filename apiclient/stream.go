package apiclient

import (
	"context"
	"io"

	"depot"
)

// chunk is one buffer of the upload pipeline.
type chunk struct {
	buf    *[]byte
	n      int
	offset int64
	err    error // read error that ended the stream (nil or io.EOF at the end)
}

// stream appends r to session id from offset, one chunk per request: the
// next chunk is read (and hashed into h) while the current one is sent; a
// chunk that fails on the network is retried at its offset (Append). At most
// two chunk buffers are in use per upload. When r fails part-way, the bytes
// already read are still appended and the read error is returned.
func (c *Client) stream(ctx context.Context, id string, offset int64, r io.Reader, h io.Writer, resume bool) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan chunk) // unbuffered: one chunk filling, one sending
	go c.readChunks(ctx, r, offset, chunks)
	hasher := newChunkHasher(h)
	defer hasher.close()

	var sent int64
	var err error
	for ch := range chunks {
		if err == nil && ch.n > 0 {
			data := (*ch.buf)[:ch.n]
			hasher.start(data) // hashing overlaps the send of the same bytes
			var next int64
			next, err = c.Append(ctx, id, ch.offset, data, resume && sent == 0)
			hasher.wait()
			if err == nil && next != ch.offset+int64(ch.n) {
				err = depot.Errorf(depot.CodeConflict, "the services tier is at offset %d, expected %d", next, ch.offset+int64(ch.n))
			}
			if err == nil {
				sent += int64(ch.n)
			} else {
				cancel() // stop the reader; drain what it already sent
			}
		}
		c.bufs.put(ch.buf)
		if err == nil && ch.err != nil && ch.err != io.EOF {
			err = ch.err
			if depot.ErrorCode(err) == depot.CodeInternal { // not a coded error of the reader
				err = depot.WrapError(depot.CodeInvalid, "the upload was interrupted", ch.err)
			}
		}
	}
	return sent, err
}

// readChunks fills chunk buffers from r and sends them on out; it closes out
// at the end of r, on a read error or when ctx ends.
func (c *Client) readChunks(ctx context.Context, r io.Reader, offset int64, out chan<- chunk) {
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
		case out <- chunk{buf: bp, n: n, offset: offset, err: err}:
		case <-ctx.Done():
			c.bufs.put(bp)
			return
		}
		offset += int64(n)
		if err != nil {
			return
		}
	}
}

// chunkHasher hashes chunks in order in its own goroutine.
type chunkHasher struct {
	h    io.Writer
	jobs chan []byte
	done chan struct{}
}

func newChunkHasher(h io.Writer) *chunkHasher {
	ch := &chunkHasher{h: h, jobs: make(chan []byte), done: make(chan struct{})}
	if h != nil {
		go func() {
			for b := range ch.jobs {
				ch.h.Write(b)
				ch.done <- struct{}{}
			}
		}()
	}
	return ch
}

func (ch *chunkHasher) start(b []byte) {
	if ch.h != nil {
		ch.jobs <- b
	}
}

func (ch *chunkHasher) wait() {
	if ch.h != nil {
		<-ch.done
	}
}

func (ch *chunkHasher) close() {
	if ch.h != nil {
		close(ch.jobs)
	}
}
