package services

import (
	"net/http"

	"depot/internal/httpx"
)

// sessionEvent answers POST /internal/v1/auth/session?event=E&client=C
// [&reason=R]: a single sign-on event reported by web (Core.SessionEvent).
// A sign-in answers the principal, the others 204 or their refusal.
func (s *Server) sessionEvent(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, err := s.core.SessionEvent(r.Context(), callerOf(r), q.Get("event"), q.Get("client"), q.Get("reason"))
	switch {
	case err != nil:
		writeError(w, err)
	case q.Get("event") == EventSignIn:
		httpx.WriteJSON(w, http.StatusOK, p)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
