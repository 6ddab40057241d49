package localstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// directAlign is the alignment of offsets, lengths and memory for direct
// writes. 4096 covers devices with 512-byte and 4 KiB logical blocks.
const directAlign = 4096

// copyBufSize is the size of one write.
const copyBufSize = 1 << 20

// bufferPool holds copy buffers of copyBufSize bytes, each starting at a
// directAlign boundary so that a direct write can take it as it is.
type bufferPool struct{ p sync.Pool }

func (bp *bufferPool) get() []byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return *b
	}
	raw := make([]byte, copyBufSize+directAlign)
	skip := int(-uintptr(unsafe.Pointer(&raw[0])) & (directAlign - 1))
	return raw[skip : skip+copyBufSize : skip+copyBufSize]
}

func (bp *bufferPool) put(b []byte) { bp.p.Put(&b) }

// writer holds the state of the driver's writes: its buffers, and whether
// the file system refused a direct write.
type writer struct {
	bufs bufferPool
	mu   sync.Mutex
	off  bool
}

func (w *writer) directOff() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.off
}

func (w *writer) turnDirectOff() {
	w.mu.Lock()
	w.off = true
	w.mu.Unlock()
}

// writeFile copies r into f (the root-relative file name, opened for
// writing) from offset on, one buffer at a time, and returns the bytes
// taken from r. Unless BufferedIO is set, every whole aligned block goes
// through a second descriptor of the same file opened with O_DIRECT: the
// device reads the buffer itself, where a write through the page cache
// costs the CPU a copy of every byte. Bytes before the first block boundary
// and after the last go through f; the two descriptors write disjoint
// blocks, which the kernel keeps coherent. A file system that refuses
// direct writes (tmpfs before Linux 6.6) turns them off for the driver.
//
// Two buffers alternate: while one is written (a direct write waits for
// the device), the next is read from r. This is the one place in services
// where work overlaps; without it a single upload stream ran at 0.72 × the
// build before the services core (docs/performance.md). Nothing is fsynced
// here. A failure of r is returned as it is.
func (d *Driver) writeFile(ctx context.Context, f *os.File, name string, offset int64, r io.Reader) (int64, error) {
	var direct *os.File
	if !d.opts.BufferedIO && oDirect != 0 && !d.w.directOff() {
		direct, _ = d.root.OpenFile(name, os.O_WRONLY|oDirect, 0) // nil: buffered only
	}
	type block struct {
		b   []byte
		pos int64
	}
	free := make(chan []byte, 2)
	free <- d.w.bufs.get()
	free <- d.w.bufs.get()
	todo := make(chan block)
	written := make(chan error, 1)
	var failed atomic.Bool
	go func() { // the writer: every buffer it is given goes back to free
		var err error
		for blk := range todo {
			if err == nil {
				err = d.writeBlocks(f, &direct, blk.b, blk.pos)
				failed.Store(err != nil)
			}
			free <- blk.b[:cap(blk.b)]
		}
		written <- err
	}()
	pos, err := offset, error(nil)
	for err == nil && !failed.Load() {
		if err = ctx.Err(); err != nil {
			break
		}
		buf := <-free
		want := len(buf)
		if pos%directAlign != 0 { // fill up to the next block boundary first
			want = int(directAlign - pos%directAlign)
		}
		n, rerr := io.ReadFull(r, buf[:want])
		if n > 0 {
			todo <- block{buf[:n], pos}
			pos += int64(n)
		} else {
			free <- buf
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			err = io.EOF
		case rerr != nil:
			err = fmt.Errorf("localstore: read upload: %w", rerr)
		}
	}
	close(todo)
	werr := <-written
	d.w.bufs.put(<-free)
	d.w.bufs.put(<-free)
	if direct != nil {
		direct.Close()
	}
	switch {
	case werr != nil:
		return pos - offset, fail("write", werr)
	case err == io.EOF:
		return pos - offset, nil
	}
	return pos - offset, err
}

// writeBlocks writes b at pos: its aligned prefix through *direct when pos
// is aligned, the rest through f.
func (d *Driver) writeBlocks(f *os.File, direct **os.File, b []byte, pos int64) error {
	if *direct != nil && pos%directAlign == 0 {
		if whole := len(b) &^ (directAlign - 1); whole > 0 {
			_, err := (*direct).WriteAt(b[:whole], pos)
			switch {
			case err == nil:
				b, pos = b[whole:], pos+int64(whole)
			case errors.Is(err, syscall.EINVAL):
				d.w.turnDirectOff()
				(*direct).Close()
				*direct = nil // write everything through f from now on
			default:
				return err
			}
		}
	}
	if len(b) == 0 {
		return nil
	}
	_, err := f.WriteAt(b, pos)
	return err
}
