package memstore

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"depot/storage"
)

// PutSession replaces the record of session id with a copy of record.
func (d *Driver) PutSession(ctx context.Context, id string, record []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sessions[id] = bytes.Clone(record)
	return nil
}

// GetSession returns a copy of the record of session id, or
// storage.ErrNotExist.
func (d *Driver) GetSession(ctx context.Context, id string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	rec, ok := d.sessions[id]
	if !ok {
		return nil, notExist("get session")
	}
	return bytes.Clone(rec), nil
}

// DeleteSession removes the record of session id; missing is not an error.
func (d *Driver) DeleteSession(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.sessions, id)
	return nil
}

// ListSessions returns the IDs of every session record, in no particular
// order.
func (d *Driver) ListSessions(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	ids := make([]string, 0, len(d.sessions))
	for id := range d.sessions {
		ids = append(ids, id)
	}
	return ids, nil
}

// strayPrefix starts the Name of a stray staging area.
const strayPrefix = "staging/"

// Strays reports every staging area whose session record does not exist.
// Name is "staging/<session id>".
func (d *Driver) Strays(ctx context.Context) ([]storage.Stray, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []storage.Stray
	for id, s := range d.staging {
		if _, live := d.sessions[id]; live {
			continue
		}
		out = append(out, storage.Stray{
			Name:      strayPrefix + id,
			Size:      int64(len(s.data)),
			ModTime:   s.modTime,
			SessionID: id,
		})
	}
	return out, nil
}

// RemoveStray removes a stray staging area; missing is not an error. A
// staging area whose session record exists is refused.
func (d *Driver) RemoveStray(ctx context.Context, s storage.Stray) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	id, ok := strings.CutPrefix(s.Name, strayPrefix)
	if !ok {
		return errors.New("memstore: remove stray: invalid name")
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, live := d.sessions[id]; live {
		return errors.New("memstore: remove stray: not a stray")
	}
	delete(d.staging, id)
	return nil
}
