package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"depot"
	"depot/internal/sessioncookie"
)

// Single sign-on with OpenID Connect, web side. The upload page's "Sign in
// with <provider>" runs the authorization code flow with PKCE, a state and
// a nonce, all kept in a sealed, short-lived login cookie (web stores
// nothing). The callback exchanges the code, checks the ID token, has
// services check it again and record the sign-in, and sets the session
// cookie (oidc_session.go): sealed, HttpOnly, Secure, SameSite=Strict,
// short-lived, renewed with the refresh token. Every request made with the
// cookie forwards the ID token to services, which verifies it against the
// provider's keys; a state-changing one must also carry the session's
// anti-forgery token.

// SessionEvents reports single sign-on events to services (apiclient).
type SessionEvents interface {
	// SessionEvent reports "sign_in" or "sign_out" (the ID token is
	// c.Token), "refused" (a sign-in web refused itself,
	// with a reason code) or "denied" (a request made with a valid
	// session refused by web, e.g. reason "csrf").
	SessionEvent(ctx context.Context, c depot.Caller, event, client, reason string) (depot.Principal, error)
}

// OIDCConfig configures single sign-on.
type OIDCConfig struct {
	Issuer       string // the provider's issuer URL
	ClientID     string // depot's web client at the provider
	ClientSecret string // its secret ("" for a public client: PKCE only)
	// CLIClientID is the client depot login uses (announced by
	// /api/v1/auth/config); default ClientID.
	CLIClientID string
	// ProviderName is shown on the page ("Sign in with …"); default the
	// issuer's host name.
	ProviderName string
	// Scopes asked for; default openid, email, profile, offline_access.
	Scopes []string
	// PublicURL is the address users reach web at (https://host[:port], or
	// http on loopback for tests); the callback is PublicURL/auth/callback.
	PublicURL string
	// Cookies seals the login and session cookies; web processes that
	// share its secrets accept each other's cookies.
	Cookies *sessioncookie.Codec
	// SessionTTL is a session cookie's lifetime; each renewal (by refresh
	// token) extends it by as much. Default 15 minutes.
	SessionTTL time.Duration
	// SessionMaxAge bounds a session from its sign-in: no renewal goes past
	// it. Default 12 hours.
	SessionMaxAge time.Duration
	Events        SessionEvents
	// HTTP talks to the provider. Default: a client with a 10 s timeout.
	HTTP *http.Client
	Now  func() time.Time
}

// OIDC is the relying party of one provider.
type OIDC struct {
	cfg    OIDCConfig
	public *url.URL

	mu       sync.Mutex
	party    *party // nil until the provider's discovery document was read
	failedAt time.Time

	renewals renewals
}

// party is what discovery tells about the provider.
type party struct {
	oauth      oauth2.Config
	verifier   *oidc.IDTokenVerifier
	revocation string // RFC 7009 endpoint; "" when the provider has none
}

// loginTTL bounds a sign-in from the redirect to the provider to the
// callback.
const loginTTL = 10 * time.Minute

// NewOIDC validates cfg and returns the relying party. The provider is
// contacted on first use, not here, so that web starts while it is down.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("single sign-on needs an issuer and a client ID")
	}
	if cfg.Cookies == nil || cfg.Events == nil {
		return nil, errors.New("single sign-on needs cookie secrets and the services tier")
	}
	u, err := url.Parse(strings.TrimSuffix(cfg.PublicURL, "/"))
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("the public URL must be scheme://host[:port], got %q", cfg.PublicURL)
	}
	u.Path = ""
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
		return nil, errors.New("the public URL must be https (http only on loopback): browsers keep Secure cookies only there")
	}
	if cfg.CLIClientID == "" {
		cfg.CLIClientID = cfg.ClientID
	}
	if cfg.ProviderName == "" {
		if iu, err := url.Parse(cfg.Issuer); err == nil {
			cfg.ProviderName = iu.Hostname()
		}
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{oidc.ScopeOpenID, "email", "profile", oidc.ScopeOfflineAccess}
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 15 * time.Minute
	}
	if cfg.SessionMaxAge <= 0 {
		cfg.SessionMaxAge = 12 * time.Hour
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &OIDC{cfg: cfg, public: u}, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// origin is the scheme://host[:port] pages of this web tier run at.
func (o *OIDC) origin() string { return o.public.String() }

// discover returns the provider's endpoints and keys, reading its discovery
// document on first use (again at most every few seconds while it fails).
func (o *OIDC) discover() (*party, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.party != nil {
		return o.party, nil
	}
	if o.cfg.Now().Sub(o.failedAt) < 5*time.Second {
		return nil, depot.Errorf(depot.CodeUnavailable, "the identity provider is unreachable")
	}
	// The provider keeps this context for its key fetches: it outlives
	// requests; the client's timeout bounds each fetch.
	p, err := oidc.NewProvider(o.clientContext(context.Background()), o.cfg.Issuer)
	if err != nil {
		o.failedAt = o.cfg.Now()
		return nil, depot.WrapError(depot.CodeUnavailable, "the identity provider is unreachable", err)
	}
	var extra struct {
		Revocation string `json:"revocation_endpoint"`
	}
	_ = p.Claims(&extra)
	o.party = &party{
		oauth: oauth2.Config{
			ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, Endpoint: p.Endpoint(),
			RedirectURL: o.origin() + "/auth/callback", Scopes: o.cfg.Scopes,
		},
		verifier:   p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID, Now: o.cfg.Now}),
		revocation: extra.Revocation,
	}
	return o.party, nil
}

