package storage

import (
	"io"
	"unsafe"
)

// overlapHashReader feeds every byte it returns into a hash, hashing each
// buffer in a second goroutine while the caller consumes it and while the
// next buffer is read: Read(p) fills p completely (or up to the end of the
// stream), waits for the previous buffer's hash, starts hashing p and
// returns. A caller that alternates between buffers, like the storage
// drivers' writers, thus reads, hashes and writes at the same time, with one
// hand-off per buffer rather than one per socket read. When p overlaps the
// buffer still being hashed (a caller with a single buffer), Read waits for
// that hash before reading into it. The caller must not modify a buffer
// returned by Read until the next Read returns, and must call Wait before
// using the hash.
type overlapHashReader struct {
	r       io.Reader
	h       io.Writer
	jobs    chan []byte
	done    chan struct{}
	hashing []byte // the buffer being hashed, when pending
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
		hr.pending, hr.hashing = false, nil
	}
}

// Read implements io.Reader.
func (hr *overlapHashReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if hr.pending && overlaps(p, hr.hashing) {
		hr.wait()
	}
	n, err := io.ReadFull(hr.r, p)
	if err == io.ErrUnexpectedEOF {
		err = io.EOF
	}
	hr.wait()
	if n > 0 {
		hr.pending, hr.hashing = true, p[:n]
		hr.jobs <- p[:n]
		if err != nil {
			// The caller sees the end of the stream and may reuse p at
			// once, typically by putting its buffer back in a pool:
			// finish hashing p before returning.
			hr.wait()
		}
	}
	return n, err
}

// overlaps reports whether a and b share any byte of memory.
func overlaps(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	a0, b0 := uintptr(unsafe.Pointer(unsafe.SliceData(a))), uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return a0 < b0+uintptr(len(b)) && b0 < a0+uintptr(len(a))
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
