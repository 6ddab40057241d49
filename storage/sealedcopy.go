package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"sync"

	"depot"
)

// Sealer is an optional driver capability of drivers that store objects in
// another form than their plaintext (storage/sealed: encrypted). Backups
// copy that stored form, so that they carry ciphertext only, and verify it
// by decrypting it on the way.
type Sealer interface {
	// OpenSealed reads object id as stored, and returns its stored size.
	OpenSealed(ctx context.Context, id string) (io.ReadCloser, int64, error)
	// Unseal returns the plaintext of the stored form read from r,
	// authenticated as it is read.
	Unseal(r io.Reader) (io.Reader, error)
	// PublishSealed stores the stored form read from r as object id,
	// replacing a damaged one, once r ended without error.
	PublishSealed(ctx context.Context, id string, r io.Reader) error
}

// Sealed reports whether the Store encrypts what it stores.
func (s *Store) Sealed() bool {
	_, ok := s.d.(Sealer)
	return ok
}

// OpenSealed reads object id as stored (ciphertext) and returns its stored
// size; only for a Sealed Store.
func (s *Store) OpenSealed(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	sl, ok := s.d.(Sealer)
	if !ok || !ValidID(id) {
		return nil, 0, depot.Errorf(depot.CodeInvalid, "no sealed object %q", id)
	}
	rc, n, err := sl.OpenSealed(ctx, id)
	return rc, n, storageErr("open", err)
}

// CheckSealed returns a reader passing on the bytes of r, an object's
// stored form, while they are decrypted and handed to check (which must
// read the plaintext to its end) in another goroutine. Where r ends, the
// reader returns check's error (or an authentication failure) instead of
// io.EOF, so that a copy of a damaged object fails before it is kept.
// Close it (it stops the check) when done.
func (s *Store) CheckSealed(r io.Reader, check func(plain io.Reader) error) io.ReadCloser {
	pr, pw := io.Pipe()
	c := &sealedCheck{r: r, pw: pw, verdict: make(chan error, 1)}
	go func() {
		plain, err := s.d.(Sealer).Unseal(pr)
		if err == nil {
			err = check(plain)
		}
		if err == nil {
			_, err = io.Copy(io.Discard, pr) // nothing may follow
		}
		pr.CloseWithError(errors.Join(err, io.ErrClosedPipe))
		c.verdict <- err
	}()
	return c
}

type sealedCheck struct {
	r       io.Reader
	pw      *io.PipeWriter
	verdict chan error
	once    sync.Once
	err     error
}

func (c *sealedCheck) wait(cause error) error {
	c.once.Do(func() {
		c.pw.CloseWithError(cause)
		c.err = <-c.verdict
	})
	return c.err
}

func (c *sealedCheck) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 {
		if _, werr := c.pw.Write(p[:n]); werr != nil {
			if v := c.wait(werr); v != nil {
				return n, v
			}
			return n, werr
		}
	}
	switch {
	case err == io.EOF:
		if v := c.wait(nil); v != nil {
			return n, v
		}
	case err != nil:
		c.wait(err)
	}
	return n, err
}

func (c *sealedCheck) Close() error {
	c.wait(errors.New("copy stopped"))
	return nil
}

// RestoreSealed writes r, the stored form of an object (from a backup of a
// Sealed Store), as object id, checking that it decrypts to size bytes
// with SHA-256 sha256Hex before it is published.
func (s *Store) RestoreSealed(ctx context.Context, id string, r io.Reader, size int64, sha256Hex string) error {
	sl, ok := s.d.(Sealer)
	if !ok {
		return depot.Errorf(depot.CodeInvalid, "the backup's files are encrypted: set DEPOT_KEK_FILE to restore them")
	}
	if !ValidID(id) {
		return depot.Errorf(depot.CodeInvalid, "invalid object ID")
	}
	errMismatch := depot.Errorf(depot.CodeHashMismatch, "the backup's copy does not match the version's record")
	rc := s.CheckSealed(r, func(plain io.Reader) error {
		h := sha256.New()
		n, err := io.Copy(h, plain)
		if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != sha256Hex {
			return errMismatch
		}
		return nil
	})
	defer rc.Close()
	err := sl.PublishSealed(ctx, id, rc)
	if errors.Is(err, errMismatch) {
		return errMismatch
	}
	return storageErr("restore", err)
}
