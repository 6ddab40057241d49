package localstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"depot/storage"
)

// ErrKeyConflict is returned by CreateStaging when st.Key cannot be a file
// on disk: an object exists at one of its parent paths ("a" blocks "a/b"),
// or other objects live below it ("a/b" blocks "a").
var ErrKeyConflict = errors.New("localstore: key conflicts with an existing object or directory")

// CreateStaging creates the empty file .depot-part-<id> in the directory of
// st.Key, creating that directory and its parents as needed. An existing
// staging file of the same session is truncated. A key that collides with an
// object or directory is ErrKeyConflict.
func (d *Driver) CreateStaging(ctx context.Context, st *storage.Staging) error {
	if err := d.checkStaging(ctx, st); err != nil {
		return err
	}
	if fi, err := d.root.Lstat(st.Key); err == nil && fi.IsDir() {
		return ErrKeyConflict
	}
	name := partName(st)
	var err error
	// A concurrent Delete or DiscardStaging may prune a directory we have
	// just created; retry a few times when that happens.
	for range 5 {
		if err = d.mkdirAll(keyDir(st.Key)); err != nil {
			if errors.Is(err, syscall.ENOTDIR) {
				return ErrKeyConflict
			}
			return fail("create staging directory", err)
		}
		var f *os.File
		f, err = d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
		if err != nil {
			if errors.Is(err, syscall.ENOTDIR) {
				return ErrKeyConflict
			}
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return fail("create staging", err)
		}
		if err = f.Close(); err != nil {
			return fail("create staging", err)
		}
		if err = d.syncDir(keyDir(st.Key)); err != nil {
			return fail("create staging", err)
		}
		return nil
	}
	return fail("create staging", err)
}

// WriteStaging truncates the staging file to offset and copies r to it from
// there (writeFrom: direct I/O for whole blocks where possible), then
// fsyncs the file. An offset past the staged data is an error: it would
// leave a hole of zeros.
func (d *Driver) WriteStaging(ctx context.Context, st *storage.Staging, offset int64, r io.Reader) (int64, error) {
	return d.writeStaging(ctx, st, offset, r, true)
}

// WriteStagingUnsynced is WriteStaging without the fsync
// (storage.DeferredSyncer): the Store calls SyncStaging afterwards, while
// the next chunk is written.
func (d *Driver) WriteStagingUnsynced(ctx context.Context, st *storage.Staging, offset int64, r io.Reader) (int64, error) {
	return d.writeStaging(ctx, st, offset, r, false)
}

// SyncStaging fsyncs the staging file: every byte written to it so far
// is durable when it returns.
func (d *Driver) SyncStaging(ctx context.Context, st *storage.Staging) error {
	if err := d.checkStaging(ctx, st); err != nil {
		return err
	}
	f, err := d.root.OpenFile(partName(st), os.O_WRONLY, 0)
	if err != nil {
		return fail("open staging", err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fail("sync staging", err)
	}
	return nil
}

func (d *Driver) writeStaging(ctx context.Context, st *storage.Staging, offset int64, r io.Reader, sync bool) (int64, error) {
	if err := d.checkStaging(ctx, st); err != nil {
		return 0, err
	}
	f, err := d.root.OpenFile(partName(st), os.O_WRONLY, 0)
	if err != nil {
		return 0, fail("open staging", err)
	}
	n, err := d.writeAt(ctx, f, partName(st), offset, r)
	if err == nil && sync {
		if err = f.Sync(); err != nil {
			err = fail("sync staging", err)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fail("close staging", cerr)
	}
	return n, err
}

func (d *Driver) writeAt(ctx context.Context, f *os.File, name string, offset int64, r io.Reader) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, fail("stat staging", err)
	}
	if offset < 0 || offset > fi.Size() {
		return 0, fmt.Errorf("localstore: write staging: offset %d outside staged data (%d bytes)", offset, fi.Size())
	}
	if offset < fi.Size() {
		if err := f.Truncate(offset); err != nil {
			return 0, fail("truncate staging", err)
		}
	}
	return d.writeFile(ctx, f, name, offset, r)
}

// ReadStaging reads staged bytes [offset, offset+length); length -1 means to
// the end of the staged data.
func (d *Driver) ReadStaging(ctx context.Context, st *storage.Staging, offset, length int64) (io.ReadCloser, error) {
	if err := d.checkStaging(ctx, st); err != nil {
		return nil, err
	}
	f, err := d.root.Open(partName(st))
	if err != nil {
		return nil, fail("open staging", err)
	}
	rd, err := newReader(f, offset, length)
	if err != nil {
		f.Close()
		return nil, err
	}
	return rd, nil
}

// Commit truncates the staging file to size, records attrs as extended
// attributes, fsyncs it, renames it over st.Key and fsyncs the directory.
func (d *Driver) Commit(ctx context.Context, st *storage.Staging, size int64, attrs storage.Attrs) error {
	if err := d.checkStaging(ctx, st); err != nil {
		return err
	}
	if size < 0 {
		return errors.New("localstore: commit: negative size")
	}
	name := partName(st)
	f, err := d.root.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return fail("open staging", err)
	}
	err = prepareCommit(f, size, attrs)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fail("close staging", cerr)
	}
	if err != nil {
		return err
	}
	if err := d.root.Rename(name, st.Key); err != nil {
		return fail("publish object", err)
	}
	if err := d.syncDir(keyDir(st.Key)); err != nil {
		return fail("sync directory", err)
	}
	return nil
}

func prepareCommit(f *os.File, size int64, attrs storage.Attrs) error {
	fi, err := f.Stat()
	if err != nil {
		return fail("stat staging", err)
	}
	if size > fi.Size() {
		return fmt.Errorf("localstore: commit: size %d exceeds staged data (%d bytes)", size, fi.Size())
	}
	if size < fi.Size() {
		if err := f.Truncate(size); err != nil {
			return fail("truncate staging", err)
		}
	}
	if err := setAttrs(f, attrs); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fail("sync staging", err)
	}
	return nil
}

// DiscardStaging removes the staging file and any directories left empty.
func (d *Driver) DiscardStaging(ctx context.Context, st *storage.Staging) error {
	if err := d.checkStaging(ctx, st); err != nil {
		return err
	}
	if err := d.root.Remove(partName(st)); err != nil {
		if isNotExist(err) {
			return nil
		}
		return fail("remove staging", err)
	}
	if err := d.syncDir(keyDir(st.Key)); err != nil && !isNotExist(err) {
		return fail("sync directory", err)
	}
	d.pruneDirs(keyDir(st.Key))
	return nil
}

func (d *Driver) checkStaging(ctx context.Context, st *storage.Staging) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkID(st.ID); err != nil {
		return err
	}
	return checkKey(st.Key)
}
