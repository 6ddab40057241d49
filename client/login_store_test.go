package client

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"depot"
)

func TestLoginStore(t *testing.T) {
	dir := t.TempDir()
	s := &LoginStore{Path: filepath.Join(dir, "cfg", "depot", "login.json")}
	if all, err := s.All(); err != nil || len(all) != 0 {
		t.Fatalf("empty store: %v %v", all, err)
	}
	a := Login{URL: "https://a.example", IDToken: "eyJa", Expiry: time.Now().Add(time.Hour).UTC().Round(time.Second), Refresh: "r1"}
	b := Login{URL: "https://b.example", IDToken: "eyJb"}
	if err := s.Put(a); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(b); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(s.Path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi.Mode(), err)
	}
	if di, err := os.Stat(filepath.Dir(s.Path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode: %v %v", di.Mode(), err)
	}
	if got, ok, err := s.Get(a.URL); err != nil || !ok || got.IDToken != a.IDToken || !got.Expiry.Equal(a.Expiry) || got.Refresh != "r1" {
		t.Fatalf("Get = %+v %v %v", got, ok, err)
	}
	// No temporary files are left beside it.
	if entries, _ := os.ReadDir(filepath.Dir(s.Path)); len(entries) != 1 {
		t.Fatalf("directory holds %d entries", len(entries))
	}
	if err := s.Delete(a.URL); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get(a.URL); ok {
		t.Fatal("deleted login still there")
	}
	if err := s.Delete(b.URL); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path); !os.IsNotExist(err) {
		t.Fatalf("the file outlived its last login: %v", err)
	}
	if err := os.WriteFile(s.Path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.All(); err == nil {
		t.Fatal("a damaged file was read")
	}
}

// LoginTokens hands out a stored token while it is fresh, and refuses an
// expired one it cannot renew (no network is needed for either).
func TestLoginTokens(t *testing.T) {
	s := &LoginStore{Path: filepath.Join(t.TempDir(), "login.json")}
	now := time.Now()
	if err := s.Put(Login{URL: "u", IDToken: "fresh", Expiry: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	lt := &LoginTokens{Store: s, URL: "u", Now: func() time.Time { return now }}
	if tok, err := lt.Token(context.Background()); err != nil || tok != "fresh" {
		t.Fatalf("Token = %q, %v", tok, err)
	}
	var renewErr error
	lt.OnRenewError = func(err error) { renewErr = err }
	now = now.Add(2 * time.Hour) // expired, and no refresh token
	if _, err := lt.Token(context.Background()); depot.ErrorCode(err) != depot.CodeUnauthorized || renewErr == nil {
		t.Fatalf("expired login: %v (renewal error %v)", err, renewErr)
	}
	if _, err := (&LoginTokens{Store: s, URL: "other"}).Token(context.Background()); depot.ErrorCode(err) != depot.CodeUnauthorized {
		t.Fatalf("no login: %v", err)
	}
}
