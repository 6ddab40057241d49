package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"depot"
)

// Options configure a Store.
type Options struct {
	// UploadExpiry is how long a resumable upload session may stay idle
	// before it expires. Zero means 24 hours.
	UploadExpiry time.Duration
	// PlainExpiry is how long a session that is not resumable (a plain
	// PUT's) may stay idle: no client can continue it once its request has
	// ended. Zero means 2 minutes.
	PlainExpiry time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AheadWait bounds how long AwaitOffset waits for a session to reach
	// an offset. Zero means 1 s.
	AheadWait time.Duration
	// MaxObjectSize refuses uploads larger than this many bytes with
	// CodeTooLarge; 0 means no limit.
	MaxObjectSize int64
	// DeferDelete, when set, is asked by Delete before it removes an
	// object; while it reports true (a backup is copying objects), Delete
	// leaves the object in place and returns nil. The object is then one
	// that nothing refers to, which a later cleanup removes.
	DeferDelete func(ctx context.Context) (bool, error)
}

// Store keeps upload sessions and immutable objects over a Driver and a
// Sessions. It is safe for concurrent use; every change of one session is
// serialised, within this process and through Sessions.LockSession across
// processes.
type Store struct {
	d        Driver
	sessions Sessions
	opts     Options
	locks    sessionLocks
}

// New returns a Store over d, persisting sessions in sessions.
func New(d Driver, sessions Sessions, opts Options) *Store {
	if opts.UploadExpiry <= 0 {
		opts.UploadExpiry = 24 * time.Hour
	}
	if opts.PlainExpiry <= 0 {
		opts.PlainExpiry = 2 * time.Minute
	}
	if opts.AheadWait <= 0 {
		opts.AheadWait = time.Second
	}
	return &Store{d: d, sessions: sessions, opts: opts}
}

// Close closes the driver.
func (s *Store) Close() error { return s.d.Close() }

// Expiry returns when session u expires: its last activity plus the expiry
// of its kind, as configured now.
func (s *Store) Expiry(u depot.Upload) time.Time {
	if u.Resumable {
		return u.Updated.Add(s.opts.UploadExpiry)
	}
	return u.Updated.Add(s.opts.PlainExpiry)
}

// CreateUpload starts an upload session for u.Key (u.ID, Offset, Created,
// Updated and Expires are set here). Nothing is visible until the session
// is completed and committed.
func (s *Store) CreateUpload(ctx context.Context, u depot.Upload) (depot.Upload, error) {
	if err := depot.ValidateKey(u.Key); err != nil {
		return depot.Upload{}, err
	}
	if u.DeclaredSize < -1 {
		return depot.Upload{}, depot.Errorf(depot.CodeInvalid, "declared size is negative")
	}
	if err := s.checkMax(u.DeclaredSize); err != nil {
		return depot.Upload{}, err
	}
	sum, err := normaliseSHA256(u.SHA256)
	if err != nil {
		return depot.Upload{}, err
	}
	if u.Class == "" {
		u.Class = depot.Permanent
	}
	if !u.Class.Valid() {
		return depot.Upload{}, depot.Errorf(depot.CodeInvalid, "file class must be permanent or temporary")
	}
	t := s.now()
	u.ID, u.SHA256, u.Offset, u.Created, u.Updated, u.Completed = NewID(), sum, 0, t, t, false
	sess := Session{Upload: u}
	st := sess.staging()
	if err := s.d.CreateStaging(ctx, st); err != nil {
		return depot.Upload{}, storageErr("create staging", err)
	}
	sess.DriverState = st.State
	if err := s.sessions.CreateSession(ctx, sess); err != nil {
		_ = s.d.DiscardStaging(context.WithoutCancel(ctx), st)
		return depot.Upload{}, err
	}
	return s.view(sess), nil
}

// Upload returns the current state of an open upload session.
func (s *Store) Upload(ctx context.Context, id string) (depot.Upload, error) {
	sess, err := s.load(ctx, id)
	if err != nil {
		return depot.Upload{}, err
	}
	return s.view(sess), nil
}

// Abort discards an upload session: its staging area, the object it may
// have been published as (a completion whose commit failed), and the
// session. It must not be called for a session whose commit succeeded; the
// commit removes the session, so that cannot happen through the Store.
func (s *Store) Abort(ctx context.Context, id string) error {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	sess, err := s.load(ctx, id)
	if err != nil {
		return err
	}
	return s.discard(ctx, sess)
}

