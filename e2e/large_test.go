package e2e

import (
	"testing"
)

// TestLargeUpload streams 2 GiB, generated on the fly, through the web tier
// and checks that the stored file is byte-exact.
func TestLargeUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("2 GiB upload skipped in -short mode")
	}
	c := newCluster(t, clusterOpts{})
	const n = 2 << 30
	body, sum := payload(42, n)
	status, got, raw := c.putStream("/api/v1/files/c1/large/two-gib.csv", body, n, nil)
	if status != 201 {
		t.Fatalf("PUT 2 GiB: status %d: %s", status, raw)
	}
	if got.Size != n || got.SHA256 != sum() {
		t.Fatalf("PUT 2 GiB answered size %d sha %s, want %d %s", got.Size, got.SHA256, int64(n), sum())
	}
	size, onDisk := hashFile(t, c.storedPath("c1/large/two-gib.csv"))
	if size != n || onDisk != sum() {
		t.Fatalf("stored file: size %d sha %s, want %d %s", size, onDisk, int64(n), sum())
	}
}
