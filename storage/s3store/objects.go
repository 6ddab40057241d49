package s3store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"

	"depot/storage"
)

// PutSession stores the record as .depot/sessions/<id>.json; an S3 PUT
// replaces an object atomically and is durable when it returns.
func (d *Driver) PutSession(ctx context.Context, id string, record []byte) error {
	if err := d.putSmall(ctx, d.sessionName(id), record, nil); err != nil {
		return fmt.Errorf("s3store: put session %s: %w", id, err)
	}
	return nil
}

// GetSession returns the record id, or ErrNotExist.
func (d *Driver) GetSession(ctx context.Context, id string) ([]byte, error) {
	b, err := d.getSmall(ctx, d.sessionName(id))
	if err != nil {
		return nil, fmt.Errorf("s3store: get session %s: %w", id, err)
	}
	return b, nil
}

// DeleteSession removes the record id; missing is not an error.
func (d *Driver) DeleteSession(ctx context.Context, id string) error {
	if err := d.remove(ctx, d.sessionName(id)); err != nil {
		return fmt.Errorf("s3store: delete session %s: %w", id, err)
	}
	return nil
}

// ListSessions returns the IDs of every session record.
func (d *Driver) ListSessions(ctx context.Context) ([]string, error) {
	dir := d.meta("sessions/")
	var ids []string
	for obj := range d.core.Client.ListObjects(ctx, d.bucket, minio.ListObjectsOptions{Prefix: dir, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3store: list sessions: %w", obj.Err)
		}
		name := strings.TrimPrefix(obj.Key, dir)
		if id, ok := strings.CutSuffix(name, ".json"); ok && !strings.Contains(id, "/") {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// Open reads a range of an object with a ranged GET.
func (d *Driver) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("s3store: negative offset %d", offset)
	}
	if length == 0 {
		if _, err := d.Stat(ctx, key); err != nil {
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
	rc, _, _, err := d.core.GetObject(ctx, d.bucket, d.objName(key), opts)
	if err != nil {
		if r := minio.ToErrorResponse(err); r.StatusCode == http.StatusRequestedRangeNotSatisfiable || r.Code == "InvalidRange" {
			info, serr := d.core.StatObject(ctx, d.bucket, d.objName(key), minio.StatObjectOptions{})
			if serr != nil {
				return nil, fmt.Errorf("s3store: open %q: %w", key, mapErr(serr))
			}
			if offset >= info.Size {
				return io.NopCloser(bytes.NewReader(nil)), nil
			}
		}
		return nil, fmt.Errorf("s3store: open %q: %w", key, mapErr(err))
	}
	return rc, nil
}

// Stat describes an object: HEAD for size and time, the sidecar for attrs.
func (d *Driver) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	info, err := d.core.StatObject(ctx, d.bucket, d.objName(key), minio.StatObjectOptions{})
	if err != nil {
		return storage.ObjectInfo{}, fmt.Errorf("s3store: stat %q: %w", key, mapErr(err))
	}
	if strings.HasSuffix(info.Key, "/") {
		return storage.ObjectInfo{}, fmt.Errorf("s3store: stat %q: %w", key, storage.ErrNotExist)
	}
	attrs, err := d.attrs(ctx, key, info.Size, info.Metadata.Get("X-Amz-Meta-"+sessionMeta))
	if err != nil {
		return storage.ObjectInfo{}, err
	}
	return storage.ObjectInfo{Key: key, Size: info.Size, ModTime: info.LastModified, Attrs: attrs}, nil
}

// attrs reads the sidecar of key. A sidecar that belongs to another version
// of the object (another session, or another size) gives no attrs: the
// object's attributes are then unknown, never wrong. session "" (List,
// which has no metadata) skips the session check.
func (d *Driver) attrs(ctx context.Context, key string, size int64, session string) (storage.Attrs, error) {
	b, err := d.getSmall(ctx, d.attrsName(key))
	if notFound(err) {
		return storage.Attrs{}, nil
	}
	if err != nil {
		return storage.Attrs{}, fmt.Errorf("s3store: read attrs of %q: %w", key, err)
	}
	var sc sidecar
	if err := json.Unmarshal(b, &sc); err != nil || sc.Size != size || (session != "" && sc.Session != session) {
		return storage.Attrs{}, nil
	}
	return storage.Attrs{SHA256: sc.SHA256, Class: sc.Class}, nil
}

// Delete removes an object and its sidecar.
func (d *Driver) Delete(ctx context.Context, key string) error {
	if _, err := d.core.StatObject(ctx, d.bucket, d.objName(key), minio.StatObjectOptions{}); err != nil {
		return fmt.Errorf("s3store: delete %q: %w", key, mapErr(err))
	}
	if err := d.core.RemoveObject(ctx, d.bucket, d.objName(key), minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("s3store: delete %q: %w", key, mapErr(err))
	}
	if err := d.remove(ctx, d.attrsName(key)); err != nil {
		return fmt.Errorf("s3store: delete attrs of %q: %w", key, err)
	}
	return nil
}

// hidden reports whether a listed name (below the driver prefix) is not an
// object key: the driver's own .depot/ area, anything with a segment
// starting with ".depot", or a directory marker.
func hidden(name string) bool {
	if name == "" || strings.HasSuffix(name, "/") {
		return true
	}
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".depot") {
			return true
		}
	}
	return false
}

// List uses ListObjectsV2 (StartAfter, Prefix), which returns keys in byte
// order, skips the .depot/ area in one jump, and reads the attrs sidecars
// of the page with up to 16 concurrent GETs.
func (d *Driver) List(ctx context.Context, prefix, after string, limit int) ([]storage.ObjectInfo, error) {
	if limit <= 0 {
		return nil, nil
	}
	var out []storage.ObjectInfo
	startAfter := ""
	if after != "" {
		startAfter = d.prefix + after
	}
	skipTo := d.meta("\U0010FFFF") // sorts after every key in .depot/
	for restart := true; restart && len(out) < limit; {
		restart = false
		lctx, cancel := context.WithCancel(ctx)
		ch := d.core.Client.ListObjects(lctx, d.bucket, minio.ListObjectsOptions{
			Prefix: d.prefix + prefix, StartAfter: startAfter, Recursive: true, MaxKeys: min(limit+1, 1000),
		})
		for obj := range ch {
			if obj.Err != nil {
				cancel()
				return nil, fmt.Errorf("s3store: list: %w", obj.Err)
			}
			name := strings.TrimPrefix(obj.Key, d.prefix)
			if strings.HasPrefix(name, metaDir) && startAfter < skipTo {
				startAfter, restart = skipTo, true
				break
			}
			if hidden(name) {
				continue
			}
			out = append(out, storage.ObjectInfo{Key: name, Size: obj.Size, ModTime: obj.LastModified})
			if len(out) == limit {
				break
			}
		}
		cancel()
		for range ch { // drain
		}
	}
	if err := d.fillAttrs(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

func (d *Driver) fillAttrs(ctx context.Context, infos []storage.ObjectInfo) error {
	var (
		wg    sync.WaitGroup
		sem   = make(chan struct{}, 16)
		mu    sync.Mutex
		first error
	)
	for i := range infos {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			a, err := d.attrs(ctx, infos[i].Key, infos[i].Size, "")
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
				return
			}
			infos[i].Attrs = a
		})
	}
	wg.Wait()
	return first
}
