// Package s3store is the storage.Driver for S3-compatible object stores
// (AWS S3, versitygw, MinIO, SeaweedFS, ...).
//
// # Client
//
// It uses github.com/minio/minio-go/v7, and only its low-level minio.Core
// calls (PutObject with explicit hashes, NewMultipartUpload, PutObjectPart,
// CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads) plus
// plain GetObject/StatObject/ListObjects/RemoveObject. minio-go was chosen
// over aws-sdk-go-v2 because it is one small module, its Core API maps one to
// one onto the S3 calls this driver makes, and it lets every upload be sent
// with a body we already hold in memory and hash ourselves.
//
// # Request checksums
//
// Every body this driver sends (parts, tails, sidecars, session records) is
// first held in a buffer of at most 8 MiB; the driver computes its MD5 and
// SHA-256 and sends them as Content-MD5 and as the signed
// X-Amz-Content-Sha256 payload hash (DisableContentSha256 is set so that
// minio-go does not switch to the STREAMING-AWS4-HMAC-SHA256-PAYLOAD chunked
// signature on http:// endpoints). The client is built with TrailingHeaders
// off and no Checksum/AutoChecksum option is ever set, so no
// x-amz-checksum-* header or trailer and no aws-chunked encoding is sent: a
// plain, fully signed, single-chunk request that every S3-compatible server
// accepts. The server checks the body against Content-MD5 and the signed
// SHA-256; depot's integrity still rests on its own whole-object SHA-256,
// computed by the Store while streaming, never on an ETag.
//
// # Layout
//
// For s3://bucket/prefix everything lives below prefix/. Objects are named
// by random IDs, never by file paths:
//
//	objects/<id>                  published object <id>
//	.depot/staging/<id>.json      {upload_id}: the multipart upload of staging area <id>
//	.depot/tails/<id>/<gen>       the staged bytes after the last uploaded part (< 5 MiB)
//
// A staging area is an S3 multipart upload for objects/<id>.
// Staging.State is JSON {upload_id, parts:[{n, etag, size, sha256}],
// tail_size, tail_gen}. See docs/s3.md for the details.
package s3store

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"depot/storage"
)

const (
	// minPart is S3's minimum size of every part but the last.
	minPart = 5 << 20
	// partBuf is the size of the in-memory part buffer: parts are sent
	// when it is full, so each WriteStaging holds at most this much.
	partBuf = 8 << 20
	// metaDir holds the driver's own objects, below the prefix.
	metaDir = ".depot/"
	// objectsDir holds the published objects, below the prefix.
	objectsDir = "objects/"
)

// Driver stores depot objects in one bucket of an S3-compatible server.
type Driver struct {
	core   *minio.Core
	bucket string
	prefix string // "" or ending in "/"
	tr     *http.Transport
	bufs   sync.Pool // *[]byte of partBuf bytes
}

var (
	_ storage.Driver       = (*Driver)(nil)
	_ storage.ObjectPutter = (*Driver)(nil)
)

// New opens the driver for
//
//	s3://bucket/prefix?endpoint=http://127.0.0.1:7070&region=us-east-1
//
// Requests are path-style; an http:// endpoint means plain HTTP. Without an
// endpoint, AWS S3 (https://s3.<region>.amazonaws.com) is used. Credentials
// come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and
// AWS_SESSION_TOKEN). The bucket must exist.
func New(ctx context.Context, rawURL string) (*Driver, error) {
	return open(ctx, rawURL, credentials.NewEnvAWS())
}

func open(ctx context.Context, rawURL string, creds *credentials.Credentials) (*Driver, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("s3store: bad URL: %w", err)
	}
	if u.Scheme != "s3" || u.Host == "" {
		return nil, fmt.Errorf("s3store: URL must be s3://bucket/prefix, got %q", rawURL)
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
		return nil, fmt.Errorf("s3store: endpoint must be an http:// or https:// URL, got %q", endpoint)
	}
	if eu.Path != "" && eu.Path != "/" {
		return nil, fmt.Errorf("s3store: endpoint %q must not have a path", endpoint)
	}
	prefix := strings.Trim(u.Path, "/")
	for _, seg := range strings.Split(prefix, "/") {
		if prefix != "" && (seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ".depot")) {
			return nil, fmt.Errorf("s3store: bad prefix %q", prefix)
		}
	}
	if prefix != "" {
		prefix += "/"
	}
	tr, err := minio.DefaultTransport(eu.Scheme == "https")
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	tr.MaxIdleConnsPerHost = 64
	core, err := minio.NewCore(eu.Host, &minio.Options{
		Creds:           creds,
		Secure:          eu.Scheme == "https",
		Region:          region,
		BucketLookup:    minio.BucketLookupPath,
		Transport:       tr,
		TrailingHeaders: false, // never send checksum trailers
	})
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	d := &Driver{core: core, bucket: u.Host, prefix: prefix, tr: tr}
	d.bufs.New = func() any { b := make([]byte, partBuf); return &b }
	ok, err := core.BucketExists(ctx, d.bucket)
	if err != nil {
		return nil, fmt.Errorf("s3store: bucket %q: %w", d.bucket, err)
	}
	if !ok {
		return nil, fmt.Errorf("s3store: bucket %q does not exist", d.bucket)
	}
	return d, nil
}

