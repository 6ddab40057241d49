package services

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/internal/oidctest"
	"depot/servicedb"
)

func TestParseGroupRoles(t *testing.T) {
	got, err := ParseGroupRoles("lab-a=c1:manager; cn=lab,ou=groups,dc=example=c2:reader\n# comment\n\n g b = c3 : uploader ")
	if err != nil {
		t.Fatal(err)
	}
	want := []GroupRole{{"lab-a", "c1", depot.RoleManager}, {"cn=lab,ou=groups,dc=example", "c2", depot.RoleReader}, {"g b", "c3", depot.RoleUploader}}
	if !slices.Equal(got, want) {
		t.Fatalf("ParseGroupRoles = %+v", got)
	}
	for _, bad := range []string{"x", "=c1:reader", "g=c1", "g=c1:owner", "g=:reader", "g=a/b:reader"} {
		if _, err := ParseGroupRoles(bad); err == nil {
			t.Errorf("ParseGroupRoles(%q) accepted", bad)
		}
	}
	o := &OIDC{cfg: OIDCConfig{GroupRoles: []GroupRole{
		{"a", "c1", depot.RoleReader}, {"b", "c1", depot.RoleManager}, {"c", "c2", depot.RoleUploader}, {"d", "c2", depot.RoleReader},
	}}}
	roles, canon := o.groupRoles([]string{"d", "a", "b", "c", "x"})
	if roles["c1"] != depot.RoleManager || roles["c2"] != depot.RoleUploader || canon != "c1:manager,c2:uploader" {
		t.Fatalf("groupRoles = %v %q", roles, canon)
	}
	if _, canon := o.groupRoles(nil); canon != "" {
		t.Fatalf("no groups: %q", canon)
	}
}

// verify accepts only tokens signed by the configured provider for one of
// depot's clients and not expired, and says why it refuses the others.
func TestVerifyIDToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const redirect = "http://127.0.0.1:1/cb"
	opts := oidctest.Options{
		Clients: []oidctest.Client{{ID: "depot-web", Secret: "s", RedirectURIs: []string{redirect}}, {ID: "other-app", Secret: "s", RedirectURIs: []string{redirect}}},
		Users:   []oidctest.User{{Username: "u1", Password: "pw", Email: "u1@example.org", EmailVerified: true, Groups: []string{"lab-a"}}},
	}
	idp, foreign := oidctest.Start(t, opts), oidctest.Start(t, opts)
	token := func(p *oidctest.Provider, client string) string {
		tok, err := p.Tokens(ctx, client, "s", redirect, "u1", "pw", "openid", "email", "profile", "groups")
		if err != nil {
			t.Fatal(err)
		}
		return tok.Extra("id_token").(string)
	}
	db, err := servicedb.Open(ctx, "sqlite://"+t.TempDir()+"/d.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := time.Now()
	o, err := NewOIDC(OIDCConfig{Issuer: idp.Issuer, ClientIDs: []string{"depot-web", "depot-cli"}, Store: db, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	good := token(idp, "depot-web")
	id, err := o.verify(ctx, good, false)
	if err != nil || id.subject != "u1" || id.issuer != idp.Issuer || id.email != "u1@example.org" || !id.emailVerified ||
		id.userName != "u1@example.org" || !slices.Equal(id.groups, []string{"lab-a"}) {
		t.Fatalf("verify(good) = %+v, %v", id, err)
	}
	refused := func(raw, reason string) {
		t.Helper()
		_, err := o.verify(ctx, raw, false)
		if depot.ErrorCode(err) != depot.CodeUnauthorized || refusalReason(err) != reason {
			t.Fatalf("want %s refused for %q; got %v (reason %q)", raw[:min(len(raw), 20)], reason, err, refusalReason(err))
		}
	}
	refused(token(idp, "other-app"), "wrong_audience")
	refused(token(foreign, "depot-web"), "wrong_issuer")
	parts := strings.Split(good, ".")
	sig := []byte(parts[2])
	sig[10] ^= 1
	refused(parts[0]+"."+parts[1]+"."+string(sig), "invalid_token")
	refused(parts[0]+"."+parts[1]+".", "invalid_token")
	now = now.Add(2 * time.Hour) // the provider's ID tokens live one hour
	refused(good, "token_expired")
	if _, err := o.verify(ctx, good, true); err != nil {
		t.Fatalf("an expired token is still good for signing out: %v", err)
	}

	// A provider that cannot be reached is unavailable, not a bad token.
	down, err := NewOIDC(OIDCConfig{Issuer: "http://127.0.0.1:1", ClientIDs: []string{"depot-web"}, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := down.verify(ctx, good, false); depot.ErrorCode(err) != depot.CodeUnavailable {
		t.Fatalf("unreachable provider: %v", err)
	}
	if !LooksLikeIDToken(good) || LooksLikeIDToken("dpt_abc") || LooksLikeIDToken("") {
		t.Fatal("LooksLikeIDToken")
	}
}
