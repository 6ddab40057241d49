package sealed

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"depot/storage"
)

// wrapHeader returns an age header holding fileKey wrapped for the current
// KEK: the format of age v1 (stanzas, then "---" and the HMAC-SHA-256 of
// everything before it under HKDF(file key, "header")). It is checked by
// unwrapping it with age before it is used.
func (k *Keyring) wrapHeader(fileKey []byte) ([]byte, error) {
	stanzas, err := k.current.Recipient().Wrap(fileKey)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("age-encryption.org/v1\n")
	for _, s := range stanzas {
		b.WriteString("-> " + s.Type)
		for _, a := range s.Args {
			b.WriteString(" " + a)
		}
		b.WriteString("\n")
		body := base64.RawStdEncoding.EncodeToString(s.Body)
		for len(body) >= 64 {
			b.WriteString(body[:64] + "\n")
			body = body[64:]
		}
		b.WriteString(body + "\n")
	}
	b.WriteString("---")
	mac, err := headerMAC(fileKey, b.Bytes())
	if err != nil {
		return nil, err
	}
	b.WriteString(" " + base64.RawStdEncoding.EncodeToString(mac) + "\n")
	hdr := b.Bytes()
	if got, err := age.DecryptHeader(hdr, k.current); err != nil || !bytes.Equal(got, fileKey) {
		return nil, fmt.Errorf("sealed: re-wrapped header does not open: %v", err)
	}
	return hdr, nil
}

// Rewrap re-wraps the data key of object id under the current KEK, without
// re-encrypting its data: the wrapped key lives in the object's own header
// (so that age decrypts an object alone), so the object is written anew —
// the new header followed by the same nonce and ciphertext, copied — into
// a staging area of the same ID, whose Publish replaces the object
// atomically (a rename on disk, a completed multipart upload on S3). A
// crash leaves the old object, readable with the old KEK, and a staging
// leftover that cleanup removes; running again finishes the job. It
// reports false for an object already under the current KEK.
func (d *Driver) Rewrap(ctx context.Context, id string) (bool, error) {
	o, err := d.head(ctx, id)
	if err != nil {
		return false, err
	}
	if d.keys.Which(o.hdr) == 0 {
		return false, nil
	}
	fileKey, err := d.keys.fileKey(o.hdr)
	if err != nil {
		return false, fmt.Errorf("object %s: %w", id, err)
	}
	hdr, err := d.keys.wrapHeader(fileKey)
	if err != nil {
		return false, err
	}
	payload, err := d.inner.Open(ctx, id, int64(len(o.hdr)), -1)
	if err != nil {
		return false, err
	}
	defer payload.Close()
	st := &storage.Staging{ID: id}
	if err := d.inner.CreateStaging(ctx, st); err != nil {
		return false, err
	}
	want := int64(len(hdr)) + o.encSize - int64(len(o.hdr))
	n, err := d.inner.WriteStaging(ctx, st, 0, io.MultiReader(bytes.NewReader(hdr), payload))
	if err == nil && n != want {
		err = fmt.Errorf("sealed: rewrap of %s copied %d of %d bytes", id, n, want)
	}
	if err == nil {
		err = d.inner.Publish(ctx, st, n)
	}
	if err != nil {
		_ = d.inner.DiscardStaging(context.WithoutCancel(ctx), st)
		return false, err
	}
	return true, nil
}

// ErrMismatch is returned by EncryptInPlace for an object whose bytes do
// not match its version's size and SHA-256: it is left as it is.
var ErrMismatch = errors.New("sealed: the stored bytes do not match the version's record")

// EncryptInPlace replaces the unencrypted object id by its encryption
// (depot keys encrypt-existing): its bytes are read, checked against size
// and sha256Hex while they are encrypted into a staging area of the same
// ID, whose Publish replaces the object atomically. A crash leaves the
// unencrypted object and a leftover that cleanup removes. It reports false
// for an object that is encrypted already (an age file that a KEK opens,
// of the version's size); an age file that no KEK opens is a user's own
// file, and is encrypted like any other.
func (d *Driver) EncryptInPlace(ctx context.Context, id string, size int64, sha256Hex string) (bool, error) {
	if o, err := d.head(ctx, id); err == nil && o.plain == size {
		if _, err := d.keys.fileKey(o.hdr); err == nil {
			return false, nil
		}
	} else if err != nil && !errors.Is(err, ErrNotSealed) && !errors.Is(err, ErrCorrupt) {
		return false, err
	}
	rc, err := d.inner.Open(ctx, id, 0, -1)
	if err != nil {
		return false, err
	}
	defer rc.Close()
	st := &storage.Staging{ID: id}
	if err := d.CreateStaging(ctx, st); err != nil {
		return false, err
	}
	h := sha256.New()
	n, err := d.WriteStaging(ctx, st, 0, io.TeeReader(io.LimitReader(rc, size+1), h))
	if err == nil && (n != size || hex.EncodeToString(h.Sum(nil)) != sha256Hex) {
		err = ErrMismatch
	}
	if err == nil {
		err = d.Publish(ctx, st, n)
	}
	if err != nil {
		_ = d.DiscardStaging(context.WithoutCancel(ctx), st)
		return false, err
	}
	return true, nil
}
