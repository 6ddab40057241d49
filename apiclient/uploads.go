package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"strconv"
	"time"

	"depot"
	"depot/internal/wire"
)

// castagnoli is the CRC-32C table of the hop checks (HeaderCRC32C).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// hopSum is the HeaderCRC32C value of body: services stores or counts the
// bytes only if they match it, and answers a mismatch as damaged in
// transit (retried).
func hopSum(body []byte) string {
	return fmt.Sprintf("%08x", crc32.Checksum(body, castagnoli))
}

// CreateUpload starts an upload session on services.
func (c *Client) CreateUpload(ctx context.Context, req wire.CreateUpload) (depot.Upload, error) {
	body, _ := json.Marshal(req)
	var u depot.Upload
	err := c.retry(ctx, func() error {
		r, err := c.newRequest(ctx, http.MethodPost, wire.PathUploads, bytes.NewReader(body))
		if err != nil {
			return err
		}
		r.Header.Set("Content-Type", "application/json")
		return c.doJSON(r, &u)
	})
	return u, err
}

// Upload returns the state of an upload session. A non-empty perm is a
// permission the caller must still hold on the upload's cohort: services
// checks it in the same request (forbidden otherwise).
func (c *Client) Upload(ctx context.Context, id string, perm depot.Permission) (depot.Upload, error) {
	var u depot.Upload
	err := c.retry(ctx, func() error {
		r, err := c.newRequest(ctx, http.MethodGet, wire.UploadPrefix+id, nil)
		if err != nil {
			return err
		}
		if CallerFrom(ctx).Resume {
			r.Header.Set(wire.HeaderResume, "1")
		}
		if perm != "" {
			r.Header.Set(wire.HeaderPermission, string(perm))
		}
		return c.doJSON(r, &u)
	})
	return u, err
}

// Append sends chunk at offset with its CRC-32C, retrying network failures
// (and bytes damaged on the way) at the same offset with backoff. A retry of
// a chunk that services already stored is harmless: services compares the
// bytes and answers with the same offset. It returns the new offset.
func (c *Client) Append(ctx context.Context, id string, offset int64, chunk []byte, resume bool) (int64, error) {
	var next int64
	sum := hopSum(chunk)
	err := c.retry(ctx, func() error {
		r, err := c.newRequest(ctx, http.MethodPatch, wire.UploadPrefix+id, bytes.NewReader(chunk))
		if err != nil {
			return err
		}
		r.ContentLength = int64(len(chunk))
		r.Header.Set("Content-Type", "application/offset+octet-stream")
		r.Header.Set(wire.HeaderOffset, strconv.FormatInt(offset, 10))
		r.Header.Set(wire.HeaderCRC32C, sum)
		if resume {
			r.Header.Set(wire.HeaderResume, "1")
		}
		var u depot.Upload
		err = c.doJSON(r, &u)
		var oe OffsetError
		if errors.As(err, &oe) && oe.Current == offset+int64(len(chunk)) {
			next = oe.Current // an earlier attempt landed; its response was lost
			return nil
		}
		if err != nil {
			return err
		}
		next = u.Offset
		return nil
	})
	return next, err
}

// Complete verifies and commits an upload session.
func (c *Client) Complete(ctx context.Context, id string, size int64, sha256 string) (depot.Object, error) {
	return c.complete(ctx, id, wire.CompleteUpload{Size: size, SHA256: sha256})
}

func (c *Client) complete(ctx context.Context, id string, req wire.CompleteUpload) (depot.Object, error) {
	body, _ := json.Marshal(req)
	var obj depot.Object
	err := c.retry(ctx, func() error {
		r, err := c.newRequest(ctx, http.MethodPost, wire.UploadPrefix+id+"/complete", bytes.NewReader(body))
		if err != nil {
			return err
		}
		r.Header.Set("Content-Type", "application/json")
		err = c.doJSON(r, &obj)
		if depot.ErrorCode(err) == depot.CodeNotFound && obj.Key == "" {
			// A lost response to a successful complete leaves no session:
			// the caller confirms with Stat.
			return err
		}
		return err
	})
	return obj, err
}

// Abort discards an upload session.
func (c *Client) Abort(ctx context.Context, id string) error {
	return c.retry(ctx, func() error {
		r, err := c.newRequest(ctx, http.MethodDelete, wire.UploadPrefix+id, nil)
		if err != nil {
			return err
		}
		resp, err := c.do(r)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// doJSON sends r and decodes a JSON success body into v.
func (c *Client) doJSON(r *http.Request, v any) error {
	resp, err := c.do(r)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return &netError{err: depot.WrapError(depot.CodeUnavailable, "the services tier sent a truncated answer", err)}
	}
	return nil
}

// retry runs op until it succeeds, fails with a non-network error, the
// retries are used up or ctx ends. Only requests whose body is replayable
// (buffered chunks, small JSON) go through retry.
func (c *Client) retry(ctx context.Context, op func() error) error {
	delay := c.cfg.Backoff
	for attempt := 0; ; attempt++ {
		err := op()
		var ne *netError
		if err == nil || !errors.As(err, &ne) || attempt >= c.cfg.Retries {
			return err
		}
		if c.cfg.OnRetry != nil {
			c.cfg.OnRetry()
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return depot.WrapError(depot.CodeUnavailable, "request cancelled", context.Cause(ctx))
		}
		delay = min(delay*2, 5*time.Second)
	}
}
