// Package client is a Go client of depot's public API: resumable uploads over
// tus 1.0, downloads with SHA-256 verification, listings and deletes. The
// depot command-line client (depot upload / download / ls / rm) is built on it.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"depot"
)

// Client talks to a depot web tier.
type Client struct {
	BaseURL string // e.g. https://depot.example.org
	Token   string // personal access token
	// Tokens, when Token is empty, gives the bearer token of each request:
	// the ID token of a stored depot login, renewed as needed (LoginTokens).
	Tokens interface {
		Token(ctx context.Context) (string, error)
	}
	HTTP *http.Client
	// Retries is how many times a failed transfer is resumed within one call.
	Retries int
	// StateDir keeps resumable upload state between runs ("" disables it).
	StateDir string
}

// New returns a Client with sensible defaults.
func New(baseURL, token string) *Client {
	return &Client{
		BaseURL: strings.TrimSuffix(baseURL, "/"),
		Token:   token,
		HTTP:    &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: 5 * time.Minute}},
		Retries: 5,
	}
}

// File is a file (one version of it) as the public API lists it.
type File struct {
	Cohort   string    `json:"cohort"`
	Path     string    `json:"path"`
	Version  string    `json:"version"`
	Size     int64     `json:"size"`
	SHA256   string    `json:"sha256"`
	Modified time.Time `json:"modified"`
	Class    string    `json:"class"`
}

func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, err
	}
	token := c.Token
	if token == "" && c.Tokens != nil {
		if token, err = c.Tokens.Token(ctx); err != nil {
			return nil, err
		}
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", "depot-cli/1")
	return req, nil
}

// do sends req and turns an error status into a *depot.Error carrying the
// server's code and message.
func (c *Client) do(req *http.Request) (*http.Response, error) {
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, depot.WrapError(depot.CodeUnavailable, "cannot reach depot at "+c.BaseURL, err)
	}
	if resp.StatusCode < 400 {
		return resp, nil
	}
	defer resp.Body.Close()
	return nil, decodeError(resp)
}

func decodeError(resp *http.Response) error {
	var body struct {
		Error struct {
			Code    depot.Code `json:"code"`
			Message string     `json:"message"`
		} `json:"error"`
	}
	if json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&body) == nil && body.Error.Code != "" {
		return depot.Errorf(body.Error.Code, "%s", body.Error.Message)
	}
	code := depot.CodeInternal
	switch {
	case resp.StatusCode == 401:
		code = depot.CodeUnauthorized
	case resp.StatusCode == 403:
		code = depot.CodeForbidden
	case resp.StatusCode == 404:
		code = depot.CodeNotFound
	case resp.StatusCode == 409:
		code = depot.CodeConflict
	case resp.StatusCode == 413:
		code = depot.CodeTooLarge
	case resp.StatusCode >= 500:
		code = depot.CodeUnavailable
	}
	return depot.Errorf(code, "depot answered %s", resp.Status)
}

// filePath is the public URL path of cohort/p.
func filePath(cohort, p string) string {
	return "/api/v1/files/" + url.PathEscape(cohort) + "/" + escapePath(p)
}

func escapePath(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// Stat returns the version, size and SHA-256 of a file's current version,
// or of version when it is not "".
func (c *Client) Stat(ctx context.Context, cohort, p, version string) (File, error) {
	u := filePath(cohort, p)
	if version != "" {
		u += "?version=" + url.QueryEscape(version)
	}
	req, err := c.newRequest(ctx, http.MethodHead, u, nil)
	if err != nil {
		return File{}, err
	}
	resp, err := c.do(req)
	if err != nil {
		return File{}, err
	}
	resp.Body.Close()
	return File{Cohort: cohort, Path: p, Version: resp.Header.Get("Depot-Version"), Size: resp.ContentLength,
		SHA256: resp.Header.Get("Depot-Sha256"), Class: resp.Header.Get("Depot-Class")}, nil
}

// List returns every file under cohort/dir (dir "" for the whole cohort).
func (c *Client) List(ctx context.Context, cohort, dir string) ([]File, error) {
	prefix := "/api/v1/files/" + url.PathEscape(cohort) + "/"
	if dir = strings.Trim(dir, "/"); dir != "" {
		prefix += escapePath(dir) + "/"
	}
	var out []File
	after := ""
	for {
		req, err := c.newRequest(ctx, http.MethodGet, prefix+"?limit=1000&after="+url.QueryEscape(after), nil)
		if err != nil {
			return nil, err
		}
		resp, err := c.do(req)
		if err != nil {
			return nil, err
		}
		var page struct {
			Files []File `json:"files"`
			Next  string `json:"next"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("decode listing: %w", err)
		}
		out = append(out, page.Files...)
		if page.Next == "" {
			return out, nil
		}
		after = page.Next
	}
}

// Delete removes cohort/p.
func (c *Client) Delete(ctx context.Context, cohort, p string) error {
	req, err := c.newRequest(ctx, http.MethodDelete, filePath(cohort, p), nil)
	if err != nil {
		return err
	}
	resp, err := c.do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// isRetryable reports whether a transfer error is worth resuming.
func isRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	code := depot.ErrorCode(err)
	// An offset mismatch means the server holds more (or less) than assumed,
	// e.g. the bytes of an interrupted earlier attempt were still landing:
	// ask for the offset again and go on from there.
	return code == depot.CodeUnavailable || code == depot.CodeInternal || code == depot.CodeConflict ||
		code == depot.CodeOffsetMismatch
}
