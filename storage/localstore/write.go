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

// bufferPool holds the copy buffers of the driver's writes: copyBufSize
// bytes each, starting at a directAlign boundary so that a direct write can
// take them as they are.
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

// openDirect opens the root-relative file name for direct (uncached)
// writes, or returns nil when direct I/O is off or the file system refuses
// it; the caller then writes through the page cache only.
func (d *Driver) openDirect(name string) *os.File {
	if d.noDirect.Load() || oDirect == 0 {
		return nil
	}
	f, err := d.root.OpenFile(name, os.O_WRONLY|oDirect, 0)
	if err != nil {
		if errors.Is(err, syscall.EINVAL) { // e.g. tmpfs before Linux 6.6
			d.noDirect.Store(true)
		}
		return nil
	}
	return f
}

// writeFile copies r into f (the root-relative file name, opened for
// writing) from offset on through writeFrom, with a direct descriptor on
// the same file when the file system allows it. Nothing is fsynced here.
func (d *Driver) writeFile(ctx context.Context, f *os.File, name string, offset int64, r io.Reader) (int64, error) {
	direct := d.openDirect(name)
	n, err := d.writeFrom(ctx, f, direct, offset, r)
	if direct != nil {
		if cerr := direct.Close(); err == nil && cerr != nil {
			err = fail("close", cerr)
		}
	}
	return n, err
}

// writeFrom copies r into f from offset on and returns the bytes written.
// Reading and writing overlap: one buffer fills from r (and is hashed by
// the Store's reader) while the previous one is written, each buffer full
// before it is written. When direct is not nil (f opened again with
// O_DIRECT), every whole aligned block goes through it: the device reads
// the buffer itself, where a write through the page cache costs the CPU a
// copy of every byte (most of the services tier's CPU time in an upload,
// measured). Bytes before the first block boundary and after the last go
// through f; both descriptors write disjoint blocks, which the kernel keeps
// coherent. A file system that refuses a direct write turns direct writes
// off for the driver and the bytes go through f. Nothing is fsynced here.
func (d *Driver) writeFrom(ctx context.Context, f, direct *os.File, offset int64, r io.Reader) (int64, error) {
	type filled struct {
		buf []byte
		pos int64
	}
	free := make(chan []byte, 2)
	free <- d.bufs.get()
	free <- d.bufs.get()
	full := make(chan filled)
	var failed atomic.Bool
	werr := make(chan error, 1)
	go func() { // the writer: one buffer at a time, in order
		var err error
		for b := range full {
			if err == nil {
				if err = d.writeBlocks(f, &direct, b.buf, b.pos); err != nil {
					failed.Store(true)
				}
			}
			free <- b.buf[:cap(b.buf)]
		}
		werr <- err
	}()
	alignHead := direct != nil // read by this goroutine only; the writer may clear direct
	src := ctxReader{ctx, r}
	pos := offset
	var rerr error
	for rerr == nil && !failed.Load() {
		buf := <-free
		want := len(buf)
		if alignHead && pos%directAlign != 0 { // fill up to the next block boundary first
			want = int(directAlign - pos%directAlign)
		}
		var n int
		n, rerr = io.ReadFull(src, buf[:want])
		if n == 0 {
			free <- buf
			continue
		}
		full <- filled{buf[:n], pos}
		pos += int64(n)
	}
	close(full)
	err := <-werr
	d.bufs.put(<-free)
	d.bufs.put(<-free)
	if err != nil {
		// Bytes handed to the writer after the failed one were not written.
		return 0, fmt.Errorf("localstore: write: %w", scrub(err))
	}
	if rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
		return pos - offset, fmt.Errorf("localstore: write: %w", scrub(rerr))
	}
	return pos - offset, nil
}

// writeBlocks writes b at pos: its aligned prefix through *direct when
// pos is aligned, the rest through f.
func (d *Driver) writeBlocks(f *os.File, direct **os.File, b []byte, pos int64) error {
	if *direct != nil && pos%directAlign == 0 {
		whole := len(b) &^ (directAlign - 1)
		if whole > 0 {
			_, err := (*direct).WriteAt(b[:whole], pos)
			switch {
			case err == nil:
				d.directBytes.Add(int64(whole))
				b, pos = b[whole:], pos+int64(whole)
			case errors.Is(err, syscall.EINVAL):
				d.noDirect.Store(true)
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
