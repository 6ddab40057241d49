package sealed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"depot/storage"
)

// Of returns the sealed driver inside d (New's result), or nil.
func Of(d storage.Driver) *Driver {
	switch v := d.(type) {
	case *Driver:
		return v
	case *putDriver:
		return v.Driver
	case *spaceDriver:
		return v.Driver
	case *putSpaceDriver:
		return v.Driver
	}
	return nil
}

// Check opens the header of the first stored object, so that a missing or
// wrong KEK, or a store of unencrypted objects, fails at start rather than
// at the first download. An empty store passes.
func (d *Driver) Check(ctx context.Context) error {
	infos, err := d.inner.List(ctx, "", 1)
	if err != nil || len(infos) == 0 {
		return err
	}
	o, err := d.head(ctx, infos[0].ID)
	if errors.Is(err, ErrNotSealed) {
		return errors.New("the storage holds unencrypted objects: migrate them with depot keys encrypt-existing (docs/operations.md)")
	}
	if err != nil {
		return err
	}
	if _, err := d.keys.fileKey(o.hdr); err != nil {
		return fmt.Errorf("stored object %s: %w", infos[0].ID, err)
	}
	return nil
}

// CheckPlain refuses a store whose first object is encrypted when no KEK
// is configured: serving it would hand out ciphertext.
func CheckPlain(ctx context.Context, d storage.Driver) error {
	infos, err := d.List(ctx, "", 1)
	if err != nil || len(infos) == 0 {
		return err
	}
	rc, err := d.Open(ctx, infos[0].ID, 0, int64(len(magic)))
	if err != nil {
		return err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if bytes.Equal(b, []byte(magic)) {
		return errors.New("the storage holds encrypted objects but DEPOT_KEK_FILE is not set")
	}
	return nil
}

const magic = "age-encryption.org/v1\n"

// OpenSealed reads object id as stored (an age file) and its size.
func (d *Driver) OpenSealed(ctx context.Context, id string) (io.ReadCloser, int64, error) {
	info, err := d.inner.Stat(ctx, id)
	if err != nil {
		return nil, 0, err
	}
	rc, err := d.inner.Open(ctx, id, 0, -1)
	return rc, info.Size, err
}

// Unseal decrypts an age file read from r with the KEKs.
func (d *Driver) Unseal(r io.Reader) (io.Reader, error) {
	pr, err := age.Decrypt(r, d.keys.all...)
	var nm *age.NoIdentityMatchError
	if errors.As(err, &nm) {
		return nil, ErrNoKey
	}
	return pr, err
}

// PublishSealed stores r (an age file) as object id through the wrapped
// driver, replacing an existing one only once r ended without error.
func (d *Driver) PublishSealed(ctx context.Context, id string, r io.Reader) error {
	st := &storage.Staging{ID: id}
	if err := d.inner.CreateStaging(ctx, st); err != nil {
		return err
	}
	n, err := d.inner.WriteStaging(ctx, st, 0, r)
	if err == nil {
		err = d.inner.Delete(ctx, id)
	}
	if err == nil {
		err = d.inner.Publish(ctx, st, n)
	}
	if err != nil {
		_ = d.inner.DiscardStaging(context.WithoutCancel(ctx), st)
	}
	return err
}

// SealState encrypts a session's hash state (storage.StateSealer).
func (d *Driver) SealState(state []byte) ([]byte, error) { return d.keys.seal(state) }

// OpenState decrypts what SealState returned.
func (d *Driver) OpenState(sealed []byte) ([]byte, error) { return d.keys.open(sealed) }
