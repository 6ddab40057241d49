// Command s3 is the S3 upload benchmark: in one run it starts versitygw (an
// S3-compatible server over a local directory) on loopback and the real
// depot binary as a services process (S3 storage, SQLite) and a web
// process, then uploads the same generated stream
//
//	(a) straight to the S3 server with minio-go, the client library of
//	    depot's S3 driver (PutObject, 8 MiB parts, sequential), and
//	(b) through the web tier (PUT /api/v1/files/…), which streams it in
//	    chunks to services, which sends it to S3 as a multipart upload,
//
// and prints MB/s of each, their ratio and the peak RSS of the processes.
//
//	go run ./bench/s3 -size 2GiB -runs 1
//
// -endpoint uses a running server instead (with -bucket, and the
// credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"depot/bench/internal/benchkit"
	"depot/internal/httpauth"
	"depot/storage/s3store/s3test"
)

var internalKey = httpauth.NewKey()

func main() {
	size := flag.String("size", "2GiB", "bytes per upload (suffix MiB or GiB)")
	runs := flag.Int("runs", 1, "runs of each measurement; the median is reported")
	chunk := flag.String("chunk", "8388608", "DEPOT_CHUNK_SIZE of the web tier")
	gw := flag.String("versitygw", ".cache/bin/versitygw", "versitygw binary (see scripts/s3-server.sh install)")
	endpoint := flag.String("endpoint", "", "use this S3 server (http://host:port) instead of starting versitygw")
	bucket := flag.String("bucket", "", "bucket on -endpoint (must exist); default: a new bucket on the started server")
	flag.Parse()
	n, err := benchkit.ParseSize(*size)
	if err != nil {
		fail(err)
	}
	if err := run(n, *runs, *chunk, *gw, *endpoint, *bucket); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func run(size int64, runs int, chunk, gw, endpoint, bucket string) error {
	dir, err := os.MkdirTemp("", "depot-bench-s3-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()

	access, secret := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
	var gwSrv *s3test.Server
	if endpoint == "" {
		access, secret = "depotbenchaccess", "depotbenchsecret0123456789"
		gwSrv, err = s3test.Start(gw, filepath.Join(dir, "s3"), access, secret)
		if err != nil {
			return err
		}
		defer gwSrv.Stop()
		endpoint = gwSrv.Endpoint
	}
	eu, err := url.Parse(endpoint)
	if err != nil {
		return err
	}
	s3c, err := minio.New(eu.Host, &minio.Options{
		Creds: credentials.NewStaticV4(access, secret, ""), Secure: eu.Scheme == "https",
		Region: "us-east-1", BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return err
	}
	if bucket == "" {
		bucket = "bench"
		if err := s3c.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
			return fmt.Errorf("make bucket: %w", err)
		}
	}
	prefix := fmt.Sprintf("bench-%d", time.Now().UnixNano())

	bin, err := benchkit.Build(dir)
	if err != nil {
		return err
	}
	db := "sqlite://" + filepath.Join(dir, "depot.db")
	token, err := benchkit.Account(bin, db)
	if err != nil {
		return err
	}
	storageURL := fmt.Sprintf("s3://%s/%s/depot?endpoint=%s&region=us-east-1", bucket, prefix, endpoint)
	svc, svcAddr, err := benchkit.Serve(bin, "DEPOT_ROLE=services", "DEPOT_INTERNAL_ADDR=127.0.0.1:0", "DEPOT_INTERNAL_KEYS="+internalKey,
		"DEPOT_STORAGE_URL="+storageURL, "DEPOT_DATABASE_URL="+db, "DEPOT_MAINTENANCE=off",
		"AWS_ACCESS_KEY_ID="+access, "AWS_SECRET_ACCESS_KEY="+secret)
	if err != nil {
		return err
	}
	defer benchkit.Stop(svc)
	web, webAddr, err := benchkit.Serve(bin, "DEPOT_ROLE=web", "DEPOT_ADDR=127.0.0.1:0", "DEPOT_SERVICES_URL=http://"+svcAddr,
		"DEPOT_INTERNAL_KEY="+internalKey, "DEPOT_CHUNK_SIZE="+chunk)
	if err != nil {
		return err
	}
	defer benchkit.Stop(web)

	direct := func(i int) (float64, string, error) {
		r, sum := gen(size, i)
		t0 := time.Now()
		_, err := s3c.PutObject(ctx, bucket, fmt.Sprintf("%s/direct-%d.bin", prefix, i), r, size, minio.PutObjectOptions{
			PartSize: 8 << 20, NumThreads: 1, DisableContentSha256: true, ContentType: "application/octet-stream",
		})
		if err != nil {
			return 0, "", err
		}
		return mibps(size, time.Since(t0)), sum(), nil
	}
	viaWeb := func(i int) (float64, string, error) {
		r, sum := gen(size, i)
		req, err := http.NewRequest("PUT", fmt.Sprintf("http://%s/api/v1/files/b/web-%d.bin", webAddr, i), r)
		if err != nil {
			return 0, "", err
		}
		req.ContentLength = size
		req.Header.Set("Authorization", "Bearer "+token)
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(t0)
		if resp.StatusCode != http.StatusCreated {
			return 0, "", fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		var f struct {
			Size   int64  `json:"size"`
			SHA256 string `json:"sha256"`
		}
		if err := json.Unmarshal(body, &f); err != nil || f.Size != size || f.SHA256 != sum() {
			return 0, "", fmt.Errorf("web answered %s, want size %d sha256 %s", body, size, sum())
		}
		return mibps(size, d), f.SHA256, nil
	}
	var a, b []float64
	for i := range runs { // interleave so that both see the same machine state
		ra, _, err := direct(i)
		if err != nil {
			return fmt.Errorf("direct PUT: %w", err)
		}
		rb, _, err := viaWeb(i)
		if err != nil {
			return fmt.Errorf("through web: %w", err)
		}
		// Check that S3 holds the bytes depot acknowledged.
		info, err := s3c.StatObject(ctx, bucket, fmt.Sprintf("%s/depot/b/web-%d.bin", prefix, i), minio.StatObjectOptions{})
		if err != nil || info.Size != size {
			return fmt.Errorf("object stored through web: %+v, %v", info, err)
		}
		a, b = append(a, ra), append(b, rb)
		fmt.Printf("run %d: direct PUT to S3 %.1f MiB/s, through web %.1f MiB/s\n", i+1, ra, rb)
		for _, k := range []string{fmt.Sprintf("%s/direct-%d.bin", prefix, i)} {
			_ = s3c.RemoveObject(ctx, bucket, k, minio.RemoveObjectOptions{})
		}
	}
	ma, mb := benchkit.Median(a), benchkit.Median(b)
	fmt.Printf("\nsize %d MiB, %d run(s), web chunk %s bytes, S3 server %s (medians)\n", size>>20, runs, chunk, endpoint)
	fmt.Printf("(a) minio-go PutObject straight to S3 : %7.1f MiB/s\n", ma)
	fmt.Printf("(b) PUT through web → services → S3   : %7.1f MiB/s\n", mb)
	fmt.Printf("ratio (b)/(a)                         : %7.2f\n", mb/ma)
	fmt.Printf("web peak RSS (VmHWM)                  : %7.1f MiB\n", float64(benchkit.VmHWM(web.Process.Pid))/1024)
	fmt.Printf("services peak RSS (VmHWM)             : %7.1f MiB\n", float64(benchkit.VmHWM(svc.Process.Pid))/1024)
	if gwSrv != nil {
		fmt.Printf("versitygw peak RSS (VmHWM)            : %7.1f MiB\n", float64(benchkit.VmHWM(gwSrv.Pid()))/1024)
	}
	return nil
}

func mibps(size int64, d time.Duration) float64 { return float64(size) / (1 << 20) / d.Seconds() }

// gen returns size deterministic pseudo-random bytes, generated on the fly,
// and a function that reports their SHA-256 once read.
func gen(size int64, seed int) (io.Reader, func() string) {
	h := sha256.New()
	return io.TeeReader(benchkit.Payload(size, seed, 0), h), func() string { return hex.EncodeToString(h.Sum(nil)) }
}
