package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"depot"
)

// Download writes a version of cohort/p (version "": the current one) to
// the local file dst. Bytes go to dst + ".<version>.part" first; an
// interrupted download is continued from there with a Range request for
// the same version, so a file overwritten meanwhile never mixes two
// versions. The SHA-256 of the result is compared with the server's before
// dst is renamed into place.
func (c *Client) Download(ctx context.Context, cohort, p, version, dst string, progress func(done, total int64)) (File, error) {
	meta, err := c.Stat(ctx, cohort, p, version)
	if err != nil {
		return File{}, err
	}
	part := dst + "." + meta.Version + ".part"
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	h := sha256.New()
	have, err := io.Copy(h, f) // resume: hash what an earlier run kept
	if err != nil {
		return File{}, err
	}
	if have > meta.Size {
		if err := f.Truncate(0); err != nil {
			return File{}, err
		}
		have, h = 0, sha256.New()
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return File{}, err
		}
	}
	for attempt := 0; have < meta.Size; attempt++ {
		n, err := c.fetch(ctx, cohort, p, meta, have, io.MultiWriter(f, h), progress)
		have += n
		if err == nil {
			break
		}
		if !isRetryable(err) || attempt >= c.Retries {
			return File{}, err
		}
	}
	if err := f.Sync(); err != nil {
		return File{}, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != meta.SHA256 {
		os.Remove(part)
		return File{}, depot.Errorf(depot.CodeHashMismatch, "the downloaded bytes' SHA-256 (%s) differs from the server's (%s)", got, meta.SHA256)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return File{}, err
	}
	if err := os.Rename(part, dst); err != nil {
		return File{}, err
	}
	removeStaleParts(dst)
	return meta, nil
}

// removeStaleParts removes the partial files that interrupted downloads of
// other versions left beside dst: dst is now complete.
func removeStaleParts(dst string) {
	parts, _ := filepath.Glob(globEscape(dst) + ".*.part")
	for _, p := range parts {
		if v := strings.TrimSuffix(strings.TrimPrefix(p, dst+"."), ".part"); depot.ValidVersionID(v) {
			os.Remove(p)
		}
	}
}

// globEscape quotes the metacharacters of filepath.Match in s.
func globEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`).Replace(s)
}

// fetch reads version meta of cohort/p from byte from on into w.
func (c *Client) fetch(ctx context.Context, cohort, p string, meta File, from int64, w io.Writer, progress func(int64, int64)) (int64, error) {
	total := meta.Size
	req, err := c.newRequest(ctx, http.MethodGet, filePath(cohort, p)+"?version="+url.QueryEscape(meta.Version), nil)
	if err != nil {
		return 0, err
	}
	if from > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(from, 10)+"-")
		req.Header.Set("If-Range", `"`+meta.SHA256+`"`)
	}
	resp, err := c.do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if from > 0 && resp.StatusCode != http.StatusPartialContent {
		return 0, fmt.Errorf("the server ignored the range request")
	}
	pr := &progressReader{r: resp.Body, done: from, total: total, fn: progress}
	n, err := io.CopyBuffer(w, pr, make([]byte, 1<<20))
	if err != nil {
		return n, depot.WrapError(depot.CodeUnavailable, "the download was interrupted", err)
	}
	return n, nil
}
