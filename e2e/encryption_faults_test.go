package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"depot/internal/crashpoint"
)

// TestEncryptedChunkRetry is TestChunkRetry with encryption at rest: chunks
// (1 MiB, ending mid-segment) cut mid-body between web and services and sent
// again never make a write refused as changed bytes, and every stored object
// decrypts to its upload.
func TestEncryptedChunkRetry(t *testing.T) {
	testChunkRetry(t, clusterOpts{servicesEnv: map[string]string{"DEPOT_KEK_FILE": newKEK(t)}})
}

// ageDecrypt decrypts an age file with the identities of kek.
func ageDecrypt(kek string, b []byte) ([]byte, error) {
	f, err := os.Open(kek)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ids, err := age.ParseIdentities(f)
	if err != nil {
		return nil, err
	}
	r, err := age.Decrypt(bytes.NewReader(b), ids...)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// TestEncryptedServicesKilled is TestResilienceServicesKilled with
// encryption at rest: services is SIGKILLed in the middle of a tus upload
// (1 MiB chunks, so segments of the chunk in flight may be on disk with
// their tags recorded), started again, and the client's resume with the
// same bytes is accepted; the stored object decrypts to the upload.
func TestEncryptedServicesKilled(t *testing.T) {
	webEnv, svcEnv := resilienceEnv(8)
	svcEnv["DEPOT_KEK_FILE"] = newKEK(t)
	var back *faultProxy
	c := newCluster(t, clusterOpts{webEnv: webEnv, servicesEnv: svcEnv, servicesURL: func(addr string) string {
		back = newFaultProxy(t, addr, nil)
		return back.url()
	}})
	cl := newTusClient(c.web.url, c.token)
	defer cl.close()
	killMidUpload(t, c, cl, back, "kill/encrypted.bin", 302, 32<<20, 8<<20+300_000, func() {
		c.services.kill()
		time.Sleep(2 * time.Second) // longer than web's chunk retries: the client resumes
		c.startServices(svcEnv)
		back.setTarget(c.services.addr)
	})
	noPlaintextSHA(t, c)
}

// noPlaintextSHA checks that services never logged a plaintext error of
// the nonce rule (a resume refused as changed bytes).
func noPlaintextSHA(t *testing.T, c *cluster) {
	t.Helper()
	if strings.Contains(c.services.logs(), "differ from an earlier attempt") {
		t.Error("a resume with the same bytes was refused as changed")
	}
}

// TestEncryptedResumeAfterWrite kills services (SIGKILL, from inside) right
// after the encrypting driver wrote a tus PATCH's segments and recorded
// their tags, before the new offset was saved: a resume with the same bytes
// rewrites identical ciphertext and completes; a resume with other bytes at
// that offset is refused (409) rather than encrypted under the same nonces.
func TestEncryptedResumeAfterWrite(t *testing.T) {
	t.Parallel()
	kek := newKEK(t)
	c := newCluster(t, clusterOpts{servicesEnv: map[string]string{"DEPOT_KEK_FILE": kek, "DEPOT_MAINTENANCE": "off"}})
	data := markerData(200_000)
	for _, same := range []bool{true, false} {
		name := fmt.Sprintf("enc/resume-%v.txt", same)
		c.restartServices(t, map[string]string{"DEPOTTEST_CRASH_AT": crashpoint.SealedWritten})
		resp := c.do("POST", tusPath, nil, map[string]string{"Tus-Resumable": "1.0.0",
			"Upload-Length": strconv.Itoa(len(data)), "Upload-Metadata": tusMeta("cohort", "c1", "path", name)})
		expectStatus(t, resp, http.StatusCreated)
		loc := resp.Header.Get("Location")
		patch := func(body []byte) (*http.Response, error) {
			req, _ := http.NewRequest("PATCH", c.web.url()+loc, bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+c.token)
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("Content-Type", "application/offset+octet-stream")
			req.Header.Set("Upload-Offset", "0")
			return http.DefaultClient.Do(req)
		}
		if resp, err := patch(data); err == nil && resp.StatusCode < 500 {
			t.Fatalf("PATCH answered %d although services was killed", resp.StatusCode)
		}
		c.services.waitExit(t)
		c.restartServices(t, nil)
		body := data
		if !same {
			body = bytes.Clone(data)
			body[1000] ^= 1 // in segment 0, which the killed write stored
		}
		resp, err := patch(body)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if same && resp.StatusCode != http.StatusNoContent {
			t.Fatalf("resume with the same bytes: %d", resp.StatusCode)
		}
		if !same && resp.StatusCode != http.StatusConflict {
			t.Fatalf("resume with other bytes: %d, want 409", resp.StatusCode)
		}
	}
	if got := expectStatus(t, c.do("GET", "/api/v1/files/c1/enc/resume-true.txt", nil, nil), http.StatusOK); !bytes.Equal(got, data) {
		t.Fatal("the resumed file differs")
	}
}
