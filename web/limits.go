package web

import (
	"context"
	"io"
	"sync"

	"depot"
)

// userSlots bounds the concurrent uploads of each user in this process.
type userSlots struct {
	mu    sync.Mutex
	max   int
	inUse map[string]int
}

func (u *userSlots) acquire(user string) (release func(), ok bool) {
	if u.max <= 0 {
		return func() {}, true
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.inUse == nil {
		u.inUse = make(map[string]int)
	}
	if u.inUse[user] >= u.max {
		return nil, false
	}
	u.inUse[user]++
	var once sync.Once
	return func() {
		once.Do(func() {
			u.mu.Lock()
			if u.inUse[user]--; u.inUse[user] <= 0 {
				delete(u.inUse, user)
			}
			u.mu.Unlock()
		})
	}, true
}

// beginUpload authorises an upload into t's cohort before any body byte is
// read (an answer of services is trusted for a moment, see uploaders),
// refuses a declared size over the limit, and takes one of the user's upload
// slots. The returned function releases the slot.
func (s *Server) beginUpload(ctx context.Context, c depot.Caller, cohort string, declared int64) (func(), error) {
	p, err := s.uploaders.authorize(ctx, c, cohort, s.cfg.Backend.Authorize)
	if err != nil {
		return nil, err
	}
	if s.cfg.MaxUploadSize > 0 && declared > s.cfg.MaxUploadSize {
		return nil, errorf(depot.CodeTooLarge, "the upload is larger than the limit of %d bytes", s.cfg.MaxUploadSize)
	}
	release, ok := s.slots.acquire(p.User)
	if !ok {
		return nil, errorf(depot.CodeTooMany, "you already have %d uploads in progress; wait for one to finish", s.cfg.MaxUploadsPerUser)
	}
	return release, nil
}

// limitBody fails a body that grows past the upload size limit with a
// too_large error (instead of truncating it).
func (s *Server) limitBody(r io.Reader) io.Reader {
	if s.cfg.MaxUploadSize <= 0 {
		return r
	}
	return &limitedReader{r: r, left: s.cfg.MaxUploadSize, max: s.cfg.MaxUploadSize}
}

type limitedReader struct {
	r         io.Reader
	left, max int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, errorf(depot.CodeTooLarge, "the upload is larger than the limit of %d bytes", l.max)
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n, errorf(depot.CodeTooLarge, "the upload is larger than the limit of %d bytes", l.max)
	}
	return n, err
}
