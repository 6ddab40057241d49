package storage

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"strings"
	"time"

	"depot"
)

// Chunk is one append: Length bytes of Body at Offset, whose CRC-32C
// (Castagnoli) the sender computed as CRC32C. The bytes count only if all
// of them arrive and match it.
type Chunk struct {
	Offset int64
	Length int64
	CRC32C uint32
	Body   io.Reader
	// Lazy says that more chunks of the same request follow: the chunk
	// need not be durable when Append returns (Staging.Lazy). The last
	// chunk of a request, a commit and Sync make the session durable.
	Lazy bool
}

// Mark returns the chunk's place and checksum.
func (c Chunk) Mark() ChunkMark {
	return ChunkMark{Offset: c.Offset, Length: c.Length, CRC32C: c.CRC32C}
}

// ErrDamaged is wrapped by the error of a chunk whose bytes arrived
// incomplete or differ from its CRC-32C: damaged in transit (or in a
// sender's memory). Nothing of it counts; the sender should send it again.
var ErrDamaged = errors.New("the bytes received differ from the bytes sent")

// castagnoli is the CRC-32C table of chunk checks.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Append writes chunk c to session id at c.Offset, which must be the
// session's current offset: write, make durable, then record the new
// offset and hash state, all before it returns. A retry of the session's
// last chunk (same offset, length and CRC-32C, after its answer was lost)
// is answered with the current state and nothing written; any other offset
// is CodeOffsetMismatch, carrying the current offset (depot.CurrentOffset). A
// chunk past the declared size is CodeSizeMismatch. A chunk whose bytes do
// not all arrive or do not match its CRC-32C fails with an error wrapping
// ErrDamaged and leaves the session as it was.
func (s *Store) Append(ctx context.Context, id string, c Chunk) (depot.Upload, error) {
	if c.Offset < 0 || c.Length < 0 {
		return depot.Upload{}, depot.Errorf(depot.CodeInvalid, "negative offset or length")
	}
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
	switch {
	case c.Offset == cur:
	case c.Offset+c.Length == cur && sess.Last == c.Mark() && c.Length > 0:
		return s.view(sess), nil // a retry of the last chunk, which landed
	default:
		return s.view(sess), offsetMismatch(cur)
	}
	return s.write(ctx, sess, c)
}

// write appends c to session sess, at its offset, under its lock.
func (s *Store) write(ctx context.Context, sess Session, c Chunk) (depot.Upload, error) {
	id, cur := sess.ID, sess.Offset
	h, err := s.appendable(sess, c.Length)
	if err != nil {
		return s.view(sess), err
	}
	st := sess.staging()
	st.Lazy = c.Lazy
	body := newCheckedReader(c, h)
	st.Verify = func() error { return body.verdict(body.n, nil) }
	st.Checkpoint = s.checkpoint(sess)
	st.TakeHash = body.takeHash
	n, err := s.d.WriteStaging(ctx, st, cur, body)
	if errors.Is(err, ErrStagingLost) {
		_ = s.discard(ctx, sess) // nothing can continue it; CodeNotFound from now on
		return depot.Upload{}, storageErr("write staging", err)
	}
	if err = body.verdict(n, err); err != nil {
		return s.view(sess), err
	}
	state, err := s.marshalHash(h)
	if err != nil {
		return s.view(sess), err
	}
	p := Progress{Offset: cur + n, HashState: state, DriverState: st.State, Last: c.Mark(), Updated: s.now(), Lazy: c.Lazy}
	if c.Length == 0 {
		p.Last = sess.Last // an empty chunk (Sync) leaves the last chunk's retry recognisable
	}
	if err := s.sessions.SaveProgress(ctx, id, p); err != nil {
		return s.view(sess), err
	}
	sess.Offset, sess.HashState, sess.DriverState, sess.Last, sess.Updated = p.Offset, p.HashState, p.DriverState, p.Last, p.Updated
	s.locks.advance(id)
	return s.view(sess), nil
}

// Sync makes every byte that Append accepted for session id durable when
// its last chunk was lazy, as the last chunk of a request does (an empty
// chunk without Lazy), and returns the session. Callers sync before they
// report a session's offset to a client that resumes it, in case the
// request that appended its last chunks ended before its last one.
func (s *Store) Sync(ctx context.Context, id string) (depot.Upload, error) {
	unlock, err := s.lock(ctx, id)
	if err != nil {
		return depot.Upload{}, err
	}
	defer unlock()
	sess, err := s.load(ctx, id)
	if err != nil || !sess.Lazy {
		return s.view(sess), err
	}
	return s.write(ctx, sess, Chunk{Offset: sess.Offset, Body: strings.NewReader("")})
}

// aheadPoll is how often AwaitOffset reads the session again when no append
// of this process wakes it (the chunk before may be appended by another
// services process).
const aheadPoll = 20 * time.Millisecond

