package e2e

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/internal/oidctest"
	"depot/internal/sessioncookie"
	"depot/servicedb"
)

// Single sign-on tests run depot's two real processes against a real
// OpenID provider (zitadel's example OP, internal/oidctest) on loopback.
// The provider's issuer is on "localhost", depot on 127.0.0.1: two sites,
// as an institution's provider and depot are.

const (
	ssoWebClient = "depot-web"
	ssoWebSecret = "depot-web-secret-0123456789"
	ssoCLIClient = "depot-cli"
	ssoPassword  = "correct horse battery staple"
	// ssoCookieKey seals session cookies; the tests know it, so they can
	// make cookies the way an attacker holding the key (or a compromised
	// web tier) could, and check that services still refuses them.
	ssoCookieKey = "test-session-key-0123456789abcdef-0123456789"
)

// ssoUsers are the people at the provider. alice is in the group mapped to
// cohort c1 (uploader); bob is in no group; eve's email is unverified.
var ssoUsers = []oidctest.User{
	{Username: "u-alice", Password: ssoPassword, Email: "alice@example.org", EmailVerified: true, Groups: []string{"lab-c1"}},
	{Username: "u-bob", Password: ssoPassword, Email: "bob@example.org", EmailVerified: true},
	{Username: "u-eve", Password: ssoPassword, Email: "eve@example.org", EmailVerified: false, Groups: []string{"lab-c1"}},
}

// ssoCluster is a cluster whose web and services use a provider.
type ssoCluster struct {
	*cluster
	idp    *oidctest.Provider
	public string // the address users reach web at (web itself, or a proxy)
	webEnv map[string]string
	codec  *sessioncookie.Codec
	db     *servicedb.DB
}

type ssoOpts struct {
	// publicAddr is where users reach web ("" → web's own address); the
	// provider redirects there.
	publicAddr string
	webEnv     map[string]string
	// cliTokenLifetime shortens the ID tokens of depot login's client.
	cliTokenLifetime time.Duration
}

func newSSOCluster(t *testing.T, o ssoOpts) *ssoCluster {
	t.Helper()
	webAddr := freeAddr(t)
	public := "http://" + webAddr
	if o.publicAddr != "" {
		public = "http://" + o.publicAddr
	}
	idp := oidctest.Start(t, oidctest.Options{
		Clients: []oidctest.Client{
			{ID: ssoWebClient, Secret: ssoWebSecret, RedirectURIs: []string{public + "/auth/callback"}},
			{ID: ssoCLIClient, Device: true, IDTokenLifetime: o.cliTokenLifetime},
		},
		Users: ssoUsers,
	})
	webEnv := map[string]string{
		"DEPOT_ADDR": webAddr, "DEPOT_OIDC_ISSUER": idp.Issuer, "DEPOT_OIDC_CLIENT_ID": ssoWebClient,
		"DEPOT_OIDC_CLIENT_SECRET": ssoWebSecret, "DEPOT_OIDC_CLI_CLIENT_ID": ssoCLIClient, "DEPOT_OIDC_PROVIDER_NAME": "Example University",
		"DEPOT_OIDC_SCOPES": "openid email profile offline_access groups", "DEPOT_PUBLIC_URL": public,
		"DEPOT_SESSION_KEYS": ssoCookieKey, "DEPOT_CHUNK_SIZE": "1048576",
	}
	for k, v := range o.webEnv {
		webEnv[k] = v
	}
	c := newCluster(t, clusterOpts{
		webEnv: webEnv,
		servicesEnv: map[string]string{
			"DEPOT_OIDC_ISSUER": idp.Issuer, "DEPOT_OIDC_CLIENT_ID": ssoWebClient, "DEPOT_OIDC_CLI_CLIENT_ID": ssoCLIClient,
			"DEPOT_OIDC_CREATE_USERS": "on", "DEPOT_OIDC_GROUP_ROLES": "lab-c1=c1:uploader",
		},
	})
	codec, err := sessioncookie.New([]string{ssoCookieKey})
	if err != nil {
		t.Fatal(err)
	}
	return &ssoCluster{cluster: c, idp: idp, public: public, webEnv: webEnv, codec: codec, db: openAuditDB(t, c.dbURL)}
}

