package storage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"depot"
)

// Stored is an object the Store wrote: its ID, size and SHA-256.
type Stored struct {
	ID     string
	Size   int64
	SHA256 string
}

// Want is what a completion checks besides the session's declared size and
// SHA-256: Size -1 and SHA256 "" check nothing more.
type Want struct {
	Size   int64
	SHA256 string
}

// Complete verifies session id and publishes it as the object id, then calls
// commit with it, all under the session's lock. commit records the object
// as a new version and removes the session in one transaction (services);
// if it fails, the session and the published object stay as they are, so
// that a retry of Complete commits again (Publish of a published object is
// a no-op) and cleanup can remove both when the session expires.
//
// A size that differs from the declared or wanted one is CodeSizeMismatch
// and keeps the session (the client may continue); a SHA-256 that differs
// is CodeHashMismatch and discards the session and its bytes. A session
// that no longer exists (committed, aborted or expired) is CodeNotFound.
func (s *Store) Complete(ctx context.Context, id string, want Want, commit func(context.Context, Stored) error) (Stored, error) {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return Stored{}, err
	}
	defer unlock()
	sess, err := s.load(ctx, id)
	if err != nil {
		return Stored{}, err
	}
	for _, size := range []int64{sess.DeclaredSize, want.Size} {
		if size >= 0 && size != sess.Offset {
			return Stored{}, depot.Errorf(depot.CodeSizeMismatch, "received %d bytes, expected %d", sess.Offset, size)
		}
	}
	wantSum, err := normaliseSHA256(want.SHA256)
	if err != nil {
		return Stored{}, err
	}
	h, err := s.hasher(sess)
	if err != nil {
		return Stored{}, depot.WrapError(depot.CodeInternal, "corrupt upload session", err)
	}
	obj := Stored{ID: id, Size: sess.Offset, SHA256: hex.EncodeToString(h.Sum(nil))}
	for _, w := range []string{sess.SHA256, wantSum} {
		if w != "" && w != obj.SHA256 {
			if err := s.discard(ctx, sess); err != nil {
				return Stored{}, err
			}
			return Stored{}, depot.Errorf(depot.CodeHashMismatch, "SHA-256 of the received bytes does not match the declared one")
		}
	}
	st := sess.staging()
	st.Checkpoint = s.checkpoint(sess)
	if err := s.d.Publish(ctx, st, obj.Size); err != nil {
		return Stored{}, storageErr("publish", err)
	}
	if sess.Lazy { // published is durable: a failed commit leaves nothing for Sync to do
		p := Progress{Offset: sess.Offset, HashState: sess.HashState, DriverState: st.State, Last: sess.Last, Updated: s.now()}
		if err := s.sessions.SaveProgress(ctx, id, p); err != nil {
			return Stored{}, err
		}
	}
	if err := commit(ctx, obj); err != nil {
		return Stored{}, err
	}
	return obj, nil
}

// Put stores c (at offset 0) as a new object in one call, without a
// session: for bodies small enough to be sent, and retried, whole. It
// checks c's CRC-32C, sha256 (when not "") and the size limit, and returns
// the object, which nothing references yet: the caller commits it as a
// version or deletes it. On failure nothing is left behind but what
// cleanup removes as a stray after a crash.
func (s *Store) Put(ctx context.Context, c Chunk, sha256Hex string) (Stored, error) {
	want, err := normaliseSHA256(sha256Hex)
	if err != nil {
		return Stored{}, err
	}
	if c.Offset != 0 || c.Length < 0 {
		return Stored{}, depot.Errorf(depot.CodeInvalid, "a one-shot upload starts at offset 0 and has a length")
	}
	if err := s.checkMax(c.Length); err != nil {
		return Stored{}, err
	}
	h := sha256.New()
	body := newCheckedReader(c, h)
	id := NewID()
	var n int64
	if p, ok := s.d.(ObjectPutter); ok {
		err = p.PutObject(ctx, id, body, c.Length)
		n = body.n
		if err = body.verdict(n, err); err != nil {
			_ = s.d.Delete(context.WithoutCancel(ctx), id)
			return Stored{}, err
		}
	} else {
		st := &Staging{ID: id}
		if err := s.d.CreateStaging(ctx, st); err != nil {
			return Stored{}, storageErr("create staging", err)
		}
		n, err = s.d.WriteStaging(ctx, st, 0, body)
		if err = body.verdict(n, err); err == nil {
			err = storageErr("publish", s.d.Publish(ctx, st, n))
		}
		if err != nil {
			_ = s.d.DiscardStaging(context.WithoutCancel(ctx), st)
			return Stored{}, err
		}
	}
	obj := Stored{ID: id, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}
	if want != "" && want != obj.SHA256 {
		_ = s.d.Delete(context.WithoutCancel(ctx), id)
		return Stored{}, depot.Errorf(depot.CodeHashMismatch, "SHA-256 of the received bytes does not match the declared one")
	}
	return obj, nil
}
