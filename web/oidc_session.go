package web

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"depot"
	"depot/internal/sessioncookie"
)

// CSRFHeader carries the session's anti-forgery token on every
// state-changing request made with the session cookie. The page reads the
// token from GET /api/v1/me, which another site cannot read.
const CSRFHeader = "X-Depot-Csrf"

// maxCookieBytes is the largest session cookie web sets; browsers keep
// about 4 KiB per cookie.
const maxCookieBytes = 4000

// renewBefore is how long before the ID token expires a session is
// renewed, so that services never sees an expired token.
const renewBefore = 2 * time.Minute

type sessionKey struct{}

// sessionFrom returns the session that authenticated the request of ctx.
func sessionFrom(ctx context.Context) (sessioncookie.Session, bool) {
	s, ok := ctx.Value(sessionKey{}).(sessioncookie.Session)
	return s, ok
}

// sessionRequest reports whether the session middleware looks at a
// request: the API, except the two endpoints used before any session.
func sessionRequest(r *http.Request) bool {
	p := r.URL.Path
	return strings.HasPrefix(p, "/api/") && p != "/api/v1/auth/config" && p != "/api/v1/auth/login"
}

// withSession authenticates API requests that carry the session cookie and
// no bearer token: it opens the cookie (a tampered or foreign one is a
// refused sign-in), refuses it past its expiry, requires the anti-forgery
// token on state-changing methods, renews the session when it is due, and
// hands the ID token on to withCaller.
func (s *Server) withSession(next http.Handler) http.Handler {
	o := s.cfg.OIDC
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := r.Cookie(sessioncookie.SessionName)
		if err != nil || r.Header.Get("Authorization") != "" || !sessionRequest(r) {
			next.ServeHTTP(w, r)
			return
		}
		var sess sessioncookie.Session
		if o.cfg.Cookies.Open(sessioncookie.SessionName, c.Value, &sess) != nil {
			s.rejectSession(w, r, "session_invalid")
			return
		}
		now := o.cfg.Now().Unix()
		if now >= sess.Expiry {
			s.rejectSession(w, r, "session_expired")
			return
		}
		ctx := context.WithValue(r.Context(), sessionKey{}, sess)
		if !o.csrfOK(r, sess) {
			s.denyForgery(w, r.WithContext(ctx), sess)
			return
		}
		if o.renewalDue(sess, now) {
			fresh, err := o.renew(ctx, sess)
			switch {
			case err == nil:
				if err := o.setSession(w, fresh); err == nil {
					sess = fresh
				}
			case now < sess.IDExpiry:
				// Another request may have used the refresh token first
				// (rotation); this one carries on with the token it has.
				s.cfg.Log.Info("session renewal failed; the ID token is still valid", "err", err.Error())
			default:
				s.cfg.Log.Info("session renewal failed", "err", err.Error())
				s.rejectSession(w, r, "refresh_failed")
				return
			}
		}
		if now >= sess.IDExpiry {
			s.rejectSession(w, r, "session_expired")
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	})
}

// rejectSession deletes the session cookie, reports the refusal to
// services (audited, counted against the address) and answers 401 (429
// when the address is blocked).
func (s *Server) rejectSession(w http.ResponseWriter, r *http.Request, reason string) {
	o := s.cfg.OIDC
	http.SetCookie(w, o.cookie(sessioncookie.SessionName, "", -1, http.SameSiteStrictMode))
	_, err := o.cfg.Events.SessionEvent(r.Context(), s.caller(w, r), "refused", "browser", reason)
	if code := depot.ErrorCode(err); code == depot.CodeTooMany || code == depot.CodeUnavailable {
		writeError(w, err)
		return
	}
	writeError(w, errorf(depot.CodeUnauthorized, "your session has ended or is not valid; sign in again"))
}

// csrfOK checks a state-changing request made with the session: it must
// carry the session's anti-forgery token, and a browser's Origin and
// Sec-Fetch-Site, when sent, must name this site.
func (o *OIDC) csrfOK(r *http.Request, sess sessioncookie.Session) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	if sess.CSRF == "" || subtle.ConstantTimeCompare([]byte(r.Header.Get(CSRFHeader)), []byte(sess.CSRF)) != 1 {
		return false
	}
	if origin := r.Header.Get("Origin"); origin != "" && origin != o.origin() {
		return false
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" {
		return false
	}
	return true
}

// denyForgery refuses a state-changing request without the right
// anti-forgery token (403), audited by services as a denied access of the
// session's user. It does not count against the address: a forged request
// comes from the victim's browser.
func (s *Server) denyForgery(w http.ResponseWriter, r *http.Request, sess sessioncookie.Session) {
	c := s.caller(w, r)
	c.Token = sess.IDToken
	if _, err := s.cfg.OIDC.cfg.Events.SessionEvent(r.Context(), c, "denied", "browser", "csrf"); depot.ErrorCode(err) == depot.CodeUnavailable {
		writeError(w, err)
		return
	}
	writeError(w, errorf(depot.CodeForbidden, "missing or wrong anti-forgery token (%s); reload the page", CSRFHeader))
}

