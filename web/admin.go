package web

import (
	"encoding/json"
	"io"
	"net/http"

	"depot"
	"depot/internal/httpx"
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

// decodeJSON decodes a small JSON request body of caller c into v,
// answering and returning false when it cannot. Services first sees c's
// credentials, so that a body is read only from a signed-in user (a refusal
// is sent at once, never after a body that may not come), and the body must
// arrive within BodyIdleTimeout.
func (s *Server) decodeJSON(w http.ResponseWriter, r *http.Request, c depot.Caller, v any) bool {
	if _, err := s.cfg.Backend.Authorize(r.Context(), c, "", ""); err != nil {
		writeError(w, err)
		return false
	}
	body := httpx.NewProgressReader(w, r, s.cfg.BodyIdleTimeout)
	defer body.Done()
	if err := json.NewDecoder(io.LimitReader(body, 64<<10)).Decode(v); err != nil {
		writeError(w, errorf(depot.CodeInvalid, "the request body is not valid JSON"))
		return false
	}
	return true
}
