package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"depot/internal/crashpoint"
	"depot/servicedb/servicedbtest"
)

// marker is the plaintext searched for in everything depot stores: every
// upload of these tests is made of it.
const marker = "PHI-MARKER-c0ffee|"

func markerData(n int) []byte {
	return bytes.Repeat([]byte(marker), n/len(marker)+1)[:n]
}

// TestEncryptionAtRest runs a cluster with DEPOT_KEK_FILE on SQLite and
// PostgreSQL: PUT (one-shot and chunked, chunks ending mid-segment),
// multipart POST, tus resumed across a services restart, and an upload
// whose services is SIGKILLed before completion leave no plaintext on
// disk (storage, staging, the SQLite database) or in a backup; files and
// Range reads at segment boundaries read back exact; the age command
// decrypts a stored object to the recorded SHA-256; a flipped ciphertext
// byte is found by depot verify and refused by downloads; a wrong or
// missing KEK fails closed at start.
func TestEncryptionAtRest(t *testing.T) {
	t.Parallel()
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		testEncryptionAtRest(t, clusterOpts{dbURL: e.URL})
	})
}

// TestS3EncryptionAtRest is TestEncryptionAtRest on S3 storage (SQLite):
// no object in the bucket (parts, tails, markers) holds plaintext.
func TestS3EncryptionAtRest(t *testing.T) {
	t.Parallel()
	testEncryptionAtRest(t, s3Opts(t, clusterOpts{}))
}

func newKEK(t *testing.T) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "kek.txt")
	pub := strings.TrimSpace(depotCLI(t, nil, "keys", "generate", name))
	if !strings.HasPrefix(pub, "age1") {
		t.Fatalf("keys generate printed %q", pub)
	}
	if fi, err := os.Stat(name); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file: %v, mode %v", err, fi.Mode())
	}
	return name
}

