package localstore

import (
	"context"
	"errors"
	"os"
	"path"
	"strings"
)

// PutSession replaces the record of session id atomically and durably (see
// sessionlog.go for the format). While the record file is as this Driver
// left it and small, it appends a frame and fsyncs the file. Otherwise
// it writes a fresh file, .depot/sessions/.tmp-<id>-<rand>, fsyncs it,
// renames it to <id>.json and, for a new record, fsyncs the directory. A
// crash leaves the old or the new record (an appended frame that is not
// whole is ignored), plus possibly a temporary file that Strays reports.
func (d *Driver) PutSession(ctx context.Context, id string, record []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkID(id); err != nil {
		return err
	}
	frame := appendFrame(make([]byte, 0, frameHeaderSize+len(record)), record)
	defer d.sessions.lock(id)()
	if last, ok := d.sessions.get(id); ok {
		err := d.appendSession(id, last, frame)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errNotAppendable) && !isNotExist(err) {
			// The log may now end in a partial frame: never append after it.
			d.sessions.forget(id)
			return fail("append session record", err)
		}
	}
	if err := d.replaceSession(id, frame); err != nil {
		d.sessions.forget(id)
		return err
	}
	return nil
}

// errNotAppendable means that the record file is not the one this Driver
// left, or has grown too long: it must be replaced.
var errNotAppendable = errors.New("session record not appendable")

// appendSession appends frame to the record file of session id and fsyncs
// it, if the file is still as this Driver left it (last).
func (d *Driver) appendSession(id string, last logEnd, frame []byte) error {
	f, err := d.root.OpenFile(sessionName(id), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	cur, err := f.Stat()
	if err == nil && !last.appendable(cur, len(frame)) {
		err = errNotAppendable
	}
	if err == nil {
		_, err = f.Write(frame)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		d.sessions.wrote(id, cur, cur.Size()+int64(len(frame)))
	}
	return err
}

// replaceSession writes frame as the whole record file of session id: a
// temporary file, fsynced and renamed over the record.
func (d *Driver) replaceSession(id string, frame []byte) error {
	_, statErr := d.root.Lstat(sessionName(id))
	replacing := statErr == nil
	tmp := path.Join(sessionsDir, sessTmp+id+"-"+randHex(8))
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return fail("create session record", err)
	}
	_, err = f.Write(frame)
	if err == nil {
		err = f.Sync()
	}
	fi, serr := f.Stat()
	if err == nil {
		err = serr
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
	d.sessions.wrote(id, fi, int64(len(frame)))
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
	rec, ok := lastRecord(b)
	if !ok {
		return nil, errors.New("localstore: read session record: no whole record in the file")
	}
	return rec, nil
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
	unlock := d.sessions.lock(id)
	d.sessions.forget(id)
	err := d.root.Remove(sessionName(id))
	unlock()
	if err != nil {
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
