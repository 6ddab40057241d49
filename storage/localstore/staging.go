package localstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"depot/storage"
)

// CreateStaging creates the empty file staging/<id> (truncating one left
// by an earlier attempt) and makes its name durable.
func (d *Driver) CreateStaging(ctx context.Context, st *storage.Staging) error {
	if err := checkID(ctx, st.ID); err != nil {
		return err
	}
	f, err := d.root.OpenFile(stagingName(st.ID), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, stagingPerm)
	if err != nil {
		return fail("create staging", err)
	}
	if err := f.Close(); err != nil {
		return fail("create staging", err)
	}
	if err := d.syncDir(stagingDir); err != nil {
		return fail("create staging", err)
	}
	return nil
}

// WriteStaging truncates the staging file to offset, copies r to it from
// there and fsyncs it, unless st.Lazy (then st.State records this machine's
// boot: lazy.go). An offset past the staged data is an error: it would
// leave a hole of zeros.
func (d *Driver) WriteStaging(ctx context.Context, st *storage.Staging, offset int64, r io.Reader) (int64, error) {
	if err := checkID(ctx, st.ID); err != nil {
		return 0, err
	}
	if err := d.checkLazy(st); err != nil {
		return 0, err
	}
	if err := d.flushFailed(st.ID, !st.Lazy); err != nil {
		return 0, err
	}
	name := stagingName(st.ID)
	f, err := d.root.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		return 0, fail("open staging", err)
	}
	n, err := d.writeAt(ctx, f, name, offset, r)
	switch lazy := d.lazyState(); {
	case err != nil:
	case st.Lazy && lazy != nil:
		st.State = lazy
		d.flushBehind(st.ID, name)
	default:
		if err = f.Sync(); err != nil {
			err = fail("sync staging", err)
		} else {
			st.State = nil // every staged byte is durable
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

// DiscardStaging removes the staging file.
func (d *Driver) DiscardStaging(ctx context.Context, st *storage.Staging) error {
	if err := checkID(ctx, st.ID); err != nil {
		return err
	}
	if err := d.root.Remove(stagingName(st.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail("remove staging", err)
	}
	d.flushes.forget(st.ID)
	return nil
}

// Publish truncates the staging file to size, fsyncs it, renames it to
// objects/<id[0:2]>/<id>, makes it read-only and fsyncs that directory.
func (d *Driver) Publish(ctx context.Context, st *storage.Staging, size int64) error {
	if err := checkID(ctx, st.ID); err != nil {
		return err
	}
	if size < 0 {
		return errors.New("localstore: publish: negative size")
	}
	name := stagingName(st.ID)
	f, err := d.root.OpenFile(name, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := d.root.Stat(objectName(st.ID)); serr == nil {
			return nil // published before
		}
		return fail("publish", err)
	}
	if err != nil {
		return fail("open staging", err)
	}
	if err := d.checkLazy(st); err != nil {
		f.Close()
		return err
	}
	if err := d.flushFailed(st.ID, true); err != nil {
		f.Close()
		return err
	}
	err = seal(f, size)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fail("close staging", cerr)
	}
	if err != nil {
		return err
	}
	dir := path.Dir(objectName(st.ID))
	if err := d.root.Mkdir(dir, dirPerm); err == nil {
		if err := d.syncDir(objectsDir); err != nil {
			return fail("sync objects directory", err)
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return fail("create objects directory", err)
	}
	if err := d.root.Rename(name, objectName(st.ID)); err != nil {
		return fail("publish", err)
	}
	// Read-only from now on (a guard against mistakes, not a security
	// boundary); a failure leaves the object writable but correct.
	_ = d.root.Chmod(objectName(st.ID), objectPerm)
	if err := d.syncDir(dir); err != nil {
		return fail("sync objects directory", err)
	}
	return nil
}

// seal truncates f to size and fsyncs it.
func seal(f *os.File, size int64) error {
	fi, err := f.Stat()
	if err != nil {
		return fail("stat staging", err)
	}
	if size > fi.Size() {
		return fmt.Errorf("localstore: publish: size %d exceeds staged data (%d bytes)", size, fi.Size())
	}
	if size < fi.Size() {
		if err := f.Truncate(size); err != nil {
			return fail("truncate staging", err)
		}
	}
	if err := f.Sync(); err != nil {
		return fail("sync staging", err)
	}
	return nil
}
