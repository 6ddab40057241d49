package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"depot"
	"depot/internal/wire"
)

var _ depot.Files = (*Client)(nil)

// Put streams r to key. A body that fits in one chunk is sent as a one-shot
// upload (retried from memory); a larger or unsized body goes through an
// upload session, one chunk at a time, while the next chunk is read from r.
// Services computes the SHA-256 and checks it against opts.SHA256 when set;
// every body or chunk carries its CRC-32C so that services can tell bytes
// damaged on the way (and web sends them again).
func (c *Client) Put(ctx context.Context, key string, r io.Reader, opts depot.PutOptions) (depot.Object, error) {
	if opts.Size >= 0 && opts.Size <= int64(c.cfg.ChunkSize) {
		return c.putSmall(ctx, key, r, opts)
	}
	return c.PutSession(ctx, key, r, opts, nil)
}

func (c *Client) putSmall(ctx context.Context, key string, r io.Reader, opts depot.PutOptions) (depot.Object, error) {
	bp, err := c.bufs.get(ctx)
	if err != nil {
		return depot.Object{}, err
	}
	defer c.bufs.put(bp)
	buf := (*bp)[:opts.Size]
	if _, err := io.ReadFull(r, buf); err != nil {
		if depot.ErrorCode(err) != depot.CodeInternal {
			return depot.Object{}, err
		}
		return depot.Object{}, depot.WrapError(depot.CodeSizeMismatch, "the request body is shorter than its declared size", err)
	}
	if n, _ := io.ReadFull(r, make([]byte, 1)); n > 0 {
		return depot.Object{}, depot.Errorf(depot.CodeSizeMismatch, "the request body is longer than its declared size")
	}
	// The CRC-32C checks the internal hop at a tenth of the CPU of a
	// SHA-256 here; services hashes what it stores (and checks opts.SHA256).
	crc := hopSum(buf)
	var obj depot.Object
	err = c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, http.MethodPut, wire.PathObject, bytes.NewReader(buf))
		if err != nil {
			return err
		}
		req.ContentLength = int64(len(buf))
		req.Header.Set(wire.HeaderKey, wire.EncodeKey(key))
		req.Header.Set(wire.HeaderSize, strconv.Itoa(len(buf)))
		req.Header.Set(wire.HeaderCRC32C, crc)
		if opts.SHA256 != "" {
			req.Header.Set(wire.HeaderSHA256, opts.SHA256)
		}
		if opts.Class != "" {
			req.Header.Set(wire.HeaderClass, string(opts.Class))
		}
		return c.doJSON(req, &obj)
	})
	return obj, err
}

// PutSession streams r through an upload session. If u is nil a session is
// created; otherwise bytes are appended to *u from its current offset. Reading
// the next chunk overlaps sending the current one; at most two chunk buffers
// are in use per upload.
func (c *Client) PutSession(ctx context.Context, key string, r io.Reader, opts depot.PutOptions, u *depot.Upload) (depot.Object, error) {
	if u == nil {
		created, err := c.CreateUpload(ctx, wire.CreateUpload{Key: key, Size: opts.Size, SHA256: opts.SHA256, Class: opts.Class, FileName: CallerFrom(ctx).FileName})
		if err != nil {
			return depot.Object{}, err
		}
		u = &created
	}
	// Every chunk carries its CRC-32C (hardware-assisted, ~20× cheaper than
	// SHA-256), which services checks before it counts the bytes (Append);
	// services computes the SHA-256 that identifies the file, and verifies
	// a SHA-256 the client declared.
	n, err := c.stream(ctx, u.ID, u.Offset, r, false)
	if err != nil {
		c.abortQuietly(ctx, u.ID)
		return depot.Object{}, err
	}
	req := wire.CompleteUpload{Size: u.Offset + n, SHA256: opts.SHA256}
	obj, err := c.complete(ctx, u.ID, req)
	if err != nil {
		if depot.ErrorCode(err) != depot.CodeSizeMismatch {
			c.abortQuietly(ctx, u.ID)
		}
		return depot.Object{}, err
	}
	return obj, nil
}

