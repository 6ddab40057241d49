package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"depot"
	"depot/internal/wire"
)

// Put stores r as a new version of key. A body that fits in one chunk is
// sent in one request (retried from memory); a larger or unsized one goes
// through a plain upload session, chunk by chunk, while the next chunk is
// read from r, and is committed with its last chunk. Services computes the
// SHA-256 and checks it against opts.SHA256 when set; every body carries
// its CRC-32C so that services can tell bytes damaged on the way (and web
// sends them again).
func (c *Client) Put(ctx context.Context, cl depot.Caller, key string, r io.Reader, opts depot.PutOptions, fileName string) (depot.Object, error) {
	if opts.Size > int64(c.cfg.ChunkSize) {
		return c.putSession(ctx, cl, key, nil, r, opts, fileName)
	}
	bp, err := c.bufs.get(ctx)
	if err != nil {
		return depot.Object{}, err
	}
	defer c.bufs.put(bp)
	n, err := io.ReadFull(r, *bp)
	switch {
	case err == nil && (opts.Size < 0 || int64(n) < opts.Size):
		// A full chunk of a body of unknown size: more may follow.
		return c.putSession(ctx, cl, key, (*bp)[:n], r, opts, fileName)
	case err != nil && err != io.EOF && err != io.ErrUnexpectedEOF:
		if depot.ErrorCode(err) == depot.CodeInternal {
			err = depot.WrapError(depot.CodeInvalid, "the upload was interrupted", err)
		}
		return depot.Object{}, err
	case opts.Size >= 0 && int64(n) != opts.Size:
		return depot.Object{}, depot.Errorf(depot.CodeSizeMismatch, "the request body is shorter than its declared size")
	}
	if opts.Size >= 0 { // known size: the body must end here
		var one [1]byte
		if m, _ := io.ReadFull(r, one[:]); m > 0 {
			return depot.Object{}, depot.Errorf(depot.CodeSizeMismatch, "the request body is longer than its declared size")
		}
	}
	return c.putOne(ctx, cl, key, (*bp)[:n], opts, fileName)
}

// putOne sends a whole body in one request.
func (c *Client) putOne(ctx context.Context, cl depot.Caller, key string, body []byte, opts depot.PutOptions, fileName string) (depot.Object, error) {
	var obj depot.Object
	crc := hopSum(body)
	err := c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, cl, http.MethodPut, wire.PathObject, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.ContentLength = int64(len(body))
		h := req.Header
		h.Set(wire.HeaderKey, wire.EncodeKey(key))
		h.Set(wire.HeaderCRC32C, crc)
		setPutHeaders(h, opts, fileName)
		return c.doJSON(req, &obj)
	})
	return obj, err
}

func setPutHeaders(h http.Header, opts depot.PutOptions, fileName string) {
	if opts.SHA256 != "" {
		h.Set(wire.HeaderSHA256, opts.SHA256)
	}
	if opts.Class != "" {
		h.Set(wire.HeaderClass, string(opts.Class))
	}
	if fileName != "" {
		h.Set(wire.HeaderFileName, wire.EncodeKey(fileName))
	}
	if opts.IfMatch != "" {
		h.Set("If-Match", opts.IfMatch)
	}
	if opts.IfNoneMatch != "" {
		h.Set("If-None-Match", opts.IfNoneMatch)
	}
}

// putSession streams first (already read, may be empty) and then r through
// a plain upload session, committed with its last chunk. On failure the
// session is abandoned (services records why).
func (c *Client) putSession(ctx context.Context, cl depot.Caller, key string, first []byte, r io.Reader, opts depot.PutOptions, fileName string) (depot.Object, error) {
	u, err := c.CreateUpload(ctx, cl, wire.CreateUpload{
		Key: key, Size: opts.Size, SHA256: opts.SHA256, Class: opts.Class, FileName: fileName,
		IfMatch: opts.IfMatch, IfNoneMatch: opts.IfNoneMatch,
	})
	if err != nil {
		return depot.Object{}, err
	}
	offset := int64(0)
	if len(first) > 0 {
		if offset, _, err = c.append(ctx, cl, u.ID, appendChunk{offset: 0, data: first}); err != nil {
			c.abandon(ctx, cl, u.ID, err)
			return depot.Object{}, err
		}
	}
	_, obj, err := c.AppendStream(ctx, cl, u.ID, offset, r, opts.Size, true)
	if err == nil && obj == nil {
		err = depot.Errorf(depot.CodeSizeMismatch, "the request body is shorter than its declared size")
	}
	if err != nil {
		c.abandon(ctx, cl, u.ID, err)
		return depot.Object{}, err
	}
	return *obj, nil
}

