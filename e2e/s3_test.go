package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"depot/storage/s3store/s3test"
)

// The S3 server of the e2e tests: one versitygw process per test binary,
// started by the first test that needs it and stopped by TestMain. Every
// cluster gets its own bucket.

const (
	s3AccessKey = "depote2eaccess"
	s3SecretKey = "depote2esecret0123456789"
)

var s3srv struct {
	once     sync.Once
	skip     string // why S3 tests are skipped; "" when the server runs
	err      error
	endpoint string // http://127.0.0.1:PORT
	client   *minio.Client
	mu       sync.Mutex
	buckets  int
}

// startS3Server starts versitygw over a temporary directory on a free
// loopback port, once per test binary.
func startS3Server() {
	bin, skip, err := s3test.Binary()
	if skip != "" || err != nil {
		s3srv.skip, s3srv.err = skip, err
		return
	}
	dir, err := os.MkdirTemp("", "depot-e2e-s3-")
	if err != nil {
		s3srv.err = err
		return
	}
	srv, err := s3test.Start(bin, dir, s3AccessKey, s3SecretKey)
	if err != nil {
		os.RemoveAll(dir)
		s3srv.err = err
		return
	}
	afterAll = append(afterAll, func() {
		srv.Stop()
		os.RemoveAll(dir)
	})
	s3srv.endpoint = srv.Endpoint
	s3srv.client, s3srv.err = minio.New(srv.Addr, &minio.Options{
		Creds: credentials.NewStaticV4(s3AccessKey, s3SecretKey, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath,
	})
}

// s3Storage returns the storage options of a cluster on S3: a fresh bucket
// of the shared versitygw server (under prefix "files") and the AWS
// credentials for the services env. It skips the test when versitygw is
// not installed and CI is not "true".
func s3Storage(t *testing.T) (storageURL string, env map[string]string) {
	t.Helper()
	s3srv.once.Do(startS3Server)
	if s3srv.err != nil {
		t.Fatal(s3srv.err)
	}
	if s3srv.skip != "" {
		t.Skip(s3srv.skip)
	}
	s3srv.mu.Lock()
	s3srv.buckets++
	name := fmt.Sprintf("e2e-%d", s3srv.buckets)
	s3srv.mu.Unlock()
	if err := s3srv.client.MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("MakeBucket %s: %v", name, err)
	}
	return fmt.Sprintf("s3://%s/files?endpoint=%s&region=us-east-1", name, s3srv.endpoint),
		map[string]string{"AWS_ACCESS_KEY_ID": s3AccessKey, "AWS_SECRET_ACCESS_KEY": s3SecretKey}
}

// s3Opts is clusterOpts with S3 storage.
func s3Opts(t *testing.T, o clusterOpts) clusterOpts {
	t.Helper()
	o.storageURL, o.storageEnv = s3Storage(t)
	return o
}

// s3Location splits an s3:// storage URL into bucket and key prefix.
func s3Location(t testing.TB, storageURL string) (bucket, prefix string) {
	u, err := url.Parse(storageURL)
	if err != nil || u.Scheme != "s3" {
		t.Fatalf("not an s3 URL: %q", storageURL)
	}
	prefix = strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	return u.Host, prefix
}

// stored reads the stored bytes of key's current version ("cohort/path")
// straight from c's storage, bypassing depot: the local object file, or the
// S3 object. A file without a current version is an error wrapping
// fs.ErrNotExist.
func (c *cluster) stored(key string) ([]byte, error) {
	id, err := c.currentVersion(key)
	if err != nil {
		return nil, err
	}
	if c.storageURL == "" {
		return os.ReadFile(c.objectPath(id))
	}
	return s3Object(c.t, c.storageURL, "objects/"+id)
}

func s3Object(t testing.TB, storageURL, key string) ([]byte, error) {
	bucket, prefix := s3Location(t, storageURL)
	obj, err := s3srv.client.GetObject(context.Background(), bucket, prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, err
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, fmt.Errorf("s3 object %s: %w", key, fs.ErrNotExist)
		}
		return nil, err
	}
	return b, nil
}

// s3Keys lists every object key in the bucket of storageURL (depot's own
// .depot/ records included), relative to its prefix.
func s3Keys(t testing.TB, storageURL string) []string {
	bucket, prefix := s3Location(t, storageURL)
	var keys []string
	for o := range s3srv.client.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, strings.TrimPrefix(o.Key, prefix))
	}
	return keys
}

// TestS3RoundTrips is TestRoundTrips on S3 storage: PUT (small, several
// parts, empty), GET, Range GET across a part boundary, HEAD, multipart
// POST, paginated listing and DELETE, each checked against the object
// read back from the S3 server directly.
func TestS3RoundTrips(t *testing.T) {
	c := newCluster(t, s3Opts(t, clusterOpts{}))
	testRoundTrips(t, c)
	if _, err := c.stored("c1/tables/small.csv"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("deleted object still on S3: %v", err)
	}
	if _, err := os.Stat(c.storageDir()); !os.IsNotExist(err) {
		t.Fatalf("an S3 cluster wrote local storage: %v", err)
	}
}

// TestS3TusResumeAfterDrop is TestTusResumeAfterDrop on S3: a PATCH cut
// mid-body is resumed from HEAD's offset; the object and its single
// upload.completed record are checked.
func TestS3TusResumeAfterDrop(t *testing.T) {
	testTusResumeAfterDrop(t, s3Opts(t, clusterOpts{}))
}

// TestS3ChunkRetry is TestChunkRetry on S3: connections between web and
// services are reset mid-chunk while 8 uploads of 5–20 MiB run; each is
// retried chunk by chunk and ends byte-exact on S3, and no listing ever
// shows a partial file.
func TestS3ChunkRetry(t *testing.T) {
	testChunkRetry(t, s3Opts(t, clusterOpts{}))
}
