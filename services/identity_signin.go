package services

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"time"

	"depot"
	"depot/internal/httpx"
)

// oidcPrincipal authenticates the ID token of one request: the hook of
// authenticate1 for tokens that are JWTs. The identity must have signed in
// before (sign-in binds it to a user); its group-derived roles are brought
// up to date, audited when they change.
func (s *Server) oidcPrincipal(ctx context.Context, c *caller, raw string) (depot.Principal, error) {
	o := s.cfg.OIDC
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
	return s.withGroupRoles(ctx, c, p, stored, id)
}

// withGroupRoles adds the cohort roles that id's groups earn to p (a grant
// recorded in depot wins for its cohort), recording and auditing them first
// when they differ from the roles last recorded (stored).
func (s *Server) withGroupRoles(ctx context.Context, c *caller, p depot.Principal, stored string, id identity) (depot.Principal, error) {
	roles, canonical := s.cfg.OIDC.groupRoles(id.groups)
	if canonical != stored {
		ev := c.identityEvent(depot.ActionGrantChanged, p)
		ev.Metadata["source"] = "idp_groups"
		ev.Metadata["roles"] = canonical
		ev.Metadata["previous"] = stored
		if _, err := s.cfg.OIDC.cfg.Store.SetOIDCGroupRoles(context.WithoutCancel(ctx), ev, id.issuer, id.subject, canonical); err != nil {
			s.cfg.Log.Error("record group roles", "request_id", c.requestID, "err", err)
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
func (c *caller) identityEvent(action depot.Action, p depot.Principal) depot.AuditEvent {
	ev := c.event(action, "")
	ev.Actor, ev.AuthMethod = p.User, depot.AuthMethodOIDC
	ev.Metadata = map[string]string{"idp": p.IdP, "sub": p.Subject}
	return ev
}

// identityMeta is the audit metadata naming an OIDC principal's provider
// and subject; nil for other principals.
func identityMeta(p depot.Principal) map[string]string {
	if p.AuthMethod != depot.AuthMethodOIDC || p.Subject == "" {
		return nil
	}
	return map[string]string{"idp": p.IdP, "sub": p.Subject}
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
func (s *Server) oidcFailureMeta(token string, err error) map[string]string {
	if s.cfg.OIDC == nil || !LooksLikeIDToken(token) {
		return nil
	}
	reason := refusalReason(err)
	if reason == "" {
		reason = "invalid_token"
	}
	return map[string]string{"idp": s.cfg.OIDC.Issuer(), "reason": reason}
}

// Reasons web may give for a sign-in it refused itself (event=refused).
var webRefusals = []string{
	"state_missing", "state_mismatch", "provider_error", "code_exchange_failed", "id_token_invalid",
	"nonce_mismatch", "session_invalid", "session_expired", "refresh_failed",
}

// sessionEvent answers POST /internal/v1/auth/session?event=...&client=...:
// the web tier reports a sign-in (the ID token it received from the
// provider, checked here again), a sign-out, or a sign-in it refused itself
// (reason=...), or a request with a valid session that web refused (denied,
// reason=csrf). Each is audited; sign-ins and refusals count towards the
// address's failed sign-in throttle like bad tokens do.
func (s *Server) sessionEvent(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	if s.cfg.OIDC == nil {
		httpx.WriteError(w, depot.Errorf(depot.CodeNotFound, "single sign-on is not configured"))
		return
	}
	q := r.URL.Query()
	client := q.Get("client")
	if client != "cli" {
		client = "browser"
	}
	ctx := r.Context()
	switch q.Get("event") {
	case "sign_in":
		p, err := s.signIn(ctx, c, requestToken(ctx), client)
		if err != nil {
			httpx.WriteError(w, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, p)
	case "sign_out":
		if err := s.signOut(ctx, c, requestToken(ctx), client); err != nil {
			httpx.WriteError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case "refused":
		reason := q.Get("reason")
		if !slices.Contains(webRefusals, reason) {
			reason = "other"
		}
		if err := s.throttled(ctx, c); err != nil { // a blocked address stays blocked
			httpx.WriteError(w, err)
			return
		}
		httpx.WriteError(w, s.refuse(ctx, c, client, reason, identity{}))
	case "denied":
		httpx.WriteError(w, s.denySession(ctx, c, requestToken(ctx), client, q.Get("reason")))
	default:
		httpx.WriteError(w, depot.Errorf(depot.CodeInvalid, "unknown session event"))
	}
}

// signIn checks the ID token of a sign-in, binds its subject to a depot
// user at the first sign-in (by policy), and audits the sign-in.
func (s *Server) signIn(ctx context.Context, c *caller, raw, client string) (depot.Principal, error) {
	if err := s.throttled(ctx, c); err != nil {
		return depot.Principal{}, err
	}
	o := s.cfg.OIDC
	id, err := o.verify(ctx, raw, false)
	if depot.ErrorCode(err) == depot.CodeUnauthorized {
		return depot.Principal{}, s.refuse(ctx, c, client, refusalReason(err), identity{})
	}
	if err != nil {
		return depot.Principal{}, err
	}
	p, stored, err := o.cfg.Store.OIDCAccount(ctx, id.issuer, id.subject)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		if reason, err := s.provision(ctx, c, id, client); err != nil || reason != "" {
			if err != nil {
				return depot.Principal{}, err
			}
			return depot.Principal{}, s.refuse(ctx, c, client, reason, id)
		}
		p, stored, err = o.cfg.Store.OIDCAccount(ctx, id.issuer, id.subject)
	}
	switch depot.ErrorCode(err) {
	case "":
	case depot.CodeUnauthorized:
		return depot.Principal{}, s.refuse(ctx, c, client, "user_disabled", id)
	default:
		return depot.Principal{}, err
	}
	if p, err = s.withGroupRoles(ctx, c, p, stored, id); err != nil {
		return depot.Principal{}, err
	}
	ev := c.identityEvent(depot.ActionSignIn, p)
	ev.Metadata["client"] = client
	if err := s.audit(ctx, ev); err != nil {
		return depot.Principal{}, err
	}
	s.throttle.success(c.clientIP)
	return p, nil
}

// provision binds id to a depot user at its first sign-in: an existing
// user named by its user claim (LinkUsers), or a new one (CreateUsers). It
// returns the reason for refusing when policy allows neither.
func (s *Server) provision(ctx context.Context, c *caller, id identity, client string) (reason string, err error) {
	o := s.cfg.OIDC
	name := id.userName
	switch {
	case name == "":
		return "no_user_claim", nil
	case o.cfg.UserClaim == "email" && !id.emailVerified:
		return "email_unverified", nil
	}
	p := depot.Principal{User: name, IdP: id.issuer, Subject: id.subject}
	link := func(action depot.Action, create bool) error {
		ev := c.identityEvent(action, p)
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
func (s *Server) signOut(ctx context.Context, c *caller, raw, client string) error {
	id, err := s.cfg.OIDC.verify(ctx, raw, true)
	if err != nil {
		return err
	}
	p := depot.Principal{IdP: id.issuer, Subject: id.subject}
	if acct, _, err := s.cfg.OIDC.cfg.Store.OIDCAccount(ctx, id.issuer, id.subject); err == nil {
		p.User = acct.User
	}
	ev := c.identityEvent(depot.ActionSignOut, p)
	ev.Metadata["client"] = client
	return s.audit(ctx, ev)
}

// denySession audits a request that web refused although its session was
// valid (reason "csrf": no or a wrong anti-forgery token), as a denied
// access by the session's user. It does not count against the address: a
// forged request comes from the victim's browser.
func (s *Server) denySession(ctx context.Context, c *caller, raw, client, reason string) error {
	if reason != "csrf" {
		reason = "other"
	}
	ev := c.event(depot.ActionAccessDenied, "")
	if id, err := s.cfg.OIDC.verify(ctx, raw, true); err == nil {
		p := depot.Principal{IdP: id.issuer, Subject: id.subject}
		if acct, _, err := s.cfg.OIDC.cfg.Store.OIDCAccount(ctx, id.issuer, id.subject); err == nil {
			p.User = acct.User
		}
		ev = c.identityEvent(depot.ActionAccessDenied, p)
	}
	ev.Outcome, ev.ErrorCode = depot.OutcomeDenied, string(depot.CodeForbidden)
	ev.Metadata = withMeta(ev.Metadata, "reason", reason, "client", client)
	if err := s.audit(ctx, ev); err != nil {
		return err
	}
	return depot.Errorf(depot.CodeForbidden, "request refused (%s)", reason)
}

// refuse audits a refused sign-in, counts it against the client's address
// like a bad token, and returns the error for the client.
func (s *Server) refuse(ctx context.Context, c *caller, client, reason string, id identity) error {
	s.throttle.failure(c.clientIP)
	ev := c.event(depot.ActionSignInRefused, "")
	ev.Outcome, ev.ErrorCode, ev.AuthMethod = depot.OutcomeDenied, string(depot.CodeUnauthorized), depot.AuthMethodOIDC
	ev.Metadata = map[string]string{"idp": s.cfg.OIDC.Issuer(), "reason": reason, "client": client}
	if id.subject != "" {
		ev.Metadata["idp"], ev.Metadata["sub"] = id.issuer, id.subject
	}
	if err := s.audit(ctx, ev); err != nil {
		return err
	}
	return depot.Errorf(depot.CodeUnauthorized, "sign-in refused (%s)", reason)
}

// throttled refuses (and audits) an address blocked for failing to sign in
// too often, and slows down one that keeps failing, as for tokens.
func (s *Server) throttled(ctx context.Context, c *caller) error {
	wait, blocked := s.throttle.check(c.clientIP)
	if blocked {
		ev := c.event(depot.ActionAuthThrottled, "")
		ev.Outcome, ev.ErrorCode, ev.AuthMethod = depot.OutcomeDenied, string(depot.CodeTooMany), depot.AuthMethodOIDC
		if err := s.audit(ctx, ev); err != nil {
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