// Close releases idle connections.
func (d *Driver) Close() error {
	d.tr.CloseIdleConnections()
	return nil
}

func (d *Driver) objName(id string) string    { return d.prefix + objectsDir + id }
func (d *Driver) meta(name string) string     { return d.prefix + metaDir + name }
func (d *Driver) markerName(id string) string { return d.meta("staging/" + id + ".json") }
func (d *Driver) tailDir(id string) string    { return d.meta("tails/" + id + "/") }
func (d *Driver) tailName(id string, gen int) string {
	return fmt.Sprintf("%s%08d", d.tailDir(id), gen)
}

func (d *Driver) getBuf() *[]byte  { return d.bufs.Get().(*[]byte) }
func (d *Driver) putBuf(b *[]byte) { d.bufs.Put(b) }

// hashes returns the Content-MD5 and hex SHA-256 of b.
func hashes(b []byte) (md5b64, sha string) {
	m := md5.Sum(b)
	s := sha256.Sum256(b)
	return base64.StdEncoding.EncodeToString(m[:]), hex.EncodeToString(s[:])
}

// putSmall stores b (at most a few MiB) as object name with a plain,
// fully signed PUT.
func (d *Driver) putSmall(ctx context.Context, name string, b []byte, meta map[string]string) error {
	m, s := hashes(b)
	_, err := d.core.PutObject(ctx, d.bucket, name, bytes.NewReader(b), int64(len(b)), m, s,
		minio.PutObjectOptions{DisableContentSha256: true, UserMetadata: meta, ContentType: "application/octet-stream"})
	return err
}

// getSmall reads a whole small object.
func (d *Driver) getSmall(ctx context.Context, name string) ([]byte, error) {
	rc, _, _, err := d.core.GetObject(ctx, d.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, mapErr(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, mapErr(err)
	}
	return b, nil
}

// remove deletes an object; a missing one is not an error.
func (d *Driver) remove(ctx context.Context, name string) error {
	err := d.core.RemoveObject(ctx, d.bucket, name, minio.RemoveObjectOptions{})
	if err != nil && !notFound(err) {
		return err
	}
	return nil
}

// removeAll deletes every object below dir.
func (d *Driver) removeAll(ctx context.Context, dir string) error {
	var firstErr error
	for obj := range d.core.Client.ListObjects(ctx, d.bucket, minio.ListObjectsOptions{Prefix: dir, Recursive: true}) {
		if obj.Err != nil {
			return obj.Err
		}
		if err := d.remove(ctx, obj.Key); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// notFound reports whether err is S3's answer for a missing key, upload
// or bucket entry.
func notFound(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, storage.ErrNotExist) {
		return true
	}
	r := minio.ToErrorResponse(err)
	switch r.Code {
	case "NoSuchKey", "NoSuchUpload", "NotFound":
		return true
	}
	return r.StatusCode == http.StatusNotFound && r.Code != "NoSuchBucket"
}

// mapErr wraps S3's "not found" answers in storage.ErrNotExist, and a
// server out of room in storage.ErrNoSpace.
func mapErr(err error) error {
	if err == nil || errors.Is(err, storage.ErrNotExist) {
		return err
	}
	if notFound(err) {
		return fmt.Errorf("%w: %v", storage.ErrNotExist, err)
	}
	r := minio.ToErrorResponse(err)
	if r.StatusCode == http.StatusInsufficientStorage || r.Code == "XMinioStorageFull" || r.Code == "InsufficientStorage" {
		return fmt.Errorf("%w: %v", storage.ErrNoSpace, err)
	}
	return err
}
