package services

import (
	"context"
	"errors"
	"fmt"
	"time"

	"depot"
	"depot/servicedb"
)

// call is one operation of a caller: who asked, from where, since when.
type call struct {
	depot.Caller
	principal depot.Principal
	start     time.Time
	fileName  string // the client's file name, for upload records
}

func (c *Core) begin(caller depot.Caller) *call {
	return &call{Caller: caller, start: c.now()}
}

// event starts an audit record of cl's operation on key.
func (cl *call) event(action depot.Action, key string) depot.AuditEvent {
	ev := depot.AuditEvent{
		Action:        action,
		Outcome:       depot.OutcomeSuccess,
		Actor:         cl.principal.User,
		AuthMethod:    cl.principal.AuthMethod,
		Key:           key,
		FileName:      cl.fileName,
		DeclaredSize:  -1,
		StoredSize:    -1,
		ServerRole:    "services",
		WebNode:       cl.WebNode,
		CorrelationID: cl.RequestID,
		ClientIP:      cl.ClientIP,
		UserAgent:     cl.UserAgent,
	}
	if key != "" {
		ev.Cohort = cohortOf(key)
	}
	return ev
}

// Authorize authenticates caller and, when cohort is not "", checks perm in
// it; it returns the caller's principal. Refusals are audited.
func (c *Core) Authorize(ctx context.Context, caller depot.Caller, cohort string, perm depot.Permission) (depot.Principal, error) {
	cl := c.begin(caller)
	if cohort == "" {
		err := c.authenticate(ctx, cl)
		return cl.principal, err
	}
	if err := depot.ValidateKey(cohort); err != nil {
		return depot.Principal{}, depot.Errorf(depot.CodeInvalidPath, "invalid cohort name")
	}
	err := c.authorize(ctx, cl, cohort+"/", perm)
	return cl.principal, err
}

// authorize authenticates cl and checks perm on the cohort of key.
func (c *Core) authorize(ctx context.Context, cl *call, key string, perm depot.Permission) error {
	if err := c.authenticate(ctx, cl); err != nil {
		return err
	}
	return c.permit(ctx, cl, key, perm)
}

// permit checks perm on the cohort of key for the authenticated cl,
// auditing a refusal.
func (c *Core) permit(ctx context.Context, cl *call, key string, perm depot.Permission) error {
	if cl.principal.Can(cohortOf(key), perm) {
		return nil
	}
	ev := cl.event(depot.ActionAccessDenied, key)
	ev.Outcome, ev.ErrorCode = depot.OutcomeDenied, string(depot.CodeForbidden)
	ev.Metadata = map[string]string{"permission": string(perm)}
	if err := c.audit(ctx, ev); err != nil {
		return err
	}
	return depot.Errorf(depot.CodeForbidden, "you have no %s access to this cohort", perm)
}

// reauthorize reads cl's grants again and checks perm on key: a commit
// calls it last, so that a grant (or token) revoked while an upload
// streamed refuses the commit.
func (c *Core) reauthorize(ctx context.Context, cl *call, key string, perm depot.Permission) error {
	p, err := c.principal(ctx, cl)
	switch {
	case depot.ErrorCode(err) == depot.CodeUnauthorized:
		return depot.Errorf(depot.CodeForbidden, "your access ended while the upload was under way")
	case err != nil:
		return depot.WrapError(depot.CodeUnavailable, "authentication is unavailable", err)
	}
	cl.principal = p
	return c.permit(ctx, cl, key, perm)
}

// principal resolves the credential of cl: its token (a personal access
// token or an OpenID Connect ID token), the SSH public key an SFTP client
// proved to hold at web (looked up among registered keys: web cannot name
// a user, only a key), or the user web vouches for when services trusts
// web's users.
func (c *Core) principal(ctx context.Context, cl *call) (depot.Principal, error) {
	switch {
	case cl.Token == "" && cl.SSHKey != "":
		return c.cfg.DB.AuthenticateSSHKey(ctx, cl.SSHKey)
	case cl.Token == "" && cl.TrustedUser != "" && c.cfg.TrustWebUsers:
		return c.cfg.DB.PrincipalOf(ctx, cl.TrustedUser)
	case c.cfg.OIDC != nil && LooksLikeIDToken(cl.Token):
		return c.oidcPrincipal(ctx, cl, cl.Token) // identity_signin.go
	}
	return c.cfg.DB.Authenticate(ctx, cl.Token)
}

