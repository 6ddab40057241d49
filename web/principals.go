package web

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"depot"
)

// uploaderTTL is how long web trusts an answer of services that a credential
// may upload into a cohort, for counting that user's upload slots.
const uploaderTTL = 2 * time.Second

// maxUploaders bounds the remembered answers; when full, all are dropped.
const maxUploaders = 4096

// uploaders remembers, for uploaderTTL, who a credential belongs to and that
// it may upload into a cohort, so that a run of small uploads does not cost
// an extra request to services each. It only decides whose upload slots a
// request takes, and spares an early refusal: services authenticates and
// authorises every internal request itself, so a token or grant revoked in
// the meantime is refused there, before anything is stored, and audited.
// Only successful answers are kept.
type uploaders struct {
	now func() time.Time

	mu      sync.Mutex
	answers map[uploaderKey]uploaderAnswer
}

type uploaderKey struct {
	credential [sha256.Size]byte // of the bearer token, or of the trusted user name
	trusted    bool              // credential is a trusted user name
	cohort     string
}

type uploaderAnswer struct {
	principal depot.Principal
	until     time.Time
}

func newUploaders(now func() time.Time) *uploaders {
	return &uploaders{now: now, answers: make(map[uploaderKey]uploaderAnswer)}
}

// authorize returns the principal behind ctx's caller if it may upload into
// cohort: remembered, or asked of services with ask.
func (u *uploaders) authorize(ctx context.Context, c depot.Caller, cohort string, ask func(context.Context, depot.Caller, string, depot.Permission) (depot.Principal, error)) (depot.Principal, error) {
	key, ok := credentialKey(c, cohort)
	if !ok {
		return ask(ctx, c, cohort, depot.PermUpload)
	}
	now := u.now()
	u.mu.Lock()
	a, found := u.answers[key]
	u.mu.Unlock()
	if found && now.Before(a.until) {
		return a.principal, nil
	}
	p, err := ask(ctx, c, cohort, depot.PermUpload)
	if err != nil {
		return p, err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.answers) >= maxUploaders {
		clear(u.answers)
	}
	u.answers[key] = uploaderAnswer{principal: p, until: now.Add(uploaderTTL)}
	return p, nil
}

// credentialKey is the cache key of c's credential in cohort; false
// without one.
func credentialKey(c depot.Caller, cohort string) (uploaderKey, bool) {
	switch {
	case c.Token != "":
		return uploaderKey{credential: sha256.Sum256([]byte(c.Token)), cohort: cohort}, true
	case c.SSHKey != "":
		return uploaderKey{credential: sha256.Sum256([]byte("ssh\x00" + c.SSHKey)), cohort: cohort}, true
	case c.TrustedUser != "":
		return uploaderKey{credential: sha256.Sum256([]byte(c.TrustedUser)), trusted: true, cohort: cohort}, true
	}
	return uploaderKey{}, false
}
