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
	"sort"
	"sync"
	"time"

	"depot/storage"
)

// chunkSize is how much WriteStaging reads before appending under the lock.
const chunkSize = 1 << 20

// Driver is the in-memory storage.Driver. It is safe for concurrent use.
type Driver struct {
	mu      sync.Mutex
	objects map[string]*object
	staging map[string]*staging
}

// object is a published object; data is never modified after Publish, so
// readers share it without copying.
type object struct {
	data    []byte
	modTime time.Time
}

type staging struct {
	data    []byte
	modTime time.Time
}

var _ storage.Driver = (*Driver)(nil)

// New returns an empty in-memory driver.
func New() *Driver {
	return &Driver{objects: map[string]*object{}, staging: map[string]*staging{}}
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
	d.staging[st.ID] = &staging{modTime: time.Now()}
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
		d.mu.Unlock()
		return 0, fmt.Errorf("memstore: write at offset %d of %d staged bytes", offset, len(s.data))
	}
	if ok {
		s.data = s.data[:offset]
	}
	d.mu.Unlock()
	if !ok {
		return 0, notExist("staging")
	}
	var n int64
	buf := make([]byte, chunkSize)
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, err := io.ReadFull(r, buf)
		if m > 0 {
			d.mu.Lock()
			if d.staging[st.ID] != s {
				d.mu.Unlock()
				return n, notExist("staging")
			}
			s.data = append(s.data, buf[:m]...)
			s.modTime = time.Now()
			d.mu.Unlock()
			n += int64(m)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// DiscardStaging drops the staging area.
func (d *Driver) DiscardStaging(_ context.Context, st *storage.Staging) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.staging, st.ID)
	return nil
}

// Publish moves the first size staged bytes to the object st.ID.
func (d *Driver) Publish(ctx context.Context, st *storage.Staging, size int64) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	s, ok := d.staging[st.ID]
	if !ok {
		if _, published := d.objects[st.ID]; published {
			return nil
		}
		return notExist("staging")
	}
	if size < 0 || size > int64(len(s.data)) {
		return fmt.Errorf("memstore: publish of %d bytes, %d staged", size, len(s.data))
	}
	d.objects[st.ID] = &object{data: slices.Clip(s.data[:size]), modTime: time.Now()}
	delete(d.staging, st.ID)
	return nil
}

// Open reads a range of object id.
func (d *Driver) Open(ctx context.Context, id string, offset, length int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	o, ok := d.objects[id]
	d.mu.Unlock()
	if !ok {
		return nil, notExist("object")
	}
	if offset < 0 || length < -1 {
		return nil, errors.New("memstore: invalid range")
	}
	end := int64(len(o.data))
	if length >= 0 && offset+length < end {
		end = offset + length
	}
	offset = min(offset, end)
	return io.NopCloser(bytes.NewReader(o.data[offset:end])), nil
}

// Stat describes object id.
func (d *Driver) Stat(ctx context.Context, id string) (storage.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return storage.ObjectInfo{}, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.objects[id]
	if !ok {
		return storage.ObjectInfo{}, notExist("object")
	}
	return storage.ObjectInfo{ID: id, Size: int64(len(o.data)), ModTime: o.modTime}, nil
}

// Delete removes object id.
func (d *Driver) Delete(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.objects, id)
	return nil
}

// List returns objects with IDs after after, in ID order.
func (d *Driver) List(ctx context.Context, after string, limit int) ([]storage.ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []storage.ObjectInfo
	for id, o := range d.objects {
		if id > after {
			out = append(out, storage.ObjectInfo{ID: id, Size: int64(len(o.data)), ModTime: o.modTime})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

// Strays lists every staging area (the Store decides which a session owns).
func (d *Driver) Strays(ctx context.Context) ([]storage.Stray, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []storage.Stray
	for id, s := range d.staging {
		out = append(out, storage.Stray{Name: id, Size: int64(len(s.data)), ModTime: s.modTime, SessionID: id})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// RemoveStray drops a staging area.
func (d *Driver) RemoveStray(_ context.Context, s storage.Stray) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.staging, s.Name)
	return nil
}
