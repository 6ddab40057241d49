// Command signin measures single sign-on: it starts the real depot binary
// as a services and a web process (SQLite) and a real OpenID provider
// (zitadel's example OP, internal/oidctest) on loopback, then times the
// browser's sign-in round trip over HTTP, as a browser would make it:
//
//	redirect: GET /auth/login → 302 to the provider (sealed login cookie)
//	provider: its login page, the credentials posted, its redirects back
//	callback: GET /auth/callback → code exchange, ID token check, services'
//	          check and audited sign-in, sealed session cookie → 303
//
// and reports the whole round trip and depot's part (redirect + callback)
// per sign-in, median and 90th percentile; the first sign-in (which also
// reads the provider's discovery document and keys, and creates the user)
// is reported apart. Then it compares GET /api/v1/me with the session
// cookie (services verifies the ID token's signature on every request)
// and with a personal access token.
//
//	go run ./bench/signin -runs 200
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"time"

	"depot/bench/internal/benchkit"
	"depot/internal/oidctest"
)

const (
	key       = "0123456789abcdef0123456789abcdef"
	cookieKey = "bench-session-key-0123456789abcdef-0123456789"
	password  = "bench-password"
)

func main() {
	runs := flag.Int("runs", 100, "sign-ins timed after the first")
	reqs := flag.Int("requests", 500, "GET /api/v1/me per credential")
	flag.Parse()
	if err := run(*runs, *reqs); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(runs, reqs int) error {
	dir, err := os.MkdirTemp("", "depot-bench-signin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := benchkit.Build(dir)
	if err != nil {
		return err
	}
	db := "sqlite://" + filepath.Join(dir, "depot.db")
	token, err := benchkit.Account(bin, db)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	webAddr := ln.Addr().String()
	ln.Close()
	public := "http://" + webAddr
	idp, err := oidctest.New(oidctest.Options{
		Clients: []oidctest.Client{{ID: "depot-web", Secret: "depot-web-secret", RedirectURIs: []string{public + "/auth/callback"}}},
		Users:   []oidctest.User{{Username: "u1", Password: password, Email: "u1@example.org", EmailVerified: true, Groups: []string{"lab-b"}}},
	})
	if err != nil {
		return err
	}
	defer idp.Close()
	oidcEnv := []string{"DEPOT_OIDC_ISSUER=" + idp.Issuer, "DEPOT_OIDC_CLIENT_ID=depot-web"}
	svc, svcAddr, err := benchkit.Serve(bin, append(oidcEnv, "DEPOT_ROLE=services", "DEPOT_INTERNAL_ADDR=127.0.0.1:0",
		"DEPOT_INTERNAL_KEYS="+key, "DEPOT_STORAGE_URL=file://"+filepath.Join(dir, "files"), "DEPOT_DATABASE_URL="+db,
		"DEPOT_OIDC_CREATE_USERS=on", "DEPOT_OIDC_GROUP_ROLES=lab-b=b:uploader")...)
	if err != nil {
		return err
	}
	defer benchkit.Stop(svc)
	web, _, err := benchkit.Serve(bin, append(oidcEnv, "DEPOT_ROLE=web", "DEPOT_ADDR="+webAddr, "DEPOT_SERVICES_URL=http://"+svcAddr,
		"DEPOT_INTERNAL_KEY="+key, "DEPOT_OIDC_CLIENT_SECRET=depot-web-secret", "DEPOT_PUBLIC_URL="+public,
		"DEPOT_SESSION_KEYS="+cookieKey, "DEPOT_OIDC_SCOPES=openid email profile offline_access groups")...)
	if err != nil {
		return err
	}
	defer benchkit.Stop(web)

	first, err := signIn(idp, public)
	if err != nil {
		return fmt.Errorf("first sign-in: %w", err)
	}
	fmt.Printf("first sign-in (discovery, keys, user created): total %.1f ms, depot %.1f ms\n", ms(first.total), ms(first.depot))
	var total, depotPart, provider []float64
	var cookie string
	for range runs {
		r, err := signIn(idp, public)
		if err != nil {
			return err
		}
		total, depotPart, provider = append(total, ms(r.total)), append(depotPart, ms(r.depot)), append(provider, ms(r.total-r.depot))
		cookie = r.cookie
	}
	fmt.Printf("sign-in round trip over %d runs (ms):  median %.2f  p90 %.2f  (depot: redirect + callback, median %.2f p90 %.2f; provider pages median %.2f)\n",
		runs, benchkit.Median(total), p90(total), benchkit.Median(depotPart), p90(depotPart), benchkit.Median(provider))

	hc := &http.Client{}
	withCookie, err := timeMe(hc, public, reqs, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: "__Host-depot-session", Value: cookie}) })
	if err != nil {
		return err
	}
	withToken, err := timeMe(hc, public, reqs, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) })
	if err != nil {
		return err
	}
	fmt.Printf("GET /api/v1/me over %d requests (ms): session cookie median %.2f p90 %.2f; access token median %.2f p90 %.2f\n",
		reqs, benchkit.Median(withCookie), p90(withCookie), benchkit.Median(withToken), p90(withToken))
	return nil
}

type result struct {
	total, depot time.Duration
	cookie       string
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// signIn runs one browser sign-in and times it.
func signIn(idp *oidctest.Provider, public string) (result, error) {
	t0 := time.Now()
	resp, err := noRedirect.Get(public + "/auth/login")
	if err != nil {
		return result{}, err
	}
	resp.Body.Close()
	login := cookieOf(resp, "__Host-depot-login")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || login == "" {
		return result{}, fmt.Errorf("GET /auth/login: %d", resp.StatusCode)
	}
	t1 := time.Now()
	back, err := idp.SignIn(context.Background(), loc, "u1", password)
	if err != nil {
		return result{}, err
	}
	t2 := time.Now()
	req, _ := http.NewRequest("GET", back.String(), nil)
	req.AddCookie(&http.Cookie{Name: "__Host-depot-login", Value: login})
	resp, err = noRedirect.Do(req)
	if err != nil {
		return result{}, err
	}
	resp.Body.Close()
	t3 := time.Now()
	session := cookieOf(resp, "__Host-depot-session")
	if u, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusSeeOther || session == "" || u == nil || u.RawQuery != "" {
		return result{}, fmt.Errorf("callback: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	return result{total: t3.Sub(t0), depot: t1.Sub(t0) + t3.Sub(t2), cookie: session}, nil
}

func cookieOf(resp *http.Response, name string) string {
	for _, c := range resp.Cookies() {
		if c.Name == name && c.MaxAge >= 0 {
			return c.Value
		}
	}
	return ""
}

func timeMe(hc *http.Client, public string, n int, auth func(*http.Request)) ([]float64, error) {
	var out []float64
	for range n {
		req, _ := http.NewRequest("GET", public+"/api/v1/me", nil)
		auth(req)
		t0 := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET /api/v1/me: %d", resp.StatusCode)
		}
		out = append(out, ms(time.Since(t0)))
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func p90(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[(len(s)*9)/10]
}