// agent is a minimal browser over HTTP: it keeps cookies by name (Go's
// cookie jar does not send Secure cookies to http:// loopback, browsers
// do) and does not follow redirects.
type agent struct {
	t       *testing.T
	base    string
	cookies map[string]string
	set     []*http.Cookie // Set-Cookie of the last response
}

func newAgent(t *testing.T, base string) *agent {
	return &agent{t: t, base: base, cookies: map[string]string{}}
}

// do sends a request (path relative to base, or absolute) with the
// agent's cookies and records the cookies it gets back.
func (a *agent) do(method, target string, body *strings.Reader, hdr map[string]string) *http.Response {
	a.t.Helper()
	if !strings.HasPrefix(target, "http") {
		target = a.base + target
	}
	var req *http.Request
	var err error
	if body != nil {
		req, err = http.NewRequest(method, target, body)
	} else {
		req, err = http.NewRequest(method, target, nil)
	}
	if err != nil {
		a.t.Fatal(err)
	}
	for k, v := range a.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: v})
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, target, err)
	}
	a.set = resp.Cookies()
	for _, c := range a.set {
		if c.MaxAge < 0 {
			delete(a.cookies, c.Name)
		} else {
			a.cookies[c.Name] = c.Value
		}
	}
	return resp
}

// setCookie returns the last response's Set-Cookie for name, or nil.
func (a *agent) setCookie(name string) *http.Cookie {
	for _, c := range a.set {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// startSignIn opens /auth/login and returns where web sends the browser
// (the provider's authorization endpoint).
func (a *agent) startSignIn() string {
	a.t.Helper()
	resp := a.do("GET", "/auth/login", nil, nil)
	readAll(a.t, resp)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || loc == "" {
		a.t.Fatalf("GET /auth/login: %d, Location %q", resp.StatusCode, loc)
	}
	return loc
}

// signIn runs the whole browser sign-in of user and returns the callback
// address the provider sent the browser to, and web's answer to it.
func (a *agent) signIn(idp *oidctest.Provider, user string) (string, *http.Response) {
	a.t.Helper()
	back, err := idp.SignIn(context.Background(), a.startSignIn(), user, ssoPassword)
	if err != nil {
		a.t.Fatal(err)
	}
	resp := a.do("GET", back.String(), nil, nil)
	readAll(a.t, resp)
	return back.String(), resp
}

// signInError is the ?signin_error= of a redirect back to the page ("" when
// the sign-in completed).
func signInError(t *testing.T, resp *http.Response) string {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback answered %d, want 303", resp.StatusCode)
	}
	u, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("signin_error")
}

// session opens the agent's session cookie with the test key.
func (s *ssoCluster) session(t *testing.T, a *agent) sessioncookie.Session {
	t.Helper()
	var sess sessioncookie.Session
	if err := s.codec.Open(sessioncookie.SessionName, a.cookies[sessioncookie.SessionName], &sess); err != nil {
		t.Fatalf("open the session cookie: %v", err)
	}
	return sess
}

// seal makes a session cookie value with the test key.
func (s *ssoCluster) seal(t *testing.T, sess sessioncookie.Session) string {
	t.Helper()
	v, err := s.codec.Seal(sessioncookie.SessionName, sess)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// records returns the audit records after seq with one of the actions.
func (s *ssoCluster) records(t *testing.T, after int64, actions ...depot.Action) []depot.AuditEvent {
	t.Helper()
	var out []depot.AuditEvent
	for _, ev := range auditAfter(t, s.db, after) {
		for _, a := range actions {
			if ev.Action == a {
				out = append(out, ev)
			}
		}
	}
	return out
}

// refusals returns the reasons of the sign_in_refused records after seq.
func (s *ssoCluster) refusals(t *testing.T, after int64) []string {
	t.Helper()
	var out []string
	for _, ev := range s.records(t, after, depot.ActionSignInRefused) {
		out = append(out, ev.Metadata["reason"])
	}
	return out
}
