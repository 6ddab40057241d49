package oidctest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The provider does what depot's tests rely on: the code flow with PKCE
// and the groups claim, refresh with rotation, revocation (RFC 7009), and
// the device grant (RFC 8628) approved by SignIn's sibling ApproveDevice.
func TestProvider(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := Start(t, Options{
		Clients: []Client{
			{ID: "web", Secret: "s3cret", RedirectURIs: []string{"http://127.0.0.1:1/cb"}},
			{ID: "cli", Device: true},
		},
		Users: []User{{Username: "u1", Password: "pw", Email: "u1@example.org", EmailVerified: true, Groups: []string{"lab-a"}}},
	})
	defer http.DefaultClient.CloseIdleConnections()
	prov, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Revocation string `json:"revocation_endpoint"`
	}
	if err := prov.Claims(&disc); err != nil || disc.Revocation == "" || prov.Endpoint().DeviceAuthURL == "" {
		t.Fatalf("discovery: %+v %+v %v", disc, prov.Endpoint(), err)
	}
	verifier := prov.Verifier(&oidc.Config{ClientID: "web"})

	// Wrong password: the login page is shown again, no redirect.
	if _, err := p.Tokens(ctx, "web", "s3cret", "http://127.0.0.1:1/cb", "u1", "wrong"); err == nil {
		t.Fatal("a wrong password signed in")
	}
	tok, err := p.Tokens(ctx, "web", "s3cret", "http://127.0.0.1:1/cb", "u1", "pw", "openid", "email", "offline_access", "groups")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	id, err := verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Email    string   `json:"email"`
		Verified bool     `json:"email_verified"`
		Groups   []string `json:"groups"`
	}
	if err := id.Claims(&claims); err != nil || id.Subject != "u1" || claims.Email != "u1@example.org" || !claims.Verified ||
		len(claims.Groups) != 1 || claims.Groups[0] != "lab-a" || tok.RefreshToken == "" {
		t.Fatalf("token: sub %q claims %+v refresh %q %v", id.Subject, claims, tok.RefreshToken, err)
	}

	conf := &oauth2.Config{ClientID: "web", ClientSecret: "s3cret", Endpoint: prov.Endpoint()}
	p.SetGroups("u1", []string{"lab-b"})
	fresh, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil || fresh.Extra("id_token") == nil || fresh.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %+v %v", fresh, err)
	}
	if id2, err := verifier.Verify(ctx, fresh.Extra("id_token").(string)); err != nil {
		t.Fatal(err)
	} else if err := id2.Claims(&claims); err != nil || claims.Groups[0] != "lab-b" {
		t.Fatalf("refreshed groups %v %v", claims.Groups, err)
	}
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
		t.Fatal("a rotated refresh token was accepted again")
	}
	form := url.Values{"token": {fresh.RefreshToken}, "token_type_hint": {"refresh_token"}}
	req, _ := http.NewRequestWithContext(ctx, "POST", disc.Revocation, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("web", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", resp, err)
	}
	resp.Body.Close()
	if _, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: fresh.RefreshToken}).Token(); err == nil {
		t.Fatal("a revoked refresh token was accepted")
	}

	// The device grant of a public client.
	cli := &oauth2.Config{ClientID: "cli", Endpoint: prov.Endpoint(), Scopes: []string{"openid", "email", "offline_access"}}
	da, err := cli.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	approved := make(chan error, 1)
	go func() { approved <- p.ApproveDevice(ctx, da.UserCode, "u1", "pw") }()
	dt, err := cli.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-approved; err != nil {
		t.Fatal(err)
	}
	if _, err := prov.Verifier(&oidc.Config{ClientID: "cli"}).Verify(ctx, dt.Extra("id_token").(string)); err != nil || dt.RefreshToken == "" {
		t.Fatalf("device token: %v refresh %q", err, dt.RefreshToken)
	}
	// Its refresh token renews (twice: the renewal's too) and is revoked
	// by the public client.
	dt2, err := cli.TokenSource(ctx, &oauth2.Token{RefreshToken: dt.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh of a device grant: %v", err)
	}
	dt3, err := cli.TokenSource(ctx, &oauth2.Token{RefreshToken: dt2.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("second refresh of a device grant: %v", err)
	}
	form = url.Values{"token": {dt3.RefreshToken}, "client_id": {"cli"}}
	req, _ = http.NewRequestWithContext(ctx, "POST", disc.Revocation, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke a device grant's refresh token: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	if _, err := cli.TokenSource(ctx, &oauth2.Token{RefreshToken: dt3.RefreshToken}).Token(); err == nil {
		t.Fatal("a revoked device refresh token was accepted")
	}
}
