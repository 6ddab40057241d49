package metrics

import (
	"io"
	"net/http"
	"strconv"
	"time"
)

// Instrument counts requests, durations, body bytes and in-flight uploads.
// route maps a request to a low-cardinality route label; it is called after
// the request was served, so it may use r.Pattern.
func (s *Set) Instrument(route func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		upload := r.Method == http.MethodPut || r.Method == http.MethodPost || r.Method == http.MethodPatch
		if upload {
			s.InFlightUploads.Inc()
			defer s.InFlightUploads.Dec()
		}
		if r.Body != nil && r.Body != http.NoBody {
			// On a shallow copy: net/http decides whether to drain an
			// unread body before answering by looking at its own request's
			// Body, which must stay the one it made (replacing it made
			// every refusal wait for the body).
			counted := *r
			counted.Body = &countingBody{ReadCloser: r.Body, c: s.BytesIn}
			r = &counted
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		label := route(r)
		s.Requests.WithLabelValues(label, r.Method, strconv.Itoa(rec.status)).Inc()
		s.Duration.WithLabelValues(label, r.Method).Observe(time.Since(start).Seconds())
		s.BytesOut.Add(float64(rec.written))
	})
}

type countingBody struct {
	io.ReadCloser
	c interface{ Add(float64) }
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.c.Add(float64(n))
	}
	return n, err
}

// recorder remembers the status and counts bytes. Unwrap lets
// http.ResponseController reach the connection for deadlines.
type recorder struct {
	http.ResponseWriter
	status  int
	written int64
	wrote   bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(p)
	r.written += int64(n)
	return n, err
}

// ReadFrom keeps the kernel fast path (sendfile) of the wrapped writer.
func (r *recorder) ReadFrom(src io.Reader) (int64, error) {
	r.wrote = true
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		n, err := rf.ReadFrom(src)
		r.written += n
		return n, err
	}
	n, err := io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
	r.written += n
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