// AppendStream appends r to session id from offset, chunk by chunk, and
// returns the bytes appended. When r fails part-way, the bytes already read
// are still appended (so a client that resumes re-sends as little as
// possible) and the read error is returned.
func (c *Client) AppendStream(ctx context.Context, id string, offset int64, r io.Reader, resume bool) (int64, error) {
	return c.stream(ctx, id, offset, r, resume)
}

func (c *Client) abortQuietly(ctx context.Context, id string) {
	_ = c.Abort(context.WithoutCancel(ctx), id)
}

// Open streams an object (or a range of it) from services. The returned
// object describes the whole file.
func (c *Client) Open(ctx context.Context, key string, rng *depot.Range) (depot.Object, io.ReadCloser, error) {
	req, err := c.newRequest(ctx, http.MethodGet, wire.PathObject, nil)
	if err != nil {
		return depot.Object{}, nil, err
	}
	req.Header.Set(wire.HeaderKey, wire.EncodeKey(key))
	if rng != nil {
		if rng.Length >= 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(rng.Offset, 10)+"-"+strconv.FormatInt(rng.Offset+rng.Length-1, 10))
		} else {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(rng.Offset, 10)+"-")
		}
	}
	resp, err := c.do(req)
	if err != nil {
		return depot.Object{}, nil, err
	}
	return objectFromHeaders(key, resp.Header), resp.Body, nil
}

// Stat describes an object.
func (c *Client) Stat(ctx context.Context, key string) (depot.Object, error) {
	var obj depot.Object
	err := c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, http.MethodHead, wire.PathObject, nil)
		if err != nil {
			return err
		}
		req.Header.Set(wire.HeaderKey, wire.EncodeKey(key))
		resp, err := c.do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		obj = objectFromHeaders(key, resp.Header)
		return nil
	})
	return obj, err
}

// Delete removes an object.
func (c *Client) Delete(ctx context.Context, key string) error {
	return c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, http.MethodDelete, wire.PathObject, nil)
		if err != nil {
			return err
		}
		req.Header.Set(wire.HeaderKey, wire.EncodeKey(key))
		resp, err := c.do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// List returns one page of objects under prefix (which ends with "/").
func (c *Client) List(ctx context.Context, prefix, after string, limit int) (depot.ListPage, error) {
	var page depot.ListPage
	err := c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, http.MethodGet, wire.PathObjects+"?limit="+strconv.Itoa(limit), nil)
		if err != nil {
			return err
		}
		req.Header.Set(wire.HeaderPrefix, wire.EncodeKey(prefix))
		if after != "" {
			req.Header.Set(wire.HeaderAfter, wire.EncodeKey(after))
		}
		return c.doJSON(req, &page)
	})
	return page, err
}

// Authenticate asks services who is behind the caller's token and, when
// cohort and perm are set, whether they may do perm there. The cohort
// travels in a signed header, never in the URL (no PHI in internal URLs).
func (c *Client) Authenticate(ctx context.Context, cohort string, perm depot.Permission) (depot.Principal, error) {
	var p depot.Principal
	err := c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, http.MethodPost, wire.PathAuth, nil)
		if err != nil {
			return err
		}
		if cohort != "" {
			req.Header.Set(wire.HeaderCohort, wire.EncodeKey(cohort))
			req.Header.Set(wire.HeaderPermission, string(perm))
		}
		return c.doJSON(req, &p)
	})
	return p, err
}

func objectFromHeaders(key string, h http.Header) depot.Object {
	size, _ := strconv.ParseInt(h.Get(wire.HeaderSize), 10, 64)
	return depot.Object{
		Key: key, Size: size, SHA256: h.Get(wire.HeaderSHA256),
		ModTime: wire.ParseTime(h.Get(wire.HeaderModified)), Class: depot.Class(h.Get(wire.HeaderClass)),
	}
}

// IsNetwork reports whether err is a transient failure of the internal hop.
func IsNetwork(err error) bool {
	var ne *netError
	return errors.As(err, &ne)
}

// RequestCleanup forwards an administrator's cleanup request to services and
// returns the run's result as raw JSON.
func (c *Client) RequestCleanup(ctx context.Context, dryRun bool) (json.RawMessage, error) {
	path := wire.PathCleanup
	if dryRun {
		path += "?dry_run=1"
	}
	req, err := c.newRequest(ctx, http.MethodPost, path, nil)
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	return out, c.doJSON(req, &out)
}
