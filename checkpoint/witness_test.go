package checkpoint_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"depot/checkpoint"
	"depot/checkpoint/checkpointtest"
	"depot/storage/s3store/s3test"
)

// witnessConformance puts checkpoints into w and reads them back.
func witnessConformance(t *testing.T, w checkpoint.Witness) {
	t.Helper()
	ctx := context.Background()
	k, _ := newKey(t, "w")
	if got, err := w.List(ctx); err != nil || len(got) != 0 {
		t.Fatalf("empty witness lists %d, %v", len(got), err)
	}
	base := time.Date(2026, 12, 7, 23, 59, 59, 0, time.UTC)
	var notes [][]byte
	for i, size := range []int64{3, 10, 10, 12} {
		msg, c, err := checkpoint.Sign(checkpoint.Checkpoint{Size: size, Time: base.Add(time.Duration(i) * time.Second), Head: strings.Repeat("0", 64)}, k)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Put(ctx, checkpoint.FileName(c), msg); err != nil {
			t.Fatalf("Put: %v", err)
		}
		notes = append(notes, msg)
	}
	got, err := w.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(notes) {
		t.Fatalf("List: %d checkpoints, want %d", len(got), len(notes))
	}
	opened := checkpoint.OpenAll(got, k.Verifier)
	seen := map[int64]int{}
	for _, s := range opened {
		if s.Err != nil {
			t.Fatalf("%s: %v", s.Name, s.Err)
		}
		seen[s.Check.Size]++
	}
	if seen[3] != 1 || seen[10] != 2 || seen[12] != 1 {
		t.Fatalf("sizes listed %v", seen)
	}
}

func TestDirWitness(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "witness")
	w, err := checkpoint.OpenWitness(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.List(context.Background()); err == nil {
		t.Fatal("a missing witness directory listed as empty")
	}
	os.Mkdir(dir, 0o755)
	witnessConformance(t, w)
	// History by day, and the latest beside it.
	if _, err := os.Stat(filepath.Join(dir, "checkpoints", "2026-12-08")); err != nil {
		t.Fatal(err)
	}
	latest, _ := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if !strings.Contains(string(latest), "\n12\n") {
		t.Fatalf("latest checkpoint:\n%s", latest)
	}
}

func TestHTTPWitness(t *testing.T) {
	t.Parallel()
	srv := checkpointtest.NewWitnessServer()
	ts := httptest.NewServer(srv)
	defer ts.Close()
	w, err := checkpoint.OpenWitness(context.Background(), ts.URL+"/witness?token=secret")
	if err != nil {
		t.Fatal(err)
	}
	witnessConformance(t, w)
	srv.SetDown(true)
	err = w.Put(context.Background(), "x", []byte("y"))
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Fatalf("Put to a witness that is down: %v (must fail without the URL's secret)", err)
	}
}

// Not parallel: it sets the AWS credentials in the environment.
func TestS3Witness(t *testing.T) {
	endpoint := startS3(t)
	w, err := checkpoint.OpenWitness(context.Background(), "s3://witness/depot/audit?endpoint="+endpoint+"&region=us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	witnessConformance(t, w)
}

const s3Access, s3Secret = "depotaccess", "depotsecret-local-only"

// startS3 runs versitygw with a bucket "witness" and sets the AWS
// credentials of this test process; it skips when versitygw is missing
// (see scripts/s3-server.sh) and CI is not "true".
func startS3(t *testing.T) string {
	t.Helper()
	bin, skip, err := s3test.Binary()
	if err != nil {
		t.Fatal(err)
	}
	if skip != "" {
		t.Skip(skip)
	}
	srv, err := s3test.Start(bin, t.TempDir(), s3Access, s3Secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	mc, err := minio.New(srv.Addr, &minio.Options{Creds: credentials.NewStaticV4(s3Access, s3Secret, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.MakeBucket(context.Background(), "witness", minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", s3Access)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3Secret)
	return srv.Endpoint
}
