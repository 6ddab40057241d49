package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"

	"depot"
	"depot/internal/wire"
)

// Concat creates the final upload of the tus concatenation extension from
// complete partial uploads and returns it, committed, with its version.
// Services keeps a long concatenation's answer alive (wire.ConcatResult),
// so ProgressTimeout does not cut it.
func (c *Client) Concat(ctx context.Context, cl depot.Caller, req wire.ConcatUpload) (depot.Upload, depot.Object, error) {
	body, _ := json.Marshal(req)
	var res wire.ConcatResult
	err := c.retry(ctx, func() error {
		r, err := c.newRequest(ctx, cl, http.MethodPost, wire.PathConcat, bytes.NewReader(body))
		if err != nil {
			return err
		}
		r.Header.Set("Content-Type", "application/json")
		res = wire.ConcatResult{}
		return c.doJSON(r, &res)
	})
	if err != nil {
		return depot.Upload{}, depot.Object{}, err
	}
	if res.Error != nil {
		return depot.Upload{}, depot.Object{}, &depot.Error{Code: res.Error.Code, Message: res.Error.Message}
	}
	if res.Version == nil {
		return depot.Upload{}, depot.Object{}, depot.Errorf(depot.CodeUnavailable, "the services tier sent no version for the concatenation")
	}
	return res.Upload, *res.Version, nil
}
