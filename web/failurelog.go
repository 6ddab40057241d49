package web

import (
	"io"
	"log/slog"
	"net/http"

	"depot"
)

// logFailures logs every answer with a status of 500 or more, with the
// request ID the client was given and the error behind the answer (noted
// by writeError), so that an operator can follow a client's report of a
// failed request to its cause. Nothing else is logged: errors from the
// services tier and the internal hop carry codes, IDs and offsets, never
// file names (which travel in headers and bodies, not in internal URLs).
func logFailures(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fw := &failureWriter{ResponseWriter: w}
		next.ServeHTTP(fw, r)
		if fw.status < http.StatusInternalServerError {
			return
		}
		attrs := []any{
			"request_id", w.Header().Get("X-Request-Id"), "method", r.Method,
			"route", routeLabel(r), "status", fw.status,
		}
		if fw.cause != nil {
			attrs = append(attrs, "code", string(depot.ErrorCode(fw.cause)), "err", fw.cause.Error())
		}
		log.Warn("request failed", attrs...)
	})
}

// noteCause records err as the cause of w's answer for logFailures.
func noteCause(w http.ResponseWriter, err error) {
	for {
		if fw, ok := w.(*failureWriter); ok {
			fw.cause = err
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
}

// failureWriter remembers the status of an answer and the error behind it.
// Unwrap lets http.ResponseController reach the connection.
type failureWriter struct {
	http.ResponseWriter
	status int
	cause  error
}

func (fw *failureWriter) WriteHeader(code int) {
	if fw.status == 0 {
		fw.status = code
	}
	fw.ResponseWriter.WriteHeader(code)
}

func (fw *failureWriter) Write(p []byte) (int, error) {
	if fw.status == 0 {
		fw.status = http.StatusOK
	}
	return fw.ResponseWriter.Write(p)
}

// ReadFrom keeps the wrapped writer's fast path.
func (fw *failureWriter) ReadFrom(src io.Reader) (int64, error) {
	if fw.status == 0 {
		fw.status = http.StatusOK
	}
	if rf, ok := fw.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{fw.ResponseWriter}, src)
}

func (fw *failureWriter) Unwrap() http.ResponseWriter { return fw.ResponseWriter }
