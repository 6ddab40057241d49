package services

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"depot"
)

// Single sign-on, services side. The web tier (for a browser session) and
// the command-line client (after depot login) forward the person's OpenID
// Connect ID token as the user token. Services never takes web's word for
// who that is: it checks the token's signature against the keys the issuer
// publishes, its issuer, audience (one of depot's client IDs) and expiry,
// and only then maps its subject to a depot user. A web tier that is
// compromised, or holds the session key, therefore cannot name a user it
// has no valid token for.

// IdentityStore is what single sign-on needs from the database
// (servicedb.DB implements it). Each change is written in the transaction of
// the audit record that reports it.
type IdentityStore interface {
	// OIDCAccount returns the user bound to (issuer, subject) with the
	// grants recorded in depot, and the group roles last recorded for the
	// identity. No binding is CodeNotFound, a disabled user CodeUnauthorized.
	OIDCAccount(ctx context.Context, issuer, subject string) (depot.Principal, string, error)
	// LinkOIDC binds (issuer, subject) to user (creating it when create)
	// and appends ev, both or neither.
	LinkOIDC(ctx context.Context, ev depot.AuditEvent, issuer, subject, email, user string, create bool) (depot.AuditEvent, error)
	// SetOIDCGroupRoles records the group-derived roles of (issuer,
	// subject) and appends ev, both or neither.
	SetOIDCGroupRoles(ctx context.Context, ev depot.AuditEvent, issuer, subject, roles string) (depot.AuditEvent, error)
}

// GroupRole maps members of a provider group to a role in a cohort.
type GroupRole struct {
	Group  string
	Cohort string
	Role   depot.Role
}

// OIDCConfig configures the checking of ID tokens.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL, exactly as its discovery
	// document and its tokens name it.
	Issuer string
	// ClientIDs are the accepted audiences: the web tier's client and the
	// command-line client's (when it is registered separately).
	ClientIDs []string
	// CreateUsers creates a depot user at the first sign-in of a person
	// no user is bound to yet.
	CreateUsers bool
	// LinkUsers binds an existing depot user whose name equals the
	// person's UserClaim at their first sign-in (email only when the
	// provider says it is verified).
	LinkUsers bool
	// UserClaim names the claim whose value is the depot user name at
	// first sign-in. Default "email".
	UserClaim string
	// GroupsClaim names the claim that lists the person's groups. Default
	// "groups".
	GroupsClaim string
	// GroupRoles grant cohort roles to members of provider groups.
	GroupRoles []GroupRole
	Store      IdentityStore
	// HTTP fetches the discovery document and the signing keys. Default:
	// a client with a 10 s timeout.
	HTTP *http.Client
	Now  func() time.Time
}

// OIDC checks ID tokens of one provider. The provider's discovery document
// and keys are fetched on first use (and keys again when a token names an
// unknown one), so services starts while the provider is unreachable.
type OIDC struct {
	cfg OIDCConfig

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier // nil until discovery succeeded
	lenient  *oidc.IDTokenVerifier // the same, without the expiry check (sign-out)
	failedAt time.Time

	subMu    sync.Mutex
	subjects map[string]string // user → subject, as authenticated (withIdentity)
}

// maxSubjects bounds the remembered user → subject pairs; when full they
// are forgotten (and read from the database when needed).
const maxSubjects = 10000

// remember notes that user is bound to subject at this provider.
func (o *OIDC) remember(user, subject string) {
	o.subMu.Lock()
	defer o.subMu.Unlock()
	if o.subjects == nil || len(o.subjects) >= maxSubjects {
		o.subjects = map[string]string{}
	}
	o.subjects[user] = subject
}

// subjectOf returns the remembered subject of user.
func (o *OIDC) subjectOf(user string) (string, bool) {
	o.subMu.Lock()
	defer o.subMu.Unlock()
	s, ok := o.subjects[user]
	return s, ok
}

// discoveryRetry is how long a failed discovery is remembered before it is
// tried again, so that an unreachable provider is not asked per request.
const discoveryRetry = 5 * time.Second

