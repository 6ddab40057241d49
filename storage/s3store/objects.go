package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"

	"depot/storage"
)

// PutObject stores a small object with one plain, signed PUT (the body is
// held in memory to be hashed first); a larger one goes through a staging
// area. Nothing is stored under id if r fails or ends early.
func (d *Driver) PutObject(ctx context.Context, id string, r io.Reader, size int64) error {
	if !storage.ValidID(id) {
		return fmt.Errorf("s3store: invalid ID")
	}
	if size > partBuf {
		st := &storage.Staging{ID: id}
		if err := d.CreateStaging(ctx, st); err != nil {
			return err
		}
		n, err := d.WriteStaging(ctx, st, 0, io.LimitReader(r, size))
		if err == nil && n != size {
			err = fmt.Errorf("s3store: put object: %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
		}
		if err == nil {
			err = d.Publish(ctx, st, size)
		}
		if err != nil {
			_ = d.DiscardStaging(context.WithoutCancel(ctx), st)
		}
		return err
	}
	bp := d.getBuf()
	defer d.putBuf(bp)
	buf := (*bp)[:size]
	if _, err := io.ReadFull(r, buf); err != nil {
		return fmt.Errorf("s3store: put object: %w", err)
	}
	if err := d.putSmall(ctx, d.objName(id), buf, nil); err != nil {
		return fmt.Errorf("s3store: put object: %w", mapErr(err))
	}
	return nil
}

// Open reads a range of an object with a ranged GET.
func (d *Driver) Open(ctx context.Context, id string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("s3store: negative offset %d", offset)
	}
	if length == 0 {
		if _, err := d.Stat(ctx, id); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		_ = opts.SetRange(offset, offset+length-1)
	case offset > 0:
		_ = opts.SetRange(offset, 0)
	}
	rc, _, _, err := d.core.GetObject(ctx, d.bucket, d.objName(id), opts)
	if err != nil {
		if r := minio.ToErrorResponse(err); r.StatusCode == http.StatusRequestedRangeNotSatisfiable || r.Code == "InvalidRange" {
			info, serr := d.core.StatObject(ctx, d.bucket, d.objName(id), minio.StatObjectOptions{})
			if serr != nil {
				return nil, fmt.Errorf("s3store: open %s: %w", id, mapErr(serr))
			}
			if offset >= info.Size {
				return io.NopCloser(bytes.NewReader(nil)), nil
			}
		}
		return nil, fmt.Errorf("s3store: open %s: %w", id, mapErr(err))
	}
	return rc, nil
}

// Stat describes an object.
func (d *Driver) Stat(ctx context.Context, id string) (storage.ObjectInfo, error) {
	info, err := d.core.StatObject(ctx, d.bucket, d.objName(id), minio.StatObjectOptions{})
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("s3store: stat %s: %w", id, mapErr(err))
	}
	return storage.ObjectInfo{ID: id, Size: info.Size, ModTime: info.LastModified}, nil
}

// Delete removes an object; a missing one is not an error.
func (d *Driver) Delete(ctx context.Context, id string) error {
	if err := d.remove(ctx, d.objName(id)); err != nil {
		return fmt.Errorf("s3store: delete %s: %w", id, mapErr(err))
	}
	return nil
}

// List uses ListObjectsV2 (StartAfter, Prefix) over objects/, which returns
// IDs in byte order.
func (d *Driver) List(ctx context.Context, after string, limit int) ([]storage.ObjectInfo, error) {
	if limit <= 0 {
		return nil, nil
	}
	dir := d.prefix + objectsDir
	startAfter := ""
	if after != "" {
		startAfter = dir + after
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := d.core.Client.ListObjects(lctx, d.bucket, minio.ListObjectsOptions{
		Prefix: dir, StartAfter: startAfter, Recursive: true, MaxKeys: min(limit, 1000),
	})
	var out []storage.ObjectInfo
	for obj := range ch {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3store: list: %w", obj.Err)
		}
		id := strings.TrimPrefix(obj.Key, dir)
		if !storage.ValidID(id) {
			continue
		}
		out = append(out, storage.ObjectInfo{ID: id, Size: obj.Size, ModTime: obj.LastModified})
		if len(out) == limit {
			cancel()
			for range ch { // drain
			}
			break
		}
	}
	return out, nil
}
