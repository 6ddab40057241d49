package web

import (
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"

	"depot"
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
	if !s.fromTrustedProxy(r) {
		return ""
	}
	return user
}

// fromTrustedProxy reports whether r's peer is one of TrustedProxies.
func (s *Server) fromTrustedProxy(r *http.Request) bool {
	addr, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && s.trusted(addr.Addr())
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// clientIP is the address of the client r was made for: the peer's
// address, or, when the peer is a trusted proxy, the right-most address of
// X-Forwarded-For that is not itself a trusted proxy (the addresses left of
// it were written by the client and prove nothing). A malformed header
// leaves the proxy's own address.
func (s *Server) clientIP(r *http.Request) string {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	if !s.fromTrustedProxy(r) {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer
		}
		if !s.trusted(a) {
			return a.Unmap().String()
		}
	}
	return peer
}

// MeJSON describes the signed-in user for the upload page.
type MeJSON struct {
	User    string       `json:"user"`
	Admin   bool         `json:"admin"`
	Method  string       `json:"auth_method"`
	Cohorts []CohortJSON `json:"cohorts"`
	// CSRF is the anti-forgery token of a session cookie: the page sends it
	// in CSRFHeader on every state-changing request.
	CSRF string `json:"csrf_token,omitempty"`
	IdP  string `json:"idp,omitempty"` // the identity provider of a single sign-on user
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
	p, err := s.cfg.Backend.Authorize(r.Context(), s.caller(w, r), "", "")
	if err != nil {
		writeError(w, err)
		return
	}
	sess, _ := sessionFrom(r.Context()) // a session cookie's anti-forgery token goes to the page
	httpx.WriteJSON(w, http.StatusOK, meOf(p, sess.CSRF))
}

// meOf is the page's view of p; csrf is the session's anti-forgery token
// ("" without a session cookie).
func meOf(p depot.Principal, csrf string) MeJSON {
	out := MeJSON{User: p.User, Admin: p.Admin, Method: p.AuthMethod, Cohorts: []CohortJSON{}, CSRF: csrf, IdP: p.IdP}
	for name, role := range p.Grants {
		out.Cohorts = append(out.Cohorts, CohortJSON{
			Name: name, Role: string(role), CanUpload: p.Can(name, "upload"), CanRead: p.Can(name, "read"), CanDelete: p.Can(name, "delete"),
		})
	}
	sort.Slice(out.Cohorts, func(i, j int) bool { return out.Cohorts[i].Name < out.Cohorts[j].Name })
	return out
}
