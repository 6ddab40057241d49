package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"depot"
	"depot/storage"
	"depot/storage/s3store/s3test"
	"depot/storage/storagetest"
)

const (
	testAccessKey = "depottestaccess"
	testSecretKey = "depottestsecret0123456789"
)

// server is a versitygw process serving a posix directory on loopback.
type server struct {
	endpoint string
	admin    *minio.Client
	creds    *credentials.Credentials
}

// startServer starts versitygw on a free loopback port over a temporary
// directory; it is stopped when t ends. Without versitygw the test is
// skipped, except with CI=true, where it is built.
func startServer(t *testing.T) *server {
	bin, skip, err := s3test.Binary()
	if err != nil {
		t.Fatal(err)
	}
	if skip != "" {
		t.Skip(skip)
	}
	srv, err := s3test.Start(bin, t.TempDir(), testAccessKey, testSecretKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Stop()
		if t.Failed() {
			t.Logf("versitygw output:\n%s", tailOf(srv.Logs(), 4000))
		}
	})
	creds := credentials.NewStaticV4(testAccessKey, testSecretKey, "")
	admin, err := minio.New(srv.Addr, &minio.Options{Creds: creds, Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	return &server{endpoint: srv.Endpoint, admin: admin, creds: creds}
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

var bucketSeq struct {
	sync.Mutex
	n int
}

// newBucket creates a fresh bucket and returns the driver URL for it.
func (s *server) newBucket(t *testing.T, prefix string) string {
	bucketSeq.Lock()
	bucketSeq.n++
	name := fmt.Sprintf("depot-test-%d", bucketSeq.n)
	bucketSeq.Unlock()
	if err := s.admin.MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatalf("MakeBucket: %v", err)
	}
	return fmt.Sprintf("s3://%s/%s?endpoint=%s&region=us-east-1", name, prefix, s.endpoint)
}

func (s *server) open(t *testing.T, rawURL string) *Driver {
	d, err := open(t.Context(), rawURL, s.creds)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConformance(t *testing.T) {
	srv := startServer(t)
	for _, prefix := range []string{"", "tenant/files"} {
		t.Run(fmt.Sprintf("prefix=%q", prefix), func(t *testing.T) {
			urls := map[storage.Driver]string{}
			var mu sync.Mutex
			storagetest.RunDriverTests(t, storagetest.Harness{
				New: func(t *testing.T) storage.Driver {
					u := srv.newBucket(t, prefix)
					d := srv.open(t, u)
					mu.Lock()
					urls[d] = u
					mu.Unlock()
					return d
				},
				Reopen: func(t *testing.T, old storage.Driver) storage.Driver {
					mu.Lock()
					u := urls[old]
					mu.Unlock()
					return srv.open(t, u)
				},
			})
		})
	}
}

func TestNewURL(t *testing.T) {
	for _, bad := range []string{"http://b/p", "s3:///p", "s3://b/p?endpoint=ftp://x", "s3://b/.depot/x?endpoint=http://127.0.0.1:1"} {
		if _, err := New(t.Context(), bad); err == nil {
			t.Errorf("New(%q) succeeded", bad)
		}
	}
}

func randBytes(n int, seed uint64) []byte {
	r := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 7})
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}

// TestUnevenWritesAcrossReopen writes 20 MiB in pieces of 3, 7 and 10 MiB,
// persisting and reloading the state and reopening the driver midway, like
// the Store across a restart of the services process.
func TestUnevenWritesAcrossReopen(t *testing.T) {
	srv := startServer(t)
	u := srv.newBucket(t, "pfx")
	ctx := t.Context()
	data := randBytes(20<<20, 1)
	d := srv.open(t, u)
	st := &storage.Staging{ID: storage.NewID()}
	if err := d.CreateStaging(ctx, st); err != nil {
		t.Fatal(err)
	}
	off := int64(0)
	for i, n := range []int64{3 << 20, 7 << 20, 10 << 20} {
		got, err := d.WriteStaging(ctx, st, off, bytes.NewReader(data[off:off+n]))
		if err != nil || got != n {
			t.Fatalf("WriteStaging #%d: %d, %v", i, got, err)
		}
		off += n
		var s state
		if err := json.Unmarshal(st.State, &s); err != nil {
			t.Fatal(err)
		}
		t.Logf("after %d MiB: %d parts, tail %d", off>>20, len(s.Parts), s.TailSize)
		if s.size() != off || s.TailSize >= minPart {
			t.Fatalf("state %+v does not add up to %d with a tail < 5 MiB", s, off)
		}
		if i == 0 {
			// Keep the state as the Store would and restart.
			saved := bytes.Clone(st.State)
			d.Close()
			d = srv.open(t, u)
			st = &storage.Staging{ID: st.ID, State: saved}
		}
	}
	if err := d.Publish(ctx, st, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Open(ctx, st.ID, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("object differs: %d bytes, %v", len(got), err)
	}
	rc, err = d.Open(ctx, st.ID, 9<<20-5, 10)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data[9<<20-5:9<<20+5]) {
		t.Error("ranged read across a part boundary differs")
	}
	info, err := d.Stat(ctx, st.ID)
	if err != nil || info.Size != int64(len(data)) {
		t.Errorf("Stat = %+v, %v", info, err)
	}
	if strays, err := d.Strays(ctx); err != nil || len(strays) != 0 {
		t.Errorf("Strays after publish = %+v, %v", strays, err)
	}
	d.Close()
}