// authenticate resolves the credential of cl, throttling repeated failures
// from one client address or network (a success does not reset them).
func (c *Core) authenticate(ctx context.Context, cl *call) error {
	if wait, blocked := c.throttle.check(cl.ClientIP); blocked {
		ev := cl.event(depot.ActionAuthThrottled, "")
		ev.Outcome, ev.ErrorCode = depot.OutcomeDenied, string(depot.CodeTooMany)
		if err := c.audit(ctx, ev); err != nil {
			return err
		}
		return depot.Errorf(depot.CodeTooMany, "too many failed sign-ins from your address; try again in %s", wait.Round(time.Second))
	} else if wait > 0 {
		select { // slow down an address that keeps failing
		case <-time.After(wait):
		case <-ctx.Done():
			return depot.WrapError(depot.CodeUnavailable, "request cancelled", ctx.Err())
		}
	}
	p, err := c.principal(ctx, cl)
	if err == nil {
		cl.principal = p
		return nil
	}
	if depot.ErrorCode(err) != depot.CodeUnauthorized {
		return depot.WrapError(depot.CodeUnavailable, "authentication is unavailable", err)
	}
	c.throttle.failure(cl.ClientIP)
	ev := cl.event(depot.ActionAuthFailed, "")
	ev.Outcome, ev.ErrorCode = depot.OutcomeDenied, string(depot.CodeUnauthorized)
	switch {
	case cl.Token == "" && cl.SSHKey != "":
		ev.AuthMethod = servicedb.AuthMethodSSHKey
		ev.Metadata = map[string]string{"reason": "unknown or revoked ssh key"}
		if _, fp, _, perr := servicedb.ParseSSHKey(cl.SSHKey); perr == nil {
			ev.Metadata["fingerprint"] = fp
		}
	case cl.Token == "":
		ev.Metadata = map[string]string{"reason": "missing token"}
	}
	if m := c.oidcFailureMeta(cl.Token, err); m != nil {
		ev.Metadata = m
	}
	if aerr := c.audit(ctx, ev); aerr != nil {
		return aerr
	}
	return depot.Errorf(depot.CodeUnauthorized, "missing, expired or invalid access token")
}

// audit appends ev; a failure is CodeUnavailable, so that the operation
// fails closed (503).
func (c *Core) audit(ctx context.Context, ev depot.AuditEvent) error {
	return c.auditWith(ctx, ev, nil)
}

// auditWith appends ev and applies change in the same transaction (see
// servicedb.AppendWith). A change that refuses returns its own error.
func (c *Core) auditWith(ctx context.Context, ev depot.AuditEvent, change servicedb.Change) error {
	ev = c.withIdentity(ctx, ev) // an OIDC actor's provider and subject (identity_signin.go)
	start := time.Now()
	var err error
	if change != nil {
		_, err = c.cfg.DB.AppendWith(context.WithoutCancel(ctx), ev, change)
	} else {
		_, err = c.cfg.DB.Append(context.WithoutCancel(ctx), ev)
	}
	unavailable := err != nil && depot.ErrorCode(err) == depot.CodeUnavailable
	if m := c.cfg.Metrics; m != nil {
		m.AuditWrite.Observe(time.Since(start).Seconds())
		if unavailable {
			m.AuditFailures.Inc()
		}
	}
	if unavailable {
		c.log.Error("audit write failed", "action", ev.Action, "request_id", ev.CorrelationID, "err", err)
		return depot.WrapError(depot.CodeUnavailable, "the audit trail is unavailable; nothing was done", fmt.Errorf("%w: %w", errAuditDown, err))
	}
	return err
}

// errAuditDown is wrapped by the error of an operation whose audit record
// could not be written.
var errAuditDown = errors.New("audit trail unavailable")

// fail records ev as the failure of its operation with err's code, unless
// err is one that was audited where it arose (a refusal) or is the audit
// trail's own failure; it returns err (or the audit failure).
func (c *Core) fail(ctx context.Context, cl *call, ev depot.AuditEvent, err error) error {
	switch depot.ErrorCode(err) {
	case depot.CodeForbidden, depot.CodeUnauthorized, depot.CodeTooMany:
		return err
	case depot.CodeUnavailable:
		if isAuditFailure(err) {
			return err
		}
	}
	ev.Outcome, ev.ErrorCode = depot.OutcomeFailure, string(depot.ErrorCode(err))
	ev.DurationMS = c.now().Sub(cl.start).Milliseconds()
	if aerr := c.audit(ctx, ev); aerr != nil {
		return aerr
	}
	if code := depot.ErrorCode(err); code == depot.CodeInternal || code == depot.CodeUnavailable || code == depot.CodeStorageFull {
		c.log.Error("operation failed", "action", ev.Action, "request_id", cl.RequestID, "code", string(code), "err", err)
	}
	return err
}

// isAuditFailure reports whether err is the audit trail being unavailable
// (recording the failure would fail too).
func isAuditFailure(err error) bool { return errors.Is(err, errAuditDown) }
