package services

import (
	"context"
	"maps"
	"slices"
	"time"

	"depot"
)

// oidcPrincipal authenticates the ID token of one request: the hook of
// authenticate1 for tokens that are JWTs. The identity must have signed in
// before (sign-in binds it to a user); its group-derived roles are brought
// up to date, audited when they change.
func (c *Core) oidcPrincipal(ctx context.Context, cl *call, raw string) (depot.Principal, error) {
	o := c.cfg.OIDC
	id, err := o.verify(ctx, raw, false)
	if err != nil {
		return depot.Principal{}, err
	}
	p, stored, err := o.cfg.Store.OIDCAccount(ctx, id.issuer, id.subject)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		return depot.Principal{}, depot.WrapError(depot.CodeUnauthorized, "this identity has not signed in to depot",
			&tokenError{reason: "no_account", err: err})
	}
	if err != nil {
		return depot.Principal{}, err
	}
	o.remember(p.User, id.subject)
	return c.withGroupRoles(ctx, cl, p, stored, id)
}

// withGroupRoles adds the cohort roles that id's groups earn to p (a grant
// recorded in depot wins for its cohort), recording and auditing them first
// when they differ from the roles last recorded (stored).
func (c *Core) withGroupRoles(ctx context.Context, cl *call, p depot.Principal, stored string, id identity) (depot.Principal, error) {
	roles, canonical := c.cfg.OIDC.groupRoles(id.groups)
	if canonical != stored {
		ev := cl.identityEvent(depot.ActionGrantChanged, p)
		ev.Metadata["source"] = "idp_groups"
		ev.Metadata["roles"] = canonical
		ev.Metadata["previous"] = stored
		if _, err := c.cfg.OIDC.cfg.Store.SetOIDCGroupRoles(context.WithoutCancel(ctx), ev, id.issuer, id.subject, canonical); err != nil {
			c.log.Error("record group roles", "request_id", cl.RequestID, "err", err)
			return depot.Principal{}, depot.WrapError(depot.CodeUnavailable, "the audit trail is unavailable; nothing was done", err)
		}
	}
	grants := maps.Clone(p.Grants)
	if grants == nil {
		grants = map[string]depot.Role{}
	}
	for cohort, role := range roles {
		if _, ok := grants[cohort]; !ok {
			grants[cohort] = role
		}
	}
	p.Grants = grants
	return p, nil
}

// identityEvent starts an audit event about p, who is not c's principal
// yet, carrying p's provider and subject.
func (cl *call) identityEvent(action depot.Action, p depot.Principal) depot.AuditEvent {
	ev := cl.event(action, "")
	ev.Actor, ev.AuthMethod = p.User, depot.AuthMethodOIDC
	ev.Metadata = map[string]string{"idp": p.IdP, "sub": p.Subject}
	return ev
}

// withIdentity adds the provider and subject of an OIDC actor to ev's
// metadata (the hook of auditWith), so that every record of a signed-in
// person names them, whatever its own metadata. A user is bound to one
// subject per provider, so the actor's name determines them: remembered
// from the request's authentication, else read from the database.
func (c *Core) withIdentity(ctx context.Context, ev depot.AuditEvent) depot.AuditEvent {
	o := c.cfg.OIDC
	if o == nil || ev.AuthMethod != depot.AuthMethodOIDC || ev.Actor == "" || ev.Metadata["sub"] != "" {
		return ev
	}
	sub, ok := o.subjectOf(ev.Actor)
	if !ok {
		ids, err := c.cfg.DB.OIDCIdentities(ctx, ev.Actor)
		if err != nil {
			return ev
		}
		for _, id := range ids {
			if id.Issuer == o.Issuer() {
				sub, ok = id.Subject, true
			}
		}
	}
	if ok {
		ev.Metadata = withMeta(ev.Metadata, "idp", o.Issuer(), "sub", sub)
	}
	return ev
}

