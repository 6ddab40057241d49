package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"

	"depot"
)

// Open returns a reader of [offset, offset+length) of object id (length -1:
// to the end). The caller resolves ranges against the size it recorded.
func (s *Store) Open(ctx context.Context, id string, offset, length int64) (io.ReadCloser, error) {
	if !ValidID(id) {
		return nil, depot.Errorf(depot.CodeNotFound, "no such object")
	}
	rc, err := s.d.Open(ctx, id, offset, length)
	if err != nil {
		return nil, storageErr("open", err)
	}
	return rc, nil
}

// Stat describes object id.
func (s *Store) Stat(ctx context.Context, id string) (ObjectInfo, error) {
	if !ValidID(id) {
		return ObjectInfo{}, depot.Errorf(depot.CodeNotFound, "no such object")
	}
	info, err := s.d.Stat(ctx, id)
	if err != nil {
		return ObjectInfo{}, storageErr("stat", err)
	}
	return info, nil
}

// Delete removes object id. It must only be called for an object that no
// committed version refers to any more (or never did); a missing object is
// not an error.
func (s *Store) Delete(ctx context.Context, id string) error {
	if !ValidID(id) {
		return depot.Errorf(depot.CodeInvalid, "invalid object ID")
	}
	return storageErr("delete", s.d.Delete(ctx, id))
}

// Objects lists up to limit stored objects with IDs after after, in ID
// order (for cleanup's sweep of objects nothing references).
func (s *Store) Objects(ctx context.Context, after string, limit int) ([]ObjectInfo, error) {
	infos, err := s.d.List(ctx, after, limit)
	return infos, storageErr("list objects", err)
}

// Strays lists staging areas and driver leftovers (see Driver.Strays).
func (s *Store) Strays(ctx context.Context) ([]Stray, error) {
	strays, err := s.d.Strays(ctx)
	return strays, storageErr("list strays", err)
}

// RemoveStray removes a leftover. One that belongs to a session is removed
// only if the session does not exist (checked under the session's lock), so
// a staging area whose session was created meanwhile is kept; it reports
// whether the stray was removed.
func (s *Store) RemoveStray(ctx context.Context, st Stray) (bool, error) {
	if st.SessionID != "" {
		unlock, err := s.lock(ctx, st.SessionID)
		if err != nil {
			return false, err
		}
		defer unlock()
		_, err = s.sessions.Session(ctx, st.SessionID)
		if err == nil {
			return false, nil // a session owns it
		}
		if depot.ErrorCode(err) != depot.CodeNotFound {
			return false, err
		}
	}
	if err := s.d.RemoveStray(ctx, st); err != nil {
		return false, storageErr("remove stray", err)
	}
	return true, nil
}

// Space returns the capacity of the storage, and false when the driver
// cannot tell (S3).
func (s *Store) Space(ctx context.Context) (Space, bool, error) {
	sr, ok := s.d.(SpaceReporter)
	if !ok {
		return Space{}, false, nil
	}
	sp, err := sr.Space(ctx)
	if err != nil {
		return Space{}, true, storageErr("space", err)
	}
	return sp, true, nil
}

// Matches reports whether object id exists with exactly size bytes whose
// SHA-256 is sha256Hex: it reads the whole object.
func (s *Store) Matches(ctx context.Context, id string, size int64, sha256Hex string) (bool, error) {
	rc, err := s.Open(ctx, id, 0, -1)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return false, storageErr("read", err)
	}
	return n == size && hex.EncodeToString(h.Sum(nil)) == sha256Hex, nil
}

// Restore writes r as object id (replacing a damaged one), checking that
// it has size bytes with SHA-256 sha256Hex before it is published: a
// restore from a backup of a version whose record is kept.
func (s *Store) Restore(ctx context.Context, id string, r io.Reader, size int64, sha256Hex string) error {
	if !ValidID(id) {
		return depot.Errorf(depot.CodeInvalid, "invalid object ID")
	}
	st := &Staging{ID: id}
	if err := s.d.CreateStaging(ctx, st); err != nil {
		return storageErr("create staging", err)
	}
	h := sha256.New()
	n, err := s.d.WriteStaging(ctx, st, 0, io.TeeReader(io.LimitReader(r, size+1), h))
	if err == nil && (n != size || hex.EncodeToString(h.Sum(nil)) != sha256Hex) {
		err = depot.Errorf(depot.CodeHashMismatch, "the backup's copy does not match the version's record")
	}
	if err == nil { // verified: the damaged object (if any) makes room
		err = s.d.Delete(ctx, id)
	}
	if err == nil {
		err = s.d.Publish(ctx, st, n)
	}
	if err != nil {
		_ = s.d.DiscardStaging(context.WithoutCancel(ctx), st)
		return storageErr("restore", err)
	}
	return nil
}