// clientContext makes oauth2 and go-oidc use the configured HTTP client.
func (o *OIDC) clientContext(ctx context.Context) context.Context {
	return context.WithValue(oidc.ClientContext(ctx, o.cfg.HTTP), oauth2.HTTPClient, o.cfg.HTTP)
}

// randomToken returns 32 random bytes, base64url.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// oidcLogin answers GET /auth/login: it starts a sign-in at the provider.
func (s *Server) oidcLogin(w http.ResponseWriter, r *http.Request) {
	o := s.cfg.OIDC
	if o == nil {
		writeError(w, errorf(depot.CodeNotFound, "single sign-on is not configured"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	p, err := o.discover()
	if err != nil {
		s.cfg.Log.Warn("sign-in: provider unavailable", "err", err.Error())
		http.Redirect(w, r, "/?signin_error=unavailable", http.StatusSeeOther)
		return
	}
	now := o.cfg.Now()
	login := sessioncookie.Login{
		State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), Expiry: now.Add(loginTTL).Unix(),
	}
	v, err := o.cfg.Cookies.Seal(sessioncookie.LoginName, login)
	if err != nil {
		writeError(w, errorf(depot.CodeInternal, "cannot start the sign-in"))
		return
	}
	// Lax, not Strict: the provider's redirect back is a cross-site
	// navigation, on which only Lax cookies are sent.
	http.SetCookie(w, o.cookie(sessioncookie.LoginName, v, loginTTL, http.SameSiteLaxMode))
	http.Redirect(w, r, p.oauth.AuthCodeURL(login.State, oidc.Nonce(login.Nonce), oauth2.S256ChallengeOption(login.Verifier)), http.StatusFound)
}

// oidcCallback answers GET /auth/callback, the provider's redirect back.
// Anything wrong (no login cookie, state or nonce mismatch, a code that
// does not exchange, an ID token that does not verify) is a refused
// sign-in: reported to services (audited, throttled) and shown on the page.
func (s *Server) oidcCallback(w http.ResponseWriter, r *http.Request) {
	o := s.cfg.OIDC
	if o == nil {
		writeError(w, errorf(depot.CodeNotFound, "single sign-on is not configured"))
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	ctx, caller := r.Context(), s.caller(w, r)
	http.SetCookie(w, o.cookie(sessioncookie.LoginName, "", -1, http.SameSiteLaxMode)) // used once
	refuse := func(reason string, err error) {
		if err != nil {
			s.cfg.Log.Info("sign-in refused", "reason", reason, "request_id", caller.RequestID, "err", err.Error())
		}
		_, rerr := o.cfg.Events.SessionEvent(ctx, caller, "refused", "browser", reason)
		http.Redirect(w, r, "/?signin_error="+signInError(rerr), http.StatusSeeOther)
	}
	now := o.cfg.Now()
	var login sessioncookie.Login
	c, err := r.Cookie(sessioncookie.LoginName)
	if err != nil || o.cfg.Cookies.Open(sessioncookie.LoginName, c.Value, &login) != nil || now.Unix() >= login.Expiry {
		refuse("state_missing", err)
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(login.State)) != 1 {
		refuse("state_mismatch", nil)
		return
	}
	if e := q.Get("error"); e != "" {
		refuse("provider_error", fmt.Errorf("provider answered %.64q", e))
		return
	}
	p, err := o.discover()
	if err != nil {
		http.Redirect(w, r, "/?signin_error=unavailable", http.StatusSeeOther)
		return
	}
	tok, err := p.oauth.Exchange(o.clientContext(ctx), q.Get("code"), oauth2.VerifierOption(login.Verifier))
	if err != nil {
		refuse("code_exchange_failed", err)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	id, err := p.verifier.Verify(o.clientContext(ctx), raw)
	if err != nil {
		refuse("id_token_invalid", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(id.Nonce), []byte(login.Nonce)) != 1 {
		refuse("nonce_mismatch", nil)
		return
	}
	// Services checks the token again, binds the person to a depot user
	// and records the sign-in; it may still refuse.
	signed := caller
	signed.Token = raw
	if _, err := o.cfg.Events.SessionEvent(ctx, signed, "sign_in", "browser", ""); err != nil {
		s.cfg.Log.Info("sign-in refused by services", "request_id", signed.RequestID, "code", depot.ErrorCode(err))
		http.Redirect(w, r, "/?signin_error="+signInError(err), http.StatusSeeOther)
		return
	}
	sess := sessioncookie.Session{
		IDToken: raw, Refresh: tok.RefreshToken, IDExpiry: id.Expiry.Unix(), Subject: id.Subject,
		Expiry: now.Add(o.cfg.SessionTTL).Unix(), SignedIn: now.Unix(), CSRF: randomToken(),
	}
	if err := o.setSession(w, sess); err != nil {
		s.cfg.Log.Error("sign-in: session cookie", "request_id", signed.RequestID, "err", err.Error())
		http.Redirect(w, r, "/?signin_error=too_large", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// signInError is the page's code for why a sign-in did not complete.
func signInError(err error) string {
	switch depot.ErrorCode(err) {
	case depot.CodeTooMany:
		return "throttled"
	case depot.CodeUnavailable, depot.CodeInternal:
		return "unavailable"
	}
	return "refused"
}

// cookie returns one of our cookies: Secure, HttpOnly, host-only, path /.
// maxAge < 0 deletes it.
func (o *OIDC) cookie(name, value string, maxAge time.Duration, same http.SameSite) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: same}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	return c
}
