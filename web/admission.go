package web

import (
	"context"
	"io"
	"net/http"
	"sync"

	"depot"
	"depot/internal/httpx"
)

// Upload admission: every entrance that takes an upload's body (PUT,
// multipart POST, tus creation with or without a body, tus PATCH, and any
// added later) goes through admit, and gets the body only from the
// admission it returns. So each one is authorised before any body byte is
// read, held to DEPOT_MAX_UPLOAD_SIZE (declared, deferred or streamed) and
// counted against the user's DEPOT_MAX_UPLOADS_PER_USER slots for as long
// as it reads.

// admission is an admitted upload request.
type admission struct {
	s       *Server
	release func()
	offset  int64 // bytes the upload held before this request (tus)
}

// admit authorises an upload into cohort (an answer of services is trusted
// for a moment, see uploaders), refuses one whose declared total size
// (-1: not known yet) or current offset is past the limit, and takes one of
// the user's upload slots. Release the admission when the request ends.
func (s *Server) admit(ctx context.Context, c depot.Caller, cohort string, offset, declared int64) (*admission, error) {
	p, err := s.uploaders.authorize(ctx, c, cohort, s.cfg.Backend.Authorize)
	if err != nil {
		return nil, err
	}
	if max := s.cfg.MaxUploadSize; max > 0 && (declared > max || offset > max) {
		return nil, s.tooLarge()
	}
	release, ok := s.slots.acquire(p.User)
	if !ok {
		return nil, errorf(depot.CodeTooMany, "you already have %d uploads in progress; wait for one to finish", s.cfg.MaxUploadsPerUser)
	}
	return &admission{s: s, release: release, offset: offset}, nil
}

func (s *Server) tooLarge() error {
	return errorf(depot.CodeTooLarge, "the upload is larger than the limit of %d bytes", s.cfg.MaxUploadSize)
}

// uploadBody is an admitted request's body.
type uploadBody struct {
	io.Reader
	progress *httpx.ProgressReader
}

// Done clears the body's read deadline; call it when the handler stops
// reading.
func (b *uploadBody) Done() { b.progress.Done() }

// body returns r's body: its read deadline is renewed as bytes arrive
// (BodyIdleTimeout), and it fails with too_large once the upload would pass
// the size limit.
func (a *admission) body(w http.ResponseWriter, r *http.Request) *uploadBody {
	p := httpx.NewProgressReader(w, r, a.s.cfg.BodyIdleTimeout)
	return &uploadBody{Reader: a.limit(p, a.offset), progress: p}
}

// limit fails r with too_large once an upload that held offset bytes
// before it would pass the size limit (instead of truncating it).
func (a *admission) limit(r io.Reader, offset int64) io.Reader {
	max := a.s.cfg.MaxUploadSize
	if max <= 0 {
		return r
	}
	return &limitedReader{r: r, left: max - offset, err: a.s.tooLarge()}
}

// limitedReader passes at most left bytes and fails with err if the body
// has more: none of the bytes past the limit is ever passed on.
type limitedReader struct {
	r    io.Reader
	left int64
	err  error
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, l.err
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

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
