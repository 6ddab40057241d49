package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"depot"
	"depot/internal/oidctest"
	"depot/internal/sessioncookie"
)

// TestBrowserOIDC drives single sign-on in a real headless Chromium: the
// page's "Sign in with …" goes to the provider's own login page (another
// site), back to depot signed in; a 64 MiB upload survives a network cut
// and resumes; Sign out ends the session. Then each broken session is
// refused by the page and audited: a replayed callback (with and without
// its login cookie), a tampered session cookie, an expired one, and one
// holding another provider's token.
func TestBrowserOIDC(t *testing.T) {
	chromium := chromiumPath(t)
	proxyAddr := freeAddr(t)
	s := newSSOCluster(t, ssoOpts{publicAddr: proxyAddr})
	// An administrator made alice's user beforehand: her first sign-in
	// binds it (and its manager grant, so the page can verify and list).
	depotCLI(t, s.dbEnv(), "users", "add", "alice@example.org")
	depotCLI(t, s.dbEnv(), "cohorts", "grant", "alice@example.org", "c1", "manager")
	proxy := &pageProxy{t: t, target: s.web.addr, addr: proxyAddr, rate: 24 << 20, conns: map[net.Conn]struct{}{}}
	proxy.start()
	t.Cleanup(proxy.stop)

	b := startBrowser(t, chromium)
	ctx, run := b.ctx, b.run
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var callbacks []string // the provider's redirects back, as the browser followed them
	go func() {
		for ev, err := range chromedp.Events(ctx, network.RequestWillBeSent) {
			if err != nil {
				return
			}
			if strings.HasPrefix(ev.Request.URL, s.public+"/auth/callback?") {
				mu.Lock()
				callbacks = append(callbacks, ev.Request.URL)
				mu.Unlock()
			}
		}
	}()
	cookie := func(name string) *network.Cookie {
		res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{s.public + "/"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Cookies {
			if c.Name == name {
				return c
			}
		}
		return nil
	}
	setCookie := func(name, value string, sameSite network.CookieSameSite) {
		yes := true
		if _, err := chromedp.Call(ctx, network.SetCookie, network.SetCookieParams{
			Name: name, Value: value, URL: s.public + "/", Path: "/", Secure: &yes, HTTPOnly: &yes, SameSite: sameSite,
		}); err != nil {
			t.Fatal(err)
		}
	}
	signInPage := func(what string) {
		run(what, chromedp.Navigate(s.public+"/"), chromedp.WaitVisible(chromedp.CSS("#sso-btn")))
		if app, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`!document.getElementById('app').hidden`)); app {
			t.Fatalf("%s: the page shows the app", what)
		}
	}
	var loginCookie string
	signIn := func(what string) {
		run(what+": to the provider", chromedp.Click(chromedp.CSS("#sso-btn")), chromedp.WaitVisible(chromedp.CSS("#username")))
		if c := cookie(sessioncookie.LoginName); c != nil {
			loginCookie = c.Value
		}
		run(what+": sign in at the provider",
			chromedp.SendKeys(chromedp.CSS("#username"), "u-alice"),
			chromedp.SendKeys(chromedp.CSS("#password"), ssoPassword),
			chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.CSS("#cohort")),
		)
	}

	// Sign in.
	signInPage("open the page")
	label, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('sso-btn').textContent`))
	if label != "Sign in with Example University" {
		t.Fatalf("sign-in button %q", label)
	}
	b.screenshot("browser-oidc-signin.png")
	head := auditHead(t, s.db)
	signIn("sign in")
	who, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('who-name').textContent`))
	if who != "Signed in as alice@example.org (via Example University)" {
		t.Fatalf("page says %q", who)
	}
	sc := cookie(sessioncookie.SessionName)
	if sc == nil || !sc.HTTPOnly || !sc.Secure || sc.SameSite != network.CookieSameSiteStrict {
		t.Fatalf("session cookie in the browser: %+v", sc)
	}
	if visible, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`)); strings.Contains(visible, "depot-session") {
		t.Fatal("the page's script can read the session cookie")
	}
	if got := s.records(t, head, depot.ActionIdentityLinked, depot.ActionSignIn); len(got) != 2 || got[1].Metadata["client"] != "browser" {
		t.Fatalf("sign-in records: %+v", got)
	}

	// Upload 64 MiB and cut the network in the middle of a PATCH.
	const size = 64 << 20
	data, want := payloadBytes(81, size)
	src := filepath.Join(t.TempDir(), "mri-export.bin")
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`(() => { const s = document.getElementById('cohort'); s.value = 'c1'; s.dispatchEvent(new Event('change')); return s.value; })()`)); err != nil {
		t.Fatal(err)
	}
	run("choose the file", chromedp.WaitVisible(chromedp.CSS("#dropzone")), chromedp.SetUploadFiles(chromedp.CSS("#file-input"), []string{src}))
	const pagePatch = 32 << 20
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		up := proxy.up.Load()
		if in := up % pagePatch; in > 6<<20 && in < 24<<20 && up < size-8<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upload did not get to the middle of a PATCH (page: %s)", b.state())
		}
	}
	proxy.stop()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => { const li = document.querySelector('#uploads li'); return !!li && li.dataset.state === 'retrying'; })()`,
		chromedp.WithPollingInterval(20*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))); err != nil {
		t.Fatalf("the page does not show the upload reconnecting: %v (%s)", err, b.state())
	}
	proxy.start()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => { const li = document.querySelector('#uploads li'); return !!li && (li.dataset.state === 'done' || li.dataset.state === 'error'); })()`,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(60*time.Second))); err != nil {
		t.Fatalf("upload did not finish after the network came back: %v (%s)", err, b.state())
	}
	type result struct{ State, Sha, ResumedAt string }
	res, err := chromedp.Run(ctx, chromedp.Evaluate[result](`(() => { const li = document.querySelector('#uploads li'), sha = li.querySelector('.sha-value');
		return {State: li.dataset.state, Sha: sha ? sha.textContent : '', ResumedAt: li.dataset.resumedAt}; })()`))
	if err != nil || res.State != "done" || res.Sha != want || res.ResumedAt == "" || res.ResumedAt == "0" {
		t.Fatalf("upload under single sign-on: %+v %v (%s)", res, err, b.state())
	}
	if n, got := hashFile(t, s.storedPath("c1/mri-export.bin")); n != size || got != want {
		t.Fatalf("stored file: %d bytes, sha %s", n, got)
	}
	done := completedRecords(t, s.cluster, "c1/mri-export.bin")
	if len(done) != 1 || done[0].AuthMethod != "oidc" || done[0].Metadata["sub"] != "u-alice" || done[0].Metadata["idp"] != s.idp.Issuer {
		t.Fatalf("upload record: %+v", done)
	}
	b.screenshot("browser-oidc-upload.png")

	// Sign out.
	head = auditHead(t, s.db)
	run("sign out", chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#sso-btn")))
	if cookie(sessioncookie.SessionName) != nil {
		t.Fatal("the session cookie survived sign-out")
	}
	if out := s.records(t, head, depot.ActionSignOut); len(out) != 1 || out[0].Metadata["client"] != "browser" {
		t.Fatalf("sign-out records: %+v", out)
	}

	// A replayed callback, then the same with its login cookie put back.
	mu.Lock()
	if len(callbacks) != 1 {
		mu.Unlock()
		t.Fatalf("%d callbacks seen, want 1", len(callbacks))
	}
	replayed := callbacks[0]
	mu.Unlock()
	head = auditHead(t, s.db)
	refusedOnPage := func(what, target string) {
		run(what, chromedp.Navigate(target), chromedp.WaitVisible(chromedp.CSS("#sso-error")))
		code, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('sso-error').dataset.code`))
		if code != "refused" || cookie(sessioncookie.SessionName) != nil {
			t.Fatalf("%s: page shows %q", what, code)
		}
	}
	refusedOnPage("replay the callback", replayed)
	setCookie(sessioncookie.LoginName, loginCookie, network.CookieSameSiteLax)
	refusedOnPage("replay the callback with its login cookie", replayed)

	// Broken sessions: tampered, expired, another provider's token.
	signInPage("back to the page")
	signIn("sign in again")
	good := cookie(sessioncookie.SessionName).Value
	tampered := []byte(good)
	tampered[len(tampered)/3] ^= 0x01
	setCookie(sessioncookie.SessionName, string(tampered), network.CookieSameSiteStrict)
	signInPage("reload with a tampered session cookie")
	var sess sessioncookie.Session
	if err := s.codec.Open(sessioncookie.SessionName, good, &sess); err != nil {
		t.Fatal(err)
	}
	expired := sess
	expired.Expiry = time.Now().Add(-time.Minute).Unix()
	setCookie(sessioncookie.SessionName, s.seal(t, expired), network.CookieSameSiteStrict)
	signInPage("reload with an expired session cookie")
	foreign := oidctest.Start(t, oidctest.Options{
		Clients: []oidctest.Client{{ID: ssoWebClient, Secret: ssoWebSecret, RedirectURIs: []string{s.public + "/auth/callback"}}},
		Users:   ssoUsers,
	})
	tok, err := foreign.Tokens(context.Background(), ssoWebClient, ssoWebSecret, s.public+"/auth/callback", "u-alice", ssoPassword)
	if err != nil {
		t.Fatal(err)
	}
	forged := sess
	forged.IDToken = tok.Extra("id_token").(string)
	setCookie(sessioncookie.SessionName, s.seal(t, forged), network.CookieSameSiteStrict)
	signInPage("reload with another provider's token in the session")

	got := s.refusals(t, head)
	for _, want := range []string{"state_missing", "code_exchange_failed", "session_invalid", "session_expired"} {
		if !slices.Contains(got, want) {
			t.Errorf("refusal %s not audited (got %v)", want, got)
		}
	}
	if failed := s.records(t, head, depot.ActionAuthFailed); !slices.ContainsFunc(failed, func(ev depot.AuditEvent) bool {
		return ev.Metadata["reason"] == "wrong_issuer"
	}) {
		t.Errorf("the foreign token is not audited as wrong_issuer: %v", failed)
	}
	b.checkConsole()
}
