package storage

import (
	"context"
	"sync"

	"depot"
)

// sessionLocks are the in-process locks of sessions: a one-slot channel per
// session in use, dropped when nobody holds, waits for or watches it.
type sessionLocks struct {
	mu    sync.Mutex
	locks map[string]*sessionLock
}

type sessionLock struct {
	slot     chan struct{}
	refs     int
	advanced chan struct{} // closed when the session's offset moves; nil until watched
}

// ref returns the entry of session id, counted as in use until release.
func (l *sessionLocks) ref(id string) *sessionLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locks == nil {
		l.locks = make(map[string]*sessionLock)
	}
	sl := l.locks[id]
	if sl == nil {
		sl = &sessionLock{slot: make(chan struct{}, 1)}
		l.locks[id] = sl
	}
	sl.refs++
	return sl
}

func (l *sessionLocks) release(id string, sl *sessionLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sl.refs--; sl.refs == 0 {
		delete(l.locks, id)
	}
}

func (l *sessionLocks) lock(ctx context.Context, id string) (func(), error) {
	sl := l.ref(id)
	select {
	case sl.slot <- struct{}{}:
		return func() { <-sl.slot; l.release(id, sl) }, nil
	case <-ctx.Done():
		l.release(id, sl)
		return nil, depot.WrapError(depot.CodeUnavailable, "upload is busy", context.Cause(ctx))
	}
}

// tryLock takes the lock of session id if it is free at once.
func (l *sessionLocks) tryLock(id string) (func(), bool) {
	sl := l.ref(id)
	select {
	case sl.slot <- struct{}{}:
		return func() { <-sl.slot; l.release(id, sl) }, true
	default:
		l.release(id, sl)
		return nil, false
	}
}

// watch returns a channel closed the next time advance(id) is called in
// this process, and the function that stops watching.
func (l *sessionLocks) watch(id string) (<-chan struct{}, func()) {
	sl := l.ref(id)
	l.mu.Lock()
	defer l.mu.Unlock()
	if sl.advanced == nil {
		sl.advanced = make(chan struct{})
	}
	return sl.advanced, func() { l.release(id, sl) }
}

// advance wakes the watchers of session id: its offset moved.
func (l *sessionLocks) advance(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sl := l.locks[id]; sl != nil && sl.advanced != nil {
		close(sl.advanced)
		sl.advanced = nil
	}
}
