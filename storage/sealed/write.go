package sealed

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"filippo.io/age"

	"depot/internal/crashpoint"
	"depot/storage"
)

// CreateStaging prepares the wrapped staging area and stages a new header
// (a new file key) and payload nonce.
func (d *Driver) CreateStaging(ctx context.Context, st *storage.Staging) error {
	hdr, fileKey, err := d.keys.newHeader()
	if err != nil {
		return wrap("new header", err)
	}
	key, err := d.keys.seal(fileKey)
	if err != nil {
		return wrap("seal file key", err)
	}
	s := &state{Header: hdr, Key: key, Nonce: make([]byte, nonceSize)}
	_, _ = rand.Read(s.Nonce)
	in := s.innerStaging(st.ID)
	if err := d.inner.CreateStaging(ctx, in); err != nil {
		return err
	}
	if _, err := d.inner.WriteStaging(ctx, in, 0, io.MultiReader(bytes.NewReader(hdr), bytes.NewReader(s.Nonce))); err != nil {
		return err
	}
	s.Inner = in.State
	st.State = encodeState(s)
	return nil
}

// DiscardStaging releases the wrapped staging area.
func (d *Driver) DiscardStaging(ctx context.Context, st *storage.Staging) error {
	in := &storage.Staging{ID: st.ID}
	if s, err := decodeState(st); err == nil {
		in.State = s.Inner
	}
	return d.inner.DiscardStaging(ctx, in)
}

// WriteStaging stages r's plaintext at offset: full segments go to the
// wrapped staging area, the rest becomes the encrypted tail in State.
// offset must lie in the tail (at or past the sealed segments).
func (d *Driver) WriteStaging(ctx context.Context, st *storage.Staging, offset int64, r io.Reader) (int64, error) {
	s, err := decodeState(st)
	if err != nil {
		return 0, err
	}
	base := s.Segs * segSize
	switch {
	case offset > base+s.TailLen:
		return 0, fmt.Errorf("sealed: offset %d is past the %d staged bytes", offset, base+s.TailLen)
	case offset < base:
		return 0, fmt.Errorf("sealed: offset %d lies in a sealed segment (below %d), which cannot be rewritten", offset, base)
	}
	aead, err := d.payload(s)
	if err != nil {
		return 0, err
	}
	tail, err := d.keys.open(s.Tail)
	if err != nil {
		return 0, wrap("staged tail", err)
	}
	plainBuf, encBuf := d.getBuf(), d.getBuf()
	defer d.putBuf(plainBuf)
	defer d.putBuf(encBuf)
	er := &encReader{ctx: ctx, st: st, s: s, aead: aead, src: r, buf: append(plainBuf[:0], tail[:offset-base]...),
		outBuf: encBuf[:0], startInner: s.Inner}
	if st.TakeHash != nil {
		er.sha = st.TakeHash()
	}
	in := s.innerStaging(st.ID)
	// A lazy chunk's ciphertext may skip its fsync: its tags were made
	// durable by the Checkpoint before any of it was written, so after a
	// crash of the machine the session either is found lost (the wrapped
	// driver's mark) or refuses other bytes under those nonces.
	in.Lazy = st.Lazy
	_, err = d.inner.WriteStaging(ctx, in, s.payloadAt(s.Segs), er)
	er.settle()
	if er.err != nil {
		err = er.err
	}
	if err != nil {
		return er.taken, err
	}
	if er.emitted > 0 {
		crashpoint.Reach(crashpoint.SealedWritten)
	}
	s.Segs += er.emitted
	s.Inner = in.State
	s.Tags = s.Tags[min(int(er.emitted), len(s.Tags)):]
	if er.emitted > 0 {
		s.Final = nil // the old final counter is now a sealed segment
	}
	s.TailLen = int64(len(er.buf))
	s.Tail = nil
	if len(er.buf) > 0 {
		if s.Tail, err = d.keys.seal(er.buf); err != nil {
			return er.taken, wrap("seal tail", err)
		}
	}
	st.State = encodeState(s)
	return er.taken, nil
}