// NewOIDC returns a checker for cfg; it fails on an incomplete configuration.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	if cfg.Issuer == "" || len(cfg.ClientIDs) == 0 || cfg.Store == nil {
		return nil, errors.New("single sign-on needs an issuer, a client ID and a database")
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = "email"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &OIDC{cfg: cfg}, nil
}

// Issuer returns the configured issuer URL.
func (o *OIDC) Issuer() string { return o.cfg.Issuer }

// LooksLikeIDToken reports whether a forwarded user token is a JWT (three
// base64url parts) rather than a personal access token.
func LooksLikeIDToken(token string) bool {
	return strings.HasPrefix(token, "eyJ") && strings.Count(token, ".") == 2
}

// identity is what a verified ID token says about its person.
type identity struct {
	issuer, subject string
	email           string
	emailVerified   bool
	userName        string   // the UserClaim's value
	groups          []string // the GroupsClaim's values
}

// verifiers returns the token verifiers, discovering the provider first.
func (o *OIDC) verifiers() (strict, lenient *oidc.IDTokenVerifier, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, o.lenient, nil
	}
	if now := o.cfg.Now(); now.Sub(o.failedAt) < discoveryRetry {
		return nil, nil, depot.Errorf(depot.CodeUnavailable, "the identity provider is unreachable")
	}
	// The provider keeps this context for its key fetches: it must outlive
	// any one request. The client's timeout bounds each fetch.
	ctx := oidc.ClientContext(context.Background(), o.cfg.HTTP)
	p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
	if err != nil {
		o.failedAt = o.cfg.Now()
		return nil, nil, depot.WrapError(depot.CodeUnavailable, "the identity provider is unreachable", err)
	}
	o.verifier = p.Verifier(&oidc.Config{SkipClientIDCheck: true, Now: o.cfg.Now})
	o.lenient = p.Verifier(&oidc.Config{SkipClientIDCheck: true, SkipExpiryCheck: true, Now: o.cfg.Now})
	return o.verifier, o.lenient, nil
}

// verify checks raw (signature, issuer, audience, and expiry unless
// allowExpired) and returns its identity. A token that fails is
// CodeUnauthorized (with the reason as its cause); an unreachable provider
// is CodeUnavailable.
func (o *OIDC) verify(ctx context.Context, raw string, allowExpired bool) (identity, error) {
	strict, lenient, err := o.verifiers()
	if err != nil {
		return identity{}, err
	}
	v := strict
	if allowExpired {
		v = lenient
	}
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		if strings.Contains(err.Error(), "fetching keys") {
			return identity{}, depot.WrapError(depot.CodeUnavailable, "the identity provider's keys are unreachable", err)
		}
		return identity{}, depot.WrapError(depot.CodeUnauthorized, "invalid ID token", &tokenError{reason: o.reason(raw, err), err: err})
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return identity{}, depot.WrapError(depot.CodeUnauthorized, "invalid ID token", &tokenError{reason: "invalid_token", err: err})
	}
	if !o.audienceOK(tok.Audience, claims["azp"]) {
		return identity{}, depot.WrapError(depot.CodeUnauthorized, "invalid ID token",
			&tokenError{reason: "wrong_audience", err: fmt.Errorf("audience %q is not one of depot's clients", tok.Audience)})
	}
	id := identity{issuer: tok.Issuer, subject: tok.Subject}
	id.email, _ = claims["email"].(string)
	switch v := claims["email_verified"].(type) { // some providers send a string
	case bool:
		id.emailVerified = v
	case string:
		id.emailVerified = v == "true"
	}
	id.userName, _ = claims[o.cfg.UserClaim].(string)
	switch g := claims[o.cfg.GroupsClaim].(type) {
	case []any:
		for _, v := range g {
			if s, ok := v.(string); ok {
				id.groups = append(id.groups, s)
			}
		}
	case string:
		id.groups = []string{g}
	}
	if id.subject == "" {
		return identity{}, depot.WrapError(depot.CodeUnauthorized, "invalid ID token", &tokenError{reason: "invalid_token", err: errors.New("no subject")})
	}
	return id, nil
}

