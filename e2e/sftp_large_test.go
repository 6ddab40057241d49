package e2e

import (
	"testing"
)

// TestSFTPLargeUpload puts 2 GiB with OpenSSH's sftp through the SFTP
// entrance (issue 23: "upload 2 GiB") and checks that the version services
// committed, and the object on disk, have the file's size and SHA-256.
func TestSFTPLargeUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("2 GiB SFTP upload skipped in -short mode")
	}
	s := newSFTPCluster(t, nil)
	const n = 2 << 30
	local, sum := writePayload(t, t.TempDir(), "two-gib.csv", 77, n)
	s.mustSFTP(t, "put "+local+" /c1/large/two-gib.csv")

	h, status := s.versions(t, s.token, "c1/large/two-gib.csv")
	if status != 200 || len(h.Versions) != 1 {
		t.Fatalf("versions: status %d, %d versions", status, len(h.Versions))
	}
	if v := h.Versions[0]; v.Size != n || v.SHA256 != sum {
		t.Fatalf("committed size %d SHA-256 %s, want %d %s", v.Size, v.SHA256, int64(n), sum)
	}
	size, onDisk := hashFile(t, s.storedPath("c1/large/two-gib.csv"))
	if size != n || onDisk != sum {
		t.Fatalf("stored object: size %d SHA-256 %s, want %d %s", size, onDisk, int64(n), sum)
	}
}
