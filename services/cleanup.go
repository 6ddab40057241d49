package services

import (
	"net/http"

	"depot"
	"depot/internal/httpx"
)

// cleanup answers POST /internal/v1/cleanup?dry_run=1: an administrator's
// request, forwarded by the web tier, to run the cleanup job now. The job
// itself never deletes a permanent file and audits what it does; the request
// is audited as cleanup.scheduled.
func (s *Server) cleanup(w http.ResponseWriter, r *http.Request) {
	r = withToken(r)
	c := s.callerOf(r)
	if err := s.authenticate1(r.Context(), c); err != nil {
		httpx.WriteError(w, err)
		return
	}
	dryRun := r.URL.Query().Get("dry_run") == "1"
	ev := c.event(depot.ActionCleanupScheduled, "")
	ev.Metadata = withMeta(ev.Metadata, "trigger", "request", "dry_run", map[bool]string{true: "true", false: "false"}[dryRun])
	if !c.principal.Admin {
		ev.Action, ev.Outcome, ev.ErrorCode = depot.ActionAccessDenied, depot.OutcomeDenied, string(depot.CodeForbidden)
		if err := s.audit(r.Context(), ev); err != nil {
			httpx.WriteError(w, err)
			return
		}
		httpx.WriteError(w, depot.Errorf(depot.CodeForbidden, "only administrators may request a cleanup"))
		return
	}
	if s.cfg.Cleanup == nil {
		httpx.WriteError(w, depot.Errorf(depot.CodeUnavailable, "cleanup is not available on this services instance"))
		return
	}
	if err := s.audit(r.Context(), ev); err != nil {
		httpx.WriteError(w, err)
		return
	}
	res, err := s.cfg.Cleanup(r.Context(), dryRun)
	if err != nil {
		httpx.WriteError(w, depot.WrapError(depot.CodeUnavailable, "the cleanup run failed; see the services log and depot jobs", err))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, res)
}
