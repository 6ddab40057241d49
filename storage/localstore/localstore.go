// Package localstore is the local-disk storage driver of depot. Every file
// operation goes through an *os.Root opened on the base directory, so
// nothing can reach outside it.
//
// Layout under the base directory (no name holds a file name or path of a
// user: objects are named by random IDs):
//
//	objects/<id[0:2]>/<id>   published object <id>, read-only (0440)
//	staging/<id>             staging area <id>, until published or discarded
//
// Errors never contain absolute paths: path errors from the operating
// system are reduced to their operation and errno.
package localstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"
	"syscall"

	"depot/storage"
)

const (
	objectsDir = "objects"
	stagingDir = "staging"

	dirPerm     = 0o750
	stagingPerm = 0o640
	objectPerm  = 0o440
)

// Driver is the local-disk storage.Driver. It is safe for concurrent use.
type Driver struct {
	dir     string // absolute base directory; never put in errors
	root    *os.Root
	opts    Options
	w       writer
	host    identity // for lazy writes (lazy.go)
	flushes flushes

	closeOnce sync.Once
	closeErr  error
}

// Options configure a Driver.
type Options struct {
	// BufferedIO writes every byte through the page cache. By default
	// whole aligned blocks of uploads are written with O_DIRECT where the
	// file system allows it, which saves the CPU a copy of every byte.
	BufferedIO bool
}

var (
	_ storage.Driver        = (*Driver)(nil)
	_ storage.SpaceReporter = (*Driver)(nil)
)

// Open opens (creating it if needed, mode 0750) the absolute directory root
// as a local store.
func Open(root string, opts Options) (*Driver, error) {
	if !filepath.IsAbs(root) {
		return nil, errors.New("localstore: root must be an absolute path")
	}
	if err := os.MkdirAll(root, dirPerm); err != nil {
		return nil, fmt.Errorf("localstore: create root: %w", scrub(err))
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("localstore: open root: %w", scrub(err))
	}
	for _, dir := range []string{objectsDir, stagingDir} {
		if err := r.Mkdir(dir, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
			r.Close()
			return nil, fmt.Errorf("localstore: create %s directory: %w", dir, scrub(err))
		}
	}
	return &Driver{dir: root, root: r, opts: opts, host: hostIdentity()}, nil
}

// Close releases the root directory handle. It is safe to call more than once.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() {
		d.flushes.wg.Wait()
		d.closeErr = d.root.Close()
	})
	return d.closeErr
}

// objectName is the root-relative name of object id.
func objectName(id string) string { return path.Join(objectsDir, id[:2], id) }

// stagingName is the root-relative name of staging area id.
func stagingName(id string) string { return path.Join(stagingDir, id) }

func checkID(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !storage.ValidID(id) {
		return errors.New("localstore: invalid ID")
	}
	return nil
}

// fail wraps err for operation op: "does not exist" becomes
// storage.ErrNotExist, a full disk storage.ErrNoSpace, and path errors lose
// their path.
func fail(op string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("localstore: %s: %w", op, storage.ErrNotExist)
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("localstore: %s: %w: %w", op, storage.ErrNoSpace, scrub(err))
	}
	return fmt.Errorf("localstore: %s: %w", op, scrub(err))
}

// scrub drops the file names from operating system path errors; errors.Is
// still sees the underlying errno.
func scrub(err error) error {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	case errors.As(err, &le):
		return fmt.Errorf("%s: %w", le.Op, le.Err)
	}
	return err
}

// syncDir fsyncs the root-relative directory dir so that entries created,
// renamed or removed in it are durable.
func (d *Driver) syncDir(dir string) error {
	f, err := d.root.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Space reports the free and total bytes of the file system of the base
// directory, as an unprivileged process sees them.
func (d *Driver) Space(ctx context.Context) (storage.Space, error) {
	if err := ctx.Err(); err != nil {
		return storage.Space{}, err
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(d.dir, &fs); err != nil {
		return storage.Space{}, fail("statfs", err)
	}
	return storage.Space{Free: int64(fs.Bavail) * fs.Bsize, Total: int64(fs.Blocks) * fs.Bsize}, nil
}
