// Package localstore is the local-disk storage driver of depot. Every file
// operation goes through an *os.Root opened on the base directory, so no key,
// symbolic link or ".." can reach outside it.
//
// Layout under the base directory:
//
//	a/b/c.csv                          committed object "a/b/c.csv"
//	a/b/.depot-part-<id>               staging data of session <id> for a key in a/b
//	.depot/sessions/<id>.json          session record <id> (a log of frames, sessionlog.go)
//	.depot/sessions/.tmp-<id>-<rand>   a session record being written
//
// Object attributes are stored as the extended attributes user.depot.sha256
// and user.depot.class, so the base directory must be on a file system that
// supports user extended attributes (ext4, XFS, btrfs, ZFS do).
//
// Errors never contain absolute paths or file names: path errors from the
// operating system are reduced to their operation and errno.
package localstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"depot"
	"depot/storage"
)

// Names reserved by the driver. Every name starting with ".depot" is
// invisible to List; keys cannot contain such a segment (depot.ValidateKey).
const (
	internalDir = ".depot"
	sessionsDir = ".depot/sessions"
	partPrefix  = ".depot-part-"
	tmpPrefix   = ".depot-tmp-"
	sessTmp     = ".tmp-"
	sessSuffix  = ".json"

	dirPerm  = 0o750
	filePerm = 0o640

	copyBufSize = 1 << 20
)

// validID matches the session IDs the driver accepts. The Store uses
// [0-9a-f]{32}; anything that could form a path is refused.
var validID = regexp.MustCompile(`^[0-9A-Za-z_-]{1,64}$`)

// Driver is the local-disk storage.Driver. It is safe for concurrent use.
type Driver struct {
	dir  string // absolute base directory; never put in errors
	root *os.Root

	bufs        bufferPool   // copy buffers of writeFrom
	sessions    *sessionLogs // record files this Driver may append to
	noDirect    atomic.Bool  // direct writes are off (Options or the file system)
	directBytes atomic.Int64 // bytes written with direct I/O, for tests

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

var _ storage.Driver = (*Driver)(nil)

// New opens (creating it if needed, mode 0750) the absolute directory root as
// a local store with default Options. It fails if the file system does not
// support user extended attributes.
func New(root string) (*Driver, error) { return Open(root, Options{}) }

// Open is New with options.
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
	d := &Driver{dir: root, root: r, sessions: newSessionLogs()}
	d.noDirect.Store(opts.BufferedIO)
	if err := r.MkdirAll(sessionsDir, dirPerm); err != nil {
		r.Close()
		return nil, fmt.Errorf("localstore: create sessions directory: %w", scrub(err))
	}
	if err := d.probeXattr(); err != nil {
		r.Close()
		return nil, err
	}
	return d, nil
}

// Close releases the root directory handle. It is safe to call more than once.
func (d *Driver) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.root.Close() })
	return d.closeErr
}

// probeXattr checks that user extended attributes can be set under the root.
// The probe file lives where Strays looks for crashed session writes.
func (d *Driver) probeXattr() error {
	name := path.Join(sessionsDir, sessTmp+"probe-"+randHex(8))
	f, err := d.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return fmt.Errorf("localstore: probe: %w", scrub(err))
	}
	defer d.root.Remove(name)
	err = setAttrs(f, storage.Attrs{SHA256: "probe"})
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("localstore: probe: %w", scrub(cerr))
	}
	return err
}

// fail wraps err for operation op: "does not exist" (including a path
// component that is not a directory) becomes storage.ErrNotExist, and path
// errors lose their path.
func fail(op string, err error) error {
	if isNotExist(err) {
		return fmt.Errorf("localstore: %s: %w", op, storage.ErrNotExist)
	}
	return fmt.Errorf("localstore: %s: %w", op, scrub(err))
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
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

// checkKey is a defence in depth: the Store validates keys already.
func checkKey(key string) error {
	if err := depot.ValidateKey(key); err != nil {
		return fmt.Errorf("localstore: %w", err)
	}
	return nil
}

func checkID(id string) error {
	if !validID.MatchString(id) {
		return errors.New("localstore: invalid session id")
	}
	return nil
}

// keyDir is the root-relative directory of key ("." at the top level).
func keyDir(key string) string { return path.Dir(key) }

// partName is the root-relative name of the staging file of st.
func partName(st *storage.Staging) string {
	return path.Join(keyDir(st.Key), partPrefix+st.ID)
}

func sessionName(id string) string { return path.Join(sessionsDir, id+sessSuffix) }

// syncDir fsyncs the root-relative directory dir so that entries created,
// renamed or removed in it are durable.
func (d *Driver) syncDir(dir string) error {
	f, err := d.root.Open(dir)
	if err != nil {
		return scrub(err)
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return scrub(err)
}

// mkdirAll creates the root-relative directory dir and its parents, fsyncing
// the parent of each directory it creates.
func (d *Driver) mkdirAll(dir string) error {
	if dir == "." {
		return nil
	}
	parent := "."
	cur := ""
	for _, seg := range strings.Split(dir, "/") {
		cur = path.Join(cur, seg)
		err := d.root.Mkdir(cur, dirPerm)
		switch {
		case err == nil:
			if err := d.syncDir(parent); err != nil {
				return err
			}
		case !errors.Is(err, fs.ErrExist):
			return scrub(err)
		}
		parent = cur
	}
	return nil
}

// pruneDirs removes dir and then its parents while they are empty, stopping
// at the root. Leaving no empty directory behind keeps a later key equal to a
// former directory name usable.
func (d *Driver) pruneDirs(dir string) {
	for dir != "." && dir != "/" && dir != "" {
		if d.root.Remove(dir) != nil {
			return
		}
		dir = path.Dir(dir)
	}
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// ctxReader stops a copy once ctx is done. It also hides any WriterTo of the
// wrapped reader, so io.CopyBuffer really uses the given buffer.
type ctxReader struct {
	ctx context.Context
	r   interface{ Read([]byte) (int, error) }
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
