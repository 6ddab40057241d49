package storage

import (
	"context"
	"errors"
	"io"

	"depot"
)

// Append writes r at offset. offset must equal the session's current offset,
// except that bytes already received may be sent again: they are compared
// with what is stored and, if equal, harmlessly skipped (a chunk retried after
// a lost response). A wrong offset returns CodeOffsetMismatch and the current
// state; bytes beyond the declared size return CodeSizeMismatch and advance
// nothing. The new offset is durable when Append returns.
//
// With a driver that is a DeferredSyncer, Append releases the session once
// its bytes are written and makes them durable afterwards: the next Append
// of the session may write its bytes meanwhile, continuing from this one's
// offset, and returns only after this one is durable (or fails with it).
func (s *Store) Append(ctx context.Context, id string, offset int64, r io.Reader) (depot.Upload, error) {
	return s.StartAppend(ctx, id, offset, r)()
}

// StartAppend is Append in two steps: it returns once the bytes of r are
// written (or the append has failed), and the function it returns waits
// until they are durable and returns what Append would. The next
// StartAppend of the session may be called before that function, so that
// a caller streaming many segments writes one while the one before is made
// durable. The returned function must be called.
func (s *Store) StartAppend(ctx context.Context, id string, offset int64, r io.Reader) (wait func() (depot.Upload, error)) {
	// On failure the state returned is the durable one, not that of an
	// append still being made durable.
	durable := func(u depot.Upload) depot.Upload {
		if d, err := s.Upload(context.WithoutCancel(ctx), id); err == nil {
			return d
		}
		return u
	}
	u, p, err := s.appendStart(ctx, id, offset, r)
	if p == nil {
		return func() (depot.Upload, error) {
			if err != nil {
				// Read when waited for: appends started before this one
				// may have become durable since.
				u = durable(u)
			}
			return u, err
		}
	}
	return func() (depot.Upload, error) {
		if err := p.wait(ctx); err != nil {
			return durable(u), err
		}
		return p.rec.Upload, nil
	}
}

// appendStart does the work of Append up to the written bytes. It returns
// the pending append that makes them durable, or nil with Append's result.
func (s *Store) appendStart(ctx context.Context, id string, offset int64, r io.Reader) (depot.Upload, *pendingAppend, error) {
	unlock, err := s.locks.lock(ctx, id)
	if err != nil {
		return depot.Upload{}, nil, err
	}
	defer unlock()
	rec, prev, err := s.appendBase(ctx, id, offset)
	if err != nil {
		return depot.Upload{}, nil, err
	}
	cur := rec.Upload.Offset
	if rec.Upload.Completed {
		if n, _ := io.ReadFull(r, make([]byte, 1)); n == 0 && offset == cur {
			return rec.Upload, nil, nil
		}
		return rec.Upload, nil, depot.Errorf(depot.CodeConflict, "the upload is already complete")
	}
	if offset < 0 || offset > cur {
		return rec.Upload, nil, offsetMismatch(cur)
	}
	if offset < cur {
		same, consumed, err := s.compareStaged(ctx, rec, offset, cur-offset, r)
		if err != nil {
			return rec.Upload, nil, err
		}
		if !same {
			return rec.Upload, nil, depot.Errorf(depot.CodeConflict, "bytes at offset %d differ from those already received", offset)
		}
		if consumed < cur-offset { // the whole body was already stored
			return rec.Upload, nil, nil
		}
	}
	h, err := rec.hasher()
	if err != nil {
		return rec.Upload, nil, depot.WrapError(depot.CodeInternal, "corrupt upload session", err)
	}
	body := r
	if rec.Upload.DeclaredSize >= 0 {
		body = io.LimitReader(r, rec.Upload.DeclaredSize-cur+1)
	} else if s.max > 0 {
		body = io.LimitReader(r, s.max-cur+1)
	}
	st := rec.staging()
	ds, deferSync := s.d.(DeferredSyncer)
	write := s.d.WriteStaging
	if deferSync {
		write = ds.WriteStagingUnsynced
	}
	hr := newOverlapHashReader(body, h)
	n, err := write(ctx, st, cur, hr)
	hr.Wait()
	if err != nil {
		return rec.Upload, nil, storageErr("write staging", err)
	}
	if rec.Upload.DeclaredSize >= 0 && cur+n > rec.Upload.DeclaredSize {
		return rec.Upload, nil, depot.Errorf(depot.CodeSizeMismatch, "body is longer than the declared size of %d bytes", rec.Upload.DeclaredSize)
	}
	if s.max > 0 && cur+n > s.max {
		return rec.Upload, nil, depot.Errorf(depot.CodeTooLarge, "the upload is larger than the limit of %d bytes", s.max)
	}
	next := *rec
	next.Upload.Offset = cur + n
	next.Upload.Updated = now(s.clock)
	next.Upload.Expires = next.Upload.Updated.Add(s.expiry)
	next.DriverState = st.State
	if err := next.saveHasher(h); err != nil {
		return rec.Upload, nil, err
	}
	if !deferSync || n == 0 {
		if n == 0 {
			// Nothing new; the offset is durable once prev (if any) is.
			return rec.Upload, prev, nil
		}
		if err := s.saveRecord(ctx, &next); err != nil {
			return rec.Upload, nil, err
		}
		return next.Upload, nil, nil
	}
	p := &pendingAppend{rec: &next, prev: prev, done: make(chan struct{})}
	s.pending.set(id, p)
	// Until p is durable, the session stays locked against other
	// processes (but not against the next append of this one).
	release := s.locks.hold(id)
	go func() {
		defer release()
		s.commitAppend(ctx, ds, st, p)
	}()
	return rec.Upload, p, nil
}

