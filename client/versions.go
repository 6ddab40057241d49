package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Version is one version of a file in its history.
type Version struct {
	Version    string    `json:"version"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	Modified   time.Time `json:"modified"`
	Class      string    `json:"class"`
	UploadedBy string    `json:"uploaded_by"`
	Current    bool      `json:"current"`
}

// History is a file's kept versions, newest first.
type History struct {
	Cohort   string     `json:"cohort"`
	Path     string     `json:"path"`
	Deleted  *time.Time `json:"deleted,omitempty"`
	Versions []Version  `json:"versions"`
}

// Versions returns the history of cohort/p.
func (c *Client) Versions(ctx context.Context, cohort, p string) (History, error) {
	var h History
	return h, c.call(ctx, http.MethodGet, filePath(cohort, p)+"?versions", nil, &h)
}

// Undelete brings a deleted file back (a manager's).
func (c *Client) Undelete(ctx context.Context, cohort, p string) (File, error) {
	var f File
	return f, c.call(ctx, http.MethodPost, filePath(cohort, p)+"?undelete", nil, &f)
}

// RestoreVersion makes version the current version of cohort/p again (a
// manager's).
func (c *Client) RestoreVersion(ctx context.Context, cohort, p, version string) (File, error) {
	var f File
	return f, c.call(ctx, http.MethodPost, filePath(cohort, p)+"?restore="+url.QueryEscape(version), nil, &f)
}

// Purge removes version ("" every version) of cohort/p for good (a
// manager's; refused while a retention hold covers it).
func (c *Client) Purge(ctx context.Context, cohort, p, version string) error {
	q := "?purge"
	if version != "" {
		q += "&version=" + url.QueryEscape(version)
	}
	return c.call(ctx, http.MethodDelete, filePath(cohort, p)+q, nil, nil)
}

// Hold is a retention hold.
type Hold struct {
	ID        int64     `json:"id"`
	Cohort    string    `json:"cohort"`
	Path      string    `json:"path"`
	Reason    string    `json:"reason"`
	CreatedBy string    `json:"created_by"`
	Created   time.Time `json:"created"`
}

// Holds lists the holds in force in cohort.
func (c *Client) Holds(ctx context.Context, cohort string) ([]Hold, error) {
	var out []Hold
	return out, c.call(ctx, http.MethodGet, "/api/v1/holds/"+url.PathEscape(cohort), nil, &out)
}

// PlaceHold places a hold on cohort, or on path (a file or a folder ending
// in "/") inside it (a manager's).
func (c *Client) PlaceHold(ctx context.Context, cohort, path, reason string) (Hold, error) {
	body, _ := json.Marshal(map[string]string{"path": path, "reason": reason})
	var h Hold
	return h, c.call(ctx, http.MethodPost, "/api/v1/holds/"+url.PathEscape(cohort), body, &h)
}

// ReleaseHold ends hold id of cohort (a manager's).
func (c *Client) ReleaseHold(ctx context.Context, cohort string, id int64) error {
	return c.call(ctx, http.MethodDelete, "/api/v1/holds/"+url.PathEscape(cohort)+"/"+strconv.FormatInt(id, 10), nil, nil)
}

// call sends a request with an optional JSON body and decodes a JSON answer
// into out (nil: none).
func (c *Client) call(ctx context.Context, method, path string, body []byte, out any) error {
	req, err := c.newRequest(ctx, method, path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return nil
}
