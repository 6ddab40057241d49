// Package memstore is an in-memory storage driver for tests and development.
// It has the same semantics as the other drivers except durability: nothing
// survives the process.
package memstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"depot/storage"
)

// chunkSize is how much WriteStaging reads before appending under the lock.
const chunkSize = 1 << 20

// Driver is the in-memory storage.Driver. It is safe for concurrent use.
type Driver struct {
	mu       sync.Mutex
	objects  map[string]*object
	staging  map[string]*staging // by session ID
	sessions map[string][]byte
}

// object is a committed object; data is never modified after commit, so
// readers share it without copying.
type object struct {
	data    []byte
	modTime time.Time
	attrs   storage.Attrs
}

type staging struct {
	key     string
	data    []byte
	modTime time.Time
}

var _ storage.Driver = (*Driver)(nil)

// New returns an empty in-memory driver.
func New() *Driver {
	return &Driver{
		objects:  map[string]*object{},
		staging:  map[string]*staging{},
		sessions: map[string][]byte{},
	}
}

// Close does nothing; the data stays readable.
func (d *Driver) Close() error { return nil }

func notExist(what string) error { return fmt.Errorf("memstore: %s: %w", what, storage.ErrNotExist) }

// CreateStaging creates (or empties) the staging area of st.ID.
func (d *Driver) CreateStaging(ctx context.Context, st *storage.Staging) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.staging[st.ID] = &staging{key: st.Key, modTime: time.Now()}
	return nil
}

// WriteStaging truncates the staged data to offset and appends r to it. An
// offset past the staged data is an error.
func (d *Driver) WriteStaging(ctx context.Context, st *storage.Staging, offset int64, r io.Reader) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	d.mu.Lock()
	s, ok := d.staging[st.ID]
	if ok && (offset < 0 || offset > int64(len(s.data))) {
		n := len(s.data)
		d.mu.Unlock()
		return 0, fmt.Errorf("memstore: write staging: offset %d outside staged data (%d bytes)", offset, n)
	}
	if ok {
		s.data = s.data[:offset]
		s.modTime = time.Now()
	}
	d.mu.Unlock()
	if !ok {
		return 0, notExist("write staging")
	}
	buf := make([]byte, chunkSize)
	var total int64
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := d.appendStaging(st.ID, buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return total, nil
		case rerr != nil:
			return total, fmt.Errorf("memstore: write staging: %w", rerr)
		}
	}
}

func (d *Driver) appendStaging(id string, p []byte) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.staging[id]
	if !ok {
		return notExist("write staging")
	}
	s.data = append(s.data, p...)
	s.modTime = time.Now()
	return nil
}

// ReadStaging returns a copy of staged bytes [offset, offset+length); length
// -1 means to the end.
func (d *Driver) ReadStaging(ctx context.Context, st *storage.Staging, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.staging[st.ID]
	if !ok {
		return nil, notExist("read staging")
	}
	p, err := section(s.data, offset, length)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(bytes.Clone(p))), nil
}

// Commit publishes the first size staged bytes under st.Key and releases the
// staging area.
func (d *Driver) Commit(ctx context.Context, st *storage.Staging, size int64, attrs storage.Attrs) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.staging[st.ID]
	if !ok {
		return notExist("commit")
	}
	if size < 0 || size > int64(len(s.data)) {
		return fmt.Errorf("memstore: commit: size %d outside staged data (%d bytes)", size, len(s.data))
	}
	// Clip the capacity so that no later append can write into the object.
	data := slices.Clip(s.data[:size])
	d.objects[st.Key] = &object{data: data, modTime: time.Now(), attrs: attrs}
	delete(d.staging, st.ID)
	return nil
}

// WriteStagingUnsynced is WriteStaging (storage.DeferredSyncer): memory
// has nothing to make durable.
func (d *Driver) WriteStagingUnsynced(ctx context.Context, st *storage.Staging, offset int64, r io.Reader) (int64, error) {
	return d.WriteStaging(ctx, st, offset, r)
}

// SyncStaging reports a missing staging area; there is nothing else to do.
func (d *Driver) SyncStaging(ctx context.Context, st *storage.Staging) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.staging[st.ID]; !ok {
		return notExist("sync staging")
	}
	return nil
}

// DiscardStaging releases the staging area; missing is not an error.
func (d *Driver) DiscardStaging(ctx context.Context, st *storage.Staging) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.staging, st.ID)
	return nil
}

// section returns p[offset:offset+length] clamped to p; length -1 means to
// the end.
func section(p []byte, offset, length int64) ([]byte, error) {
	if offset < 0 || length < -1 {
		return nil, errors.New("memstore: invalid range")
	}
	if offset > int64(len(p)) {
		return nil, nil
	}
	p = p[offset:]
	if length >= 0 && length < int64(len(p)) {
		p = p[:length]
	}
	return p, nil
}

// Open returns a reader of [offset, offset+length) of the object key. The
// reader sees the object as it was when Open was called, whatever happens
// to the key afterwards.
func (d *Driver) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objects[key]
	if !ok {
		return nil, notExist("open")
	}
	p, err := section(o.data, offset, length)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(p)), nil
}

// Stat describes the object key.
func (d *Driver) Stat(ctx context.Context, key string) (storage.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objects[key]
	if !ok {
		return storage.ObjectInfo{}, notExist("stat")
	}
	return o.info(key), nil
}

func (o *object) info(key string) storage.ObjectInfo {
	return storage.ObjectInfo{Key: key, Size: int64(len(o.data)), ModTime: o.modTime, Attrs: o.attrs}
}

// Delete removes the object key, or returns storage.ErrNotExist.
func (d *Driver) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.objects[key]; !ok {
		return notExist("delete")
	}
	delete(d.objects, key)
	return nil
}

// List returns up to limit objects (limit <= 0: all) whose keys start with
// prefix and sort after after, in byte order.
func (d *Driver) List(ctx context.Context, prefix, after string, limit int) ([]storage.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var keys []string
	for k := range d.objects {
		if strings.HasPrefix(k, prefix) && k > after {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([]storage.ObjectInfo, len(keys))
	for i, k := range keys {
		out[i] = d.objects[k].info(k)
	}
	return out, nil
}
