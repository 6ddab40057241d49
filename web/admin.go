package web

import (
	"net/http"
)

// requestCleanup forwards an administrator's cleanup request
// (POST /api/v1/admin/cleanup[?dry_run=1]) to services, which authorises it,
// audits it and runs the cleanup job; nothing is deleted here.
func (s *Server) requestCleanup(w http.ResponseWriter, r *http.Request) {
	res, err := s.cfg.Backend.RequestCleanup(s.withCaller(w, r, ""), r.URL.Query().Get("dry_run") == "1")
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(res)
}
