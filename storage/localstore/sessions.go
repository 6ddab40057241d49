package localstore

import (
	"context"
	"os"
	"path"
	"strings"
)

// PutSession replaces the record of session id atomically and durably: it
// writes .depot/sessions/.tmp-<id>-<rand>, fsyncs it, renames it to
// <id>.json and fsyncs the directory. A crash leaves either the old or the
// new record, plus possibly a temporary file that Strays reports.
func (d *Driver) PutSession(ctx context.Context, id string, record []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	_, statErr := d.root.Lstat(sessionName(id))
	replacing := statErr == nil
	tmp := path.Join(sessionsDir, sessTmp+id+"-"+randHex(8))
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return fail("create session record", err)
	}
	_, err = f.Write(record)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.root.Rename(tmp, sessionName(id))
	}
	if err != nil {
		d.root.Remove(tmp)
		return fail("write session record", err)
	}
	if replacing {
		// A replaced record needs no directory fsync: after a power failure
		// the rename may be lost, leaving the previous record, which is an
		// earlier consistent state (staged bytes past its offset are ignored).
		return nil
	}
	if err := d.syncDir(sessionsDir); err != nil {
		return fail("sync sessions directory", err)
	}
	return nil
}

// GetSession returns the record of session id, or storage.ErrNotExist.
func (d *Driver) GetSession(ctx context.Context, id string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := checkID(id); err != nil {
		return nil, err
	}
	b, err := d.root.ReadFile(sessionName(id))
	if err != nil {
		return nil, fail("read session record", err)
	}
	return b, nil
}

// DeleteSession removes the record of session id; a missing record is not an
// error.
func (d *Driver) DeleteSession(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	if err := d.root.Remove(sessionName(id)); err != nil {
		if isNotExist(err) {
			return nil
		}
		return fail("delete session record", err)
	}
	if err := d.syncDir(sessionsDir); err != nil {
		return fail("sync sessions directory", err)
	}
	return nil
}

// ListSessions returns the IDs of every session record, in no particular
// order.
func (d *Driver) ListSessions(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := d.root.Open(sessionsDir)
	if err != nil {
		return nil, fail("list sessions", err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, fail("list sessions", err)
	}
	var ids []string
	for _, name := range names {
		id, ok := strings.CutSuffix(name, sessSuffix)
		if ok && checkID(id) == nil {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// hasSession reports whether a record exists for session id.
func (d *Driver) hasSession(id string) (bool, error) {
	if checkID(id) != nil {
		return false, nil
	}
	_, err := d.root.Lstat(sessionName(id))
	switch {
	case err == nil:
		return true, nil
	case isNotExist(err):
		return false, nil
	}
	return false, err
}