// TestRetryOverwritesParts fails a write after a part was sent, then
// retries from the old state: the part is sent again under the same number.
func TestRetryOverwritesParts(t *testing.T) {
	srv := startServer(t)
	d := srv.open(t, srv.newBucket(t, ""))
	defer d.Close()
	ctx := t.Context()
	data := randBytes(12<<20, 2)
	st := &storage.Staging{ID: storage.NewID()}
	if err := d.CreateStaging(ctx, st); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteStaging(ctx, st, 0, bytes.NewReader(data[:1<<20])); err != nil {
		t.Fatal(err)
	}
	saved := bytes.Clone(st.State)
	wrong := randBytes(9<<20, 3)
	_, err := d.WriteStaging(ctx, st, 1<<20, io.MultiReader(bytes.NewReader(wrong), &errReader{}))
	if err == nil {
		t.Fatal("write with a failing reader succeeded")
	}
	if !bytes.Equal(st.State, saved) {
		t.Fatal("a failed write changed the state")
	}
	if n, err := d.WriteStaging(ctx, st, 1<<20, bytes.NewReader(data[1<<20:])); err != nil || n != int64(len(data)-1<<20) {
		t.Fatalf("retry: %d, %v", n, err)
	}
	if err := d.Publish(ctx, st, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Open(ctx, st.ID, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("object differs after a retried write")
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, fmt.Errorf("connection cut") }

// TestUnreferencedUpload checks that a multipart upload no staging area
// knows is a stray, and that RemoveStray aborts it.
func TestUnreferencedUpload(t *testing.T) {
	srv := startServer(t)
	u := srv.newBucket(t, "p")
	d := srv.open(t, u)
	defer d.Close()
	ctx := t.Context()
	live := &storage.Staging{ID: storage.NewID()}
	if err := d.CreateStaging(ctx, live); err != nil {
		t.Fatal(err)
	}
	lost := storage.NewID()
	uploadID, err := d.core.NewMultipartUpload(ctx, d.bucket, "p/objects/"+lost, minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	strays, err := d.Strays(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var unreferenced []storage.Stray
	for _, st := range strays {
		if st.SessionID == "" {
			unreferenced = append(unreferenced, st)
		} else if st.SessionID != live.ID {
			t.Errorf("unexpected staging stray %+v", st)
		}
	}
	if len(strays) != 2 || len(unreferenced) != 1 || !strings.Contains(unreferenced[0].Name, uploadID) || unreferenced[0].ModTime.IsZero() {
		t.Fatalf("Strays = %+v, want the live staging area and the upload %s", strays, uploadID)
	}
	for range 2 {
		if err := d.RemoveStray(ctx, unreferenced[0]); err != nil {
			t.Fatal(err)
		}
	}
	res, err := d.core.ListMultipartUploads(ctx, d.bucket, "p/", "", "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Uploads) != 1 || res.Uploads[0].Key != "p/objects/"+live.ID {
		t.Errorf("uploads after RemoveStray = %+v, want only the live one", res.Uploads)
	}
}

// countingReader yields n pseudo-random bytes in small reads, generated on
// the fly so the test itself holds almost nothing.
type countingReader struct {
	left int64
	r    *mrand.ChaCha8
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.left == 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), c.left, 64<<10)]
	_, _ = c.r.Read(p)
	c.left -= int64(len(p))
	return len(p), nil
}

// TestBoundedMemory writes 200 MiB through WriteStaging (in 4 calls) and
// checks that the heap in use stays bounded while it does.
func TestBoundedMemory(t *testing.T) {
	srv := startServer(t)
	d := srv.open(t, srv.newBucket(t, ""))
	defer d.Close()
	ctx := t.Context()
	st := &storage.Staging{ID: storage.NewID()}
	if err := d.CreateStaging(ctx, st); err != nil {
		t.Fatal(err)
	}
	runtime.GC() // drop the garbage of earlier tests
	var peak uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
	const total, calls = 200 << 20, 4
	off := int64(0)
	for i := range calls {
		n, err := d.WriteStaging(ctx, st, off, &countingReader{left: total / calls, r: mrand.NewChaCha8([32]byte{byte(i)})})
		if err != nil {
			t.Fatal(err)
		}
		off += n
	}
	close(done)
	wg.Wait()
	t.Logf("wrote %d MiB, peak HeapInuse %.1f MiB", off>>20, float64(peak)/(1<<20))
	if peak >= 64<<20 {
		t.Errorf("peak HeapInuse %d MiB, want < 64 MiB", peak>>20)
	}
	if err := d.Publish(ctx, st, off); err != nil {
		t.Fatal(err)
	}
	info, err := d.Stat(ctx, st.ID)
	if err != nil || info.Size != total {
		t.Errorf("Stat = %+v, %v", info, err)
	}
}

// TestPlainSignedRequests traces every request of an upload and checks that
// none uses a checksum header or trailer, aws-chunked encoding or a
// streaming signature, and that parts carry Content-MD5 and a signed
// SHA-256 of their payload.
func TestPlainSignedRequests(t *testing.T) {
	srv := startServer(t)
	d := srv.open(t, srv.newBucket(t, ""))
	defer d.Close()
	var trace bytes.Buffer
	d.core.TraceOn(&trace)
	ctx := t.Context()
	data := randBytes(6<<20+3, 9)
	st := &storage.Staging{ID: storage.NewID()}
	if err := d.CreateStaging(ctx, st); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteStaging(ctx, st, 0, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.WriteStaging(ctx, st, int64(len(data)), bytes.NewReader([]byte("tail"))); err != nil {
		t.Fatal(err)
	}
	if err := d.Publish(ctx, st, int64(len(data))+4); err != nil {
		t.Fatal(err)
	}
	if err := d.PutObject(ctx, storage.NewID(), bytes.NewReader(data[:1000]), 1000); err != nil {
		t.Fatal(err)
	}
	d.core.TraceOff()
	parts := 0
	for _, block := range strings.Split(trace.String(), "---------START-HTTP---------") {
		req, _, _ := strings.Cut(block, "\nHTTP/1.1 ") // the request, without the response
		lower := strings.ToLower(req)
		for _, bad := range []string{"x-amz-checksum", "x-amz-sdk-checksum", "x-amz-trailer", "aws-chunked", "streaming-", "x-amz-decoded-content-length"} {
			if strings.Contains(lower, bad) {
				t.Errorf("a request used %q:\n%s", bad, req)
			}
		}
		if strings.HasPrefix(strings.TrimSpace(req), "PUT ") && strings.Contains(lower, "unsigned-payload") {
			t.Errorf("an upload was not signed with its SHA-256:\n%s", req)
		}
		if !strings.Contains(req, "PUT /") || !strings.Contains(req, "partNumber=") {
			continue
		}
		parts++
		if !strings.Contains(req, "Content-Md5:") {
			t.Errorf("part upload without Content-MD5:\n%s", req)
		}
		i := strings.Index(req, "X-Amz-Content-Sha256: ")
		if i < 0 || len(req) < i+22+64 || strings.Trim(req[i+22:i+22+64], "0123456789abcdef") != "" {
			t.Errorf("part upload without a signed payload SHA-256:\n%s", req)
		}
	}
	if t.Failed() {
		t.Log(trace.String())
	}
	if parts != 2 {
		t.Errorf("saw %d part uploads, want 2 (one while writing, the tail at publish)", parts)
	}
}

// TestStoreOverS3 runs an upload through storage.Store: uneven chunks, a
// chunk re-sent after a lost response (recognised by its mark, nothing
// sent to S3), a restart of the driver, and Complete with the SHA-256.
func TestStoreOverS3(t *testing.T) {
	srv := startServer(t)
	u := srv.newBucket(t, "files")
	ctx := t.Context()
	data := randBytes(14<<20+11, 5)
	sum := sha256.Sum256(data)
	d := srv.open(t, u)
	sessions := storagetest.NewSessions()
	s := storage.New(d, sessions, storage.Options{})
	up, err := s.CreateUpload(ctx, depot.Upload{Key: "c1/dir/store.bin", DeclaredSize: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		t.Fatal(err)
	}
	chunk := func(off, end int) storage.Chunk {
		b := data[off:end]
		return storage.Chunk{Offset: int64(off), Length: int64(len(b)), CRC32C: storage.CRC32C(b), Body: bytes.NewReader(b)}
	}
	if up, err = s.Append(ctx, up.ID, chunk(0, 3<<20)); err != nil || up.Offset != 3<<20 {
		t.Fatalf("Append 1: %+v, %v", up, err)
	}
	if up, err = s.Append(ctx, up.ID, chunk(0, 3<<20)); err != nil || up.Offset != 3<<20 {
		t.Fatalf("re-sent chunk: %+v, %v", up, err)
	}
	if up, err = s.Append(ctx, up.ID, chunk(3<<20, 10<<20)); err != nil || up.Offset != 10<<20 {
		t.Fatalf("Append 2: %+v, %v", up, err)
	}
	d.Close()
	d = srv.open(t, u)
	defer d.Close()
	s = storage.New(d, sessions, storage.Options{})
	if up, err = s.Append(ctx, up.ID, chunk(10<<20, len(data))); err != nil || up.Offset != int64(len(data)) {
		t.Fatalf("Append 3: %+v, %v", up, err)
	}
	obj, err := s.Complete(ctx, up.ID, storage.Want{Size: -1}, func(context.Context, storage.Stored) error { return nil })
	if err != nil || obj.Size != int64(len(data)) || obj.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("Complete: %+v, %v", obj, err)
	}
	rc, err := d.Open(ctx, obj.ID, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("object differs")
	}
	if strays, err := d.Strays(ctx); err != nil || len(strays) != 0 {
		t.Errorf("Strays = %+v, %v", strays, err)
	}
}
