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
func (c *Client) CreateUpload(ctx context.Context, cl depot.Caller, req wire.CreateUpload) (depot.Upload, error) {
	body, _ := json.Marshal(req)
	var u depot.Upload
	err := c.retry(ctx, func() error {
		r, err := c.newRequest(ctx, cl, http.MethodPost, wire.PathUploads, bytes.NewReader(body))
		if err != nil {
			return err
		}
		r.Header.Set("Content-Type", "application/json")
		return c.doJSON(r, &u)
	})
	return u, err
}

// Upload returns the state of an upload session (open, or completed). With
// resume, services records that the client came back to it.
func (c *Client) Upload(ctx context.Context, cl depot.Caller, id string, resume bool) (depot.Upload, error) {
	var u depot.Upload
	err := c.retry(ctx, func() error {
		r, err := c.newRequest(ctx, cl, http.MethodGet, wire.UploadPrefix+id, nil)
		if err != nil {
			return err
		}
		if resume {
			r.Header.Set(wire.HeaderResume, "1")
		}
		return c.doJSON(r, &u)
	})
	return u, err
}

// appendChunk is one append request.
type appendChunk struct {
	offset int64
	data   []byte
	final  bool  // commit the upload after it
	total  int64 // with final: the upload's expected size, -1 unknown
	lazy   bool  // more chunks of the same request follow (wire.HeaderLazy)
}

// append sends a chunk with its CRC-32C, retrying network failures (and
// bytes damaged on the way) at the same offset with backoff. A retry of a
// chunk that services already stored is harmless: services recognises its
// last chunk and answers with the state after it. It returns the new
// offset and, for a final chunk, the committed version.
func (c *Client) append(ctx context.Context, cl depot.Caller, id string, ch appendChunk) (int64, *depot.Object, error) {
	var res wire.AppendResult
	sum := hopSum(ch.data)
	err := c.retry(ctx, func() error {
		r, err := c.newRequest(ctx, cl, http.MethodPatch, wire.UploadPrefix+id, bytes.NewReader(ch.data))
		if err != nil {
			return err
		}
		r.ContentLength = int64(len(ch.data))
		r.Header.Set("Content-Type", "application/offset+octet-stream")
		r.Header.Set(wire.HeaderOffset, strconv.FormatInt(ch.offset, 10))
		r.Header.Set(wire.HeaderCRC32C, sum)
		if ch.lazy {
			r.Header.Set(wire.HeaderLazy, "1")
		}
		if ch.final {
			r.Header.Set(wire.HeaderComplete, "1")
			if ch.total >= 0 {
				r.Header.Set(wire.HeaderSize, strconv.FormatInt(ch.total, 10))
			}
		}
		return c.doJSON(r, &res)
	})
	if err != nil {
		return 0, nil, err
	}
	if want := ch.offset + int64(len(ch.data)); res.Upload.Offset != want {
		return res.Upload.Offset, nil, depot.Errorf(depot.CodeConflict, "the services tier is at offset %d, expected %d", res.Upload.Offset, want)
	}
	return res.Upload.Offset, res.Version, nil
}

// Complete verifies and commits an upload session.
func (c *Client) Complete(ctx context.Context, cl depot.Caller, id string, size int64, sha256 string) (depot.Object, error) {
	body, _ := json.Marshal(wire.CompleteUpload{Size: size, SHA256: sha256})
	var obj depot.Object
	err := c.retry(ctx, func() error {
		r, err := c.newRequest(ctx, cl, http.MethodPost, wire.UploadPrefix+id+"/complete", bytes.NewReader(body))
		if err != nil {
			return err
		}
		r.Header.Set("Content-Type", "application/json")
		return c.doJSON(r, &obj)
	})
	return obj, err
}

// Abort discards an upload session. reason is the error code for which web
// gives up on it ("" when its client ended it).
func (c *Client) Abort(ctx context.Context, cl depot.Caller, id string, reason depot.Code) error {
	return c.retry(ctx, func() error {
		r, err := c.newRequest(ctx, cl, http.MethodDelete, wire.UploadPrefix+id, nil)
		if err != nil {
			return err
		}
		if reason != "" {
			r.Header.Set(wire.HeaderReason, string(reason))
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
