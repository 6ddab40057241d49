// Package sealed is encryption at rest: a storage.Driver that wraps another
// (local disk, S3, memory) and stores every object as a standard age file
// (https://age-encryption.org/v1), so that `age -d -i KEKFILE object`
// decrypts a stored object without depot.
//
// # Format
//
// Each object has its own random 128-bit file key (the data key), wrapped
// in the age header for the current key-encryption key (KEK, an age X25519
// identity read from DEPOT_KEK_FILE). The payload is age's STREAM:
// ChaCha20-Poly1305 over 64 KiB segments, the nonce being the segment's
// counter and a last-segment flag, so a segment can be decrypted and
// authenticated alone (Range reads touch only their segments) and a cut or
// reordered object fails authentication.
//
// # Resumable staging without plaintext
//
// A staging area (an upload in progress) holds, in the wrapped driver's
// staging area, the header, the payload nonce and the full segments that
// are known not to be the last one (at least one more byte follows them).
// The rest, 0 to 64 KiB of plaintext that ends mid-segment or may turn out
// to be the final segment, is the tail: it is kept in Staging.State (the
// services database) sealed under a key derived from the KEK with a fresh
// nonce each time it changes (statekey.go), never in plaintext; the file
// key is kept there sealed the same way. Publish seals
// the tail as the final segment. Storage thus never holds plaintext, and a
// chunk may end anywhere.
//
// # No nonce reuse on retries
//
// Segment k is always encrypted under the same payload key and counter k,
// so a write that failed after its segments reached storage (a lost
// connection, a SIGKILL) and is then retried with different bytes would
// reuse a nonce with different plaintext. Two measures prevent that:
//   - a write keeps its bytes in memory (up to MaxBatch) and asks
//     Staging.Verify (the chunk's CRC-32C) before encrypting, so a chunk
//     damaged in transit is never encrypted;
//   - before segments leave the process, their Poly1305 tags are persisted
//     through Staging.Checkpoint. A later write of the same counters
//     compares the tags of its encryption (computed in memory) with the
//     recorded ones: equal tags mean equal plaintext (a resumed upload of
//     the same file, which writes byte-identical ciphertext), and a
//     difference refuses the write (ErrChanged) before anything is
//     written. An honest client never sends different bytes at the same
//     offset of one upload; one that does must start a new upload. The
//     same is done for the final segment in Publish.
//
// Rewinding a staging area below its sealed segments is refused (it would
// need the plaintext back); the Store never does that.
package sealed

import (
	"context"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"

	"depot/storage"
)

const (
	segSize   = 64 << 10 // plaintext bytes per STREAM segment (age: 64 KiB)
	tagSize   = chacha20poly1305.Overhead
	encSeg    = segSize + tagSize
	nonceSize = 16 // age's payload nonce

	// MaxBatch is how many plaintext bytes a write holds in memory before
	// encrypting: a chunk up to this size is verified (Staging.Verify)
	// before any of it is encrypted.
	MaxBatch = 8 << 20
)

var (
	// ErrChanged is returned when a write or publish would encrypt
	// different plaintext under a segment nonce already used (a retry
	// with other bytes at the same offset).
	ErrChanged = fmt.Errorf("sealed: %w; start a new upload", storage.ErrRewrite)
	// ErrNoKey is returned when no configured KEK opens an object.
	ErrNoKey = errors.New("sealed: no configured key-encryption key (DEPOT_KEK_FILE) opens this object")
	// ErrNotSealed is returned when an object is not an age file.
	ErrNotSealed = errors.New("sealed: the object is not encrypted")
	// ErrCorrupt is returned when a segment fails authentication.
	ErrCorrupt = errors.New("sealed: encrypted object fails authentication (damaged or tampered)")
)

// Driver encrypts what it stores in another driver. Create it with New.
type Driver struct {
	inner  storage.Driver
	keys   *Keyring
	hdrLen int64       // length of a one-recipient X25519 header
	bufs   chan []byte // free batch buffers of bufSize (not a sync.Pool: a GC would drop them)
}

// bufSize holds a batch and one more segment, plaintext or encrypted.
const bufSize = (MaxBatch/segSize + 2) * encSeg

