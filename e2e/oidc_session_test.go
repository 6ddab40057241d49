package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"depot"
	"depot/internal/sessioncookie"
)

// TestOIDCSessionRenewal: a session in the second half of its life is
// renewed with the refresh token (new ID token, rotated refresh token, a
// new cookie of full lifetime, the same anti-forgery token); roles that the
// provider's groups no longer give are dropped and the change audited;
// concurrent requests of a due session all succeed; a session past its
// maximum age is not renewed; and one whose refresh token was revoked ends
// when its ID token does.
func TestOIDCSessionRenewal(t *testing.T) {
	s := newSSOCluster(t, ssoOpts{})
	a := newAgent(t, s.public)
	if _, resp := a.signIn(s.idp, "u-alice"); signInError(t, resp) != "" {
		t.Fatal("sign-in refused")
	}
	sess := s.session(t, a)
	now := time.Now().Unix()

	// Due: a minute left of fifteen. The provider now lists alice in no group.
	s.idp.SetGroups("u-alice", nil)
	head := auditHead(t, s.db)
	due := sess
	due.Expiry = now + 60
	a.cookies[sessioncookie.SessionName] = s.seal(t, due)
	code, me := a.me(t)
	if code != 200 || len(me.Cohorts) != 0 {
		t.Fatalf("me after renewal: %d %+v (the group's role should be gone)", code, me)
	}
	c := a.setCookie(sessioncookie.SessionName)
	if c == nil || c.MaxAge < 890 {
		t.Fatalf("no renewed cookie of full lifetime: %+v", c)
	}
	fresh := s.session(t, a)
	if fresh.Refresh == sess.Refresh || fresh.IDToken == sess.IDToken || fresh.CSRF != sess.CSRF || fresh.Subject != "u-alice" ||
		fresh.SignedIn != sess.SignedIn || fresh.Expiry < now+890 {
		t.Fatalf("renewed session: %+v (was %+v)", fresh, sess)
	}
	if refreshWorks(t, s.idp, sess.Refresh) {
		t.Fatal("the old refresh token still works: it was not used")
	}
	changed := s.records(t, head, depot.ActionGrantChanged)
	if len(changed) != 1 || changed[0].Metadata["roles"] != "" || changed[0].Metadata["previous"] != "c1:uploader" ||
		changed[0].Metadata["source"] != "idp_groups" || changed[0].Metadata["sub"] != "u-alice" {
		t.Fatalf("the dropped role is not audited: %+v", changed)
	}
	resp := a.do("PUT", "/api/v1/files/c1/after.csv", strings.NewReader("x"), map[string]string{"X-Depot-Csrf": fresh.CSRF})
	readAll(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("upload after the role was dropped: %d", resp.StatusCode)
	}

	// Several requests of one due session at once all succeed.
	s.idp.SetGroups("u-alice", []string{"lab-c1"})
	due = fresh
	due.Expiry = time.Now().Unix() + 60
	value := s.seal(t, due)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			b := newAgent(t, s.public)
			b.cookies[sessioncookie.SessionName] = value
			req, _ := http.NewRequest("GET", s.public+"/api/v1/me", nil)
			req.AddCookie(&http.Cookie{Name: sessioncookie.SessionName, Value: value})
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Errorf("status %d", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent requests of a due session: %v", err)
	}

	// Past its maximum age (12 h) a session is not renewed, but lasts
	// until its cookie or ID token ends.
	old := fresh
	old.SignedIn = time.Now().Add(-13 * time.Hour).Unix()
	old.Expiry = time.Now().Unix() + 60
	b := newAgent(t, s.public)
	b.cookies[sessioncookie.SessionName] = s.seal(t, old)
	if code, _ := b.me(t); code != 200 || b.setCookie(sessioncookie.SessionName) != nil {
		t.Fatalf("a session past its maximum age was renewed (%d)", code)
	}
	old.IDExpiry = time.Now().Unix() - 1
	b.cookies[sessioncookie.SessionName] = s.seal(t, old)
	if code, _ := b.me(t); code != http.StatusUnauthorized {
		t.Fatalf("a session whose ID token ended, past its maximum age: %d", code)
	}

	// A refresh token revoked at the provider: the session ends when its
	// ID token does.
	cur := s.session(t, a)
	revoke(t, s, cur.Refresh)
	head = auditHead(t, s.db)
	ended := cur
	ended.Expiry, ended.IDExpiry = time.Now().Unix()+60, time.Now().Unix()-1
	b.cookies[sessioncookie.SessionName] = s.seal(t, ended)
	if code, _ := b.me(t); code != http.StatusUnauthorized {
		t.Fatalf("session with a revoked refresh token and an ended ID token: %d", code)
	}
	if got := s.refusals(t, head); len(got) != 1 || got[0] != "refresh_failed" {
		t.Fatalf("refusals %v", got)
	}
}

// revoke revokes a refresh token of the web client at the provider.
func revoke(t *testing.T, s *ssoCluster, refresh string) {
	t.Helper()
	p, err := oidc.NewProvider(context.Background(), s.idp.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Revocation string `json:"revocation_endpoint"`
	}
	if err := p.Claims(&d); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", d.Revocation, strings.NewReader(url.Values{"token": {refresh}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(ssoWebClient, ssoWebSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if refreshWorks(t, s.idp, refresh) {
		t.Fatal("revocation did not take")
	}
}

// TestOIDCSignInThrottled: refused sign-ins count against the address like
// bad tokens; once it is blocked, even a good sign-in is refused, audited.
func TestOIDCSignInThrottled(t *testing.T) {
	s := newSSOCluster(t, ssoOpts{})
	a := newAgent(t, s.public)
	head := auditHead(t, s.db)
	throttled := false
	for i := 0; i < 40 && !throttled; i++ {
		resp := a.do("GET", "/auth/callback?code=x&state=y", nil, nil) // no login cookie: refused
		readAll(t, resp)
		throttled = signInError(t, resp) == "throttled"
	}
	if !throttled {
		t.Fatal("40 refused sign-ins from one address were never throttled")
	}
	if _, resp := a.signIn(s.idp, "u-alice"); signInError(t, resp) != "throttled" {
		t.Fatal("a blocked address signed in")
	}
	if n := len(s.records(t, head, depot.ActionAuthThrottled)); n < 2 {
		t.Fatalf("%d auth.throttled records, want one per blocked attempt", n)
	}
	if n := len(s.refusals(t, head)); n < 5 {
		t.Fatalf("only %d refusals audited", n)
	}
}