func testEncryptionAtRest(t *testing.T, o clusterOpts) {
	kek := newKEK(t)
	o.servicesEnv = map[string]string{"DEPOT_KEK_FILE": kek, "DEPOT_MAINTENANCE": "off"}
	// 100000-byte chunks: every chunk ends in the middle of a 64 KiB segment.
	o.webEnv = map[string]string{"DEPOT_CHUNK_SIZE": "100000", "DEPOT_CHUNK_RETRIES": "1"}
	c := newCluster(t, o)

	files := map[string][]byte{
		"c1/enc/small.txt": markerData(1000),
		"c1/enc/big.txt":   markerData(300_000),
		"c1/enc/seg.txt":   markerData(2 * 65536),
		"c1/enc/empty.txt": nil,
	}
	for key, data := range files {
		expectStatus(t, c.do("PUT", "/api/v1/files/"+key, bytes.NewReader(data), nil), http.StatusCreated)
	}
	// Multipart POST.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	for i := range 2 {
		data := markerData(150_000 + i)
		files[fmt.Sprintf("c1/enc/form/part-%d.txt", i)] = data
		fw, _ := mw.CreateFormFile("file", fmt.Sprintf("part-%d.txt", i))
		fw.Write(data)
	}
	mw.Close()
	expectStatus(t, c.do("POST", "/api/v1/files/c1/enc/form/", &mp, map[string]string{"Content-Type": mw.FormDataContentType()}), http.StatusCreated)
	// tus: a PATCH, its retry (refused: offset), services restarted, HEAD, the rest.
	tusData := markerData(250_000)
	files["c1/enc/tus.txt"] = tusData
	resp := c.do("POST", tusPath, nil, map[string]string{"Tus-Resumable": "1.0.0",
		"Upload-Length": strconv.Itoa(len(tusData)), "Upload-Metadata": tusMeta("cohort", "c1", "path", "enc/tus.txt")})
	expectStatus(t, resp, http.StatusCreated)
	loc := resp.Header.Get("Location")
	patch := func(off, end int) *http.Response {
		return c.do("PATCH", loc, bytes.NewReader(tusData[off:end]), map[string]string{"Tus-Resumable": "1.0.0",
			"Content-Type": "application/offset+octet-stream", "Upload-Offset": strconv.Itoa(off)})
	}
	expectStatus(t, patch(0, 70_000), http.StatusNoContent)
	expectStatus(t, patch(0, 70_000), http.StatusConflict)
	c.restartServices(t, nil)
	resp = c.do("HEAD", loc, nil, map[string]string{"Tus-Resumable": "1.0.0"})
	expectStatus(t, resp, http.StatusOK)
	if got := resp.Header.Get("Upload-Offset"); got != "70000" {
		t.Fatalf("HEAD after restart: offset %q", got)
	}
	expectStatus(t, patch(70_000, 200_001), http.StatusNoContent)
	expectStatus(t, patch(200_001, len(tusData)), http.StatusNoContent)

	// SIGKILL of services after an upload's chunks were staged: its
	// staging area and session (with the encrypted tail) stay behind.
	c.restartServices(t, map[string]string{"DEPOTTEST_CRASH_AT": crashpoint.Staged})
	if resp, err := c.tryDo("PUT", "/api/v1/files/c1/enc/killed.txt", markerData(230_000)); err == nil && resp.StatusCode < 500 {
		t.Fatalf("PUT answered %d although services was killed", resp.StatusCode)
	}
	c.services.waitExit(t)
	noPlaintext(t, c, c.dataDir)
	c.restartServices(t, nil)

	for key, data := range files {
		resp := c.do("GET", "/api/v1/files/"+key, nil, nil)
		if got := expectStatus(t, resp, http.StatusOK); !bytes.Equal(got, data) {
			t.Fatalf("GET %s: %d bytes differ from the %d uploaded", key, len(got), len(data))
		}
	}
	big := files["c1/enc/big.txt"]
	for _, r := range [][2]int{{65535, 65536}, {65536, 131071}, {131071, 131073}, {0, 65535}, {65530, 196700}, {299_990, 299_999}} {
		resp := c.do("GET", "/api/v1/files/c1/enc/big.txt", nil, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", r[0], r[1])})
		if got := expectStatus(t, resp, http.StatusPartialContent); !bytes.Equal(got, big[r[0]:r[1]+1]) {
			t.Fatalf("Range %v: wrong bytes", r)
		}
	}

	// A backup with files carries ciphertext only.
	backupDir := filepath.Join(t.TempDir(), "backup")
	depotCLI(t, c.servicesEnv(c.svcEnv), "backup", backupDir, "--files")
	noPlaintext(t, c, backupDir)
	// The recovery drill: a lost object comes back from the backup's
	// ciphertext, checked by decrypting it, and reads back exact.
	lost, err := c.currentVersion("c1/enc/tus.txt")
	if err != nil {
		t.Fatal(err)
	}
	removeStored(t, c, lost)
	depotCLI(t, c.servicesEnv(c.svcEnv), "restore", backupDir, "--files-only")
	if got := expectStatus(t, c.do("GET", "/api/v1/files/c1/enc/tus.txt", nil, nil), http.StatusOK); !bytes.Equal(got, tusData) {
		t.Fatal("the restored file differs")
	}

	// keys status: every kept version under the one KEK.
	status := depotCLI(t, c.servicesEnv(c.svcEnv), "keys", "status")
	if want := fmt.Sprintf("\t%d\nother-key\t0\nnot-encrypted\t0\nmissing\t0\n", len(files)); !strings.HasPrefix(status, "age1") || !strings.HasSuffix(status, want) {
		t.Errorf("keys status:\n%s\nwant %d versions under the KEK", status, len(files))
	}

	// The age command decrypts a stored object to its recorded SHA-256.
	ageDecrypts(t, c, kek, "c1/enc/big.txt")
	ageDecrypts(t, c, kek, "c1/enc/empty.txt")

	// A flipped ciphertext byte: verify finds it, downloads refuse it.
	id, err := c.currentVersion("c1/enc/big.txt")
	if err != nil {
		t.Fatal(err)
	}
	c.services.stop()
	c.web.stop()
	flipStoredByte(t, c, id, 100_000)
	if _, errOut, code := depotCLIResult(c.servicesEnv(c.svcEnv), "verify"); code != 6 {
		t.Fatalf("verify of a tampered object: exit %d: %s", code, errOut)
	}
	c.startServices(c.svcEnv)
	c.startWeb(c.services.url(), c.webEnv)
	if resp, err := c.tryDo("GET", "/api/v1/files/c1/enc/big.txt", nil); err == nil {
		got, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && rerr == nil && bytes.Equal(got, big) {
			t.Fatal("a tampered object was served whole")
		}
		if bytes.Contains(got, big[65536:131072]) {
			t.Fatal("the tampered segment was served")
		}
	}
	c.web.stop()
	c.services.stop()

	// A wrong KEK, a missing KEK file and no KEK at all fail closed.
	for name, kekFile := range map[string]string{"wrong": newKEK(t), "missing": kek + ".gone", "none": ""} {
		_, errOut, code := depotCLIResult(c.servicesEnv(map[string]string{"DEPOT_KEK_FILE": kekFile}), "serve")
		if code == 0 || !strings.Contains(errOut, "refusing to start") {
			t.Errorf("%s KEK: serve exited %d: %s", name, code, errOut)
		}
	}
}