// renewalDue reports whether sess should be renewed now: in the second half
// of its lifetime, or close to its ID token's expiry, unless it cannot be
// (no refresh token, or past its maximum age).
func (o *OIDC) renewalDue(sess sessioncookie.Session, now int64) bool {
	if sess.Refresh == "" || now >= sess.SignedIn+int64(o.cfg.SessionMaxAge/time.Second) {
		return false
	}
	return sess.Expiry-now < int64(o.cfg.SessionTTL/2/time.Second) || sess.IDExpiry-now < int64(renewBefore/time.Second)
}

// renewals lets concurrent requests of one session share one refresh (the
// provider may rotate refresh tokens: a second use would fail).
type renewals struct {
	mu    sync.Mutex
	calls map[string]*renewal
}

type renewal struct {
	done chan struct{}
	sess sessioncookie.Session
	err  error
}

// renew refreshes sess at the provider, once for all concurrent callers.
func (o *OIDC) renew(ctx context.Context, sess sessioncookie.Session) (sessioncookie.Session, error) {
	o.renewals.mu.Lock()
	if c, ok := o.renewals.calls[sess.Refresh]; ok {
		o.renewals.mu.Unlock()
		select {
		case <-c.done:
			return c.sess, c.err
		case <-ctx.Done():
			return sess, ctx.Err()
		}
	}
	if o.renewals.calls == nil {
		o.renewals.calls = map[string]*renewal{}
	}
	c := &renewal{done: make(chan struct{})}
	o.renewals.calls[sess.Refresh] = c
	o.renewals.mu.Unlock()

	c.sess, c.err = o.refresh(context.WithoutCancel(ctx), sess)
	close(c.done)
	o.renewals.mu.Lock()
	delete(o.renewals.calls, sess.Refresh)
	o.renewals.mu.Unlock()
	return c.sess, c.err
}

// refresh uses sess's refresh token for a new ID token of the same person
// and extends the session by its lifetime, up to its maximum age.
func (o *OIDC) refresh(ctx context.Context, sess sessioncookie.Session) (sessioncookie.Session, error) {
	p, err := o.discover()
	if err != nil {
		return sess, err
	}
	ctx = o.clientContext(ctx)
	tok, err := p.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: sess.Refresh}).Token()
	if err != nil {
		return sess, fmt.Errorf("refresh: %w", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return sess, errors.New("refresh: the provider sent no new ID token")
	}
	id, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return sess, fmt.Errorf("refresh: %w", err)
	}
	if id.Subject != sess.Subject {
		return sess, errors.New("refresh: the new ID token names another person")
	}
	now := o.cfg.Now()
	out := sess
	out.IDToken, out.IDExpiry = raw, id.Expiry.Unix()
	if tok.RefreshToken != "" {
		out.Refresh = tok.RefreshToken
	}
	out.Expiry = min(now.Add(o.cfg.SessionTTL).Unix(), sess.SignedIn+int64(o.cfg.SessionMaxAge/time.Second))
	return out, nil
}

// setSession seals sess into the session cookie (SameSite=Strict: it is
// never needed on a request from another site).
func (o *OIDC) setSession(w http.ResponseWriter, sess sessioncookie.Session) error {
	v, err := o.cfg.Cookies.Seal(sessioncookie.SessionName, sess)
	if err != nil {
		return err
	}
	if len(v) > maxCookieBytes {
		return fmt.Errorf("the session is %d bytes, more than a browser keeps in a cookie (the provider's ID token is too large)", len(v))
	}
	ttl := time.Duration(sess.Expiry-o.cfg.Now().Unix()) * time.Second
	http.SetCookie(w, o.cookie(sessioncookie.SessionName, v, ttl, http.SameSiteStrictMode))
	return nil
}

// revoke tells the provider to revoke a refresh token (RFC 7009), when it
// offers revocation. Failures are returned for logging only.
func (o *OIDC) revoke(ctx context.Context, refresh string) error {
	p, err := o.discover()
	if err != nil || p.revocation == "" || refresh == "" {
		return err
	}
	form := url.Values{"token": {refresh}, "token_type_hint": {"refresh_token"}}
	if o.cfg.ClientSecret == "" {
		form.Set("client_id", o.cfg.ClientID) // a public client names itself
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.revocation, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if o.cfg.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(o.cfg.ClientID), url.QueryEscape(o.cfg.ClientSecret))
	}
	resp, err := o.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation answered %d", resp.StatusCode)
	}
	return nil
}