// appendBase returns the record an Append at offset continues from: the
// record of the session's last pending append (with that append, prev),
// so that consecutive chunks write while earlier ones are made durable,
// or else the durable record. A retried or misplaced chunk (offset other
// than the pending offset) and a completed session wait for the pending
// appends and see the durable record. Called with the session lock held.
func (s *Store) appendBase(ctx context.Context, id string, offset int64) (*record, *pendingAppend, error) {
	if p := s.pending.get(id); p != nil {
		if offset == p.rec.Upload.Offset && !p.rec.Upload.Completed {
			return p.rec, p, nil
		}
		if err := p.settled(ctx); err != nil {
			return nil, nil, err
		}
	}
	rec, err := s.loadRecord(ctx, id)
	return rec, nil, err
}

// compareStaged compares up to length bytes of r with the staged bytes at
// offset. It reports whether they were equal and how many bytes of r it read
// (fewer than length when r ended early).
func (s *Store) compareStaged(ctx context.Context, rec *record, offset, length int64, r io.Reader) (bool, int64, error) {
	stored, err := s.d.ReadStaging(ctx, rec.staging(), offset, length)
	if errors.Is(err, ErrUnsupported) {
		// The driver cannot read back that far (S3 parts): the bytes cannot
		// be compared, so the client must continue from the current offset.
		return false, 0, offsetMismatch(rec.Upload.Offset)
	}
	if err != nil {
		return false, 0, storageErr("read staging", err)
	}
	defer stored.Close()
	a, b := make([]byte, 256<<10), make([]byte, 256<<10)
	var consumed int64
	for consumed < length {
		want := min(int64(len(a)), length-consumed)
		n, rerr := io.ReadFull(r, a[:want])
		if n > 0 {
			if _, err := io.ReadFull(stored, b[:n]); err != nil {
				return false, consumed, storageErr("read staging", err)
			}
			if string(a[:n]) != string(b[:n]) {
				return false, consumed, nil
			}
			consumed += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return true, consumed, nil
		}
		if rerr != nil {
			return false, consumed, depot.WrapError(depot.CodeInvalid, "request body ended early", rerr)
		}
	}
	return true, consumed, nil
}
