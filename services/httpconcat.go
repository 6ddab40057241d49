package services

import (
	"encoding/json"
	"net/http"
	"time"

	"depot"
	"depot/internal/httpx"
	"depot/internal/wire"
)

// concatBeat is how often a concatenation that has not finished sends a
// newline to web, so that a long copy is not taken for a hung services
// tier (DEPOT_SERVICES_TIMEOUT is many times this long in any sane setup).
const concatBeat = 200 * time.Millisecond

// concatUploads is POST /internal/v1/concat (wire.ConcatUpload): the final
// upload of the tus concatenation extension. A concatenation done within
// concatBeat is answered like any call; a longer one is answered 200 at
// once, kept alive with a newline every concatBeat, and ends with a
// wire.ConcatResult that carries its error, if any.
func (s *Server) concatUploads(w http.ResponseWriter, r *http.Request) {
	var req wire.ConcatUpload
	if !decodeBody(w, r, &req, false) {
		return
	}
	type result struct {
		u   depot.Upload
		obj depot.Object
		err error
	}
	done := make(chan result, 1)
	go func() {
		u, obj, err := s.core.Concat(r.Context(), callerOf(r), ConcatRequest{
			Key: req.Key, Class: req.Class, FileName: req.FileName, Parts: req.Parts, Meta: req.Meta,
		})
		done <- result{u, obj, err}
	}()
	t := time.NewTicker(concatBeat)
	defer t.Stop()
	rc := http.NewResponseController(w) // the metrics recorder wraps w
	started := false
	for {
		select {
		case res := <-done:
			if !started {
				if res.err != nil {
					writeError(w, res.err)
					return
				}
				httpx.WriteJSON(w, http.StatusCreated, wire.ConcatResult{Upload: res.u, Version: &res.obj})
				return
			}
			out := wire.ConcatResult{Upload: res.u, Version: &res.obj}
			if res.err != nil {
				out = wire.ConcatResult{Error: &wire.ConcatError{Code: depot.ErrorCode(res.err), Message: depot.ErrorMessage(res.err)}}
			}
			_ = json.NewEncoder(w).Encode(out)
			return
		case <-t.C:
			if !started {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("X-Content-Type-Options", "nosniff")
				w.WriteHeader(http.StatusOK)
				started = true
			}
			if _, err := w.Write([]byte("\n")); err != nil {
				<-done // web went away: the concatenation ends with its context
				return
			}
			if err := rc.Flush(); err != nil {
				<-done
				return
			}
		}
	}
}
