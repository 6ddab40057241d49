package storage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"

	"depot"
)

// record is the durable state of one upload session, persisted through
// Driver.PutSession after every successful change. It is the source of truth
// for the offset: staged bytes past Upload.Offset are ignored and overwritten.
// Records written before the whole-upload CRC-32C was dropped also hold a
// "crc_state"; it is ignored.
type record struct {
	Upload      depot.Upload `json:"upload"`
	HashState   []byte       `json:"hash_state"`   // marshalled sha256 state at Upload.Offset
	DriverState []byte       `json:"driver_state"` // Staging.State
}

func (rec *record) staging() *Staging {
	return &Staging{ID: rec.Upload.ID, Key: rec.Upload.Key, State: rec.DriverState}
}

// hasher returns the upload's running SHA-256, restored at Upload.Offset.
func (rec *record) hasher() (hash.Hash, error) {
	h := sha256.New()
	if len(rec.HashState) > 0 {
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(rec.HashState); err != nil {
			return nil, fmt.Errorf("restore hash state of session %s: %w", rec.Upload.ID, err)
		}
	}
	return h, nil
}

func (rec *record) saveHasher(h hash.Hash) error {
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return fmt.Errorf("save hash state: %w", err)
	}
	rec.HashState = state
	return nil
}

func (s *Store) loadRecord(ctx context.Context, id string) (*record, error) {
	if !validSessionID(id) {
		return nil, depot.Errorf(depot.CodeNotFound, "no such upload")
	}
	raw, err := s.d.GetSession(ctx, id)
	if errors.Is(err, ErrNotExist) {
		return nil, depot.WrapError(depot.CodeNotFound, "no such upload", err)
	}
	if err != nil {
		return nil, storageErr("read upload session", err)
	}
	var rec record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, depot.WrapError(depot.CodeInternal, "corrupt upload session", err)
	}
	return &rec, nil
}

func (s *Store) saveRecord(ctx context.Context, rec *record) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	if err := s.d.PutSession(ctx, rec.Upload.ID, raw); err != nil {
		return storageErr("write upload session", err)
	}
	return nil
}

// newSessionID returns 128 random bits in hex.
func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux (Go ≥1.24 panics instead)
	return hex.EncodeToString(b[:])
}

func validSessionID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for _, c := range id {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// sessionLocks serialises operations on one session inside this process,
// and across processes when shared is set (see Store.ShareSessionLocks).
// The shared lock of a session is taken by the first operation that needs
// it and kept while any operation or hold (see hold) of this process still
// needs it, so that appends whose bytes are still being made durable keep
// other processes away from the session without keeping the next append
// of this process waiting.
type sessionLocks struct {
	mu     sync.Mutex
	locks  map[string]*sessionLock
	shared func(ctx context.Context, id string) (func(), error)
}

type sessionLock struct {
	mu   sync.Mutex // held by the operation that changes the session
	refs int        // operations waiting for or holding mu, plus holds

	sharedRefs   int    // holders of mu and holds that need the shared lock
	unlockShared func() // releases the shared lock, when sharedRefs > 0
}

// lock blocks until the session id is free or ctx ends, and returns the
// function that releases it.
func (l *sessionLocks) lock(ctx context.Context, id string) (func(), error) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = make(map[string]*sessionLock)
	}
	sl := l.locks[id]
	if sl == nil {
		sl = &sessionLock{}
		l.locks[id] = sl
	}
	sl.refs++
	l.mu.Unlock()

	acquired := make(chan struct{})
	go func() { sl.mu.Lock(); close(acquired) }()
	select {
	case <-acquired:
	case <-ctx.Done():
		go func() { <-acquired; sl.mu.Unlock(); l.release(id, sl, false) }()
		return nil, depot.WrapError(depot.CodeUnavailable, "upload is busy", context.Cause(ctx))
	}
	if l.shared == nil {
		return func() { sl.mu.Unlock(); l.release(id, sl, false) }, nil
	}
	l.mu.Lock()
	inherited := sl.sharedRefs > 0 // held for appends still being made durable
	if inherited {
		sl.sharedRefs++
	}
	l.mu.Unlock()
	if !inherited {
		// Nobody else in this process can change sharedRefs now: holds are
		// only taken by the holder of sl.mu, and there are none.
		unlockShared, err := l.shared(ctx, id)
		if err != nil {
			sl.mu.Unlock()
			l.release(id, sl, false)
			return nil, depot.WrapError(depot.CodeUnavailable, "upload is busy", err)
		}
		l.mu.Lock()
		sl.sharedRefs, sl.unlockShared = 1, unlockShared
		l.mu.Unlock()
	}
	return func() { sl.mu.Unlock(); l.release(id, sl, true) }, nil
}

// hold keeps session id referenced, and its shared lock taken, until the
// returned function is called. The caller must hold the session's lock.
func (l *sessionLocks) hold(id string) func() {
	l.mu.Lock()
	sl := l.locks[id]
	sl.refs++
	if l.shared != nil {
		sl.sharedRefs++
	}
	l.mu.Unlock()
	return func() { l.release(id, sl, l.shared != nil) }
}

// release drops one reference to sl (and one to its shared lock when
// shared), releasing the shared lock and forgetting sl when they end.
func (l *sessionLocks) release(id string, sl *sessionLock, shared bool) {
	var unlockShared func()
	l.mu.Lock()
	if shared {
		if sl.sharedRefs--; sl.sharedRefs == 0 {
			unlockShared, sl.unlockShared = sl.unlockShared, nil
		}
	}
	if sl.refs--; sl.refs == 0 {
		delete(l.locks, id)
	}
	l.mu.Unlock()
	if unlockShared != nil {
		unlockShared()
	}
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
	if errors.Is(err, ErrNotExist) {
		return depot.WrapError(depot.CodeNotFound, "not found", fmt.Errorf("%s: %w", what, err))
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return depot.WrapError(depot.CodeUnavailable, "request cancelled", fmt.Errorf("%s: %w", what, err))
	}
	return depot.WrapError(depot.CodeUnavailable, "storage unavailable", fmt.Errorf("%s: %w", what, err))
}

func now(f func() time.Time) time.Time {
	if f != nil {
		return f().UTC()
	}
	return time.Now().UTC()
}
