package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
)

// Every operation that starts ends with exactly one closing record that
// says how it ended (issue 20, items 5, 6, 9 and 12): a full store, a
// grant revoked mid-upload, a tier killed mid-upload, a download the
// client abandons.

// slowBody is a request body of size bytes that sends the first `first`
// bytes, then waits for release (or for ctx) before sending the rest.
type slowBody struct {
	data    []byte
	first   int
	off     int
	release chan struct{}
}

func (b *slowBody) Read(p []byte) (int, error) {
	if b.off == b.first {
		<-b.release
	}
	if b.off >= len(b.data) {
		return 0, io.EOF
	}
	end := len(b.data)
	if b.off < b.first {
		end = b.first
	}
	n := copy(p, b.data[b.off:end])
	b.off += n
	return n, nil
}

// putSlow starts a PUT of data to key as token's user whose body stops
// after first bytes until release is closed. The result arrives on the
// returned channel (status 0: a transport error).
func (c *cluster) putSlow(t *testing.T, token, key string, data []byte, first int, release chan struct{}) <-chan int {
	t.Helper()
	req, err := http.NewRequest("PUT", c.web.url()+"/api/v1/files/"+key, &slowBody{data: data, first: first, release: release})
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = int64(len(data))
	req.Header.Set("Authorization", "Bearer "+token)
	done := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	return done
}

