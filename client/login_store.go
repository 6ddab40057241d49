package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"depot"
)

// Login is a person's sign-in kept by depot login: their ID token, which
// depot accepts as a bearer token, and what renews it.
type Login struct {
	URL      string    `json:"url"`    // the depot web tier
	Issuer   string    `json:"issuer"` // the identity provider
	ClientID string    `json:"client_id"`
	Scopes   []string  `json:"scopes,omitempty"`
	User     string    `json:"user"` // the depot user, for messages
	IDToken  string    `json:"id_token"`
	Expiry   time.Time `json:"id_token_expiry"`
	Refresh  string    `json:"refresh_token,omitempty"`
}

// LoginStore keeps logins, one per depot URL, in one JSON file that only
// its owner may read (0600, in a 0700 directory). It is written whole to a
// temporary file beside it and renamed, so a crash leaves the old or the
// new file.
type LoginStore struct {
	Path string
}

// DefaultLoginStore is the store in the user's configuration directory:
// $XDG_CONFIG_HOME/depot/login.json on Linux.
func DefaultLoginStore() (*LoginStore, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return nil, fmt.Errorf("no configuration directory for the login: %w", err)
	}
	return &LoginStore{Path: filepath.Join(dir, "depot", "login.json")}, nil
}

type loginFile struct {
	Logins map[string]Login `json:"logins"`
}

// All returns every stored login by URL (empty when there is no file).
func (s *LoginStore) All() (map[string]Login, error) {
	b, err := os.ReadFile(s.Path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Login{}, nil
	}
	if err != nil {
		return nil, err
	}
	var f loginFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s is damaged (run depot logout, then depot login): %w", s.Path, err)
	}
	if f.Logins == nil {
		f.Logins = map[string]Login{}
	}
	return f.Logins, nil
}

// Get returns the login of a depot URL.
func (s *LoginStore) Get(url string) (Login, bool, error) {
	all, err := s.All()
	if err != nil {
		return Login{}, false, err
	}
	l, ok := all[url]
	return l, ok, nil
}

// Put stores l (replacing the login of its URL).
func (s *LoginStore) Put(l Login) error {
	all, err := s.All()
	if err != nil {
		return err
	}
	all[l.URL] = l
	return s.write(all)
}

// Delete forgets the login of url; the file goes when it holds none.
func (s *LoginStore) Delete(url string) error {
	all, err := s.All()
	if err != nil {
		return err
	}
	delete(all, url)
	if len(all) == 0 {
		if err := os.Remove(s.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return s.write(all)
}

func (s *LoginStore) write(all map[string]Login) error {
	dir := filepath.Dir(s.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, err := json.MarshalIndent(loginFile{Logins: all}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".login-*.json") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), s.Path)
}

// renewBefore is how long before its ID token expires a login is renewed.
const renewBefore = 2 * time.Minute

// LoginTokens gives a Client the ID token of a stored login, renewed with
// the refresh token (and stored again) when it is about to expire.
type LoginTokens struct {
	Store *LoginStore
	URL   string
	HTTP  *http.Client // talks to the provider; default 30 s timeout
	Now   func() time.Time
	// OnRenewError, when set, hears of a renewal that failed (the token
	// may still be used until it expires).
	OnRenewError func(error)

	mu sync.Mutex
}

// Token returns a valid ID token for the login of t.URL.
func (t *LoginTokens) Token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	l, ok, err := t.Store.Get(t.URL)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", depot.Errorf(depot.CodeUnauthorized, "not signed in to %s; run depot login", t.URL)
	}
	if l.Expiry.Sub(now()) > renewBefore {
		return l.IDToken, nil
	}
	fresh, err := l.refresh(ctx, t.httpClient())
	if err != nil {
		if t.OnRenewError != nil {
			t.OnRenewError(err)
		}
		// Another depot command may have renewed it (and so used up the
		// refresh token) meanwhile.
		if again, ok, _ := t.Store.Get(t.URL); ok && again.Refresh != l.Refresh && again.Expiry.After(now()) {
			return again.IDToken, nil
		}
		if l.Expiry.After(now()) {
			return l.IDToken, nil
		}
		return "", depot.WrapError(depot.CodeUnauthorized, "your depot login has expired; run depot login again", err)
	}
	if err := t.Store.Put(fresh); err != nil {
		return "", err
	}
	return fresh.IDToken, nil
}

func (t *LoginTokens) httpClient() *http.Client {
	if t.HTTP != nil {
		return t.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// refresh renews l at its provider: a new ID token of the same person.
func (l Login) refresh(ctx context.Context, hc *http.Client) (Login, error) {
	if l.Refresh == "" {
		return l, errors.New("the provider gave no refresh token")
	}
	ctx = context.WithValue(oidc.ClientContext(ctx, hc), oauth2.HTTPClient, hc)
	p, err := oidc.NewProvider(ctx, l.Issuer)
	if err != nil {
		return l, err
	}
	conf := oauth2.Config{ClientID: l.ClientID, Endpoint: p.Endpoint(), Scopes: l.Scopes}
	tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: l.Refresh}).Token()
	if err != nil {
		return l, err
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return l, errors.New("the provider sent no new ID token")
	}
	id, err := p.Verifier(&oidc.Config{ClientID: l.ClientID}).Verify(ctx, raw)
	if err != nil {
		return l, err
	}
	old, err := p.Verifier(&oidc.Config{ClientID: l.ClientID, SkipExpiryCheck: true}).Verify(ctx, l.IDToken)
	if err != nil || old.Subject != id.Subject {
		return l, errors.New("the renewed ID token names another person")
	}
	l.IDToken, l.Expiry = raw, id.Expiry
	if tok.RefreshToken != "" {
		l.Refresh = tok.RefreshToken
	}
	return l, nil
}