// encReader is the reader the wrapped driver's WriteStaging consumes: it
// reads plaintext from src in batches, and hands out the encryption of
// every full segment that is not the last one, keeping the rest in buf.
type encReader struct {
	ctx        context.Context
	st         *storage.Staging
	s          *state
	aead       cipher.AEAD
	src        io.Reader
	buf        []byte // plaintext not yet encrypted (starts with the kept tail)
	out        []byte // ciphertext not yet handed out
	outBuf     []byte // the buffer out is cut from
	startInner []byte
	// sha is the upload's SHA-256 when this reader took it over
	// (Staging.TakeHash): each batch's new bytes are hashed in the
	// background once the batch's tags are recorded, while it is written,
	// not while the bytes arrive.
	sha     hash.Hash
	hashed  chan struct{} // closed once the last batch is hashed; nil when none is pending
	handed  int           // bytes at the start of buf whose segments were handed out
	taken   int64         // bytes read from src
	emitted int64         // segments encrypted
	done    bool
	err     error // an error of src, Verify or Checkpoint
}

func (e *encReader) Read(p []byte) (int, error) {
	for len(e.out) == 0 {
		if e.done || e.err != nil {
			return 0, io.EOF
		}
		if err := e.next(); err != nil {
			e.err = err
			return 0, err
		}
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	return n, nil
}

// sealerCount is how many goroutines encrypt a batch's segments.
const sealerCount = 2

// next reads the next batch, encrypting (in memory) every segment that
// has a byte after it as the bytes arrive, so that encryption overlaps
// the network. Only once the batch is complete, and for the last batch
// verified (Staging.Verify), are the tags checked and recorded and the
// ciphertext handed out; a batch that fails is never written. The batch's
// new bytes are hashed (when the reader took the upload's SHA-256 over)
// once their tags are recorded, alongside the write: hashed as they
// arrived, they took the CPU the sealers needed, and the write's wait for
// the device left it idle; hashed alongside the durable checkpoint, they
// slowed it (docs/performance.md).
func (e *encReader) next() error {
	e.settle()
	fresh := len(e.buf) // the bytes before fresh were read by an earlier batch or call
	// Two goroutines encrypt each segment once a byte after it has
	// arrived, while this one reads on: encryption overlaps the network,
	// and what is left to encrypt when the last byte arrives takes half
	// as long (two segments at a time; docs/performance.md). Segment i goes
	// to out[i*encSeg:(i+1)*encSeg]; the reader only appends past the
	// segments it has handed over.
	work := make(chan int, cap(e.buf)/segSize+1)
	base := e.s.Segs + e.emitted
	buf, out := e.buf[:cap(e.buf)], e.outBuf[:cap(e.outBuf)]
	var sealers sync.WaitGroup
	for range sealerCount {
		sealers.Go(func() {
			for i := range work {
				dst := out[i*encSeg : i*encSeg : (i+1)*encSeg]
				e.aead.Seal(dst, segNonce(base+int64(i), false), buf[i*segSize:(i+1)*segSize], nil)
			}
		})
	}
	segs := 0
	var rerr error
	for len(e.buf) < cap(e.buf) {
		n, err := e.src.Read(e.buf[len(e.buf):cap(e.buf)])
		e.buf = e.buf[:len(e.buf)+n]
		e.taken += int64(n)
		for (segs+1)*segSize < len(e.buf) {
			work <- segs
			segs++
		}
		if err == io.EOF {
			e.done = true
			break
		}
		if err != nil {
			rerr = err
			break
		}
	}
	close(work)
	sealers.Wait()
	if rerr != nil {
		return rerr
	}
	if e.done && e.st.Verify != nil {
		if err := e.st.Verify(); err != nil {
			return err
		}
	}
	if segs > 0 {
		if err := e.commit(out[:segs*encSeg], segs); err != nil {
			return err
		}
	}
	e.hash(e.buf[fresh:]) // alongside the write, not before the checkpoint
	return nil
}

// commit checks and records the tags of the segs segments encrypted in
// out (see the package doc), then hands them out to the reader (settle
// drops their plaintext from buf).
func (e *encReader) commit(out []byte, segs int) error {
	recorded := false
	for i := range segs {
		tag := out[(i+1)*encSeg-tagSize : (i+1)*encSeg]
		idx := int(e.emitted) + i
		switch {
		case idx < len(e.s.Tags):
			if !hmac.Equal(e.s.Tags[idx], tag) {
				return ErrChanged
			}
		default:
			e.s.Tags = append(e.s.Tags, bytes.Clone(tag))
			recorded = true
		}
	}
	if recorded && e.st.Checkpoint != nil {
		cp := *e.s
		cp.Inner = e.startInner
		if err := e.st.Checkpoint(e.ctx, encodeState(&cp)); err != nil {
			return fmt.Errorf("sealed: checkpoint: %w", err)
		}
	}
	e.emitted += int64(segs)
	e.handed = segs * segSize
	e.out = out
	return nil
}

// hash writes p, new plaintext in buf, to the upload's SHA-256 in the
// background, when the reader took the hash over.
func (e *encReader) hash(p []byte) {
	if e.sha == nil || len(p) == 0 {
		return
	}
	done := make(chan struct{})
	e.hashed = done
	go func() {
		defer close(done)
		e.sha.Write(p)
	}()
}

// settle waits until the last batch is hashed, then drops the plaintext
// of the segments handed out, keeping the rest (the tail) at the start of
// buf. Called before buf changes and before WriteStaging returns.
func (e *encReader) settle() {
	if e.hashed != nil {
		<-e.hashed
		e.hashed = nil
	}
	if e.handed > 0 {
		rest := copy(e.buf, e.buf[e.handed:])
		e.buf = e.buf[:rest]
		e.handed = 0
	}
}

// Publish seals the first size staged bytes: the tail becomes the final
// segment, and the wrapped staging area is published.
func (d *Driver) Publish(ctx context.Context, st *storage.Staging, size int64) error {
	s, err := decodeState(st)
	if err != nil {
		return err
	}
	base := s.Segs * segSize
	switch {
	case size > base+s.TailLen:
		return fmt.Errorf("sealed: publish of %d bytes, only %d staged", size, base+s.TailLen)
	case size < base || (size == base && s.Segs > 0):
		return fmt.Errorf("sealed: publish of %d bytes would cut a sealed segment (%d bytes sealed)", size, base)
	}
	aead, err := d.payload(s)
	if err != nil {
		return err
	}
	tail, err := d.keys.open(s.Tail)
	if err != nil {
		return wrap("staged tail", err)
	}
	last := aead.Seal(nil, segNonce(s.Segs, true), tail[:size-base], nil)
	tag := last[len(last)-tagSize:]
	if s.Final != nil && !hmac.Equal(s.Final, tag) {
		return ErrChanged
	}
	if s.Final == nil {
		s.Final = bytes.Clone(tag)
		if st.Checkpoint != nil {
			if err := st.Checkpoint(ctx, encodeState(s)); err != nil {
				return fmt.Errorf("sealed: checkpoint: %w", err)
			}
		}
		st.State = encodeState(s)
	}
	in := s.innerStaging(st.ID)
	if _, err := d.inner.WriteStaging(ctx, in, s.payloadAt(s.Segs), bytes.NewReader(last)); err != nil {
		if errors.Is(err, storage.ErrNotExist) {
			if _, serr := d.inner.Stat(ctx, st.ID); serr == nil {
				return nil // published before a crash
			}
		}
		return err
	}
	return d.inner.Publish(ctx, in, s.payloadAt(s.Segs)+int64(len(last)))
}

// putObject stores a small object in one call (storage.ObjectPutter of
// the wrapped driver), encrypted as a whole age file.
func (d *Driver) putObject(ctx context.Context, id string, r io.Reader, size int64) error {
	cr := &countReader{r: r}
	er, err := age.EncryptReader(io.LimitReader(cr, size), d.keys.current.Recipient())
	if err != nil {
		return wrap("encrypt", err)
	}
	if err := d.inner.(storage.ObjectPutter).PutObject(ctx, id, er, encryptedSize(d.hdrLen, size)); err != nil {
		return err
	}
	if cr.n != size {
		_ = d.inner.Delete(context.WithoutCancel(ctx), id)
		return fmt.Errorf("sealed: put took %d of %d bytes", cr.n, size)
	}
	return nil
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
