package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"depot"
	"depot/internal/oidctest"
	"depot/internal/sessioncookie"
)

type meResp struct {
	User    string `json:"user"`
	Method  string `json:"auth_method"`
	CSRF    string `json:"csrf_token"`
	IdP     string `json:"idp"`
	Cohorts []struct{ Name, Role string }
}

func (a *agent) me(t *testing.T) (int, meResp) {
	t.Helper()
	resp := a.do("GET", "/api/v1/me", nil, nil)
	b := readAll(t, resp)
	var m meResp
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode, m
}

// TestOIDCSignIn runs the browser's single sign-on over HTTP against the
// real processes and provider: the cookies' attributes, first-sign-in
// provisioning with roles from groups, the anti-forgery token on every
// state-changing request (files and tus), identity in every audit record,
// a second web process accepting the cookie, sign-out with revocation, and
// each refusal audited.
func TestOIDCSignIn(t *testing.T) {
	s := newSSOCluster(t, ssoOpts{})
	a := newAgent(t, s.public)
	head := auditHead(t, s.db)

	// The page learns that single sign-on is on.
	var cfg struct {
		Enabled  bool
		Provider string
		ClientID string `json:"client_id"`
		Issuer   string
	}
	if err := json.Unmarshal(expectStatus(t, a.do("GET", "/api/v1/auth/config", nil, nil), 200), &cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.Enabled || cfg.Provider != "Example University" || cfg.Issuer != s.idp.Issuer || cfg.ClientID != ssoCLIClient {
		t.Fatalf("auth config: %+v", cfg)
	}

	// Sign in. The login cookie is sealed, HttpOnly, Secure, Lax, short.
	authURL := a.startSignIn()
	login := a.setCookie(sessioncookie.LoginName)
	if login == nil || !login.HttpOnly || !login.Secure || login.SameSite != http.SameSiteLaxMode || login.Path != "/" || login.MaxAge != 600 {
		t.Fatalf("login cookie: %+v", login)
	}
	if !strings.HasPrefix(authURL, s.idp.Issuer) || !strings.Contains(authURL, "code_challenge_method=S256") || !strings.Contains(authURL, "nonce=") {
		t.Fatalf("not a PKCE authorization request: %s", authURL)
	}
	back, err := s.idp.SignIn(context.Background(), authURL, "u-alice", ssoPassword)
	if err != nil {
		t.Fatal(err)
	}
	resp := a.do("GET", back.String(), nil, nil)
	readAll(t, resp)
	if e := signInError(t, resp); e != "" {
		t.Fatalf("sign-in refused: %s", e)
	}
	sc := a.setCookie(sessioncookie.SessionName)
	if sc == nil || !sc.HttpOnly || !sc.Secure || sc.SameSite != http.SameSiteStrictMode || sc.Path != "/" || sc.MaxAge != 900 {
		t.Fatalf("session cookie: %+v", sc)
	}
	if strings.Contains(sc.Value, "eyJ") {
		t.Fatal("the session cookie shows the ID token")
	}
	if _, ok := a.cookies[sessioncookie.LoginName]; ok {
		t.Fatal("the login cookie outlived the callback")
	}
	code, me := a.me(t)
	if code != 200 || me.User != "alice@example.org" || me.Method != "oidc" || me.CSRF == "" || me.IdP != s.idp.Issuer ||
		len(me.Cohorts) != 1 || me.Cohorts[0].Name != "c1" || me.Cohorts[0].Role != "uploader" {
		t.Fatalf("me after sign-in: %d %+v", code, me)
	}
	csrf := map[string]string{"X-Depot-Csrf": me.CSRF}

	// The first sign-in created the user, recorded the roles from the
	// groups and the sign-in, each naming the provider and subject.
	for _, ev := range s.records(t, head, depot.ActionUserCreated, depot.ActionGrantChanged, depot.ActionSignIn) {
		if ev.Actor != "alice@example.org" || ev.AuthMethod != "oidc" || ev.Metadata["idp"] != s.idp.Issuer || ev.Metadata["sub"] != "u-alice" {
			t.Fatalf("record %s: %+v", ev.Action, ev)
		}
	}
	if n := len(s.records(t, head, depot.ActionUserCreated, depot.ActionGrantChanged, depot.ActionSignIn)); n != 3 {
		t.Fatalf("%d provisioning records, want user.created, grant.changed, auth.sign_in", n)
	}

	// Without the anti-forgery token, or from another origin, nothing changes.
	body := "id,value\n1,2\n"
	put := func(hdr map[string]string) int {
		resp := a.do("PUT", "/api/v1/files/c1/sso/a.csv", strings.NewReader(body), hdr)
		readAll(t, resp)
		return resp.StatusCode
	}
	before := auditHead(t, s.db)
	if st := put(nil); st != http.StatusForbidden {
		t.Fatalf("PUT without the anti-forgery token: %d", st)
	}
	if st := put(map[string]string{"X-Depot-Csrf": "wrong"}); st != http.StatusForbidden {
		t.Fatalf("PUT with a wrong anti-forgery token: %d", st)
	}
	if st := put(map[string]string{"X-Depot-Csrf": me.CSRF, "Origin": "http://evil.example"}); st != http.StatusForbidden {
		t.Fatalf("PUT from another origin: %d", st)
	}
	if st := put(map[string]string{"X-Depot-Csrf": me.CSRF, "Sec-Fetch-Site": "cross-site"}); st != http.StatusForbidden {
		t.Fatalf("PUT from another site: %d", st)
	}
	resp = a.do("POST", tusPath, strings.NewReader(""), map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": "3",
		"Upload-Metadata": tusMeta("cohort", "c1", "filename", "t.bin")})
	readAll(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("tus POST without the anti-forgery token: %d", resp.StatusCode)
	}
	denied := s.records(t, before, depot.ActionAccessDenied)
	if len(denied) != 5 || denied[0].Metadata["reason"] != "csrf" || denied[0].Actor != "alice@example.org" || denied[0].Metadata["sub"] != "u-alice" {
		t.Fatalf("refused forgeries are not audited as denied: %+v", denied)
	}
	checkAbsent(t, s.cluster, "sso/a.csv")
	if st := put(map[string]string{"X-Depot-Csrf": me.CSRF, "Origin": s.public, "Sec-Fetch-Site": "same-origin"}); st != http.StatusCreated {
		t.Fatalf("PUT with the anti-forgery token: %d", st)
	}
	checkOnDisk(t, s.cluster, "sso/a.csv", []byte(body))
	resp = a.do("POST", tusPath, strings.NewReader(""), map[string]string{"Tus-Resumable": "1.0.0", "Upload-Length": "3",
		"Upload-Metadata": tusMeta("cohort", "c1", "filename", "t.bin"), "X-Depot-Csrf": me.CSRF})
	readAll(t, resp)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("tus POST with the anti-forgery token: %d", resp.StatusCode)
	}
	done := completedRecords(t, s.cluster, "c1/sso/a.csv")
	if len(done) != 1 || done[0].AuthMethod != "oidc" || done[0].Metadata["idp"] != s.idp.Issuer || done[0].Metadata["sub"] != "u-alice" {
		t.Fatalf("upload record does not name the provider and subject: %+v", done)
	}
	// Reading needs no anti-forgery token; the role from the group does
	// not allow it.
	resp = a.do("GET", "/api/v1/files/c1/sso/a.csv", nil, nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an uploader read a file: %d", resp.StatusCode)
	}

	// A second web process with the same cookie secret accepts the session,
	// and completes a sign-in the first one started.
	env := map[string]string{"DEPOT_ROLE": "web", "DEPOT_SERVICES_URL": s.services.url(), "DEPOT_INTERNAL_KEY": s.key}
	for k, v := range s.webEnv {
		env[k] = v
	}
	env["DEPOT_ADDR"] = "127.0.0.1:0"
	web2 := start(t, env)
	b2 := newAgent(t, web2.url())
	b2.cookies = a.cookies
	if code, me2 := b2.me(t); code != 200 || me2.User != "alice@example.org" {
		t.Fatalf("second web process: %d %+v", code, me2)
	}
	other := newAgent(t, s.public)
	back, err = s.idp.SignIn(context.Background(), other.startSignIn(), "u-alice", ssoPassword)
	if err != nil {
		t.Fatal(err)
	}
	b3 := newAgent(t, web2.url())
	b3.cookies = other.cookies
	resp = b3.do("GET", web2.url()+back.RequestURI(), nil, nil)
	readAll(t, resp)
	if e := signInError(t, resp); e != "" || b3.cookies[sessioncookie.SessionName] == "" {
		t.Fatalf("a sign-in started on one web process did not complete on another: %q", e)
	}

	// Sign out: the refresh token is revoked at the provider, the sign-out
	// audited, the cookie deleted; the cookie is refused afterwards by the
	// provider's revocation only at renewal, so the test checks the token.
	sess := s.session(t, a)
	before = auditHead(t, s.db)
	resp = a.do("POST", "/api/v1/auth/logout", nil, nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-out without the anti-forgery token: %d", resp.StatusCode)
	}
	resp = a.do("POST", "/api/v1/auth/logout", nil, csrf)
	readAll(t, resp)
	if resp.StatusCode != http.StatusNoContent || a.cookies[sessioncookie.SessionName] != "" {
		t.Fatalf("sign-out: %d, cookie %q", resp.StatusCode, a.cookies[sessioncookie.SessionName])
	}
	if out := s.records(t, before, depot.ActionSignOut); len(out) != 1 || out[0].Actor != "alice@example.org" || out[0].Metadata["sub"] != "u-alice" {
		t.Fatalf("sign-out records: %+v", out)
	}
	if refreshWorks(t, s.idp, sess.Refresh) {
		t.Fatal("the refresh token still works after sign-out")
	}
	if code, _ := a.me(t); code != http.StatusUnauthorized {
		t.Fatalf("me after sign-out: %d", code)
	}
}

