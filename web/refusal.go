package web

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"depot"
)

// refusalDrain bounds how long net/http may read the rest of a refused
// body after the answer went out. Not zero: a client still sending a
// chunked body whose read failed at once had its connection closed with
// unread bytes, and the RST that sends could destroy the answer before the
// client read it (a 413 to a streamed body seen as "connection reset").
// With time to read, net/http half-closes and lingers instead.
const refusalDrain = 500 * time.Millisecond

// closeOnRefusal makes every refusal of a request with a body final and
// immediate. An error answer (4xx or 5xx) to a request whose body was not
// read to its end carries Connection: close, and once the handler returns
// the connection's read deadline is set refusalDrain ahead, after which
// the connection is closed. Without that, net/http
// reads up to 256 KiB of the unread body before it answers (or, with
// Expect: 100-continue, asks for the body with 100 Continue first), and
// again when it closes the body: a client that sends headers and no body
// held its connection and a goroutine of web for ever (the review held
// 3000 and took web from 40 to 301 MiB).
//
// The handler gets a shallow copy of the request whose Body counts the end
// of the body. net/http decides what to do with an unread body by looking
// at its own request's Body, which must stay the one it made: a middleware
// that replaced it (metrics did) made net/http drain every body first.
func closeOnRefusal(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		body := &eofBody{ReadCloser: r.Body}
		inner := *r
		inner.Body = body
		rw := &refusalWriter{ResponseWriter: w, body: body}
		next.ServeHTTP(rw, &inner)
		if rw.refused {
			// The answer is written to the connection before net/http
			// closes the body, which reads what is left of it (up to 256
			// KiB) first: that read may take refusalDrain at the most.
			_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(refusalDrain))
		}
	})
}

// eofBody notes whether its reader reached the end of the body.
type eofBody struct {
	io.ReadCloser
	eof atomic.Bool
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

// refusalWriter marks an error answer to a request whose body is unread.
type refusalWriter struct {
	http.ResponseWriter
	body    *eofBody
	wrote   bool
	refused bool
}

func (rw *refusalWriter) WriteHeader(code int) {
	if !rw.wrote {
		rw.wrote = true
		if code >= 400 && !rw.body.eof.Load() {
			rw.refused = true
			rw.Header().Set("Connection", "close")
		}
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *refusalWriter) Write(p []byte) (int, error) {
	rw.wrote = true
	return rw.ResponseWriter.Write(p)
}

// ReadFrom keeps the wrapped writer's fast path.
func (rw *refusalWriter) ReadFrom(src io.Reader) (int64, error) {
	rw.wrote = true
	if rf, ok := rw.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{rw.ResponseWriter}, src)
}

// Unwrap lets http.ResponseController reach the connection.
func (rw *refusalWriter) Unwrap() http.ResponseWriter { return rw.ResponseWriter }

// refuse answers a request that web refuses on its own (a bad path, a
// malformed or unsupported tus header, a bad range, …) before it has asked
// services anything. Services first sees the caller's credentials: a
// request without them, or with a bad token, is answered 401 (429 once
// throttled) and audited as auth.failed like every other, whatever else is
// wrong with it. So failed sign-ins are counted on every route, and a
// refusal tells a caller nothing their credentials do not allow. c is the
// request's caller (Server.caller).
func (s *Server) refuse(ctx context.Context, c depot.Caller, w http.ResponseWriter, err error) {
	if _, aerr := s.cfg.Backend.Authorize(ctx, c, "", ""); aerr != nil {
		writeError(w, aerr)
		return
	}
	writeError(w, err)
}
