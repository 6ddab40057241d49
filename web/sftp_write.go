package web

import (
	"context"
	"io"
	"path"
	"sync"

	"github.com/pkg/sftp"

	"depot"
	"depot/internal/wire"
)

// An SFTP upload is a resumable upload session of services, fed in order
// from two chunk buffers of the bounded pool (DEPOT_MAX_BUFFERS ×
// DEPOT_CHUNK_SIZE): the one being filled and the next. SFTP clients
// pipeline writes and pkg/sftp runs them on several workers, so writes
// arrive slightly out of order; any write that lands within the two
// buffers is accepted (the reorder window: one chunk past the one being
// filled), and one beyond it is refused with a failure status, as is one
// that rewrites bytes already sent. A full chunk is appended while the
// other fills. The file is committed (size and SHA-256 verified by
// services) only when the client closes the handle; a transfer cut before
// that leaves a session that reput continues (sftp_resume.go).

// Filewrite opens path for writing: a new upload session, or, when the
// client opens without truncating and this user has a cut upload of the
// path, that session (reput). It is admitted like every upload.
func (fs *sftpFS) Filewrite(r *sftp.Request) (_ io.WriterAt, err error) {
	p, err := parsePath(r.Filepath)
	if err != nil {
		return nil, sftpError(err)
	}
	if p.key == "" {
		return nil, sftpStatus(sftp.ErrSSHFxPermissionDenied, "files live inside a cohort")
	}
	c := fs.caller()
	var u depot.Upload
	resumed := false
	if id, ok := fs.s.sftpResumes.get(fs.user, p.key); ok && !r.Pflags().Trunc {
		if u, err = fs.s.cfg.Backend.Upload(fs.ctx, c, id, true); err == nil && !u.Completed {
			resumed = true
		}
	}
	a, err := fs.s.admit(fs.ctx, c, p.cohort, u.Offset, -1)
	if err != nil {
		return nil, sftpError(err)
	}
	defer func() {
		if err != nil {
			a.release()
		}
	}()
	if !resumed {
		u, err = fs.s.cfg.Backend.CreateUpload(fs.ctx, c, wire.CreateUpload{
			Key: p.key, Size: -1, FileName: path.Base(p.key), Resumable: true,
			Meta: map[string]string{"protocol": "sftp"},
		})
		if err != nil {
			return nil, sftpError(err)
		}
		fs.s.sftpResumes.put(fs.user, p.key, u.ID)
	}
	w := &sftpWriter{fs: fs, c: c, key: p.key, id: u.ID, adm: a, base: u.Offset, next: u.Offset, pieces: map[int64]int64{}}
	w.cond = sync.NewCond(&w.mu)
	if err := w.takeBuffers(); err != nil {
		return nil, sftpError(err)
	}
	fs.mu.Lock()
	fs.writing[p.key] = w
	fs.mu.Unlock()
	fs.s.cfg.Log.Info("sftp upload opened", "upload_id", u.ID, "offset", u.Offset, "resumed", resumed, "request_id", c.RequestID)
	return w, nil
}

// sftpWriter is one open SFTP write handle.
type sftpWriter struct {
	fs  *sftpFS
	c   depot.Caller
	key string
	id  string
	adm *admission

	mu       sync.Mutex
	cond     *sync.Cond
	bufs     [2][]byte // bufs[0] holds [base, base+chunk), bufs[1] the next chunk
	release  [2]func()
	base     int64           // offset of bufs[0]: the bytes services holds
	next     int64           // end of the bytes received without a gap
	pieces   map[int64]int64 // received past a gap: offset → end
	flushing bool            // bufs[0] is on its way to services
	err      error           // the first failure: every later write fails with it
	errCode  depot.Code      // its code, the reason given to services
	cut      bool            // the connection ended with the handle open
}

func (w *sftpWriter) takeBuffers() error {
	// Two buffers are taken together, so that two writers never each hold
	// one and wait for a second.
	w.fs.s.sftpBuffers.Lock()
	defer w.fs.s.sftpBuffers.Unlock()
	for i := range w.bufs {
		buf, release, err := w.fs.s.cfg.Backend.ChunkBuffer(w.fs.ctx)
		if err != nil {
			w.releaseBuffers()
			return err
		}
		w.bufs[i], w.release[i] = buf, release
	}
	return nil
}

func (w *sftpWriter) releaseBuffers() {
	for i, r := range w.release {
		if r != nil {
			r()
		}
		w.bufs[i], w.release[i] = nil, nil
	}
}

func (w *sftpWriter) chunk() int64 { return int64(len(w.bufs[0])) }

// WriteAt copies p into the window and appends every chunk completed
// without a gap.
func (w *sftpWriter) WriteAt(p []byte, off int64) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	end := off + int64(len(p))
	for {
		switch {
		case w.err != nil:
			return 0, w.err
		case off < w.base || (w.flushing && off < w.base+w.chunk()):
			return 0, w.fail(depot.CodeInvalid, sftpStatus(sftp.ErrSSHFxFailure, "depot cannot rewrite bytes already sent; upload the file again"))
		case w.fs.s.cfg.MaxUploadSize > 0 && end > w.fs.s.cfg.MaxUploadSize:
			return 0, w.fail(depot.CodeTooLarge, sftpError(w.fs.s.tooLarge()))
		case end <= w.base+2*w.chunk():
		case w.flushing:
			w.cond.Wait() // the window moves when the flush ends
			continue
		default:
			return 0, w.fail(depot.CodeInvalid, sftpStatus(sftp.ErrSSHFxFailure, "write too far ahead of the file's received bytes (past the reorder window)"))
		}
		break
	}
	w.copyIn(p, off)
	if off <= w.next {
		w.next = max(w.next, end)
	} else {
		w.pieces[off] = max(w.pieces[off], end)
	}
	for progress := true; progress; {
		progress = false
		for o, e := range w.pieces {
			if o <= w.next {
				w.next, progress = max(w.next, e), true
				delete(w.pieces, o)
			}
		}
	}
	w.maybeFlush()
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// copyIn copies p, at off within the window, into the buffers.
func (w *sftpWriter) copyIn(p []byte, off int64) {
	rel := off - w.base
	if rel < w.chunk() {
		n := copy(w.bufs[0][rel:], p)
		p, rel = p[n:], w.chunk()
	}
	copy(w.bufs[1][rel-w.chunk():], p)
}

