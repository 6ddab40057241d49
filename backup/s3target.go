package backup

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// s3Target is a backup below a prefix of an S3 bucket:
//
//	s3://bucket/prefix?endpoint=https://…&region=…&profile=…
//
// Credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and
// AWS_SESSION_TOKEN), or, with profile=NAME, from that profile of the AWS
// shared credentials file (AWS_SHARED_CREDENTIALS_FILE, default
// ~/.aws/credentials): backups can then be written with credentials of
// their own, which the services tier does not have.
type s3Target struct {
	client *minio.Client
	bucket string
	prefix string // "" or ending in "/"
	desc   string // s3://bucket/prefix, no query
}

// s3PartSize is the part size of multipart uploads: the memory one upload
// of a backup holds.
const s3PartSize = 16 << 20

func openS3Target(ctx context.Context, raw string) (*s3Target, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("backup location must be s3://bucket/prefix?endpoint=…: %q", raw)
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
		return nil, fmt.Errorf("backup location: endpoint must be an http:// or https:// URL, got %q", endpoint)
	}
	creds := credentials.NewEnvAWS()
	if p := q.Get("profile"); p != "" {
		creds = credentials.NewFileAWSCredentials("", p)
	}
	client, err := minio.New(eu.Host, &minio.Options{
		Creds: creds, Secure: eu.Scheme == "https", Region: region, BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("backup location: %w", err)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	t := &s3Target{client: client, bucket: u.Host, prefix: prefix, desc: "s3://" + u.Host + "/" + prefix}
	ok, err := client.BucketExists(ctx, t.bucket)
	if err != nil {
		return nil, fmt.Errorf("backup location %s: %w", t.desc, err)
	}
	if !ok {
		return nil, fmt.Errorf("backup location %s: the bucket does not exist", t.desc)
	}
	return t, nil
}

func (t *s3Target) String() string { return t.desc }
func (t *s3Target) Dir() string    { return "" }

func (t *s3Target) Empty(ctx context.Context) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for o := range t.client.ListObjects(ctx, t.bucket, minio.ListObjectsOptions{Prefix: t.prefix, Recursive: true, MaxKeys: 1}) {
		if o.Err != nil {
			return false, fmt.Errorf("list %s: %w", t.desc, o.Err)
		}
		return false, nil
	}
	return true, nil
}

// Put uploads r as one private object. The payload is not signed
// (UNSIGNED-PAYLOAD, as s3store's sidecars are not streamed either): the
// backup checks the SHA-256 of every file itself while it reads it, and a
// reader that fails (a hash mismatch) aborts the upload.
func (t *s3Target) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	_, err := t.client.PutObject(ctx, t.bucket, t.prefix+name, ctxReader{ctx, r}, size, minio.PutObjectOptions{
		PartSize: s3PartSize, DisableContentSha256: true, ContentType: "application/octet-stream",
	})
	if err != nil {
		return fmt.Errorf("write %s to %s: %w", name, t.desc, err)
	}
	return nil
}

func (t *s3Target) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	obj, err := t.client.GetObject(ctx, t.bucket, t.prefix+name, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("read %s from %s: %w", name, t.desc, err)
	}
	// GetObject is lazy: Stat makes a missing object an error now.
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, fmt.Errorf("%s in %s: %w", name, t.desc, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("read %s from %s: %w", name, t.desc, err)
	}
	return obj, nil
}
