package apiclient

import (
	"context"
	"sync"

	"depot"
)

// bufferPool hands out chunk buffers and bounds how many exist. Buffers are
// allocated lazily up to max and then reused forever, so the memory of the web
// tier is bounded by configuration (max × chunk size), not by the number or
// size of uploads, and the garbage collector never has to reclaim chunks.
// When every buffer is in use, get waits: backpressure, not failure.
type bufferPool struct {
	size  int
	free  chan *[]byte
	slots chan struct{} // one token per buffer that may still be allocated
}

func newBufferPool(size, max int) *bufferPool {
	p := &bufferPool{size: size, free: make(chan *[]byte, max), slots: make(chan struct{}, max)}
	for range max {
		p.slots <- struct{}{}
	}
	return p
}

// get returns a buffer of the pool's size, waiting while all are in use.
func (p *bufferPool) get(ctx context.Context) (*[]byte, error) {
	select {
	case b := <-p.free:
		return b, nil
	default:
	}
	select {
	case b := <-p.free:
		return b, nil
	case <-p.slots:
		b := make([]byte, p.size)
		return &b, nil
	case <-ctx.Done():
		return nil, depot.WrapError(depot.CodeUnavailable, "request cancelled while waiting for memory", context.Cause(ctx))
	}
}

// put returns a buffer to the pool.
func (p *bufferPool) put(b *[]byte) {
	if b != nil {
		p.free <- b
	}
}

// ChunkBuffer lends one buffer of the shared pool (ChunkSize bytes),
// waiting while all MaxBuffers are in use, to a caller that must hold a
// body in memory before sending it: a tus PATCH with Upload-Checksum is
// verified before any of its bytes is appended. Such bodies so count
// against MaxBuffers × ChunkSize like every chunk. release gives the buffer
// back (once; later calls do nothing).
func (c *Client) ChunkBuffer(ctx context.Context) (buf []byte, release func(), err error) {
	bp, err := c.bufs.get(ctx)
	if err != nil {
		return nil, nil, err
	}
	var once sync.Once
	return *bp, func() { once.Do(func() { c.bufs.put(bp) }) }, nil
}