// AwaitOffset waits until session id has reached offset, for at most
// Options.AheadWait, and reports whether it has. A sender keeps two chunks on the
// wire (apiclient), so the second may arrive while the first is still
// being appended; waiting for it here, without holding the session, lets
// the second follow the first at once instead of failing with an offset
// mismatch and being sent again. It changes nothing: the Append that
// follows decides.
func (s *Store) AwaitOffset(ctx context.Context, id string, offset int64) bool {
	deadline := time.Now().Add(s.opts.AheadWait)
	poll := time.NewTimer(aheadPoll)
	defer poll.Stop()
	for {
		advanced, stop := s.locks.watch(id) // before the read, so that no advance is missed
		sess, err := s.load(ctx, id)
		if err != nil || sess.Offset >= offset || !time.Now().Before(deadline) {
			stop()
			return err == nil && sess.Offset >= offset
		}
		poll.Reset(min(aheadPoll, time.Until(deadline)))
		select {
		case <-advanced:
		case <-poll.C:
		case <-ctx.Done():
		}
		stop()
		if ctx.Err() != nil {
			return false
		}
	}
}

// checkedReader passes Length bytes of a chunk's body to a driver, feeding
// them to the upload's SHA-256 and to a CRC-32C as they go, and remembers
// whether a failure came from the body (the sender) rather than the driver.
type checkedReader struct {
	r       io.Reader
	sha     hash.Hash
	crc     uint32
	want    uint32
	length  int64
	n       int64 // bytes read so far
	bodyErr error
}

func newCheckedReader(c Chunk, sha hash.Hash) *checkedReader {
	return &checkedReader{r: io.LimitReader(c.Body, c.Length), sha: sha, want: c.CRC32C, length: c.Length}
}

func (cr *checkedReader) Read(p []byte) (int, error) {
	n, err := cr.r.Read(p)
	if n > 0 {
		cr.n += int64(n)
		if cr.sha != nil {
			cr.sha.Write(p[:n])
		}
		cr.crc = crc32.Update(cr.crc, castagnoli, p[:n])
	}
	if err != nil && err != io.EOF {
		cr.bodyErr = err
	}
	return n, err
}

// takeHash hands the running SHA-256 over to the caller, who must then
// write every byte it reads from cr into it (Staging.TakeHash); nil once
// a byte was read, or when it was taken before.
func (cr *checkedReader) takeHash() hash.Hash {
	if cr.n > 0 {
		return nil
	}
	h := cr.sha
	cr.sha = nil
	return h
}

// verdict turns the outcome of a write of n bytes from cr into the error of
// the append: the driver's, one of the body, or ErrDamaged when the bytes
// are fewer than the chunk's length or their CRC-32C differs.
func (cr *checkedReader) verdict(n int64, err error) error {
	switch {
	case cr.bodyErr != nil:
		return depot.WrapError(depot.CodeUnavailable, "the chunk's body was cut short in transit", fmt.Errorf("%w: %w", ErrDamaged, cr.bodyErr))
	case err != nil:
		return storageErr("write staging", err)
	case n != cr.length:
		return depot.WrapError(depot.CodeUnavailable, "the chunk's body was cut short in transit",
			fmt.Errorf("%w: %d of %d bytes", ErrDamaged, n, cr.length))
	case cr.crc != cr.want:
		return depot.WrapError(depot.CodeUnavailable, "the chunk was damaged in transit",
			fmt.Errorf("%w: CRC-32C %08x, want %08x", ErrDamaged, cr.crc, cr.want))
	}
	return nil
}

func offsetMismatch(cur int64) error {
	return &depot.Error{Code: depot.CodeOffsetMismatch, Message: fmt.Sprintf("expected offset %d", cur), Err: depot.OffsetError{Current: cur}}
}

// appendable checks that length more bytes fit session sess (its declared
// size and the Store's maximum) and returns its running SHA-256.
func (s *Store) appendable(sess Session, length int64) (hash.Hash, error) {
	if sess.DeclaredSize >= 0 && sess.Offset+length > sess.DeclaredSize {
		return nil, depot.Errorf(depot.CodeSizeMismatch, "the upload goes past its declared size of %d bytes", sess.DeclaredSize)
	}
	if err := s.checkMax(sess.Offset + length); err != nil {
		return nil, err
	}
	h, err := s.hasher(sess)
	if err != nil {
		return nil, depot.WrapError(depot.CodeInternal, "corrupt upload session", err)
	}
	return h, nil
}

// CRC32C returns the CRC-32C (Castagnoli) of b, as Chunk.CRC32C expects.
func CRC32C(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// checkpoint returns the Staging.Checkpoint of session sess: it saves a
// driver state with the session's offset, hash and last chunk unchanged.
func (s *Store) checkpoint(sess Session) func(context.Context, []byte) error {
	return func(ctx context.Context, state []byte) error {
		return s.sessions.SaveProgress(ctx, sess.ID, Progress{
			Offset: sess.Offset, HashState: sess.HashState, DriverState: state, Last: sess.Last, Updated: s.now(), Lazy: sess.Lazy, Durable: true,
		})
	}
}
