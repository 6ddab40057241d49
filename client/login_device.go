package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"depot"
)

// AuthConfig is what a depot web tier says about its single sign-on
// (GET /api/v1/auth/config).
type AuthConfig struct {
	Enabled  bool     `json:"enabled"`
	Provider string   `json:"provider"`
	Issuer   string   `json:"issuer"`
	ClientID string   `json:"client_id"`
	Scopes   []string `json:"scopes"`
}

// DevicePrompt shows the person where to approve the sign-in: a URL and a
// code to type there, and (when the provider offers one) a URL with the
// code in it.
type DevicePrompt func(verificationURI, userCode, completeURI string)

// DeviceLogin signs a person in with the OAuth 2.0 Device Authorization
// Grant (RFC 8628) at the provider that the depot at c.BaseURL names: it
// shows a code through prompt, waits (polling at the provider's interval)
// until the person approves it in a browser, checks the ID token, and has
// depot record the sign-in (which binds the person to a depot user the
// first time). The result is ready for a LoginStore.
func (c *Client) DeviceLogin(ctx context.Context, prompt DevicePrompt) (Login, error) {
	cfg, err := c.AuthConfig(ctx)
	if err != nil {
		return Login{}, err
	}
	if !cfg.Enabled {
		return Login{}, depot.Errorf(depot.CodeInvalid, "%s offers no single sign-on; use a personal access token (DEPOT_TOKEN)", c.BaseURL)
	}
	ctx = c.providerContext(ctx)
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return Login{}, depot.WrapError(depot.CodeUnavailable, "cannot reach the identity provider", err)
	}
	if p.Endpoint().DeviceAuthURL == "" {
		return Login{}, depot.Errorf(depot.CodeInvalid, "the identity provider offers no device sign-in")
	}
	conf := oauth2.Config{ClientID: cfg.ClientID, Endpoint: p.Endpoint(), Scopes: cfg.Scopes}
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return Login{}, depot.WrapError(depot.CodeUnavailable, "the identity provider refused to start a device sign-in", err)
	}
	prompt(da.VerificationURI, da.UserCode, da.VerificationURIComplete)
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return Login{}, depot.WrapError(depot.CodeUnauthorized, "the sign-in was not approved ("+re.ErrorCode+")", err)
		}
		return Login{}, depot.WrapError(depot.CodeUnavailable, "the device sign-in did not complete", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	id, err := p.Verifier(&oidc.Config{ClientID: cfg.ClientID}).Verify(ctx, raw)
	if err != nil {
		return Login{}, depot.WrapError(depot.CodeUnauthorized, "the identity provider's ID token does not verify", err)
	}
	l := Login{URL: c.BaseURL, Issuer: cfg.Issuer, ClientID: cfg.ClientID, Scopes: cfg.Scopes,
		IDToken: raw, Expiry: id.Expiry, Refresh: tok.RefreshToken}
	var me struct {
		User string `json:"user"`
	}
	if err := c.session(ctx, raw, "/api/v1/auth/login", &me); err != nil {
		return Login{}, err
	}
	l.User = me.User
	return l, nil
}

// AuthConfig asks the depot web tier about its single sign-on.
func (c *Client) AuthConfig(ctx context.Context) (AuthConfig, error) {
	var cfg AuthConfig
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.BaseURL+"/api/v1/auth/config", nil)
	if err != nil {
		return cfg, err
	}
	resp, err := c.do(req)
	if err != nil {
		return cfg, err
	}
	defer resp.Body.Close()
	return cfg, json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&cfg)
}

// Logout ends a stored login: depot records the sign-out, and the provider
// revokes the refresh token (RFC 7009) when it offers revocation. revoked
// says whether it did. The caller deletes the stored login.
func (c *Client) Logout(ctx context.Context, l Login) (revoked bool, err error) {
	serr := c.session(ctx, l.IDToken, "/api/v1/auth/logout", nil)
	revoked, rerr := l.revoke(c.providerContext(ctx), c.HTTP)
	return revoked, errors.Join(serr, rerr)
}

// session posts to a sign-in or sign-out endpoint with the ID token.
func (c *Client) session(ctx context.Context, idToken, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+idToken)
	req.Header.Set("User-Agent", "depot-cli/1")
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out != nil {
		return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
	}
	return nil
}

// revoke asks the provider to revoke the refresh token, as the public
// client the login belongs to.
func (l Login) revoke(ctx context.Context, hc *http.Client) (bool, error) {
	if l.Refresh == "" {
		return false, nil
	}
	p, err := oidc.NewProvider(ctx, l.Issuer)
	if err != nil {
		return false, err
	}
	var d struct {
		Revocation string `json:"revocation_endpoint"`
	}
	if err := p.Claims(&d); err != nil || d.Revocation == "" {
		return false, err
	}
	form := url.Values{"token": {l.Refresh}, "token_type_hint": {"refresh_token"}, "client_id": {l.ClientID}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Revocation, strings.NewReader(form.Encode()))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("the provider answered %d to the revocation", resp.StatusCode)
	}
	return true, nil
}

// providerContext makes go-oidc and oauth2 use the client's HTTP client.
func (c *Client) providerContext(ctx context.Context) context.Context {
	return context.WithValue(oidc.ClientContext(ctx, c.HTTP), oauth2.HTTPClient, c.HTTP)
}
