package checkpoint

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a witness in an S3 bucket: <prefix>/checkpoints/<FileName> for
// every checkpoint and <prefix>/checkpoint for the latest. Turn on S3 Object
// Lock (compliance mode) on the bucket so that nobody can remove them.
type S3 struct {
	core   *minio.Core
	bucket string
	prefix string // "" or ending in "/"
}

// NewS3 opens the witness at
//
//	s3://bucket/prefix?endpoint=http://127.0.0.1:7070&region=us-east-1
//
// as the storage driver does: path-style requests, AWS S3 when no endpoint
// is given, credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and
// AWS_SESSION_TOKEN). The bucket must exist.
func NewS3(ctx context.Context, raw string) (*S3, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("witness: %q is not an s3://bucket/prefix URL", redact(raw))
	}
	q := u.Query()
	region := q.Get("region")
	if region == "" {
		region = "us-east-1"
	}
	endpoint := q.Get("endpoint")
	if endpoint == "" {
		endpoint = "https://s3." + region + ".amazonaws.com"
	}
	eu, err := url.Parse(endpoint)
	if err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
		return nil, fmt.Errorf("witness: S3 endpoint must be an http:// or https:// URL")
	}
	core, err := minio.NewCore(eu.Host, &minio.Options{
		Creds: credentials.NewEnvAWS(), Secure: eu.Scheme == "https", Region: region,
		BucketLookup: minio.BucketLookupPath, TrailingHeaders: false,
	})
	if err != nil {
		return nil, fmt.Errorf("witness: %w", err)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	s := &S3{core: core, bucket: u.Host, prefix: prefix}
	ok, err := core.BucketExists(ctx, s.bucket)
	if err != nil {
		return nil, fmt.Errorf("witness: S3 bucket: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("witness: S3 bucket %q does not exist", s.bucket)
	}
	return s, nil
}

// Kind implements Witness.
func (s *S3) Kind() string { return "s3" }

// Put implements Witness. Each object is one plain, fully signed PUT with
// Content-MD5 (S3 Object Lock requires it).
func (s *S3) Put(ctx context.Context, name string, note []byte) error {
	for _, key := range []string{s.prefix + historyDir + "/" + name, s.prefix + latestName} {
		m := md5.Sum(note)
		h := sha256.Sum256(note)
		_, err := s.core.PutObject(ctx, s.bucket, key, bytes.NewReader(note), int64(len(note)),
			base64.StdEncoding.EncodeToString(m[:]), hex.EncodeToString(h[:]),
			minio.PutObjectOptions{DisableContentSha256: true, ContentType: "text/plain; charset=utf-8"})
		if err != nil {
			return fmt.Errorf("witness: S3 put: %w", err)
		}
	}
	return nil
}

// List implements Witness.
func (s *S3) List(ctx context.Context) ([]Signed, error) {
	var out []Signed
	for obj := range s.core.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + historyDir + "/", Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("witness: S3 list: %w", obj.Err)
		}
		b, err := s.get(ctx, obj.Key)
		if err != nil {
			return nil, err
		}
		out = append(out, Signed{Name: strings.TrimPrefix(obj.Key, s.prefix), Note: b})
	}
	b, err := s.get(ctx, s.prefix+latestName)
	switch {
	case err == nil:
		out = withLatest(out, Signed{Name: latestName, Note: b})
	case minio.ToErrorResponse(errors.Unwrap(err)).Code != "NoSuchKey":
		return nil, err
	}
	return sortSigned(out), nil
}

// Latest returns the checkpoint written last, or nil when there is none.
func (s *S3) Latest(ctx context.Context) ([]byte, error) {
	b, err := s.get(ctx, s.prefix+latestName)
	if err != nil && minio.ToErrorResponse(errors.Unwrap(err)).Code == "NoSuchKey" {
		return nil, nil
	}
	return b, err
}

func (s *S3) get(ctx context.Context, key string) ([]byte, error) {
	rc, _, _, err := s.core.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("witness: S3 get: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxNote))
	if err != nil {
		return nil, fmt.Errorf("witness: S3 get: %w", err)
	}
	return b, nil
}

// maxNote bounds one checkpoint read from a witness (a note is ~300 bytes).
const maxNote = 64 << 10

// HTTP is a witness behind an HTTP endpoint (a webhook), with this
// protocol:
//
//	POST <url>   body: one signed checkpoint (text/plain); header
//	             Depot-Checkpoint-Name: its FileName. Any 2xx means kept.
//	GET  <url>   200 with application/json {"checkpoints": ["<note>", …]}:
//	             every checkpoint kept (depot audit verify --checkpoints URL).
//
// A secret in the URL (user info or query) is sent as given and never
// logged.
type HTTP struct {
	url    string
	client *http.Client
}

// NewHTTP returns the witness at raw.
func NewHTTP(raw string) (*HTTP, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("witness: not an http:// or https:// URL")
	}
	return &HTTP{url: raw, client: &http.Client{Timeout: 30 * time.Second}}, nil
}

// Kind implements Witness.
func (h *HTTP) Kind() string { return "webhook" }

// Put implements Witness.
func (h *HTTP) Put(ctx context.Context, name string, note []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(note))
	if err != nil {
		return errors.New("witness: bad URL")
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	req.Header.Set("Depot-Checkpoint-Name", name)
	req.Header.Set("User-Agent", "depot-audit-checkpoint/1")
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("witness: webhook: %w", stripURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxNote))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("witness: webhook: status %d", resp.StatusCode)
	}
	return nil
}

// List implements Witness.
func (h *HTTP) List(ctx context.Context) ([]Signed, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url, nil)
	if err != nil {
		return nil, errors.New("witness: bad URL")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("witness: webhook: %w", stripURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("witness: webhook: status %d", resp.StatusCode)
	}
	var body struct {
		Checkpoints []string `json:"checkpoints"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<30)).Decode(&body); err != nil {
		return nil, fmt.Errorf("witness: webhook: %w", err)
	}
	out := make([]Signed, len(body.Checkpoints))
	for i, n := range body.Checkpoints {
		out[i] = Signed{Name: "#" + strconv.Itoa(i), Note: []byte(n)}
	}
	return out, nil
}

// stripURL drops the URL from a client error (it may hold a secret).
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// redact removes user info and query from a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}
