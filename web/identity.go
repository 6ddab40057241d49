package web

import (
	"net/http"
	"net/netip"
	"sort"

	"depot/internal/httpx"
)

// trustedUser returns the user named by the trusted single-sign-on header,
// if that is configured and the request comes straight from a trusted proxy;
// otherwise "".
func (s *Server) trustedUser(r *http.Request) string {
	if s.cfg.TrustedUserHeader == "" {
		return ""
	}
	user := r.Header.Get(s.cfg.TrustedUserHeader)
	if user == "" {
		return ""
	}
	addr, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return ""
	}
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(addr.Addr().Unmap()) {
			return user
		}
	}
	return ""
}

// MeJSON describes the signed-in user for the upload page.
type MeJSON struct {
	User    string       `json:"user"`
	Admin   bool         `json:"admin"`
	Method  string       `json:"auth_method"`
	Cohorts []CohortJSON `json:"cohorts"`
}

// CohortJSON is one cohort the user has a grant for, with what they may do.
type CohortJSON struct {
	Name      string `json:"name"`
	Role      string `json:"role"`
	CanUpload bool   `json:"can_upload"`
	CanRead   bool   `json:"can_read"`
	CanDelete bool   `json:"can_delete"`
}

// me answers GET /api/v1/me: who is signed in and which cohorts they may use.
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	p, err := s.cfg.Backend.Authenticate(s.withCaller(w, r, ""), "", "")
	if err != nil {
		writeError(w, err)
		return
	}
	out := MeJSON{User: p.User, Admin: p.Admin, Method: p.AuthMethod, Cohorts: []CohortJSON{}}
	for name, role := range p.Grants {
		out.Cohorts = append(out.Cohorts, CohortJSON{
			Name: name, Role: string(role), CanUpload: p.Can(name, "upload"), CanRead: p.Can(name, "read"), CanDelete: p.Can(name, "delete"),
		})
	}
	sort.Slice(out.Cohorts, func(i, j int) bool { return out.Cohorts[i].Name < out.Cohorts[j].Name })
	httpx.WriteJSON(w, http.StatusOK, out)
}
