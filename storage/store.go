package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"depot"
)

// Options configure a Store.
type Options struct {
	// UploadExpiry is how long an upload session may stay idle before it
	// expires. Zero means 24 hours.
	UploadExpiry time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxObjectSize refuses uploads larger than this many bytes with
	// CodeTooLarge; 0 means no limit.
	MaxObjectSize int64
}

// Store is the portable storage type: it validates keys, hashes while
// streaming, keeps resumable upload sessions and publishes objects atomically
// through a Driver. It is safe for concurrent use.
type Store struct {
	d      Driver
	max    int64
	expiry time.Duration
	clock  func() time.Time
	locks  sessionLocks
	// pending holds each session's appends that are written but not yet
	// durable (see Append).
	pending pendingAppends
}

// New returns a Store over d.
func New(d Driver, opts Options) *Store {
	if opts.UploadExpiry <= 0 {
		opts.UploadExpiry = 24 * time.Hour
	}
	return &Store{d: d, max: opts.MaxObjectSize, expiry: opts.UploadExpiry, clock: opts.Now}
}

// ShareSessionLocks makes every change of an upload session also take
// lock(ctx, id), a lock shared by all the processes that use the same
// storage (services instances sharing an S3 bucket lock through their
// PostgreSQL database), so that two of them never append to one session at
// once: the second waits, then finds the new offset (and answers a
// conflict, or skips bytes it already has). Without it, sessions are locked
// within this process only. Call it before the Store is used.
func (s *Store) ShareSessionLocks(lock func(ctx context.Context, id string) (unlock func(), err error)) {
	s.locks.shared = lock
}

// Driver returns the underlying driver (for maintenance jobs).
func (s *Store) Driver() Driver { return s.d }

// UploadOptions describe a new upload session.
type UploadOptions struct {
	Size   int64  // declared size, -1 unknown
	SHA256 string // declared lowercase hex SHA-256, "" unknown
	Class  depot.Class
	Meta   map[string]string
}

// CreateUpload starts an upload session for key. Nothing is visible under key
// until Complete succeeds.
func (s *Store) CreateUpload(ctx context.Context, key string, opts UploadOptions) (depot.Upload, error) {
	if err := depot.ValidateKey(key); err != nil {
		return depot.Upload{}, err
	}
	if opts.Size < -1 {
		return depot.Upload{}, depot.Errorf(depot.CodeInvalid, "declared size is negative")
	}
	if s.max > 0 && opts.Size > s.max {
		return depot.Upload{}, depot.Errorf(depot.CodeTooLarge, "the upload is larger than the limit of %d bytes", s.max)
	}
	sum, err := normaliseSHA256(opts.SHA256)
	if err != nil {
		return depot.Upload{}, err
	}
	if opts.Class == "" {
		opts.Class = depot.Permanent
	}
	if !opts.Class.Valid() {
		return depot.Upload{}, depot.Errorf(depot.CodeInvalid, "file class must be permanent or temporary")
	}
	t := now(s.clock)
	rec := &record{Upload: depot.Upload{
		ID: newSessionID(), Key: key, DeclaredSize: opts.Size, SHA256: sum, Class: opts.Class,
		Created: t, Updated: t, Expires: t.Add(s.expiry), Meta: opts.Meta,
	}}
	st := rec.staging()
	if err := s.d.CreateStaging(ctx, st); err != nil {
		return depot.Upload{}, storageErr("create staging", err)
	}
	rec.DriverState = st.State
	if err := s.saveRecord(ctx, rec); err != nil {
		_ = s.d.DiscardStaging(context.WithoutCancel(ctx), rec.staging())
		return depot.Upload{}, err
	}
	return rec.Upload, nil
}

// Upload returns the current state of an upload session.
func (s *Store) Upload(ctx context.Context, id string) (depot.Upload, error) {
	rec, err := s.loadRecord(ctx, id)
	if err != nil {
		return depot.Upload{}, err
	}
	return rec.Upload, nil
}

// Complete verifies and publishes an upload. wantSize (-1: none) and
// wantSHA256 ("": none) are checked in addition to what was declared at
// creation. On a size shortfall the session is kept so that the client can
// continue; on a checksum mismatch it is discarded and nothing is committed.
func (s *Store) Complete(ctx context.Context, id string, wantSize int64, wantSHA256 string) (depot.Object, error) {
	return s.complete(ctx, id, wantSize, wantSHA256, true)
}

