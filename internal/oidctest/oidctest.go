// Package oidctest runs a real OpenID Connect provider on loopback for
// depot's tests: the example OpenID provider of github.com/zitadel/oidc/v3
// (its pkg/op server, login pages, device pages and in-memory example
// storage), written by others and used here unchanged. This package only
// configures it: the clients depot registers (a confidential web client
// with redirect URIs and refresh tokens, a public command-line client with
// the device grant and refresh tokens), the people who may sign in, and a
// "groups" claim. It also plays the person at the provider's own pages
// over HTTP (SignIn, ApproveDevice), as a browser would.
//
// Only tests import it; the depot binary does not link it.
package oidctest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// User is a person who can sign in at the provider. Their subject ("sub")
// is their Username: the example provider uses the login name as subject in
// the device flow, so the code flow is made to agree.
type User struct {
	Username, Password string
	Email              string
	EmailVerified      bool
	Groups             []string // the "groups" claim, when the scope "groups" is asked for
}

// Client is an application registered at the provider.
type Client struct {
	ID, Secret   string   // no secret: a public client (PKCE, device flow)
	RedirectURIs []string // for the authorization code flow
	Device       bool     // may use the device authorization grant
	// IDTokenLifetime defaults to one hour.
	IDTokenLifetime time.Duration
}

// Options configure a Provider.
type Options struct {
	// Host is the host name of the issuer URL; default "localhost" (the
	// provider listens on 127.0.0.1 either way). A page on 127.0.0.1 is
	// then cross-site to the provider, as in production.
	Host    string
	Clients []Client
	Users   []User
}

// Provider is a running OpenID provider.
type Provider struct {
	// Issuer is the provider's issuer URL, e.g. http://localhost:43121.
	Issuer string

	srv   *http.Server
	done  chan struct{}
	store *store
}

