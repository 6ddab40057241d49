package sealed

import (
	"bytes"
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"depot/storage"
)

// maxHeader bounds the bytes read to find an object's header; depot's
// headers (one X25519 recipient) are under 200 bytes.
const maxHeader = 4096

// object is an opened encrypted object.
type object struct {
	hdr      []byte
	nonce    []byte
	encSize  int64
	plain    int64 // plaintext size
	segments int64
}

// head reads and parses the header of object id (no key needed).
func (d *Driver) head(ctx context.Context, id string) (*object, error) {
	info, err := d.inner.Stat(ctx, id)
	if err != nil {
		return nil, err
	}
	rc, err := d.inner.Open(ctx, id, 0, min(info.Size, maxHeader))
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(b, []byte(magic)) {
		return nil, ErrNotSealed
	}
	hdr, err := age.ExtractHeader(bytes.NewReader(b))
	if err != nil || len(hdr)+nonceSize > len(b) {
		return nil, fmt.Errorf("%w: header of object %s: %v", ErrCorrupt, id, err)
	}
	o := &object{hdr: hdr, nonce: b[len(hdr) : len(hdr)+nonceSize], encSize: info.Size}
	var ok bool
	if o.plain, ok = plaintextSize(int64(len(hdr)), info.Size); !ok {
		return nil, fmt.Errorf("%w: object %s has an impossible size", ErrCorrupt, id)
	}
	o.segments = max(1, (o.plain+segSize-1)/segSize)
	return o, nil
}

// Header returns the age header of object id: to tell which KEK wraps its
// file key (depot keys status).
func (d *Driver) Header(ctx context.Context, id string) ([]byte, error) {
	o, err := d.head(ctx, id)
	if err != nil {
		return nil, err
	}
	return o.hdr, nil
}

// Stat describes object id with its plaintext size.
func (d *Driver) Stat(ctx context.Context, id string) (storage.ObjectInfo, error) {
	info, err := d.inner.Stat(ctx, id)
	if err != nil {
		return info, err
	}
	o, err := d.head(ctx, id)
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	info.Size = o.plain
	return info, nil
}

// List lists objects with their plaintext sizes, computed from the
// encrypted sizes for depot's one-recipient header (an object with another
// header shows a wrong size here; Stat and Open read the real header).
func (d *Driver) List(ctx context.Context, after string, limit int) ([]storage.ObjectInfo, error) {
	infos, err := d.inner.List(ctx, after, limit)
	for i := range infos {
		if p, ok := plaintextSize(d.hdrLen, infos[i].Size); ok {
			infos[i].Size = p
		}
	}
	return infos, err
}

// Open reads plaintext [offset, offset+length) of object id, decrypting
// and authenticating only the segments the range touches. A segment that
// fails authentication is an error wrapping ErrCorrupt, returned before
// any of its bytes; a missing or wrong KEK is ErrNoKey, at Open.
func (d *Driver) Open(ctx context.Context, id string, offset, length int64) (io.ReadCloser, error) {
	o, err := d.head(ctx, id)
	if err != nil {
		return nil, err
	}
	fileKey, err := d.keys.fileKey(o.hdr)
	if err != nil {
		return nil, fmt.Errorf("object %s: %w", id, err)
	}
	aead, err := payloadAEAD(fileKey, o.nonce)
	if err != nil {
		return nil, err
	}
	offset = min(max(offset, 0), o.plain)
	if length < 0 || offset+length > o.plain {
		length = o.plain - offset
	}
	first := offset / segSize
	last := first
	if length > 0 {
		last = (offset + length - 1) / segSize
	} else if o.plain > 0 {
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	start := int64(len(o.hdr)) + nonceSize + first*encSeg
	rc, err := d.inner.Open(ctx, id, start, min((last-first+1)*encSeg, o.encSize-start))
	if err != nil {
		return nil, err
	}
	return &segReader{rc: rc, aead: aead, counter: first, final: o.segments - 1, skip: offset - first*segSize,
		remain: length, enc: make([]byte, encSeg), id: id}, nil
}

// segReader decrypts consecutive segments from rc.
type segReader struct {
	rc      io.ReadCloser
	aead    cipher.AEAD
	counter int64 // of the next segment
	final   int64 // counter of the object's last segment
	skip    int64 // plaintext bytes to drop from the next segment
	remain  int64 // plaintext bytes still to return
	enc     []byte
	plain   []byte // decrypted, not yet returned
	id      string
	err     error
}

func (r *segReader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.remain <= 0 {
			if r.counter == 0 && r.final == 0 && r.skip == 0 {
				r.skip = -1 // authenticate an empty object once
				if err := r.fill(); err != nil {
					r.err = err
					return 0, err
				}
				continue
			}
			r.err = io.EOF
			return 0, io.EOF
		}
		if err := r.fill(); err != nil {
			r.err = err
			return 0, err
		}
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// fill reads, authenticates and decrypts the next segment.
func (r *segReader) fill() error {
	n, err := io.ReadFull(r.rc, r.enc)
	if err == io.ErrUnexpectedEOF {
		err = nil
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: object %s ends early", ErrCorrupt, r.id)
		}
		return err
	}
	last := r.counter == r.final
	if !last && n != encSeg {
		return fmt.Errorf("%w: object %s ends early", ErrCorrupt, r.id)
	}
	pl, err := r.aead.Open(r.enc[:0], segNonce(r.counter, last), r.enc[:n], nil)
	if err != nil {
		return fmt.Errorf("%w: object %s, segment %d", ErrCorrupt, r.id, r.counter)
	}
	r.counter++
	if r.skip > 0 {
		pl = pl[min(r.skip, int64(len(pl))):]
	}
	r.skip = 0
	if int64(len(pl)) > r.remain {
		pl = pl[:max(r.remain, 0)]
	}
	r.remain -= int64(len(pl))
	r.plain = pl
	return nil
}

func (r *segReader) Close() error { return r.rc.Close() }