// complete commits session id; keep leaves a completed record behind until
// it expires (for resumable clients), otherwise the record is removed.
func (s *Store) complete(ctx context.Context, id string, wantSize int64, wantSHA256 string, keep bool) (depot.Object, error) {
	unlock, err := s.lockSettled(ctx, id)
	if err != nil {
		return depot.Object{}, err
	}
	defer unlock()
	rec, err := s.loadRecord(ctx, id)
	if err != nil {
		return depot.Object{}, err
	}
	u := rec.Upload
	if u.Completed {
		obj := depot.Object{Key: u.Key, Size: u.Offset, SHA256: u.SHA256, ModTime: u.Updated, Class: u.Class}
		if want, _ := normaliseSHA256(wantSHA256); (want != "" && want != u.SHA256) || (wantSize >= 0 && wantSize != u.Offset) {
			return depot.Object{}, depot.Errorf(depot.CodeConflict, "the upload was completed with other content")
		}
		return obj, &AlreadyCompleted{Object: obj}
	}
	for _, size := range []int64{u.DeclaredSize, wantSize} {
		if size >= 0 && size != u.Offset {
			return depot.Object{}, depot.Errorf(depot.CodeSizeMismatch, "received %d bytes, expected %d", u.Offset, size)
		}
	}
	h, err := rec.hasher()
	if err != nil {
		return depot.Object{}, depot.WrapError(depot.CodeInternal, "corrupt upload session", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	want, err := normaliseSHA256(wantSHA256)
	if err != nil {
		return depot.Object{}, err
	}
	for _, w := range []string{u.SHA256, want} {
		if w != "" && w != sum {
			s.discard(ctx, rec)
			return depot.Object{}, depot.Errorf(depot.CodeHashMismatch, "SHA-256 of the received bytes does not match the declared one")
		}
	}
	st := rec.staging()
	if err := s.d.Commit(ctx, st, u.Offset, Attrs{SHA256: sum, Class: string(u.Class)}); err != nil {
		return depot.Object{}, storageErr("commit", err)
	}
	if !keep {
		if err := s.d.DeleteSession(context.WithoutCancel(ctx), id); err != nil {
			return depot.Object{}, storageErr("delete session record", err)
		}
		return depot.Object{Key: u.Key, Size: u.Offset, SHA256: sum, ModTime: now(s.clock), Class: u.Class}, nil
	}
	done := *rec
	done.Upload.Completed, done.Upload.SHA256, done.Upload.Updated = true, sum, now(s.clock)
	done.Upload.Expires = done.Upload.Updated.Add(s.expiry)
	done.HashState, done.DriverState = nil, nil
	if err := s.saveRecord(context.WithoutCancel(ctx), &done); err != nil {
		// The object is committed; without its tombstone a lost answer
		// cannot be recovered, but nothing is inconsistent.
		_ = s.d.DeleteSession(context.WithoutCancel(ctx), id)
	}
	return depot.Object{Key: u.Key, Size: u.Offset, SHA256: sum, ModTime: done.Upload.Updated, Class: u.Class}, nil
}

// AlreadyCompleted is returned (with the object) by Complete for a session
// that an earlier call already committed: the caller must not record the
// upload a second time.
type AlreadyCompleted struct{ Object depot.Object }

func (e *AlreadyCompleted) Error() string { return "upload already completed" }

// Abort discards an upload session and its staged bytes.
func (s *Store) Abort(ctx context.Context, id string) error {
	unlock, err := s.lockSettled(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	rec, err := s.loadRecord(ctx, id)
	if err != nil {
		return err
	}
	if rec.Upload.Completed {
		return storageErr("delete session record", s.d.DeleteSession(context.WithoutCancel(ctx), id))
	}
	return s.discard(ctx, rec)
}

func (s *Store) discard(ctx context.Context, rec *record) error {
	ctx = context.WithoutCancel(ctx)
	if err := s.d.DiscardStaging(ctx, rec.staging()); err != nil {
		return storageErr("discard staging", err)
	}
	if err := s.d.DeleteSession(ctx, rec.Upload.ID); err != nil {
		return storageErr("delete session record", err)
	}
	return nil
}

// Uploads lists every open (not completed) upload session.
func (s *Store) Uploads(ctx context.Context) ([]depot.Upload, error) {
	all, err := s.sessions(ctx)
	if err != nil {
		return nil, err
	}
	open := all[:0]
	for _, u := range all {
		if !u.Completed {
			open = append(open, u)
		}
	}
	return open, nil
}

// sessions lists every session record, completed ones included.
func (s *Store) sessions(ctx context.Context) ([]depot.Upload, error) {
	ids, err := s.d.ListSessions(ctx)
	if err != nil {
		return nil, storageErr("list sessions", err)
	}
	out := make([]depot.Upload, 0, len(ids))
	for _, id := range ids {
		rec, err := s.loadRecord(ctx, id)
		if depot.ErrorCode(err) == depot.CodeNotFound {
			continue // completed or aborted meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, rec.Upload)
	}
	return out, nil
}

// ExpireUploads aborts every open session whose expiry is before now and
// returns them; the records kept for completed uploads are dropped silently
// once expired. A session locked by an operation in progress is skipped: it
// is active.
func (s *Store) ExpireUploads(ctx context.Context) ([]depot.Upload, error) {
	ups, err := s.sessions(ctx)
	if err != nil {
		return nil, err
	}
	var expired []depot.Upload
	t := now(s.clock)
	for _, u := range ups {
		if !u.Expires.Before(t) {
			continue
		}
		lctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
		unlock, err := s.locks.lock(lctx, u.ID)
		cancel()
		if err != nil {
			continue
		}
		if s.pending.get(u.ID) != nil { // chunks are being stored: active
			unlock()
			continue
		}
		rec, err := s.loadRecord(ctx, u.ID)
		switch {
		case err != nil || !rec.Upload.Expires.Before(t):
		case rec.Upload.Completed:
			err = s.d.DeleteSession(ctx, u.ID)
		default:
			if err = s.discard(ctx, rec); err == nil {
				expired = append(expired, rec.Upload)
			}
		}
		unlock()
		if err != nil && depot.ErrorCode(err) != depot.CodeNotFound {
			return expired, err
		}
	}
	return expired, nil
}

func offsetMismatch(cur int64) error {
	return &depot.Error{Code: depot.CodeOffsetMismatch, Message: fmt.Sprintf("expected offset %d", cur), Err: OffsetError{Current: cur}}
}

// OffsetError carries the current offset of a session inside a
// CodeOffsetMismatch error.
type OffsetError struct{ Current int64 }

func (e OffsetError) Error() string { return fmt.Sprintf("current offset is %d", e.Current) }

// CurrentOffset extracts the current offset from an offset-mismatch error.
func CurrentOffset(err error) (int64, bool) {
	var oe OffsetError
	if errors.As(err, &oe) {
		return oe.Current, true
	}
	return 0, false
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
