package apiclient

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"

	"depot"
	"depot/internal/wire"
)

// SessionEvent reports a single sign-on event to services (see
// wire.PathAuthSession): "sign_in" and "sign_out" with the person's ID
// token as cl.Token, "refused" or "denied" with a reason code.
// client is "browser" or "cli". A sign-in returns the person's principal.
// It is not retried: each report is one audit record.
func (c *Client) SessionEvent(ctx context.Context, cl depot.Caller, event, client, reason string) (depot.Principal, error) {
	q := url.Values{"event": {event}, "client": {client}}
	if reason != "" {
		q.Set("reason", reason)
	}
	req, err := c.newRequest(ctx, cl, http.MethodPost, wire.PathAuthSession+"?"+q.Encode(), nil)
	if err != nil {
		return depot.Principal{}, err
	}
	resp, err := c.do(req)
	if err != nil {
		return depot.Principal{}, err
	}
	defer resp.Body.Close()
	var p depot.Principal
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&p); err != nil {
			return p, depot.WrapError(depot.CodeUnavailable, "the services tier sent a truncated answer", err)
		}
	}
	return p, nil
}
