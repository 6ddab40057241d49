package web

// Routes lists every public endpoint as "METHOD /path", with {cohort},
// {path} and {id} standing for path parts ({path} may contain slashes). The
// OpenAPI description (docs/openapi/public.yaml) is checked against it, and
// a test checks that each one is served.
func Routes() []string {
	return []string{
		"GET /healthz", "GET /readyz", "GET /api/v1/me", "POST /api/v1/admin/cleanup",
		"GET /api/v1/holds/{cohort}", "POST /api/v1/holds/{cohort}", "DELETE /api/v1/holds/{cohort}/{hold}",
		"PUT " + filesPrefix + "{cohort}/{path}", "POST " + filesPrefix + "{cohort}/{path}",
		"GET " + filesPrefix + "{cohort}/{path}", "HEAD " + filesPrefix + "{cohort}/{path}",
		"DELETE " + filesPrefix + "{cohort}/{path}",
		"OPTIONS " + tusPrefix, "POST " + tusPrefix,
		"OPTIONS " + tusPrefix + "{id}", "HEAD " + tusPrefix + "{id}", "PATCH " + tusPrefix + "{id}",
		"DELETE " + tusPrefix + "{id}",
		"GET /auth/login", "GET /auth/callback", "GET /api/v1/auth/config", "POST /api/v1/auth/login", "POST /api/v1/auth/logout",
	}
}
