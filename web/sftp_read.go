package web

import (
	"io"
	"sync"

	"github.com/pkg/sftp"

	"depot"
)

// Fileread opens the current version of a file for reading. Reads stream
// from one download of services, pinned to that version; pkg/sftp runs
// reads on several workers, so a window of the last bytes read (one chunk
// buffer of the bounded pool) serves those that arrive slightly out of
// order, and a read elsewhere (get with an offset, a resumed download)
// opens a range download from there.
func (fs *sftpFS) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	p, err := parsePath(r.Filepath)
	if err != nil {
		return nil, sftpError(err)
	}
	if p.key == "" {
		return nil, sftpStatus(sftp.ErrSSHFxFailure, "a directory cannot be read as a file")
	}
	c := fs.caller()
	d, err := fs.s.cfg.Backend.Open(fs.ctx, c, p.key, depot.ReadOptions{})
	if err != nil {
		return nil, sftpError(err)
	}
	buf, release, err := fs.s.cfg.Backend.ChunkBuffer(fs.ctx)
	if err != nil {
		d.Body.Close()
		return nil, sftpError(err)
	}
	return &sftpReader{fs: fs, c: c, key: p.key, version: d.Object.Version, size: d.Object.Size,
		body: d.Body, win: buf, release: release}, nil
}

// sftpReader is one open SFTP read handle. Invariant: the window holds
// the file's bytes [start, pos), and body continues at pos.
type sftpReader struct {
	fs      *sftpFS
	c       depot.Caller
	key     string
	version string
	size    int64

	mu      sync.Mutex
	body    io.ReadCloser
	win     []byte
	n       int   // bytes of win in use
	start   int64 // file offset of win[0]
	pos     int64 // file offset body continues at
	release func()
}

// ReadAt serves [off, off+len(p)) from the window, reading ahead up to a
// quarter window, or opens a range download at off.
func (r *sftpReader) ReadAt(p []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if off >= r.size {
		return 0, io.EOF
	}
	want := min(off+int64(len(p)), r.size)
	if r.body == nil || off < r.start || off > r.pos+int64(len(r.win)/4) || want-off > int64(len(r.win)/4) {
		if err := r.reopen(off); err != nil {
			return 0, err
		}
	}
	for r.pos < want {
		if r.n == len(r.win) { // keep the last half
			keep := len(r.win) / 2
			copy(r.win, r.win[r.n-keep:r.n])
			r.start += int64(r.n - keep)
			r.n = keep
		}
		n, err := r.body.Read(r.win[r.n:])
		r.n += n
		r.pos += int64(n)
		if err != nil && r.pos < want {
			r.body.Close()
			r.body = nil
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, sftpError(err)
		}
	}
	n := copy(p, r.win[off-r.start:want-r.start])
	if off+int64(n) >= r.size {
		return n, io.EOF
	}
	return n, nil
}

// reopen opens a range download of the pinned version from off.
func (r *sftpReader) reopen(off int64) error {
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
	d, err := r.fs.s.cfg.Backend.Open(r.fs.ctx, r.fs.caller(), r.key, depot.ReadOptions{
		Version: r.version, Range: &depot.Range{Offset: off, Length: r.size - off}})
	if err != nil {
		return sftpError(err)
	}
	r.body, r.start, r.pos, r.n = d.Body, off, off, 0
	return nil
}

// Close ends the download and gives the window back.
func (r *sftpReader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.body != nil {
		r.body.Close()
		r.body = nil
	}
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return nil
}