// Start runs a provider on a loopback port until the test ends.
func Start(t testing.TB, o Options) *Provider {
	t.Helper()
	p, err := New(o)
	if err != nil {
		t.Fatalf("oidctest: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// New runs a provider on a loopback port; Close stops it.
func New(o Options) (*Provider, error) {
	if o.Host == "" {
		o.Host = "localhost"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	issuer := "http://" + net.JoinHostPort(o.Host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	users := map[string]*storage.User{}
	groups := map[string][]string{}
	for _, u := range o.Users {
		users[u.Username] = &storage.User{
			ID: u.Username, Username: u.Username, Password: u.Password, FirstName: u.Username, LastName: "Tester",
			Email: u.Email, EmailVerified: u.EmailVerified, PreferredLanguage: language.English,
		}
		groups[u.Username] = slices.Clone(u.Groups)
	}
	// The example storage checks that a device flow's client exists in its
	// own map; our clients answer every other question (clientFor).
	placeholders := map[string]*storage.Client{}
	clients := map[string]*client{}
	for _, c := range o.Clients {
		placeholders[c.ID] = storage.DeviceClient(c.ID, c.Secret)
		clients[c.ID] = &client{Client: c}
	}
	s := &store{
		Storage:       storage.NewStorageWithClients(userStore{users}, placeholders),
		clients:       clients,
		groups:        groups,
		deviceRefresh: map[string]string{},
	}
	router := exampleop.SetupServer(issuer, s, nil, false)
	p := &Provider{Issuer: issuer, store: s, done: make(chan struct{})}
	p.srv = &http.Server{Handler: router, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// Close stops the provider and waits for its server to end.
func (p *Provider) Close() {
	_ = p.srv.Close()
	<-p.done
}

// SetGroups replaces the groups of a user, for their next tokens.
func (p *Provider) SetGroups(user string, groups []string) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.groups[user] = slices.Clone(groups)
}

// store is the example storage with our clients and the groups claim.
type store struct {
	*storage.Storage
	clients map[string]*client

	mu     sync.Mutex
	groups map[string][]string
	// deviceRefresh names the client of each refresh token that came from
	// the device flow. The example storage records no client for those
	// (its getInfoFromRequest knows only its own request types), so
	// without this their refresh and revocation fail with invalid_grant /
	// "not issued for this client". See deviceRefresh's methods.
	deviceRefresh map[string]string
}

// CreateAccessAndRefreshTokens remembers the client of the refresh tokens
// of device-flow grants and of their renewals.
func (s *store) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	client := ""
	switch r := req.(type) {
	case *op.DeviceAuthorizationState:
		client = r.ClientID
	case deviceRefreshRequest:
		client = r.client
	}
	access, refresh, exp, err := s.Storage.CreateAccessAndRefreshTokens(ctx, req, current)
	if err == nil && client != "" && refresh != "" {
		s.mu.Lock()
		s.deviceRefresh[refresh] = client
		s.mu.Unlock()
	}
	return access, refresh, exp, err
}

// TokenRequestByRefreshToken gives a device-flow refresh token its client.
func (s *store) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	r, err := s.Storage.TokenRequestByRefreshToken(ctx, token)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	client, ok := s.deviceRefresh[token]
	s.mu.Unlock()
	if ok && r.GetClientID() == "" {
		return deviceRefreshRequest{RefreshTokenRequest: r, client: client}, nil
	}
	return r, nil
}

// RevokeToken lets a device client revoke its own refresh tokens.
func (s *store) RevokeToken(ctx context.Context, token, userID, clientID string) *oidc.Error {
	s.mu.Lock()
	owner, ok := s.deviceRefresh[token]
	s.mu.Unlock()
	if ok {
		if owner != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued for this client")
		}
		clientID = "" // what the example storage recorded
	}
	return s.Storage.RevokeToken(ctx, token, userID, clientID)
}

type deviceRefreshRequest struct {
	op.RefreshTokenRequest
	client string
}

func (r deviceRefreshRequest) GetClientID() string { return r.client }

func (s *store) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if c, ok := s.clients[id]; ok {
		return c, nil
	}
	return nil, errors.New("client not found")
}

func (s *store) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.clients[id]
	if !ok || c.Secret == "" || c.Secret != secret {
		return errors.New("invalid client credentials")
	}
	return nil
}

// SetUserinfoFromRequest adds the groups claim to the example's claims.
func (s *store) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, req, scopes); err != nil {
		return err
	}
	if slices.Contains(scopes, "groups") {
		s.mu.Lock()
		g := slices.Clone(s.groups[req.GetSubject()])
		s.mu.Unlock()
		if g == nil {
			g = []string{}
		}
		ui.AppendClaims("groups", g)
	}
	return nil
}

type userStore struct{ users map[string]*storage.User }

func (u userStore) GetUserByID(id string) *storage.User      { return u.users[id] }
func (u userStore) GetUserByUsername(n string) *storage.User { return u.users[n] }
func (u userStore) ExampleClientID() string                  { return storage.ServiceUserID }

// client implements op.Client for a Client.
type client struct{ Client }

func (c *client) GetID() string                    { return c.ID }
func (c *client) RedirectURIs() []string           { return c.Client.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return nil }
func (c *client) ApplicationType() op.ApplicationType {
	if c.Secret == "" {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}
func (c *client) AuthMethod() oidc.AuthMethod {
	if c.Secret == "" {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType {
	g := []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
	if c.Device {
		g = append(g, oidc.GrantTypeDeviceCode)
	}
	return g
}
func (c *client) LoginURL(id string) string           { return "/login/username?authRequestID=" + id }
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration {
	if c.Client.IDTokenLifetime > 0 {
		return c.Client.IDTokenLifetime
	}
	return time.Hour
}

// DevMode allows http:// redirect URIs (loopback tests).
func (c *client) DevMode() bool { return true }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) IsScopeAllowed(scope string) bool { return scope == "groups" }

// IDTokenUserinfoClaimsAssertion puts email and profile claims in the ID
// token, as most providers do.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }
