package client

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"depot"
)

// UploadOptions describe one upload.
type UploadOptions struct {
	Cohort    string
	Path      string // target path inside the cohort
	Temporary bool
	// Progress, when set, is called as bytes are confirmed by the server.
	Progress func(done, total int64)
}

// UploadResult is a finished upload.
type UploadResult struct {
	File    File
	Resumed bool  // an earlier, interrupted upload of the same file was continued
	Skipped int64 // bytes not re-sent thanks to the resume
}

// Upload sends the local file at local to opts.Cohort/opts.Path over tus.
// If an earlier run was interrupted, the same upload is continued from the
// server's offset instead of starting again. The whole file's SHA-256 is
// computed locally and compared with the server's when done.
func (c *Client) Upload(ctx context.Context, local string, opts UploadOptions) (UploadResult, error) {
	f, err := os.Open(local)
	if err != nil {
		return UploadResult{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return UploadResult{}, err
	}
	size := fi.Size()
	st := c.state()
	id := stateKey(c.BaseURL, opts, local, fi)
	var res UploadResult

	location, offset := st.get(id), int64(-1)
	if location != "" {
		if offset, err = c.offset(ctx, location); err != nil {
			offset, location = -1, "" // expired or gone: start again
		} else {
			res.Resumed, res.Skipped = true, offset
		}
	}
	if location == "" {
		if location, err = c.create(ctx, opts, filepath.Base(local), size); err != nil {
			return res, err
		}
		st.put(id, location)
		offset = 0
	}
	h := sha256.New()
	if _, err := io.CopyN(h, f, offset); err != nil { // re-hash the prefix already on the server
		return res, fmt.Errorf("read %s: %w", local, err)
	}
	for attempt := 0; offset < size || (size == 0 && attempt == 0); attempt++ {
		if opts.Progress != nil {
			opts.Progress(offset, size)
		}
		var next int64
		next, err = c.patch(ctx, location, f, h, offset, size, opts.Progress)
		if err == nil {
			offset = next
			break
		}
		if !isRetryable(err) || attempt >= c.Retries {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(time.Duration(attempt+1) * 500 * time.Millisecond):
		}
		if offset, err = c.offset(ctx, location); err != nil {
			return res, err
		}
		if err := rehash(f, h, offset); err != nil {
			return res, err
		}
	}
	if opts.Progress != nil {
		opts.Progress(size, size)
	}
	st.drop(id)
	local256 := hex.EncodeToString(h.Sum(nil))
	remote, err := c.Stat(ctx, opts.Cohort, opts.Path, "")
	if err != nil {
		return res, err
	}
	if remote.SHA256 != local256 || remote.Size != size {
		return res, depot.Errorf(depot.CodeHashMismatch, "the server's SHA-256 of %s (%s) differs from the local file's (%s)", opts.Path, remote.SHA256, local256)
	}
	res.File = remote
	return res, nil
}

// rehash resets h to the hash of the first offset bytes of f and positions
// f there.
func rehash(f *os.File, h hash.Hash, offset int64) error {
	h.Reset()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err := io.CopyN(h, f, offset)
	return err
}

func (c *Client) create(ctx context.Context, opts UploadOptions, name string, size int64) (string, error) {
	meta := map[string]string{"cohort": opts.Cohort, "path": opts.Path, "filename": name}
	if opts.Temporary {
		meta["class"] = string(depot.Temporary)
	}
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pairs []string
	for _, k := range keys {
		pairs = append(pairs, k+" "+base64.StdEncoding.EncodeToString([]byte(meta[k])))
	}
	req, err := c.newRequest(ctx, http.MethodPost, "/api/v1/uploads/", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Upload-Length", strconv.FormatInt(size, 10))
	req.Header.Set("Upload-Metadata", strings.Join(pairs, ","))
	resp, err := c.do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if loc == "" {
		return "", errors.New("the server did not return an upload location")
	}
	if strings.HasPrefix(loc, "http://") || strings.HasPrefix(loc, "https://") {
		if i := strings.Index(loc, "/api/v1/uploads/"); i >= 0 {
			loc = loc[i:]
		}
	}
	return loc, nil
}

// offset asks the server how many bytes of the upload it holds.
func (c *Client) offset(ctx context.Context, location string) (int64, error) {
	req, err := c.newRequest(ctx, http.MethodHead, location, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	resp, err := c.do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
}

// patch streams f from offset to the end in one PATCH, hashing what it sends.
func (c *Client) patch(ctx context.Context, location string, f *os.File, h hash.Hash, offset, size int64, progress func(int64, int64)) (int64, error) {
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset, err
	}
	body := &progressReader{r: io.TeeReader(io.LimitReader(f, size-offset), h), done: offset, total: size, fn: progress}
	req, err := c.newRequest(ctx, http.MethodPatch, location, body)
	if err != nil {
		return offset, err
	}
	req.ContentLength = size - offset
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Content-Type", "application/offset+octet-stream")
	req.Header.Set("Upload-Offset", strconv.FormatInt(offset, 10))
	resp, err := c.do(req)
	if err != nil {
		return offset, err
	}
	resp.Body.Close()
	return strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
}

type progressReader struct {
	r           io.Reader
	done, total int64
	fn          func(int64, int64)
	last        time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.fn != nil && time.Since(p.last) > 200*time.Millisecond {
		p.fn(p.done, p.total)
		p.last = time.Now()
	}
	return n, err
}

// uploadState remembers upload locations between runs, in one JSON file.
type uploadState struct{ path string }

func (c *Client) state() uploadState {
	if c.StateDir == "" {
		return uploadState{}
	}
	return uploadState{path: filepath.Join(c.StateDir, "uploads.json")}
}

func (s uploadState) load() map[string]string {
	m := map[string]string{}
	if s.path == "" {
		return m
	}
	if b, err := os.ReadFile(s.path); err == nil {
		_ = json.Unmarshal(b, &m)
	}
	return m
}

func (s uploadState) save(m map[string]string) {
	if s.path == "" {
		return
	}
	_ = os.MkdirAll(filepath.Dir(s.path), 0o700)
	b, _ := json.MarshalIndent(m, "", " ")
	tmp := s.path + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, s.path)
	}
}

func (s uploadState) get(id string) string { return s.load()[id] }
func (s uploadState) put(id, loc string) {
	m := s.load()
	m[id] = loc
	s.save(m)
}
func (s uploadState) drop(id string) {
	m := s.load()
	delete(m, id)
	s.save(m)
}

// stateKey identifies "this local file, unchanged, going to this target".
func stateKey(base string, opts UploadOptions, local string, fi os.FileInfo) string {
	abs, _ := filepath.Abs(local)
	sum := sha256.Sum256([]byte(strings.Join([]string{base, opts.Cohort, opts.Path, abs,
		strconv.FormatInt(fi.Size(), 10), strconv.FormatInt(fi.ModTime().UnixNano(), 10)}, "\x00")))
	return hex.EncodeToString(sum[:16])
}
