package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"depot"
)

// The tus concatenation extension (services/concat.go): the partial
// uploads of a file are sessions that are never committed. To build the
// final upload, each partial is sealed (its staged bytes published as the
// object of its session's ID, the session kept), then copied, object by
// object, into the staging area of a new session, which is completed like
// any other. A sealed partial's object is referenced by its session, so
// cleanup leaves it until the session is removed (Abort, Expire), which
// removes the object with it.

// Seal publishes the bytes of session id, which must have received all of
// its declared size, as the object id, and returns it with the SHA-256 of
// those bytes. The session stays (the object is removed with it). Sealing
// a sealed session returns the same object. An incomplete session, or one
// without a declared size, is CodeConflict.
func (s *Store) Seal(ctx context.Context, id string) (Stored, error) {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return Stored{}, err
	}
	defer unlock()
	sess, err := s.load(ctx, id)
	if err != nil {
		return Stored{}, err
	}
	if sess.DeclaredSize < 0 || sess.Offset != sess.DeclaredSize {
		return Stored{}, depot.Errorf(depot.CodeConflict, "upload %s is not complete: %d bytes received of %d", id, sess.Offset, sess.DeclaredSize)
	}
	h, err := s.hasher(sess)
	if err != nil {
		return Stored{}, depot.WrapError(depot.CodeInternal, "corrupt upload session", err)
	}
	obj := Stored{ID: id, Size: sess.Offset, SHA256: hex.EncodeToString(h.Sum(nil))}
	if err := s.d.Publish(ctx, sess.staging(), obj.Size); err != nil {
		return Stored{}, storageErr("publish", err)
	}
	return obj, nil
}

// AppendObject appends the whole of object src (as Seal returned it) to
// session id, whose offset must be at: the same checks and bookkeeping as
// Append, with the bytes read from storage instead of a client. They are
// verified against src's size and SHA-256 before they count; a mismatch
// (bytes changed in storage) is CodeInternal and leaves the session as it
// was.
func (s *Store) AppendObject(ctx context.Context, id string, at int64, src Stored) (depot.Upload, error) {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return depot.Upload{}, err
	}
	defer unlock()
	sess, err := s.load(ctx, id)
	if err != nil {
		return depot.Upload{}, err
	}
	cur := sess.Offset
	if at != cur {
		return s.view(sess), offsetMismatch(cur)
	}
	h, err := s.appendable(sess, src.Size)
	if err != nil {
		return s.view(sess), err
	}
	rc, err := s.d.Open(ctx, src.ID, 0, src.Size)
	if err != nil {
		return s.view(sess), storageErr("open", err)
	}
	defer rc.Close()
	part := sha256.New()
	st := sess.staging()
	st.Checkpoint = s.checkpoint(sess) // an encrypting driver records its segment tags (storage/sealed)
	n, err := s.d.WriteStaging(ctx, st, cur, io.TeeReader(io.LimitReader(rc, src.Size), io.MultiWriter(h, part)))
	if err != nil {
		return s.view(sess), storageErr("write staging", err)
	}
	if got := hex.EncodeToString(part.Sum(nil)); n != src.Size || got != src.SHA256 {
		return s.view(sess), depot.WrapError(depot.CodeInternal, "a stored partial upload differs from the bytes received",
			fmt.Errorf("%w: object %s: %d bytes, SHA-256 %s; want %d bytes, %s", ErrDamaged, src.ID, n, got, src.Size, src.SHA256))
	}
	state, err := s.marshalHash(h)
	if err != nil {
		return s.view(sess), err
	}
	p := Progress{Offset: cur + n, HashState: state, DriverState: st.State, Last: ChunkMark{Offset: cur, Length: n}, Updated: s.now()}
	if err := s.sessions.SaveProgress(ctx, id, p); err != nil {
		return s.view(sess), err
	}
	sess.Offset, sess.HashState, sess.DriverState, sess.Last, sess.Updated = p.Offset, p.HashState, p.DriverState, p.Last, p.Updated
	return s.view(sess), nil
}