// waitForSession waits until an upload session of key has received at
// least n bytes and returns it.
func waitForSession(t *testing.T, db *servicedb.DB, key string, n int64) depot.Upload {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ups, err := db.Uploads(context.Background(), servicedb.UploadFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range ups {
			if u.Key == key && u.Offset >= n {
				return u.Upload
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no upload session of %s with %d bytes", key, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// closingRecords returns the records that end upload id.
func closingRecords(t *testing.T, db *servicedb.DB, id string) []depot.AuditEvent {
	t.Helper()
	evs, err := db.Events(context.Background(), servicedb.Filter{UploadID: id})
	if err != nil {
		t.Fatal(err)
	}
	var out []depot.AuditEvent
	for _, ev := range evs {
		switch ev.Action {
		case depot.ActionUploadCompleted, depot.ActionUploadFailed, depot.ActionUploadAborted, depot.ActionUploadExpired:
			out = append(out, ev)
		}
	}
	return out
}

// waitForClosing waits until upload id has a closing record and returns
// them all.
func waitForClosing(t *testing.T, db *servicedb.DB, id string, within time.Duration) []depot.AuditEvent {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if evs := closingRecords(t, db, id); len(evs) > 0 || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGrantRevokedMidUpload: a grant revoked while a PUT streams stops it
// at its next chunk; nothing is committed, the refusal is audited and the
// upload gets one closing record. A tus upload's next PATCH is refused.
func TestGrantRevokedMidUpload(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_CHUNK_SIZE": "1048576"}})
	bob := c.addUser(t, "bob", "uploader")
	db := openAuditDB(t, c.dbURL)
	const key = "c1/revoked/ward.csv"
	data, _ := payloadBytes(500, 24<<20)
	release := make(chan struct{})
	done := c.putSlow(t, bob, key, data, 4<<20, release)
	u := waitForSession(t, db, key, 2<<20)
	depotCLI(t, c.dbEnv(), "cohorts", "revoke", "bob", "c1")
	close(release)
	if code := <-done; code != http.StatusForbidden && code != 0 {
		t.Fatalf("PUT after its grant was revoked: %d, want 403 (or the connection cut)", code)
	}
	expectStatus(t, c.do("GET", "/api/v1/files/"+key, nil, nil), http.StatusNotFound)
	closing := waitForClosing(t, db, u.ID, 10*time.Second)
	if len(closing) != 1 || closing[0].Action == depot.ActionUploadCompleted || closing[0].ErrorCode != string(depot.CodeForbidden) {
		t.Fatalf("closing records of the revoked upload: %+v", closing)
	}
	denied := 0
	for _, ev := range auditEvents(t, db, depot.ActionAccessDenied) {
		if ev.Actor == "bob" && ev.Key == key {
			denied++
		}
	}
	if denied == 0 {
		t.Fatal("the refused chunk is not audited as access.denied")
	}

	// tus: a PATCH after the revocation is refused.
	depotCLI(t, c.dbEnv(), "cohorts", "grant", "bob", "c1", "uploader")
	loc := tusCreate(t, c.web.url(), bob, 2<<20, "revoked/tus.csv")
	resp := tusReq(t, c.web.url(), bob, "PATCH", loc, data[:1<<20], map[string]string{"Upload-Offset": "0"})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("first PATCH: %d", resp.StatusCode)
	}
	depotCLI(t, c.dbEnv(), "cohorts", "revoke", "bob", "c1")
	resp = tusReq(t, c.web.url(), bob, "PATCH", loc, data[1<<20:2<<20], map[string]string{"Upload-Offset": strconv.Itoa(1 << 20)})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("PATCH after the revocation: %d, want 403", resp.StatusCode)
	}
	expectStatus(t, c.do("GET", "/api/v1/files/c1/revoked/tus.csv", nil, nil), http.StatusNotFound)
}

// TestPlainUploadOfDeadTierRemoved: a PUT whose web tier is killed, and one
// whose services tier is killed, leave a session no one can continue; the
// services process removes it (and its staged bytes) once idle for two
// body idle timeouts, with one upload.aborted record, code "abandoned".
func TestPlainUploadOfDeadTierRemoved(t *testing.T) {
	t.Parallel()
	idle := map[string]string{"DEPOT_BODY_IDLE_TIMEOUT": "1s"}
	c := newCluster(t, clusterOpts{servicesEnv: idle, webEnv: map[string]string{"DEPOT_CHUNK_SIZE": "1048576", "DEPOT_CHUNK_RETRIES": "1"}})
	db := openAuditDB(t, c.dbURL)
	data, _ := payloadBytes(510, 16<<20)
	for _, victim := range []string{"web", "services"} {
		key := "c1/dead/" + victim + ".bin"
		release := make(chan struct{})
		done := c.putSlow(t, c.token, key, data, 4<<20, release)
		u := waitForSession(t, db, key, 2<<20)
		if victim == "web" {
			c.web.kill()
		} else {
			c.services.kill()
		}
		close(release)
		<-done
		if victim == "web" {
			c.startWeb(c.services.url(), c.webEnv)
		} else {
			c.restartServices(t, idle)
		}
		closing := waitForClosing(t, db, u.ID, 20*time.Second)
		if len(closing) != 1 || closing[0].Action != depot.ActionUploadAborted || closing[0].ErrorCode != "abandoned" {
			t.Fatalf("%s killed: closing records %+v", victim, closing)
		}
		if _, err := db.Session(context.Background(), u.ID); depot.ErrorCode(err) != depot.CodeNotFound {
			t.Fatalf("%s killed: the session is still there (%v)", victim, err)
		}
		if _, err := os.Stat(filepath.Join(c.storageDir(), "staging", u.ID)); !os.IsNotExist(err) {
			t.Fatalf("%s killed: its staged bytes are still there (%v)", victim, err)
		}
	}
}

// TestAbandonedDownloadRecorded: a client that reads 1 KiB of a 48 MiB
// download and hangs up leaves a download.completed record that says how
// many bytes services sent and that the stream did not complete.
func TestAbandonedDownloadRecorded(t *testing.T) {
	t.Parallel()
	c := newCluster(t, clusterOpts{})
	db := openAuditDB(t, c.dbURL)
	const key = "c1/big/scan.bin"
	data, _ := payloadBytes(520, 48<<20)
	expectStatus(t, c.do("PUT", "/api/v1/files/"+key, bytes.NewReader(data), nil), http.StatusCreated)
	resp := c.do("GET", "/api/v1/files/"+key, nil, nil)
	if _, err := io.ReadFull(resp.Body, make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(20 * time.Second)
	var ends []depot.AuditEvent
	for len(ends) == 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		ends = auditEvents(t, db, depot.ActionDownloadCompleted)
	}
	if len(ends) != 1 {
		t.Fatalf("%d download.completed records, want 1", len(ends))
	}
	end := ends[0]
	if end.StreamComplete != nil || end.Outcome != depot.OutcomeFailure || end.BytesTransferred >= int64(len(data)) || end.BytesTransferred < 1024 {
		t.Fatalf("abandoned download recorded as %d bytes, complete %v, outcome %s", end.BytesTransferred, end.StreamComplete, end.Outcome)
	}
}

// TestStorageFull runs services on a 16 MiB tmpfs: uploads that do not fit
// (one refused by its declared size, one of unknown size that fills the
// store while written, one sent whole) answer 507 storage_full, each
// with one closing record carrying the code and no staged bytes left;
// readiness reports the free space.
func TestStorageFull(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	c := newCluster(t, clusterOpts{storageURL: "file://" + dir})
	db := openAuditDB(t, c.dbURL)

	ready := func() (free int64) {
		resp, err := http.Get(c.services.url() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Status string `json:"status"`
			Free   *int64 `json:"storage_free_bytes"`
			Total  *int64 `json:"storage_total_bytes"`
		}
		if err := json.Unmarshal(readAll(t, resp), &r); err != nil || r.Free == nil || r.Total == nil || *r.Total != 16<<20 {
			t.Fatalf("readiness: %+v %v", r, err)
		}
		return *r.Free
	}
	if free := ready(); free < 15<<20 {
		t.Fatalf("an empty 16 MiB store reports %d bytes free", free)
	}
	fits, _ := payloadBytes(530, 10<<20)
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/full/fits.bin", bytes.NewReader(fits), nil), http.StatusCreated)
	for i, up := range []struct {
		size    int
		unknown bool // no Content-Length: the store fills up while writing
	}{{12 << 20, false}, {12 << 20, true}, {7 << 20, false}} { // sessions (> 8 MiB chunk), then one-shot
		size := up.size
		key := "c1/full/" + strconv.Itoa(i) + ".bin"
		body, _ := payloadBytes(uint64(531+i), size)
		var rd io.Reader = bytes.NewReader(body)
		if up.unknown {
			rd = io.MultiReader(rd) // hides the length: sent chunked
		}
		resp := c.do("PUT", "/api/v1/files/"+key, rd, nil)
		b := readAll(t, resp)
		if resp.StatusCode != http.StatusInsufficientStorage || errorCode(b) != "storage_full" {
			t.Fatalf("%d-byte PUT onto a full store: %d %s", size, resp.StatusCode, b)
		}
		// One closing record for the key, whether the refusal came at the
		// start (the declared size does not fit) or while writing.
		evs, err := db.Events(context.Background(), servicedb.Filter{KeyPrefix: key})
		if err != nil {
			t.Fatal(err)
		}
		var closing []depot.AuditEvent
		for _, ev := range evs {
			if ev.Action != depot.ActionUploadStarted {
				closing = append(closing, ev)
			}
		}
		if len(closing) != 1 || closing[0].Action != depot.ActionUploadFailed || closing[0].ErrorCode != "storage_full" {
			t.Fatalf("%d-byte PUT: records after the start %+v", size, closing)
		}
	}
	if staged, _ := os.ReadDir(filepath.Join(dir, "staging")); len(staged) != 0 {
		t.Fatalf("%d staging areas left on the full store", len(staged))
	}
	if free := ready(); free > 7<<20 {
		t.Fatalf("after 10 MiB stored, %d bytes reported free", free)
	}
}