// maybeFlush starts appending bufs[0] when it holds a whole chunk without
// a gap and no append runs. The append runs on its own goroutine, so that
// the write that completed the chunk is acknowledged at once: pkg/sftp
// answers requests in order, and a write held for the append would hold
// every later acknowledgement, stalling the client's pipeline. When it
// ends the window moves one chunk on (and the next append starts if that
// chunk is full too). Called with w.mu held.
func (w *sftpWriter) maybeFlush() {
	if w.err != nil || w.flushing || w.next < w.base+w.chunk() {
		return
	}
	w.flushing = true
	data, off := w.bufs[0], w.base
	go func() {
		_, _, err := w.fs.s.cfg.Backend.AppendChunk(context.WithoutCancel(w.fs.ctx), w.c, w.id, off, data, -1, false)
		w.mu.Lock()
		defer w.mu.Unlock()
		w.flushing = false
		if err != nil {
			w.fail(depot.ErrorCode(err), sftpError(err))
		} else {
			w.base += w.chunk()
			w.bufs[0], w.bufs[1] = w.bufs[1], w.bufs[0]
			w.release[0], w.release[1] = w.release[1], w.release[0]
		}
		w.cond.Broadcast()
		w.maybeFlush()
	}()
}

// fail records the first error of the handle and returns it.
func (w *sftpWriter) fail(code depot.Code, err error) error {
	if w.err == nil {
		w.err, w.errCode = err, code
	}
	return w.err
}

// TransferError is called by pkg/sftp when the connection ends with the
// handle open: Close then keeps the session for reput instead of
// committing.
func (w *sftpWriter) TransferError(error) {
	w.mu.Lock()
	w.cut = true
	w.mu.Unlock()
}

// Close commits the upload: the bytes left in the window are appended with
// the commit. After a cut connection it appends only the bytes received
// without a gap and leaves the session open for reput; after a failure it
// abandons the session.
func (w *sftpWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.flushing {
		w.cond.Wait()
	}
	defer w.adm.release()
	defer w.releaseBuffers()
	w.fs.mu.Lock()
	if w.fs.writing[w.key] == w {
		delete(w.fs.writing, w.key)
	}
	w.fs.mu.Unlock()
	ctx, resumes, user := context.WithoutCancel(w.fs.ctx), w.fs.s.sftpResumes, w.fs.user
	log := w.fs.s.cfg.Log
	switch {
	case w.err != nil && w.errCode == depot.CodeUnavailable:
		// services (or the hop) failed, not the client: the session keeps
		// what it holds, for reput, like a cut.
		log.Warn("sftp upload interrupted by services; kept for reput", "upload_id", w.id, "offset", w.base)
		return w.err
	case w.err != nil:
		if err := w.fs.s.cfg.Backend.Abort(ctx, w.c, w.id, w.errCode); err != nil {
			log.Warn("sftp upload not aborted", "upload_id", w.id, "err", err)
		}
		resumes.forget(user, w.key)
		return w.err
	case w.cut:
		err := w.appendLeft(ctx, false)
		log.Info("sftp upload cut; kept for reput", "upload_id", w.id, "offset", w.base, "err", err)
		return err
	case len(w.pieces) > 0:
		w.err = sftpStatus(sftp.ErrSSHFxFailure, "the file has a gap: some bytes were never written")
		w.fs.s.cfg.Backend.Abort(ctx, w.c, w.id, depot.CodeInvalid)
		resumes.forget(user, w.key)
		return w.err
	}
	if err := w.appendLeft(ctx, true); err != nil {
		if depot.ErrorCode(err) != depot.CodeUnavailable {
			resumes.forget(user, w.key) // refused for good (size, hash, scan, permission)
		}
		return sftpError(err)
	}
	resumes.forget(user, w.key)
	log.Info("sftp upload completed", "upload_id", w.id, "size", w.next)
	return nil
}

// appendLeft appends [base, next) and, with commit, commits the upload at
// next bytes. Called with w.mu held and no flush under way.
func (w *sftpWriter) appendLeft(ctx context.Context, commit bool) error {
	b := w.fs.s.cfg.Backend
	if w.next-w.base > w.chunk() {
		if _, _, err := b.AppendChunk(ctx, w.c, w.id, w.base, w.bufs[0], -1, false); err != nil {
			return err
		}
		w.base += w.chunk()
		w.bufs[0], w.bufs[1] = w.bufs[1], w.bufs[0]
	}
	end := int64(-1)
	if commit {
		end = w.next
	}
	if _, _, err := b.AppendChunk(ctx, w.c, w.id, w.base, w.bufs[0][:w.next-w.base], end, commit); err != nil {
		return err
	}
	w.base = w.next
	return nil
}
