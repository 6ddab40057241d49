package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"

	"depot"
)

// Put streams r into key in one call: a session is created, r is appended and
// the session completed. opts.Size and opts.SHA256, when set, are verified.
// Nothing is visible under key unless Put returns nil.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, opts depot.PutOptions) (depot.Object, error) {
	if ap, ok := s.d.(AtomicPutter); ok {
		return s.putAtomic(ctx, ap, key, r, opts)
	}
	u, err := s.CreateUpload(ctx, key, UploadOptions{Size: opts.Size, SHA256: opts.SHA256, Class: opts.Class})
	if err != nil {
		return depot.Object{}, err
	}
	if _, err := s.Append(ctx, u.ID, 0, r); err != nil {
		_ = s.Abort(context.WithoutCancel(ctx), u.ID)
		return depot.Object{}, err
	}
	obj, err := s.complete(ctx, u.ID, opts.Size, "", false)
	if err != nil {
		_ = s.Abort(context.WithoutCancel(ctx), u.ID)
		return depot.Object{}, err
	}
	return obj, nil
}

// putAtomic is Put through a driver that can store a whole object in one
// call: no session record, the hash and size checked before publication.
func (s *Store) putAtomic(ctx context.Context, ap AtomicPutter, key string, r io.Reader, opts depot.PutOptions) (depot.Object, error) {
	if err := depot.ValidateKey(key); err != nil {
		return depot.Object{}, err
	}
	want, err := normaliseSHA256(opts.SHA256)
	if err != nil {
		return depot.Object{}, err
	}
	if opts.Class == "" {
		opts.Class = depot.Permanent
	}
	if !opts.Class.Valid() {
		return depot.Object{}, depot.Errorf(depot.CodeInvalid, "file class must be permanent or temporary")
	}
	limit := int64(-1)
	switch {
	case opts.Size >= 0:
		limit = opts.Size
	case s.max > 0:
		limit = s.max
	}
	if s.max > 0 && opts.Size > s.max {
		return depot.Object{}, depot.Errorf(depot.CodeTooLarge, "the upload is larger than the limit of %d bytes", s.max)
	}
	body := r
	if limit >= 0 {
		body = io.LimitReader(r, limit+1)
	}
	h := sha256.New()
	hr := newOverlapHashReader(body, h)
	var obj depot.Object
	_, err = ap.PutAtomic(ctx, key, hr, func(n int64) (Attrs, error) {
		hr.Wait()
		switch {
		case opts.Size >= 0 && n != opts.Size:
			return Attrs{}, depot.Errorf(depot.CodeSizeMismatch, "received %d bytes, expected %d", n, opts.Size)
		case opts.Size < 0 && s.max > 0 && n > s.max:
			return Attrs{}, depot.Errorf(depot.CodeTooLarge, "the upload is larger than the limit of %d bytes", s.max)
		}
		sum := hex.EncodeToString(h.Sum(nil))
		if want != "" && want != sum {
			return Attrs{}, depot.Errorf(depot.CodeHashMismatch, "SHA-256 of the received bytes does not match the declared one")
		}
		obj = depot.Object{Key: key, Size: n, SHA256: sum, ModTime: now(s.clock), Class: opts.Class}
		return Attrs{SHA256: sum, Class: string(opts.Class)}, nil
	})
	hr.Wait()
	if err != nil {
		return depot.Object{}, storageErr("put", err)
	}
	return obj, nil
}

// PutBytes stores b under key (a convenience for small objects and tests).
func (s *Store) PutBytes(ctx context.Context, key string, b []byte, class depot.Class) (depot.Object, error) {
	return s.Put(ctx, key, bytes.NewReader(b), depot.PutOptions{Size: int64(len(b)), Class: class})
}

// Stat describes the object under key.
func (s *Store) Stat(ctx context.Context, key string) (depot.Object, error) {
	if err := depot.ValidateKey(key); err != nil {
		return depot.Object{}, err
	}
	info, err := s.d.Stat(ctx, key)
	if err != nil {
		return depot.Object{}, storageErr("stat", err)
	}
	return toObject(info), nil
}

// Open returns the object under key and a reader of rng (nil: everything).
// A range that starts past the end returns CodeRangeNotSatisf.
func (s *Store) Open(ctx context.Context, key string, rng *depot.Range) (depot.Object, io.ReadCloser, error) {
	obj, err := s.Stat(ctx, key)
	if err != nil {
		return depot.Object{}, nil, err
	}
	off, length := int64(0), int64(-1)
	if rng != nil {
		off, length = rng.Offset, rng.Length
		if off < 0 || off > obj.Size || (off == obj.Size && obj.Size > 0) {
			return obj, nil, depot.Errorf(depot.CodeRangeNotSatisf, "range starts past the end of the file")
		}
		if length < 0 || off+length > obj.Size {
			length = obj.Size - off
		}
	}
	rc, err := s.d.Open(ctx, key, off, length)
	if err != nil {
		return depot.Object{}, nil, storageErr("open", err)
	}
	return obj, rc, nil
}

// Delete removes the object under key.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := depot.ValidateKey(key); err != nil {
		return err
	}
	if err := s.d.Delete(ctx, key); err != nil {
		return storageErr("delete", err)
	}
	return nil
}

// MaxListLimit bounds one page of a listing.
const MaxListLimit = 1000

// List returns one page of objects under prefix, after the key after.
func (s *Store) List(ctx context.Context, prefix, after string, limit int) (depot.ListPage, error) {
	if err := depot.ValidatePrefix(prefix); err != nil {
		return depot.ListPage{}, err
	}
	if limit <= 0 || limit > MaxListLimit {
		limit = MaxListLimit
	}
	infos, err := s.d.List(ctx, prefix, after, limit+1)
	if err != nil {
		return depot.ListPage{}, storageErr("list", err)
	}
	page := depot.ListPage{Objects: make([]depot.Object, 0, min(len(infos), limit))}
	for i, info := range infos {
		if i == limit {
			page.Next = infos[i-1].Key
			break
		}
		page.Objects = append(page.Objects, toObject(info))
	}
	return page, nil
}

func toObject(info ObjectInfo) depot.Object {
	return depot.Object{
		Key: info.Key, Size: info.Size, SHA256: info.Attrs.SHA256,
		ModTime: info.ModTime.UTC(), Class: depot.Class(info.Attrs.Class),
	}
}
