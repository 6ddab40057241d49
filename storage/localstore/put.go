package localstore

import (
	"context"
	"errors"
	"io"
	"os"
	"path"
	"syscall"

	"depot/storage"
)

// PutAtomic implements storage.AtomicPutter: r is copied into a temporary
// file beside key (.depot-tmp-<random>), finish is asked for the attributes
// once r is exhausted (it may refuse, e.g. on a checksum mismatch), and only
// then is the file fsynced, renamed over key and its directory fsynced. No
// session record is written: two fsyncs instead of a session's many.
func (d *Driver) PutAtomic(ctx context.Context, key string, r io.Reader, finish func(n int64) (storage.Attrs, error)) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := checkKey(key); err != nil {
		return 0, err
	}
	if fi, err := d.root.Lstat(key); err == nil && fi.IsDir() {
		return 0, ErrKeyConflict
	}
	dir := keyDir(key)
	if err := d.mkdirAll(dir); err != nil {
		if errors.Is(err, syscall.ENOTDIR) {
			return 0, ErrKeyConflict
		}
		return 0, fail("create directory", err)
	}
	tmp := path.Join(dir, tmpPrefix+randHex(8))
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return 0, fail("create temporary file", err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			_ = d.root.Remove(tmp)
			d.pruneDirs(dir) // leave no empty directory behind a failed write
		}
	}()
	n, err := d.writeFile(ctx, f, tmp, 0, r)
	if err != nil {
		return n, err
	}
	attrs, err := finish(n)
	if err != nil {
		return n, err
	}
	if err := setAttrs(f, attrs); err != nil {
		return n, err
	}
	if err := f.Sync(); err != nil {
		return n, fail("sync", err)
	}
	if err := f.Close(); err != nil {
		return n, fail("close", err)
	}
	if err := d.root.Rename(tmp, key); err != nil {
		return n, fail("publish object", err)
	}
	committed = true
	if err := d.syncDir(dir); err != nil {
		return n, fail("sync directory", err)
	}
	return n, nil
}
