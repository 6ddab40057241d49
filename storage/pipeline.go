package storage

import (
	"context"
	"io"
	"sync"

	"depot"
)

// DeferredSyncer is an optional driver capability that lets the Store write
// the next chunk of an upload while the previous chunk is being made
// durable. WriteStagingUnsynced is WriteStaging without the last step: the
// bytes are written (readable, and kept if the process dies) but not yet
// durable. SyncStaging makes every byte written to st so far durable.
// SyncStaging and PutSession for a session may run while
// WriteStagingUnsynced writes further bytes of the same session.
type DeferredSyncer interface {
	WriteStagingUnsynced(ctx context.Context, st *Staging, offset int64, r io.Reader) (int64, error)
	SyncStaging(ctx context.Context, st *Staging) error
}

// pendingAppend is an Append whose bytes are written and whose record is
// being made durable: its bytes are synced, then, once the append before
// it (prev) is durable, its record is saved. Appends to one session thus
// become durable in order, and one whose predecessor failed fails too
// (the bytes it wrote lie past the durable offset and are overwritten by
// the next Append).
type pendingAppend struct {
	rec  *record // the session record after this append; not modified
	prev *pendingAppend
	done chan struct{}
	err  error // set before done is closed
}

// wait blocks until the append is durable or has failed, or ctx ends.
func (p *pendingAppend) wait(ctx context.Context) error {
	if err := p.settled(ctx); err != nil {
		return err
	}
	return p.err
}

// settled blocks until the append has finished, durable or not, and
// returns an error only when ctx ends first.
func (p *pendingAppend) settled(ctx context.Context) error {
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return depot.WrapError(depot.CodeUnavailable, "request cancelled", context.Cause(ctx))
	}
}

func (p *pendingAppend) finished() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// pendingAppends holds the last pending append of each session.
type pendingAppends struct {
	mu   sync.Mutex
	last map[string]*pendingAppend
}

// get returns the last append of session id that is not yet durable, or nil.
func (pa *pendingAppends) get(id string) *pendingAppend {
	pa.mu.Lock()
	defer pa.mu.Unlock()
	if p := pa.last[id]; p != nil && !p.finished() {
		return p
	}
	return nil
}

func (pa *pendingAppends) set(id string, p *pendingAppend) {
	pa.mu.Lock()
	defer pa.mu.Unlock()
	if pa.last == nil {
		pa.last = make(map[string]*pendingAppend)
	}
	pa.last[id] = p
}

// forget drops p once it has finished, unless a later append replaced it.
func (pa *pendingAppends) forget(id string, p *pendingAppend) {
	pa.mu.Lock()
	defer pa.mu.Unlock()
	if pa.last[id] == p {
		delete(pa.last, id)
	}
}

// commitAppend makes the bytes of p durable (ds.SyncStaging), waits for
// the append before it, saves p's record and reports the outcome on p. It
// runs after the session lock is released, so that the next Append of the
// session writes its bytes meanwhile. It ignores the caller's cancellation:
// the bytes are already written.
func (s *Store) commitAppend(ctx context.Context, ds DeferredSyncer, st *Staging, p *pendingAppend) {
	ctx = context.WithoutCancel(ctx)
	defer s.pending.forget(p.rec.Upload.ID, p)
	defer close(p.done)
	syncErr := ds.SyncStaging(ctx, st)
	var prevErr error
	if p.prev != nil {
		// Waited for even when the sync failed: p is done only after every
		// earlier append is, so that a caller of lockSettled finds no
		// record save still running.
		prevErr = p.prev.wait(ctx)
	}
	switch {
	case syncErr != nil:
		p.err = storageErr("sync staging", syncErr)
	case prevErr != nil:
		p.err = depot.WrapError(depot.CodeUnavailable, "an earlier chunk of this upload was not stored", prevErr)
	default:
		p.err = s.saveRecord(ctx, p.rec)
	}
}

// lockSettled takes the session lock and then waits until every append of
// the session is durable or has failed, so that the caller sees the
// session's durable record.
func (s *Store) lockSettled(ctx context.Context, id string) (func(), error) {
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return nil, err
	}
	if p := s.pending.get(id); p != nil {
		if err := p.settled(ctx); err != nil {
			unlock()
			return nil, err
		}
	}
	return unlock, nil
}
