package storage

import (
	"io"
)

// overlapHashReader feeds every byte it returns into a hash, but hashes each
// buffer in a second goroutine while the caller consumes it: Read(p) fills p,
// starts hashing p[:n] and returns; the next Read first waits for that hash,
// because the caller may overwrite p. With a consumer such as io.CopyBuffer
// this overlaps hashing with the write of the same buffer, without a copy.
// The caller must not modify p between two Reads, and must call Wait before
// using the hash.
type overlapHashReader struct {
	r       io.Reader
	h       io.Writer
	jobs    chan []byte
	done    chan struct{}
	pending bool
	closed  bool
}

func newOverlapHashReader(r io.Reader, h io.Writer) *overlapHashReader {
	hr := &overlapHashReader{r: r, h: h, jobs: make(chan []byte), done: make(chan struct{})}
	go func() {
		for b := range hr.jobs {
			hr.h.Write(b)
			hr.done <- struct{}{}
		}
	}()
	return hr
}

func (hr *overlapHashReader) wait() {
	if hr.pending {
		<-hr.done
		hr.pending = false
	}
}

// Read implements io.Reader.
func (hr *overlapHashReader) Read(p []byte) (int, error) {
	hr.wait()
	n, err := hr.r.Read(p)
	if n > 0 {
		hr.pending = true
		hr.jobs <- p[:n]
		if err != nil {
			// The caller sees the end of the stream (a body reader may
			// return its last bytes together with io.EOF) and may reuse p
			// at once, typically by putting its buffer back in a pool:
			// finish hashing p before returning.
			hr.wait()
		}
	}
	return n, err
}

// Wait waits for the last buffer to be hashed and stops the hashing
// goroutine. It is idempotent.
func (hr *overlapHashReader) Wait() {
	hr.wait()
	if !hr.closed {
		hr.closed = true
		close(hr.jobs)
	}
}