// noPlaintext fails when any file under dir, or any object of an S3
// cluster's bucket, contains the marker.
func noPlaintext(t *testing.T, c *cluster, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if i := bytes.Index(b, []byte(marker)); i >= 0 {
			t.Errorf("plaintext found in %s at %d: %q", path, i, b[max(0, i-200):min(len(b), i+40)])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.storageURL != "" && dir == c.dataDir {
		for _, key := range s3Keys(t, c.storageURL) {
			b, err := s3Object(t, c.storageURL, key)
			if err != nil {
				t.Fatal(err)
			}
			n++
			if bytes.Contains(b, []byte(marker)) {
				t.Errorf("plaintext found in S3 object %s", key)
			}
		}
	}
	if n == 0 {
		t.Fatalf("nothing stored under %s", dir)
	}
}

// ageDecrypts runs `age -d -i KEK object` on the stored object of key (as
// docs/operations.md says) and compares the SHA-256 with the recorded one.
func ageDecrypts(t *testing.T, c *cluster, kek, key string) {
	t.Helper()
	if _, err := exec.LookPath("age"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("age is not installed (scripts/install-age.sh)")
		}
		t.Log("age is not installed (scripts/install-age.sh): skipping the by-hand decryption")
		return
	}
	raw, err := c.stored(key)
	if err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(t.TempDir(), "object")
	if err := os.WriteFile(obj, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("age", "-d", "-i", kek, obj).Output()
	if err != nil {
		t.Fatalf("age -d: %v", err)
	}
	sum := sha256.Sum256(out)
	resp := c.do("HEAD", "/api/v1/files/"+key, nil, nil)
	expectStatus(t, resp, http.StatusOK)
	if got, want := hex.EncodeToString(sum[:]), resp.Header.Get("Depot-Sha256"); got != want {
		t.Fatalf("age decrypts %s to SHA-256 %s, recorded %s", key, got, want)
	}
}

// flipStoredByte flips one byte of the stored object id.
func flipStoredByte(t *testing.T, c *cluster, id string, at int) {
	t.Helper()
	if c.storageURL != "" {
		bucket, prefix := s3Location(t, c.storageURL)
		b, err := s3Object(t, c.storageURL, "objects/"+id)
		if err != nil {
			t.Fatal(err)
		}
		b[at] ^= 1
		if _, err := s3srv.client.PutObject(t.Context(), bucket, prefix+"objects/"+id, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		return
	}
	p := c.objectPath(id)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[at] ^= 1
	os.Chmod(p, 0o600)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// removeStored deletes the stored object id.
func removeStored(t *testing.T, c *cluster, id string) {
	t.Helper()
	if c.storageURL != "" {
		bucket, prefix := s3Location(t, c.storageURL)
		if err := s3srv.client.RemoveObject(t.Context(), bucket, prefix+"objects/"+id, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.Remove(c.objectPath(id)); err != nil {
		t.Fatal(err)
	}
}
