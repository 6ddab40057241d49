package services

import (
	"context"
	"net/http"
	"strings"
	"time"

	"depot"
	"depot/internal/httpx"
	"depot/internal/wire"
)

// caller is who asked, as far as the services tier can tell: the user behind
// the forwarded token and what the web tier reported about the request.
type caller struct {
	principal depot.Principal
	requestID string
	webNode   string
	clientIP  string
	userAgent string
	fileName  string
	start     time.Time
}

func (s *Server) callerOf(r *http.Request) *caller {
	c := &caller{
		requestID: r.Header.Get(wire.HeaderRequestID),
		webNode:   r.Header.Get(wire.HeaderWebNode),
		clientIP:  r.Header.Get(wire.HeaderClientIP),
		userAgent: r.Header.Get(wire.HeaderUserAgent),
		start:     s.now(),
	}
	if c.requestID == "" {
		c.requestID = httpx.NewID()
	}
	if c.clientIP == "" {
		c.clientIP = remoteHost(r)
	}
	if name, err := wire.DecodeKey(r.Header.Get(wire.HeaderFileName)); err == nil {
		c.fileName = name
	}
	return c
}

// event starts an audit event for c.
func (c *caller) event(action depot.Action, key string) depot.AuditEvent {
	return depot.AuditEvent{
		Action:        action,
		Outcome:       depot.OutcomeSuccess,
		Actor:         c.principal.User,
		AuthMethod:    c.principal.AuthMethod,
		Cohort:        cohortOf(key),
		Key:           key,
		FileName:      c.fileName,
		DeclaredSize:  -1,
		StoredSize:    -1,
		ServerRole:    "services",
		WebNode:       c.webNode,
		CorrelationID: c.requestID,
		ClientIP:      c.clientIP,
		UserAgent:     c.userAgent,
	}
}

// cohortOf returns the first segment of a key: files live under their cohort.
func cohortOf(key string) string {
	cohort, _, _ := strings.Cut(key, "/")
	return cohort
}

// authorize authenticates the forwarded user token and checks perm on the
// cohort of key. Failures are audited (with client address) and returned as
// client-safe errors; an audit failure makes the request fail closed.
func (s *Server) authorize(ctx context.Context, c *caller, key string, perm depot.Permission) error {
	if err := s.authenticate1(ctx, c); err != nil {
		return err
	}
	return s.permit(ctx, c, key, perm)
}

// permit checks perm on the cohort of key for the already authenticated
// caller c, auditing a refusal like authorize.
func (s *Server) permit(ctx context.Context, c *caller, key string, perm depot.Permission) error {
	cohort := cohortOf(key)
	if c.principal.Can(cohort, perm) {
		return nil
	}
	ev := c.event(depot.ActionAccessDenied, key)
	ev.Outcome = depot.OutcomeDenied
	ev.ErrorCode = string(depot.CodeForbidden)
	ev.Metadata = map[string]string{"permission": string(perm)}
	if err := s.audit(ctx, ev); err != nil {
		return err
	}
	return depot.Errorf(depot.CodeForbidden, "you have no %s access to this cohort", perm)
}

// authenticate1 resolves the user token of c, throttling repeated failures
// from one client address or network (a success does not reset them).
func (s *Server) authenticate1(ctx context.Context, c *caller) error {
	if wait, blocked := s.throttle.check(c.clientIP); blocked {
		ev := c.event(depot.ActionAuthThrottled, "")
		ev.Outcome = depot.OutcomeDenied
		ev.ErrorCode = string(depot.CodeTooMany)
		if err := s.audit(ctx, ev); err != nil {
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
	token := requestToken(ctx)
	var p depot.Principal
	var err error
	if trusted := requestTrustedUser(ctx); token == "" && trusted != "" && s.cfg.TrustWebUsers {
		p, err = s.cfg.DB.PrincipalOf(ctx, trusted)
	} else {
		p, err = s.cfg.DB.Authenticate(ctx, token)
	}
	if err == nil {
		c.principal = p
		return nil
	}
	if depot.ErrorCode(err) != depot.CodeUnauthorized {
		return depot.WrapError(depot.CodeUnavailable, "authentication is unavailable", err)
	}
	s.throttle.failure(c.clientIP)
	ev := c.event(depot.ActionAuthFailed, "")
	ev.Outcome = depot.OutcomeDenied
	ev.ErrorCode = string(depot.CodeUnauthorized)
	if token == "" {
		ev.Metadata = map[string]string{"reason": "missing token"}
	}
	if aerr := s.audit(ctx, ev); aerr != nil {
		return aerr
	}
	return depot.Errorf(depot.CodeUnauthorized, "missing, expired or invalid access token")
}

type tokenKey struct{}
type trustedUserKey struct{}

// withToken stores the forwarded user token (and a trusted user name, if
// any) in the request context.
func withToken(r *http.Request) *http.Request {
	ctx := context.WithValue(r.Context(), tokenKey{}, r.Header.Get(wire.HeaderUserToken))
	ctx = context.WithValue(ctx, trustedUserKey{}, r.Header.Get(wire.HeaderTrustedUser))
	return r.WithContext(ctx)
}

func requestTrustedUser(ctx context.Context) string {
	u, _ := ctx.Value(trustedUserKey{}).(string)
	return u
}

func requestToken(ctx context.Context) string {
	t, _ := ctx.Value(tokenKey{}).(string)
	return t
}

// audit appends ev; a failure is returned as CodeUnavailable so that the
// operation fails closed (503).
func (s *Server) audit(ctx context.Context, ev depot.AuditEvent) error {
	return s.auditFile(ctx, ev, nil)
}

// auditFile is audit that, when f is not nil, also stores f as the current
// state of a committed file in the same transaction.
func (s *Server) auditFile(ctx context.Context, ev depot.AuditEvent, f *FileState) error {
	start := time.Now()
	var err error
	if f != nil {
		_, err = s.cfg.DB.AppendWithFile(context.WithoutCancel(ctx), ev, *f)
	} else {
		_, err = s.cfg.DB.Append(context.WithoutCancel(ctx), ev)
	}
	if m := s.cfg.Metrics; m != nil {
		m.AuditWrite.Observe(time.Since(start).Seconds())
		if err != nil {
			m.AuditFailures.Inc()
		}
	}
	if err != nil {
		s.cfg.Log.Error("audit write failed", "action", ev.Action, "request_id", ev.CorrelationID, "err", err)
		return depot.WrapError(depot.CodeUnavailable, "the audit trail is unavailable; nothing was done", err)
	}
	return nil
}

// authenticate answers POST /internal/v1/auth: who is behind the forwarded
// token, and (optionally) may they do a permission (HeaderPermission) in a
// cohort (HeaderCohort; never in the URL, which may be logged).
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	cohort, derr := wire.DecodeKey(r.Header.Get(wire.HeaderCohort))
	perm := depot.Permission(r.Header.Get(wire.HeaderPermission))
	var err error
	if cohort != "" && perm != "" {
		if verr := depot.ValidateKey(cohort); derr != nil || verr != nil || strings.Contains(cohort, "/") {
			httpx.WriteError(w, depot.Errorf(depot.CodeInvalidPath, "invalid cohort name"))
			return
		}
		err = s.authorize(r.Context(), c, cohort, perm)
	} else {
		err = s.authenticate1(r.Context(), c)
	}
	if err != nil {
		httpx.WriteError(w, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, c.principal)
}
