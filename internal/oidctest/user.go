package oidctest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// SignIn plays a person at the provider: starting from authURL (the
// provider's authorization endpoint with a client's parameters, as a client
// redirects there), it opens the login page, posts the credentials and
// follows the provider's redirects until one leaves the provider. It returns
// that address (the client's redirect URI with code and state, or with an
// error) without opening it.
func (p *Provider) SignIn(ctx context.Context, authURL, user, password string) (*url.URL, error) {
	c := p.userAgent()
	next, err := url.Parse(authURL)
	if err != nil {
		return nil, err
	}
	for range 10 {
		if !p.owns(next) {
			return next, nil
		}
		var resp *http.Response
		if next.Path == "/login/username" && next.Query().Get("authRequestID") != "" {
			form := url.Values{"id": {next.Query().Get("authRequestID")}, "username": {user}, "password": {password}}
			resp, err = post(ctx, c, p.Issuer+"/login/username", form)
		} else {
			resp, err = get(ctx, c, next.String())
		}
		if err != nil {
			return nil, err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode/100 != 3 || loc == "" {
			return nil, fmt.Errorf("oidctest: %s answered %d without a redirect: %.300s", next.Path, resp.StatusCode, body)
		}
		if next, err = next.Parse(loc); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("oidctest: too many redirects")
}

// ApproveDevice plays a person approving a device sign-in: at the
// provider's device page they enter userCode, sign in, and allow it.
func (p *Provider) ApproveDevice(ctx context.Context, userCode, user, password string) error {
	c := p.userAgent()
	resp, err := post(ctx, c, p.Issuer+"/device/login", url.Values{"user_code": {userCode}, "username": {user}, "password": {password}})
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "confirm") {
		return fmt.Errorf("oidctest: device login answered %d: %.300s", resp.StatusCode, body)
	}
	resp, err = post(ctx, c, p.Issuer+"/device/confirm", url.Values{"action": {"allowed"}})
	if err != nil {
		return err
	}
	body, _ = io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if !strings.Contains(string(body), "Device authorization allowed") {
		return fmt.Errorf("oidctest: device confirmation answered %d: %.300s", resp.StatusCode, body)
	}
	return nil
}

// Tokens runs the whole authorization code flow (with PKCE) for a client
// and a person, and returns the provider's tokens; the ID token is
// tok.Extra("id_token"). For tests that need a real token without a
// relying party of their own.
func (p *Provider) Tokens(ctx context.Context, clientID, secret, redirectURI, user, password string, scopes ...string) (*oauth2.Token, error) {
	if len(scopes) == 0 {
		scopes = []string{"openid", "email", "profile", "offline_access"}
	}
	prov, err := oidc.NewProvider(ctx, p.Issuer)
	if err != nil {
		return nil, err
	}
	conf := &oauth2.Config{
		ClientID: clientID, ClientSecret: secret, RedirectURL: redirectURI, Scopes: scopes, Endpoint: prov.Endpoint(),
	}
	verifier := oauth2.GenerateVerifier()
	back, err := p.SignIn(ctx, conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), user, password)
	if err != nil {
		return nil, err
	}
	code := back.Query().Get("code")
	if code == "" || back.Query().Get("state") != "st" {
		return nil, fmt.Errorf("oidctest: sign-in came back without a code: %s", back.Query().Encode())
	}
	return conf.Exchange(ctx, code, oauth2.VerifierOption(verifier))
}

// userAgent is a cookie-keeping client that does not follow redirects.
func (p *Provider) userAgent() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (p *Provider) owns(u *url.URL) bool {
	iss, err := url.Parse(p.Issuer)
	return err == nil && u.Scheme == iss.Scheme && u.Host == iss.Host
}

func get(ctx context.Context, c *http.Client, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

func post(ctx context.Context, c *http.Client, u string, form url.Values) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.Do(req)
}