// audienceOK accepts a token meant for one of depot's clients; with
// several audiences the authorised party must be one of them too.
func (o *OIDC) audienceOK(aud []string, azp any) bool {
	ok := false
	for _, a := range aud {
		ok = ok || slices.Contains(o.cfg.ClientIDs, a)
	}
	if ok && len(aud) > 1 {
		s, _ := azp.(string)
		ok = slices.Contains(o.cfg.ClientIDs, s)
	}
	return ok
}

// tokenError says why an ID token was refused, as a short code for the
// audit record.
type tokenError struct {
	reason string
	err    error
}

func (e *tokenError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *tokenError) Unwrap() error { return e.err }

// reason classifies a verification failure. The token's unverified payload
// is read only to tell a foreign issuer from a forgery; nothing of it is
// trusted.
func (o *OIDC) reason(raw string, err error) string {
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return "token_expired"
	}
	if parts := strings.Split(raw, "."); len(parts) == 3 {
		if b, derr := base64.RawURLEncoding.DecodeString(parts[1]); derr == nil {
			var c struct {
				Iss string `json:"iss"`
			}
			if json.Unmarshal(b, &c) == nil && c.Iss != o.cfg.Issuer {
				return "wrong_issuer"
			}
		}
	}
	return "invalid_token"
}

// refusalReason is the reason code of a refused token ("" for other errors).
func refusalReason(err error) string {
	var te *tokenError
	if errors.As(err, &te) {
		return te.reason
	}
	return ""
}

// groupRoles returns the cohort roles that groups earn, canonical (sorted
// "cohort:role" joined by ","). For one cohort, manager wins; otherwise the
// first mapping in configuration order.
func (o *OIDC) groupRoles(groups []string) (map[string]depot.Role, string) {
	roles := map[string]depot.Role{}
	for _, m := range o.cfg.GroupRoles {
		if !slices.Contains(groups, m.Group) {
			continue
		}
		if cur, ok := roles[m.Cohort]; !ok || m.Role == depot.RoleManager && cur != depot.RoleManager {
			roles[m.Cohort] = m.Role
		}
	}
	parts := make([]string, 0, len(roles))
	for c, r := range roles {
		parts = append(parts, c+":"+string(r))
	}
	sort.Strings(parts)
	return roles, strings.Join(parts, ",")
}

// ParseGroupRoles parses "GROUP=COHORT:ROLE" entries separated by ";" or
// newlines. GROUP is everything before the last "=", so that group names
// such as LDAP DNs ("cn=lab,ou=groups,dc=example") need no quoting. Blank
// entries and lines starting with "#" are skipped.
func ParseGroupRoles(s string) ([]GroupRole, error) {
	var out []GroupRole
	for _, e := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == '\n' }) {
		e = strings.TrimSpace(e)
		if e == "" || strings.HasPrefix(e, "#") {
			continue
		}
		i := strings.LastIndexByte(e, '=')
		if i <= 0 {
			return nil, fmt.Errorf("%q: want GROUP=COHORT:ROLE", e)
		}
		cohort, role, ok := strings.Cut(e[i+1:], ":")
		g := GroupRole{Group: strings.TrimSpace(e[:i]), Cohort: strings.TrimSpace(cohort), Role: depot.Role(strings.TrimSpace(role))}
		if !ok || g.Cohort == "" || strings.Contains(g.Cohort, "/") || !g.Role.Valid() {
			return nil, fmt.Errorf("%q: want GROUP=COHORT:ROLE with ROLE uploader, reader or manager", e)
		}
		out = append(out, g)
	}
	return out, nil
}

// Cohorts returns the cohorts named by the group mappings, for a start-up
// check that they exist.
func (o *OIDC) Cohorts() []string {
	var out []string
	for _, m := range o.cfg.GroupRoles {
		if !slices.Contains(out, m.Cohort) {
			out = append(out, m.Cohort)
		}
	}
	return out
}
