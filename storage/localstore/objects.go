package localstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"depot/storage"
)

// Reader reads a byte range of an object or staging file. Besides Read and
// Close it exposes the open file and the range, so a caller can serve the
// range with sendfile(2) instead of copying through user space.
type Reader struct {
	sr  *io.SectionReader
	f   *os.File
	off int64
	n   int64
}

// newReader takes ownership of f and reads [offset, offset+length) of it,
// clamped to the file's size; length -1 means to the end.
func newReader(f *os.File, offset, length int64) (*Reader, error) {
	if offset < 0 || length < -1 {
		return nil, errors.New("localstore: open: invalid range")
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, fail("stat", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("localstore: open: %w", storage.ErrNotExist)
	}
	n := max(fi.Size()-offset, 0)
	if length >= 0 {
		n = min(n, length)
	}
	return &Reader{sr: io.NewSectionReader(f, offset, n), f: f, off: offset, n: n}, nil
}

// Read reads from the selected range.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.sr.Read(p)
	if err != nil && err != io.EOF {
		err = scrub(err)
	}
	return n, err
}

// Close closes the file.
func (r *Reader) Close() error { return scrub(r.f.Close()) }

// File returns the underlying open file. It stays owned by the Reader: do
// not close it, and read it only with positioned reads (ReadAt, sendfile
// with an explicit offset) within Range.
func (r *Reader) File() *os.File { return r.f }

// Range returns the offset and length of the selected range within File,
// already clamped to the file's size.
func (r *Reader) Range() (offset, length int64) { return r.off, r.n }

// Open reads [offset, offset+length) of the object key; length -1 means to
// the end. A range past the end of the object reads as empty. The returned
// io.ReadCloser is a *Reader.
func (d *Driver) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := d.root.Open(key)
	if err != nil {
		return nil, fail("open object", err)
	}
	rd, err := newReader(f, offset, length)
	if err != nil {
		f.Close()
		return nil, err
	}
	return rd, nil
}

// Stat describes the object key. A directory is not an object.
func (d *Driver) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, err
	}
	if err := checkKey(key); err != nil {
		return storage.ObjectInfo{}, err
	}
	return d.stat(key)
}

// stat describes the regular file at the root-relative name key.
func (d *Driver) stat(key string) (storage.ObjectInfo, error) {
	f, err := d.root.Open(key)
	if err != nil {
		return storage.ObjectInfo{}, fail("stat object", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return storage.ObjectInfo{}, fail("stat object", err)
	}
	if !fi.Mode().IsRegular() {
		return storage.ObjectInfo{}, fmt.Errorf("localstore: stat object: %w", storage.ErrNotExist)
	}
	attrs, err := getAttrs(f)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	return storage.ObjectInfo{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), Attrs: attrs}, nil
}

// Delete removes the object key, fsyncs its directory and removes
// directories left empty. A missing object (or a directory) is
// storage.ErrNotExist.
func (d *Driver) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	fi, err := d.root.Lstat(key)
	if err != nil {
		return fail("delete object", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("localstore: delete object: %w", storage.ErrNotExist)
	}
	if err := d.root.Remove(key); err != nil {
		return fail("delete object", err)
	}
	if err := d.syncDir(keyDir(key)); err != nil {
		return fail("sync directory", err)
	}
	d.pruneDirs(keyDir(key))
	return nil
}