// Expire discards session id if it is still idle since before idleBefore
// (it is checked again under the session's lock), and returns it. A
// session that an operation of this process holds is active and left
// (false); one held by another process (an append in progress) is waited
// for, a few seconds at most, and then checked again.
func (s *Store) Expire(ctx context.Context, id string, idleBefore time.Time) (depot.Upload, bool, error) {
	release, ok := s.locks.tryLock(id)
	if !ok {
		return depot.Upload{}, false, nil // busy: active
	}
	defer release()
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	unlockShared, err := s.sessions.LockSession(lctx, id)
	cancel()
	if err != nil {
		return depot.Upload{}, false, nil // busy elsewhere, or the lock cannot be had now: next run
	}
	defer unlockShared()
	sess, err := s.load(ctx, id)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		return depot.Upload{}, false, nil
	}
	if err != nil {
		return depot.Upload{}, false, err
	}
	if !sess.Updated.Before(idleBefore) {
		return depot.Upload{}, false, nil
	}
	if err := s.discard(ctx, sess); err != nil {
		return depot.Upload{}, false, err
	}
	return s.view(sess), true, nil
}

// discard removes a session, then its bytes: its staging area and the
// object it may have been published as. The session goes first, so that a
// commit running meanwhile in another process (which needs the session)
// fails rather than records an object being removed; a crash in between
// leaves bytes that no session or version references, which cleanup
// removes.
func (s *Store) discard(ctx context.Context, sess Session) error {
	ctx = context.WithoutCancel(ctx)
	if err := s.sessions.DeleteSession(ctx, sess.ID); err != nil {
		return err
	}
	if err := s.d.DiscardStaging(ctx, sess.staging()); err != nil {
		return storageErr("discard staging", err)
	}
	return storageErr("delete unpublished object", s.d.Delete(ctx, sess.ID))
}

func (s *Store) load(ctx context.Context, id string) (Session, error) {
	if !ValidID(id) {
		return Session{}, depot.Errorf(depot.CodeNotFound, "no such upload")
	}
	return s.sessions.Session(ctx, id)
}

// view is the session as callers see it, with its expiry.
func (s *Store) view(sess Session) depot.Upload {
	u := sess.Upload
	u.Expires = s.Expiry(u)
	return u
}

func (s *Store) checkMax(size int64) error {
	if s.opts.MaxObjectSize > 0 && size > s.opts.MaxObjectSize {
		return depot.Errorf(depot.CodeTooLarge, "the upload is larger than the limit of %d bytes", s.opts.MaxObjectSize)
	}
	return nil
}

func (s *Store) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now().UTC()
	}
	return time.Now().UTC()
}

// lock serialises the changes of session id: first within this process,
// then across processes through Sessions.LockSession. It waits until the
// session is free or ctx ends.
func (s *Store) lock(ctx context.Context, id string) (func(), error) {
	release, err := s.locks.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	unlockShared, err := s.sessions.LockSession(ctx, id)
	if err != nil {
		release()
		return nil, depot.WrapError(depot.CodeUnavailable, "upload is busy", err)
	}
	return func() { unlockShared(); release() }, nil
}

// storageErr maps a driver error to a client-safe *depot.Error.
func storageErr(what string, err error) error {
	if err == nil {
		return nil
	}
	var de *depot.Error
	if errors.As(err, &de) {
		return err
	}
	err = fmt.Errorf("%s: %w", what, err)
	switch {
	case errors.Is(err, ErrNotExist):
		return depot.WrapError(depot.CodeNotFound, "not found", err)
	case errors.Is(err, ErrNoSpace), errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return depot.WrapError(depot.CodeStorageFull, "the storage is full; nothing was stored", err)
	case errors.Is(err, ErrStagingLost):
		return depot.WrapError(depot.CodeNotFound, "the upload's last bytes were lost when the storage machine stopped; start a new upload", err)
	case errors.Is(err, ErrRewrite):
		return depot.WrapError(depot.CodeConflict, "the bytes differ from those sent earlier at this offset of the upload; start a new upload", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return depot.WrapError(depot.CodeUnavailable, "request cancelled", err)
	}
	return depot.WrapError(depot.CodeUnavailable, "storage unavailable", err)
}

func normaliseSHA256(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	s = strings.ToLower(s)
	if b, err := hex.DecodeString(s); err != nil || len(b) != 32 {
		return "", depot.Errorf(depot.CodeInvalid, "sha256 must be 64 hexadecimal characters")
	}
	return s, nil
}