// withMeta returns m (copied) with the key/value pairs kv added: metadata
// of an event that may already name the caller's provider and subject.
func withMeta(m map[string]string, kv ...string) map[string]string {
	out := make(map[string]string, len(m)+len(kv)/2)
	maps.Copy(out, m)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// oidcFailureMeta is the metadata of the auth.failed record of a refused
// ID token: provider and reason. nil when token is not an ID token.
func (c *Core) oidcFailureMeta(token string, err error) map[string]string {
	if c.cfg.OIDC == nil || !LooksLikeIDToken(token) {
		return nil
	}
	reason := refusalReason(err)
	if reason == "" {
		reason = "invalid_token"
	}
	return map[string]string{"idp": c.cfg.OIDC.Issuer(), "reason": reason}
}

// Reasons web may give for a sign-in it refused itself (event=refused).
var webRefusals = []string{
	"state_missing", "state_mismatch", "provider_error", "code_exchange_failed", "id_token_invalid",
	"nonce_mismatch", "session_invalid", "session_expired", "refresh_failed",
}

// Session events web may report (SessionEvent).
const (
	EventSignIn  = "sign_in"
	EventSignOut = "sign_out"
	EventRefused = "refused"
	EventDenied  = "denied"
)

// SessionEvent records a single sign-on event that web reports for caller:
// a sign-in (caller.Token is the ID token the provider gave web, checked
// here again; the answer is the person's principal), a sign-out, a sign-in
// web refused itself (reason is one of its reason codes), or a request
// with a valid session that web refused (denied, reason "csrf"). client is
// "browser" or "cli". Each is audited; sign-ins and refusals count towards
// the address's failed sign-in throttle like bad tokens do. Without single
// sign-on it is CodeNotFound.
func (c *Core) SessionEvent(ctx context.Context, caller depot.Caller, event, client, reason string) (depot.Principal, error) {
	if c.cfg.OIDC == nil {
		return depot.Principal{}, depot.Errorf(depot.CodeNotFound, "single sign-on is not configured")
	}
	cl := c.begin(caller)
	if client != "cli" {
		client = "browser"
	}
	switch event {
	case EventSignIn:
		return c.signIn(ctx, cl, caller.Token, client)
	case EventSignOut:
		return depot.Principal{}, c.signOut(ctx, cl, caller.Token, client)
	case EventRefused:
		if !slices.Contains(webRefusals, reason) {
			reason = "other"
		}
		if err := c.throttled(ctx, cl); err != nil { // a blocked address stays blocked
			return depot.Principal{}, err
		}
		return depot.Principal{}, c.refuse(ctx, cl, client, reason, identity{})
	case EventDenied:
		return depot.Principal{}, c.denySession(ctx, cl, caller.Token, client, reason)
	}
	return depot.Principal{}, depot.Errorf(depot.CodeInvalid, "unknown session event")
}

// signIn checks the ID token of a sign-in, binds its subject to a depot
// user at the first sign-in (by policy), and audits the sign-in.
func (c *Core) signIn(ctx context.Context, cl *call, raw, client string) (depot.Principal, error) {
	if err := c.throttled(ctx, cl); err != nil {
		return depot.Principal{}, err
	}
	o := c.cfg.OIDC
	id, err := o.verify(ctx, raw, false)
	if depot.ErrorCode(err) == depot.CodeUnauthorized {
		return depot.Principal{}, c.refuse(ctx, cl, client, refusalReason(err), identity{})
	}
	if err != nil {
		return depot.Principal{}, err
	}
	p, stored, err := o.cfg.Store.OIDCAccount(ctx, id.issuer, id.subject)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		if reason, err := c.provision(ctx, cl, id, client); err != nil || reason != "" {
			if err != nil {
				return depot.Principal{}, err
			}
			return depot.Principal{}, c.refuse(ctx, cl, client, reason, id)
		}
		p, stored, err = o.cfg.Store.OIDCAccount(ctx, id.issuer, id.subject)
	}
	switch depot.ErrorCode(err) {
	case "":
	case depot.CodeUnauthorized:
		return depot.Principal{}, c.refuse(ctx, cl, client, "user_disabled", id)
	default:
		return depot.Principal{}, err
	}
	o.remember(p.User, id.subject)
	if p, err = c.withGroupRoles(ctx, cl, p, stored, id); err != nil {
		return depot.Principal{}, err
	}
	ev := cl.identityEvent(depot.ActionSignIn, p)
	ev.Metadata["client"] = client
	if err := c.audit(ctx, ev); err != nil {
		return depot.Principal{}, err
	}
	return p, nil // a success resets no failure count (throttle.go)
}