// refreshWorks reports whether the provider still honours a refresh token
// of depot's web client.
func refreshWorks(t *testing.T, idp *oidctest.Provider, refresh string) bool {
	t.Helper()
	p, err := oidc.NewProvider(context.Background(), idp.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: ssoWebClient, ClientSecret: ssoWebSecret, Endpoint: p.Endpoint()}
	_, err = conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: refresh}).Token()
	return err == nil
}

// TestOIDCSignInRefused: each broken sign-in and session is refused and
// audited with its reason: a replayed callback (with and without its login
// cookie), a wrong state, the provider's error, a tampered or expired
// session cookie, a session holding another provider's token, a person
// with no verified email, another provider's token as a bearer token, and a
// web tier configured with an issuer the provider does not claim.
func TestOIDCSignInRefused(t *testing.T) {
	s := newSSOCluster(t, ssoOpts{})
	a := newAgent(t, s.public)

	// Replays of a callback that was used.
	loginCookie := ""
	authURL := a.startSignIn()
	loginCookie = a.cookies[sessioncookie.LoginName]
	back, err := s.idp.SignIn(context.Background(), authURL, "u-alice", ssoPassword)
	if err != nil {
		t.Fatal(err)
	}
	resp := a.do("GET", back.String(), nil, nil)
	readAll(t, resp)
	if e := signInError(t, resp); e != "" {
		t.Fatalf("first use of the callback refused: %s", e)
	}
	head := auditHead(t, s.db)
	resp = a.do("GET", back.String(), nil, nil) // the login cookie is gone
	readAll(t, resp)
	if e := signInError(t, resp); e != "refused" {
		t.Fatalf("replayed callback: %q", e)
	}
	replay := newAgent(t, s.public)
	replay.cookies[sessioncookie.LoginName] = loginCookie // the attacker kept the login cookie too
	resp = replay.do("GET", back.String(), nil, nil)
	readAll(t, resp)
	if e := signInError(t, resp); e != "refused" || replay.cookies[sessioncookie.SessionName] != "" {
		t.Fatalf("replayed callback with its login cookie: %q", e)
	}

	// A state that is not the login cookie's.
	b := newAgent(t, s.public)
	back, err = s.idp.SignIn(context.Background(), b.startSignIn(), "u-alice", ssoPassword)
	if err != nil {
		t.Fatal(err)
	}
	q := back.Query()
	q.Set("state", "forged-"+q.Get("state"))
	back.RawQuery = q.Encode()
	resp = b.do("GET", back.String(), nil, nil)
	readAll(t, resp)
	if e := signInError(t, resp); e != "refused" {
		t.Fatalf("wrong state: %q", e)
	}
	// The provider's error.
	c := newAgent(t, s.public)
	c.startSignIn()
	var lc sessioncookie.Login
	if err := s.codec.Open(sessioncookie.LoginName, c.cookies[sessioncookie.LoginName], &lc); err != nil {
		t.Fatal(err)
	}
	resp = c.do("GET", "/auth/callback?error=access_denied&state="+lc.State, nil, nil)
	readAll(t, resp)
	if e := signInError(t, resp); e != "refused" {
		t.Fatalf("provider error: %q", e)
	}
	// A person whose email the provider does not vouch for is not bound to
	// a depot user by it.
	d := newAgent(t, s.public)
	if _, resp := d.signIn(s.idp, "u-eve"); signInError(t, resp) != "refused" {
		t.Fatal("a sign-in with an unverified email was accepted")
	}
	want := []string{"code_exchange_failed", "state_missing", "state_mismatch", "provider_error", "email_unverified"}
	got := s.refusals(t, head)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("refusal reasons %v, want %v", got, want)
	}

	// Sessions: tampered, expired, holding another provider's token.
	sess := s.session(t, a)
	if code, _ := a.me(t); code != 200 {
		t.Fatalf("the good session: %d", code)
	}
	head = auditHead(t, s.db)
	tampered := []byte(a.cookies[sessioncookie.SessionName])
	tampered[len(tampered)/2] ^= 0x01
	if code, deleted := cookieMe(t, s, string(tampered)); code != http.StatusUnauthorized || !deleted {
		t.Fatalf("tampered session: %d, cookie deleted %v", code, deleted)
	}
	expired := sess
	expired.Expiry = time.Now().Add(-time.Second).Unix()
	if code, deleted := cookieMe(t, s, s.seal(t, expired)); code != http.StatusUnauthorized || !deleted {
		t.Fatalf("expired session: %d, cookie deleted %v", code, deleted)
	}
	foreignIdP := oidctest.Start(t, oidctest.Options{
		Clients: []oidctest.Client{{ID: ssoWebClient, Secret: ssoWebSecret, RedirectURIs: []string{s.public + "/auth/callback"}}},
		Users:   ssoUsers,
	})
	tok, err := foreignIdP.Tokens(context.Background(), ssoWebClient, ssoWebSecret, s.public+"/auth/callback", "u-alice", ssoPassword)
	if err != nil {
		t.Fatal(err)
	}
	forged := sess
	forged.IDToken = tok.Extra("id_token").(string)
	if code, _ := cookieMe(t, s, s.seal(t, forged)); code != http.StatusUnauthorized {
		t.Fatalf("session with another provider's token: %d", code)
	}
	if got := s.refusals(t, head); !slices.Equal(got, []string{"session_invalid", "session_expired"}) {
		t.Fatalf("session refusals %v", got)
	}
	failed := s.records(t, head, depot.ActionAuthFailed)
	if len(failed) != 1 || failed[0].Metadata["reason"] != "wrong_issuer" || failed[0].Metadata["idp"] != s.idp.Issuer {
		t.Fatalf("the foreign token's refusal: %+v", failed)
	}
	// Another provider's token as a bearer token (depot login's path).
	resp = s.doAs(tok.Extra("id_token").(string), "GET", "/api/v1/me", nil, nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bearer token of another provider: %d", resp.StatusCode)
	}
	resp = s.doAs(tok.Extra("id_token").(string), "POST", "/api/v1/auth/login", nil, nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("depot login with another provider's token: %d", resp.StatusCode)
	}
	if got := s.refusals(t, head); !slices.Contains(got, "wrong_issuer") {
		t.Fatalf("the refused sign-in with a foreign token is not audited: %v", got)
	}

	// A web tier configured with an issuer the provider does not claim (here
	// with a trailing slash) never sends anyone there.
	env := map[string]string{"DEPOT_ROLE": "web", "DEPOT_SERVICES_URL": s.services.url(), "DEPOT_INTERNAL_KEY": s.key}
	for k, v := range s.webEnv {
		env[k] = v
	}
	env["DEPOT_ADDR"], env["DEPOT_OIDC_ISSUER"] = "127.0.0.1:0", s.idp.Issuer+"/"
	misconfigured := start(t, env)
	resp = newAgent(t, misconfigured.url()).do("GET", "/auth/login", nil, nil)
	readAll(t, resp)
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/?signin_error=unavailable" {
		t.Fatalf("sign-in against a provider that names another issuer: %d %s", resp.StatusCode, loc)
	}
}

// cookieMe asks /api/v1/me with a given session cookie value; deleted
// says whether web deleted the cookie in its answer.
func cookieMe(t *testing.T, s *ssoCluster, value string) (code int, deleted bool) {
	t.Helper()
	a := newAgent(t, s.public)
	a.cookies[sessioncookie.SessionName] = value
	code, _ = a.me(t)
	c := a.setCookie(sessioncookie.SessionName)
	return code, c != nil && c.MaxAge < 0
}
