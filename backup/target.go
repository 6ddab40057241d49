package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Target is where a backup is written and read back: a local directory or
// an S3 prefix. Names are slash-separated and relative ("manifest.json",
// "depot.db", "files/<version>"); everything written is readable by its
// owner only (files 0600 in 0700 directories; S3 objects private).
type Target interface {
	// String names the target for messages; it holds no credentials.
	String() string
	// Empty reports whether the target holds nothing yet.
	Empty(ctx context.Context) (bool, error)
	// Put stores r as name. A Put whose reader fails stores nothing under
	// name. size is the number of bytes r yields, or -1 when unknown.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// Open reads name; a missing name is an error wrapping fs.ErrNotExist.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Dir is the local directory of the target, "" for S3.
	Dir() string
}

// OpenTarget opens the backup location loc: an s3:// URL
// (s3://bucket/prefix?endpoint=…&region=…&profile=…) or a local directory,
// created (0700) when it is missing.
func OpenTarget(ctx context.Context, loc string) (Target, error) {
	if strings.HasPrefix(loc, "s3://") {
		return openS3Target(ctx, loc)
	}
	if loc == "" {
		return nil, errors.New("no backup location given")
	}
	abs, err := filepath.Abs(loc)
	if err != nil {
		return nil, err
	}
	return dirTarget(abs), nil
}

// dirTarget is a backup in a local directory.
type dirTarget string

func (d dirTarget) String() string { return string(d) }
func (d dirTarget) Dir() string    { return string(d) }

func (d dirTarget) Empty(context.Context) (bool, error) {
	entries, err := os.ReadDir(string(d))
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil
	}
	return len(entries) == 0, err
}

func (d dirTarget) path(name string) (string, error) {
	if !fs.ValidPath(name) || name == "." {
		return "", fmt.Errorf("invalid name in a backup: %q", name)
	}
	return filepath.Join(string(d), filepath.FromSlash(name)), nil
}

// Put writes name beside its final place, fsyncs it and renames it into
// place, so that a crash never leaves a partial file under name.
func (d dirTarget) Put(ctx context.Context, name string, r io.Reader, _ int64) error {
	dst, err := d.path(name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	tmp := dst + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(f, ctxReader{ctx, r}, make([]byte, 1<<20))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(dst))
}

func (d dirTarget) Open(_ context.Context, name string) (io.ReadCloser, error) {
	p, err := d.path(name)
	if err != nil {
		return nil, err
	}
	return os.Open(p)
}

// syncDir makes the entries of dir durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