// provision binds id to a depot user at its first sign-in: an existing
// user named by its user claim (LinkUsers), or a new one (CreateUsers). It
// returns the reason for refusing when policy allows neither.
func (c *Core) provision(ctx context.Context, cl *call, id identity, client string) (reason string, err error) {
	o := c.cfg.OIDC
	name := id.userName
	switch {
	case name == "":
		return "no_user_claim", nil
	case o.cfg.UserClaim == "email" && !id.emailVerified:
		return "email_unverified", nil
	}
	p := depot.Principal{User: name, IdP: id.issuer, Subject: id.subject}
	link := func(action depot.Action, create bool) error {
		ev := cl.identityEvent(action, p)
		ev.Metadata["client"], ev.Metadata["user"] = client, name
		_, err := o.cfg.Store.LinkOIDC(context.WithoutCancel(ctx), ev, id.issuer, id.subject, id.email, name, create)
		return err
	}
	if o.cfg.LinkUsers {
		err := link(depot.ActionIdentityLinked, false)
		switch depot.ErrorCode(err) {
		case "":
			return "", nil
		case depot.CodeConflict:
			return "account_conflict", nil
		case depot.CodeNotFound:
		default:
			return "", err
		}
	}
	if !o.cfg.CreateUsers {
		return "no_account", nil
	}
	switch err := link(depot.ActionUserCreated, true); depot.ErrorCode(err) {
	case "":
		return "", nil
	case depot.CodeConflict:
		return "account_conflict", nil
	case depot.CodeInvalid:
		return "invalid_user_name", nil
	default:
		return "", err
	}
}

// signOut audits the end of a session. The token may have expired (it is
// still checked: a forged one is refused).
func (c *Core) signOut(ctx context.Context, cl *call, raw, client string) error {
	id, err := c.cfg.OIDC.verify(ctx, raw, true)
	if err != nil {
		return err
	}
	p := depot.Principal{IdP: id.issuer, Subject: id.subject}
	if acct, _, err := c.cfg.OIDC.cfg.Store.OIDCAccount(ctx, id.issuer, id.subject); err == nil {
		p.User = acct.User
	}
	ev := cl.identityEvent(depot.ActionSignOut, p)
	ev.Metadata["client"] = client
	return c.audit(ctx, ev)
}

// denySession audits a request that web refused although its session was
// valid (reason "csrf": no or a wrong anti-forgery token), as a denied
// access by the session's user. It does not count against the address: a
// forged request comes from the victim's browser.
func (c *Core) denySession(ctx context.Context, cl *call, raw, client, reason string) error {
	if reason != "csrf" {
		reason = "other"
	}
	ev := cl.event(depot.ActionAccessDenied, "")
	if id, err := c.cfg.OIDC.verify(ctx, raw, true); err == nil {
		p := depot.Principal{IdP: id.issuer, Subject: id.subject}
		if acct, _, err := c.cfg.OIDC.cfg.Store.OIDCAccount(ctx, id.issuer, id.subject); err == nil {
			p.User = acct.User
		}
		ev = cl.identityEvent(depot.ActionAccessDenied, p)
	}
	ev.Outcome, ev.ErrorCode = depot.OutcomeDenied, string(depot.CodeForbidden)
	ev.Metadata = withMeta(ev.Metadata, "reason", reason, "client", client)
	if err := c.audit(ctx, ev); err != nil {
		return err
	}
	return depot.Errorf(depot.CodeForbidden, "request refused (%s)", reason)
}

// refuse audits a refused sign-in, counts it against the client's address
// like a bad token, and returns the error for the client.
func (c *Core) refuse(ctx context.Context, cl *call, client, reason string, id identity) error {
	c.throttle.failure(cl.ClientIP)
	ev := cl.event(depot.ActionSignInRefused, "")
	ev.Outcome, ev.ErrorCode, ev.AuthMethod = depot.OutcomeDenied, string(depot.CodeUnauthorized), depot.AuthMethodOIDC
	ev.Metadata = map[string]string{"idp": c.cfg.OIDC.Issuer(), "reason": reason, "client": client}
	if id.subject != "" {
		ev.Metadata["idp"], ev.Metadata["sub"] = id.issuer, id.subject
	}
	if err := c.audit(ctx, ev); err != nil {
		return err
	}
	return depot.Errorf(depot.CodeUnauthorized, "sign-in refused (%s)", reason)
}

// throttled refuses (and audits) an address blocked for failing to sign in
// too often, and slows down one that keeps failing, as for tokens.
func (c *Core) throttled(ctx context.Context, cl *call) error {
	wait, blocked := c.throttle.check(cl.ClientIP)
	if blocked {
		ev := cl.event(depot.ActionAuthThrottled, "")
		ev.Outcome, ev.ErrorCode, ev.AuthMethod = depot.OutcomeDenied, string(depot.CodeTooMany), depot.AuthMethodOIDC
		if err := c.audit(ctx, ev); err != nil {
			return err
		}
		return depot.Errorf(depot.CodeTooMany, "too many failed sign-ins from your address; try again in %s", wait.Round(time.Second))
	}
	if wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return depot.WrapError(depot.CodeUnavailable, "request cancelled", ctx.Err())
		}
	}
	return nil
}