// abandon aborts upload id after err, telling services why.
func (c *Client) abandon(ctx context.Context, cl depot.Caller, id string, err error) {
	_ = c.Abort(context.WithoutCancel(ctx), cl, id, depot.ErrorCode(err))
}

// Open streams a version of key (or a range of it) from services.
// Download.Object describes the whole version. An unsatisfiable range
// returns the error with Download.Object.Size set.
func (c *Client) Open(ctx context.Context, cl depot.Caller, key string, opts depot.ReadOptions) (depot.Download, error) {
	req, err := c.newRequest(ctx, cl, http.MethodGet, wire.PathObject, nil)
	if err != nil {
		return depot.Download{}, err
	}
	h := req.Header
	h.Set(wire.HeaderKey, wire.EncodeKey(key))
	if opts.Version != "" {
		h.Set(wire.HeaderVersion, opts.Version)
	}
	if rng := opts.Range; rng != nil {
		switch {
		case rng.Suffix > 0:
			h.Set("Range", "bytes=-"+strconv.FormatInt(rng.Suffix, 10))
		case rng.Length >= 0:
			h.Set("Range", "bytes="+strconv.FormatInt(rng.Offset, 10)+"-"+strconv.FormatInt(rng.Offset+rng.Length-1, 10))
		default:
			h.Set("Range", "bytes="+strconv.FormatInt(rng.Offset, 10)+"-")
		}
	}
	if opts.IfRange != "" {
		h.Set("If-Range", opts.IfRange)
	}
	if opts.IfNoneMatch != "" {
		h.Set("If-None-Match", opts.IfNoneMatch)
	}
	resp, err := c.do(req)
	if err != nil {
		var re *rangeError
		if errors.As(err, &re) {
			return depot.Download{Object: depot.Object{Key: key, Size: re.size}}, err
		}
		return depot.Download{}, err
	}
	d := depot.Download{Object: objectFromHeaders(key, resp.Header), Length: resp.ContentLength}
	switch resp.StatusCode {
	case http.StatusNotModified:
		resp.Body.Close()
		d.NotModified, d.Length = true, 0
		return d, nil
	case http.StatusPartialContent:
		d.Partial = true
		d.Offset = contentRangeStart(resp.Header.Get("Content-Range"))
	}
	d.Body = resp.Body
	return d, nil
}

// contentRangeStart returns the first byte of "bytes a-b/n".
func contentRangeStart(v string) int64 {
	spec, _ := strings.CutPrefix(v, "bytes ")
	first, _, _ := strings.Cut(spec, "-")
	n, _ := strconv.ParseInt(first, 10, 64)
	return n
}

// Stat describes a version of key ("" the current one).
func (c *Client) Stat(ctx context.Context, cl depot.Caller, key, version string) (depot.Object, error) {
	var obj depot.Object
	err := c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, cl, http.MethodHead, wire.PathObject, nil)
		if err != nil {
			return err
		}
		req.Header.Set(wire.HeaderKey, wire.EncodeKey(key))
		if version != "" {
			req.Header.Set(wire.HeaderVersion, version)
		}
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

// keyRequest sends method to path with key (and version, if any) and
// decodes a JSON answer into out (nil: none).
func (c *Client) keyRequest(ctx context.Context, cl depot.Caller, method, path, key, version, query string, out any) error {
	return c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, cl, method, path+query, nil)
		if err != nil {
			return err
		}
		req.Header.Set(wire.HeaderKey, wire.EncodeKey(key))
		if version != "" {
			req.Header.Set(wire.HeaderVersion, version)
		}
		if out != nil {
			return c.doJSON(req, out)
		}
		resp, err := c.do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

// Delete hides key behind a delete marker.
func (c *Client) Delete(ctx context.Context, cl depot.Caller, key string) error {
	return c.keyRequest(ctx, cl, http.MethodDelete, wire.PathObject, key, "", "", nil)
}

