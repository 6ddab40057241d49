package checkpoint

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Witness keeps signed checkpoints outside the database. Whoever can
// rewrite the database must not be able to rewrite the witness: see
// docs/operations.md for where to keep one.
type Witness interface {
	// Kind names the witness in logs and alerts ("dir", "s3", "webhook"),
	// without its location, which may carry a secret.
	Kind() string
	// Put stores one signed checkpoint under name (see FileName) and
	// makes it the latest. It never removes or replaces another.
	Put(ctx context.Context, name string, note []byte) error
	// List returns every checkpoint the witness keeps.
	List(ctx context.Context) ([]Signed, error)
}

// latest returns the note a witness holds as its latest, or nil: through
// its Latest method when it has one, else the last of List by signing
// time.
func latest(ctx context.Context, w Witness) ([]byte, error) {
	if l, ok := w.(interface {
		Latest(context.Context) ([]byte, error)
	}); ok {
		return l.Latest(ctx)
	}
	all, err := w.List(ctx)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	return all[len(all)-1].Note, nil
}

// FileName is the name a checkpoint is kept under in every witness: the
// day it was signed (a folder, so that none grows without bound), then the
// size and the signing time in unix milliseconds, zero-padded:
// 2026-12-07/00000000000000001234-1796638500123.
func FileName(c Checkpoint) string {
	return fmt.Sprintf("%s/%020d-%013d", c.Time.UTC().Format(time.DateOnly), c.Size, c.Time.UnixMilli())
}

// Layout inside a directory witness and below an S3 prefix.
const (
	historyDir = "checkpoints" // every checkpoint, by FileName
	latestName = "checkpoint"  // the last one written
)

// OpenWitness opens the witness named by src: an s3:// URL (see NewS3), an
// http:// or https:// URL (see NewHTTP), or a directory (a path, or a
// file:// URL).
func OpenWitness(ctx context.Context, src string) (Witness, error) {
	switch {
	case strings.HasPrefix(src, "s3://"):
		return NewS3(ctx, src)
	case strings.HasPrefix(src, "http://"), strings.HasPrefix(src, "https://"):
		return NewHTTP(src)
	case strings.HasPrefix(src, "file://"):
		u, err := url.Parse(src)
		if err != nil || u.Host != "" {
			return nil, fmt.Errorf("witness: %q is not a file:///absolute/path URL", src)
		}
		return NewDir(u.Path), nil
	case strings.Contains(src, "://"):
		return nil, fmt.Errorf("witness: unsupported scheme in %q (use a directory, s3:// or https://)", src)
	case src == "":
		return nil, errors.New("witness: empty location")
	}
	return NewDir(src), nil
}

// Dir is a witness directory: checkpoints/<FileName> for every checkpoint
// and checkpoint for the latest, each written to a temporary file, synced
// and renamed into place.
type Dir struct{ path string }

// NewDir returns the witness directory at path (created on first Put).
func NewDir(path string) *Dir { return &Dir{path: path} }

// Kind implements Witness.
func (d *Dir) Kind() string { return "dir" }

// Put implements Witness.
func (d *Dir) Put(_ context.Context, name string, note []byte) error {
	if !fs.ValidPath(name) || strings.HasPrefix(path.Base(name), ".") {
		return fmt.Errorf("witness: bad checkpoint name %q", name)
	}
	full := filepath.Join(d.path, historyDir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return err
	}
	if err := writeFileSync(filepath.Dir(full), filepath.Base(full), note); err != nil {
		return err
	}
	return writeFileSync(d.path, latestName, note)
}

// Latest returns the checkpoint written last, or nil when there is none.
func (d *Dir) Latest(context.Context) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(d.path, latestName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// List implements Witness.
func (d *Dir) List(context.Context) ([]Signed, error) {
	hist := filepath.Join(d.path, historyDir)
	var out []Signed
	err := filepath.WalkDir(hist, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if p == hist && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipDir
			}
			return err
		}
		if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(d.path, p)
		out = append(out, Signed{Name: filepath.ToSlash(rel), Note: b})
		return nil
	})
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(d.path, latestName))
	switch {
	case err == nil:
		out = withLatest(out, Signed{Name: latestName, Note: b})
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if len(out) == 0 {
		if _, err := os.Stat(d.path); err != nil {
			return nil, fmt.Errorf("witness directory: %w", err)
		}
	}
	return out, nil
}

// withLatest adds the latest checkpoint unless the history holds the same.
func withLatest(hist []Signed, latest Signed) []Signed {
	for _, s := range hist {
		if sameNote(s.Note, latest.Note) {
			return sortSigned(hist)
		}
	}
	return sortSigned(append(hist, latest))
}

func sortSigned(s []Signed) []Signed {
	sort.SliceStable(s, func(i, j int) bool { return s[i].Name < s[j].Name })
	return s
}

// writeFileSync writes dir/name through a synced temporary file and a
// rename, then syncs dir.
func writeFileSync(dir, name string, b []byte) error {
	tmp, err := os.CreateTemp(dir, ".tmp-"+name+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: no such file
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	df, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer df.Close()
	return df.Sync()
}
