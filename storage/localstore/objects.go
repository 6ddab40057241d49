package localstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	"depot/storage"
)

// Reader reads a byte range of an object. Besides Read and Close it exposes
// the open file and the range, so a caller can serve the range with
// sendfile(2) instead of copying through user space.
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
// from an explicit offset) or after seeking to Range's offset.
func (r *Reader) File() *os.File { return r.f }

// Range returns the offset and length of the selected range.
func (r *Reader) Range() (offset, length int64) { return r.off, r.n }

// Open reads [offset, offset+length) of object id.
func (d *Driver) Open(ctx context.Context, id string, offset, length int64) (io.ReadCloser, error) {
	if err := checkID(ctx, id); err != nil {
		return nil, err
	}
	f, err := d.root.Open(objectName(id))
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

// Stat describes object id.
func (d *Driver) Stat(ctx context.Context, id string) (storage.ObjectInfo, error) {
	if err := checkID(ctx, id); err != nil {
		return storage.ObjectInfo{}, err
	}
	fi, err := d.root.Stat(objectName(id))
	if err != nil {
		return storage.ObjectInfo{}, fail("stat object", err)
	}
	if !fi.Mode().IsRegular() {
		return storage.ObjectInfo{}, fmt.Errorf("localstore: stat object: %w", storage.ErrNotExist)
	}
	return storage.ObjectInfo{ID: id, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete removes object id. The removal is not fsynced: an object that
// comes back after a crash is one that nothing references, which cleanup
// removes again.
func (d *Driver) Delete(ctx context.Context, id string) error {
	if err := checkID(ctx, id); err != nil {
		return err
	}
	if err := d.root.Remove(objectName(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail("delete object", err)
	}
	return nil
}

// List returns up to limit objects with IDs after after, in ID order,
// reading the fan-out directories in order from the one after falls in.
func (d *Driver) List(ctx context.Context, after string, limit int) ([]storage.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dirs, err := d.names(objectsDir)
	if err != nil {
		return nil, err
	}
	var out []storage.ObjectInfo
	for _, dir := range dirs {
		if len(dir) != 2 || (len(after) >= 2 && dir < after[:2]) {
			continue
		}
		names, err := d.names(path.Join(objectsDir, dir))
		if err != nil {
			return nil, err
		}
		for _, id := range names {
			if id <= after || !storage.ValidID(id) || !strings.HasPrefix(id, dir) {
				continue
			}
			fi, err := d.root.Stat(objectName(id))
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return nil, fail("stat object", err)
			}
			out = append(out, storage.ObjectInfo{ID: id, Size: fi.Size(), ModTime: fi.ModTime()})
			if len(out) == limit {
				return out, nil
			}
		}
	}
	return out, nil
}

// names returns the sorted entry names of the root-relative directory dir.
func (d *Driver) names(dir string) ([]string, error) {
	f, err := d.root.Open(dir)
	if err != nil {
		return nil, fail("open directory", err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fail("read directory", err)
	}
	slices.Sort(names)
	return names, nil
}

// Strays lists every file in the staging directory: staging areas (named
// by their ID) and anything else found there.
func (d *Driver) Strays(ctx context.Context) ([]storage.Stray, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	names, err := d.names(stagingDir)
	if err != nil {
		return nil, err
	}
	var out []storage.Stray
	for _, name := range names {
		fi, err := d.root.Lstat(path.Join(stagingDir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fail("stat staging", err)
		}
		s := storage.Stray{Name: name, Size: fi.Size(), ModTime: fi.ModTime()}
		if storage.ValidID(name) {
			s.SessionID = name
		}
		out = append(out, s)
	}
	return out, nil
}

// RemoveStray removes a file of the staging directory.
func (d *Driver) RemoveStray(ctx context.Context, s storage.Stray) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.Name == "" || strings.ContainsAny(s.Name, "/\\") || s.Name == "." || s.Name == ".." {
		return errors.New("localstore: invalid stray name")
	}
	if err := d.root.RemoveAll(path.Join(stagingDir, s.Name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail("remove stray", err)
	}
	return nil
}