// Purge removes version of key for good ("" every version).
func (c *Client) Purge(ctx context.Context, cl depot.Caller, key, version string) error {
	return c.keyRequest(ctx, cl, http.MethodDelete, wire.PathObject, key, version, "?purge=1", nil)
}

// Undelete removes key's delete marker.
func (c *Client) Undelete(ctx context.Context, cl depot.Caller, key string) (depot.Object, error) {
	var obj depot.Object
	return obj, c.keyRequest(ctx, cl, http.MethodPost, wire.PathUndelete, key, "", "", &obj)
}

// RestoreVersion makes version of key its current one.
func (c *Client) RestoreVersion(ctx context.Context, cl depot.Caller, key, version string) (depot.Object, error) {
	var obj depot.Object
	return obj, c.keyRequest(ctx, cl, http.MethodPost, wire.PathRestore, key, version, "", &obj)
}

// History returns the versions of key.
func (c *Client) History(ctx context.Context, cl depot.Caller, key string) (depot.History, error) {
	var h depot.History
	return h, c.keyRequest(ctx, cl, http.MethodGet, wire.PathVersions, key, "", "", &h)
}

// List returns one page of files under prefix (which ends with "/").
func (c *Client) List(ctx context.Context, cl depot.Caller, prefix, after string, limit int) (depot.ListPage, error) {
	var page depot.ListPage
	err := c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, cl, http.MethodGet, wire.PathObjects+"?limit="+strconv.Itoa(limit), nil)
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

// Authorize asks services who is behind the caller's credential and, when
// cohort and perm are set, whether they may do perm there.
func (c *Client) Authorize(ctx context.Context, cl depot.Caller, cohort string, perm depot.Permission) (depot.Principal, error) {
	var p depot.Principal
	err := c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, cl, http.MethodPost, wire.PathAuth, nil)
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

// Holds lists the retention holds in force in cohort.
func (c *Client) Holds(ctx context.Context, cl depot.Caller, cohort string) ([]wire.Hold, error) {
	var out []wire.Hold
	err := c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, cl, http.MethodGet, wire.PathHolds, nil)
		if err != nil {
			return err
		}
		req.Header.Set(wire.HeaderCohort, wire.EncodeKey(cohort))
		return c.doJSON(req, &out)
	})
	return out, err
}

// PlaceHold places a retention hold.
func (c *Client) PlaceHold(ctx context.Context, cl depot.Caller, h wire.PlaceHold) (wire.Hold, error) {
	body, _ := json.Marshal(h)
	var out wire.Hold
	err := c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, cl, http.MethodPost, wire.PathHolds, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		return c.doJSON(req, &out)
	})
	return out, err
}

// ReleaseHold ends hold id of cohort.
func (c *Client) ReleaseHold(ctx context.Context, cl depot.Caller, cohort string, id int64) error {
	return c.retry(ctx, func() error {
		req, err := c.newRequest(ctx, cl, http.MethodDelete, wire.HoldPrefix+strconv.FormatInt(id, 10), nil)
		if err != nil {
			return err
		}
		req.Header.Set(wire.HeaderCohort, wire.EncodeKey(cohort))
		resp, err := c.do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
}

func objectFromHeaders(key string, h http.Header) depot.Object {
	size, _ := strconv.ParseInt(h.Get(wire.HeaderSize), 10, 64)
	by, _ := wire.DecodeKey(h.Get(wire.HeaderUploadedBy))
	return depot.Object{
		Key: key, Version: h.Get(wire.HeaderVersion), Size: size, SHA256: h.Get(wire.HeaderSHA256),
		ModTime: wire.ParseTime(h.Get(wire.HeaderModified)), Class: depot.Class(h.Get(wire.HeaderClass)), UploadedBy: by,
	}
}

// RequestCleanup forwards an administrator's cleanup request to services and
// returns the run's result as raw JSON.
func (c *Client) RequestCleanup(ctx context.Context, cl depot.Caller, dryRun bool) (json.RawMessage, error) {
	path := wire.PathCleanup
	if dryRun {
		path += "?dry_run=1"
	}
	req, err := c.newRequest(ctx, cl, http.MethodPost, path, nil)
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	return out, c.doJSON(req, &out)
}