// getBuf returns a free batch buffer or a new one.
func (d *Driver) getBuf() []byte {
	select {
	case b := <-d.bufs:
		return b
	default:
		return make([]byte, bufSize)
	}
}

// putBuf keeps b for reuse, up to cap(d.bufs) buffers.
func (d *Driver) putBuf(b []byte) {
	select {
	case d.bufs <- b[:cap(b)]:
	default:
	}
}

// New returns a driver that stores objects encrypted under keys in inner.
// The result also implements storage.ObjectPutter and
// storage.SpaceReporter when inner does.
func New(inner storage.Driver, keys *Keyring) (storage.Driver, error) {
	hdr, _, err := keys.newHeader()
	if err != nil {
		return nil, err
	}
	d := &Driver{inner: inner, keys: keys, hdrLen: int64(len(hdr))}
	d.bufs = make(chan []byte, 8)
	_, put := inner.(storage.ObjectPutter)
	_, space := inner.(storage.SpaceReporter)
	switch {
	case put && space:
		return &putSpaceDriver{d}, nil
	case put:
		return &putDriver{d}, nil
	case space:
		return &spaceDriver{d}, nil
	}
	return d, nil
}

type putDriver struct{ *Driver }

func (d *putDriver) PutObject(ctx context.Context, id string, r io.Reader, size int64) error {
	return d.putObject(ctx, id, r, size)
}

type spaceDriver struct{ *Driver }

func (d *spaceDriver) Space(ctx context.Context) (storage.Space, error) {
	return d.inner.(storage.SpaceReporter).Space(ctx)
}

type putSpaceDriver struct{ *Driver }

func (d *putSpaceDriver) PutObject(ctx context.Context, id string, r io.Reader, size int64) error {
	return d.putObject(ctx, id, r, size)
}

func (d *putSpaceDriver) Space(ctx context.Context) (storage.Space, error) {
	return d.inner.(storage.SpaceReporter).Space(ctx)
}

// Unwrap returns the wrapped driver.
func (d *Driver) Unwrap() storage.Driver { return d.inner }

// Close closes the wrapped driver.
func (d *Driver) Close() error { return d.inner.Close() }

// Delete removes object id.
func (d *Driver) Delete(ctx context.Context, id string) error { return d.inner.Delete(ctx, id) }

// Strays lists the wrapped driver's leftovers.
func (d *Driver) Strays(ctx context.Context) ([]storage.Stray, error) { return d.inner.Strays(ctx) }

// RemoveStray removes a leftover of the wrapped driver.
func (d *Driver) RemoveStray(ctx context.Context, s storage.Stray) error {
	return d.inner.RemoveStray(ctx, s)
}

// payloadAEAD returns the STREAM cipher of a file key and payload nonce,
// as age derives it: HKDF-SHA-256(file key, salt nonce, "payload").
func payloadAEAD(fileKey, nonce []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, fileKey, nonce, "payload", chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	return chacha20poly1305.New(key)
}

// segNonce is the STREAM nonce of segment counter: 11 bytes big-endian
// counter, then 1 for the last segment.
func segNonce(counter int64, last bool) []byte {
	var n [chacha20poly1305.NonceSize]byte
	binary.BigEndian.PutUint64(n[3:11], uint64(counter))
	if last {
		n[11] = 1
	}
	return n[:]
}

// encryptedSize is the size of an object holding size plaintext bytes
// behind a header of hdrLen bytes.
func encryptedSize(hdrLen, size int64) int64 {
	segs := max(1, (size+segSize-1)/segSize)
	return hdrLen + nonceSize + size + segs*tagSize
}

// plaintextSize inverts encryptedSize; false for an impossible size.
func plaintextSize(hdrLen, enc int64) (int64, bool) {
	payload := enc - hdrLen - nonceSize
	if payload < tagSize {
		return 0, false
	}
	segs := (payload + encSeg - 1) / encSeg
	last := payload - (segs-1)*encSeg
	if last < tagSize || (last == tagSize && segs > 1) {
		return 0, false
	}
	return payload - segs*tagSize, true
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("sealed: %s: %w", what, err)
}
