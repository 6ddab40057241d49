package web

import (
	"encoding/json"
	"io"
	"net/http"

	"depot"
)

// requestCleanup forwards an administrator's cleanup request
// (POST /api/v1/admin/cleanup[?dry_run=1]) to services, which authorises it,
// audits it and runs the cleanup job; nothing is deleted here.
func (s *Server) requestCleanup(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Backend.RequestCleanup(r.Context(), s.caller(w, r), r.URL.Query().Get("dry_run") == "1")
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res)
}

// decodeJSON decodes a small JSON request body into v, answering 400 and
// returning false when it is not valid.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(v); err != nil {
		writeError(w, errorf(depot.CodeInvalid, "the request body is not valid JSON"))
		return false
	}
	return true
}
