package web

import (
	"context"
	"net/http"
	"strings"

	"depot"
	"depot/internal/httpx"
	"depot/internal/sessioncookie"
)

// AuthConfigJSON is GET /api/v1/auth/config: whether single sign-on is on
// and what depot login needs to sign in with the device flow.
type AuthConfigJSON struct {
	Enabled  bool     `json:"enabled"`
	Provider string   `json:"provider,omitempty"`  // shown on the page
	Issuer   string   `json:"issuer,omitempty"`    // the provider's issuer URL
	ClientID string   `json:"client_id,omitempty"` // the command-line client's ID
	Scopes   []string `json:"scopes,omitempty"`
	LoginURL string   `json:"login_url,omitempty"` // where the page's button goes
	// Session says whether this request carried a session cookie, which
	// the page cannot see (HttpOnly): without one it does not ask who is
	// signed in.
	Session bool `json:"session,omitempty"`
}

// oidcRoutes registers the single sign-on endpoints. They answer 404
// (not_found, "single sign-on is not configured") when it is off.
func (s *Server) oidcRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /auth/login", s.oidcLogin)
	mux.HandleFunc("GET /auth/callback", s.oidcCallback)
	mux.HandleFunc("GET /api/v1/auth/config", s.authConfig)
	mux.HandleFunc("POST /api/v1/auth/login", s.cliSignIn)
	mux.HandleFunc("POST /api/v1/auth/logout", s.signOut)
}

func (s *Server) authConfig(w http.ResponseWriter, r *http.Request) {
	o := s.cfg.OIDC
	if o == nil {
		httpx.WriteJSON(w, http.StatusOK, AuthConfigJSON{})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, AuthConfigJSON{
		Enabled: true, Provider: o.cfg.ProviderName, Issuer: o.cfg.Issuer, ClientID: o.cfg.CLIClientID,
		Scopes: o.cfg.Scopes, LoginURL: "/auth/login", Session: hasSessionCookie(r),
	})
}

// cliSignIn answers POST /api/v1/auth/login for depot login: the bearer
// token is the ID token it got by the device flow. Services checks it,
// binds the person to a depot user at the first sign-in, and records the
// sign-in; the answer is the person as GET /api/v1/me shows them.
func (s *Server) cliSignIn(w http.ResponseWriter, r *http.Request) {
	if s.cfg.OIDC == nil {
		writeError(w, errorf(depot.CodeNotFound, "single sign-on is not configured"))
		return
	}
	caller := s.caller(w, r)
	if caller.Token == "" {
		writeError(w, errorf(depot.CodeUnauthorized, "send the ID token as a bearer token"))
		return
	}
	p, err := s.cfg.OIDC.cfg.Events.SessionEvent(r.Context(), caller, "sign_in", "cli", "")
	if err != nil {
		writeError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, meOf(p, ""))
}

// signOut answers POST /api/v1/auth/logout. With the session cookie (and
// the anti-forgery token, checked by withSession) it revokes the session's
// refresh token at the provider, records the sign-out and deletes the
// cookie. With a bearer ID token (depot logout, which revokes its own
// token) it records the sign-out.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	o := s.cfg.OIDC
	if o == nil {
		writeError(w, errorf(depot.CodeNotFound, "single sign-on is not configured"))
		return
	}
	ctx, caller := r.Context(), s.caller(w, r)
	sess, cookie := sessionFrom(ctx)
	client := "cli"
	if cookie {
		client = "browser"
		http.SetCookie(w, o.cookie(sessioncookie.SessionName, "", -1, http.SameSiteStrictMode))
		if err := o.revoke(context.WithoutCancel(ctx), sess.Refresh); err != nil {
			s.cfg.Log.Warn("sign-out: revoking the refresh token failed", "request_id", caller.RequestID, "err", err.Error())
		}
	} else if caller.Token == "" {
		writeError(w, errorf(depot.CodeUnauthorized, "not signed in"))
		return
	}
	if _, err := o.cfg.Events.SessionEvent(ctx, caller, "sign_out", client, ""); err != nil {
		writeError(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// bearerOrSession is the credential of r for withCaller: the bearer token,
// else the ID token of the session cookie (set by withSession).
func bearerOrSession(r *http.Request) string {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if token = strings.TrimSpace(token); token != "" {
		return token
	}
	if sess, ok := sessionFrom(r.Context()); ok {
		return sess.IDToken
	}
	return ""
}

func hasSessionCookie(r *http.Request) bool {
	_, err := r.Cookie(sessioncookie.SessionName)
	return err == nil
}
