package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/scan/clamdtest"
	"depot/servicedb"
)

// Malware scanning (issue 25, docs/scanning.md) with the real clamd of
// Debian's clamav-daemon, on a signature database the test writes (EICAR).
// Web sends chunks of 1 MiB, so a few MiB make an upload of several chunks.

const scanChunk = 1 << 20

// scanCluster starts clamd and a cluster that scans through it, with
// alerts to a receiver.
func scanCluster(t *testing.T) (*cluster, *clamdtest.Daemon, *alertReceiver) {
	t.Helper()
	d := clamdtest.Start(t, clamdtest.Options{})
	r := newAlertReceiver(t)
	c := newCluster(t, clusterOpts{
		webEnv: map[string]string{"DEPOT_CHUNK_SIZE": strconv.Itoa(scanChunk)},
		servicesEnv: map[string]string{
			"DEPOT_SCAN": "clamav", "DEPOT_CLAMD_ADDR": d.Addr(), "DEPOT_MAINTENANCE": "off",
			"DEPOT_ALERT_WEBHOOK_URL": r.srv.URL + "/alerts",
		},
	})
	return c, d, r
}

// infectedAt returns n random bytes with EICAR at offset at.
func infectedAt(seed uint64, n, at int) []byte {
	b, _ := payloadBytes(seed, n)
	copy(b[at:], clamdtest.EICAR)
	return b
}

// events returns the audit records of action for keys under prefix.
func events(t *testing.T, c *cluster, action depot.Action, prefix string) []depot.AuditEvent {
	t.Helper()
	ctx := context.Background()
	db, err := servicedb.Open(ctx, c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	evs, err := db.Events(ctx, servicedb.Filter{Action: action, KeyPrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// listedScan returns the scan field of c1/rel in the folder's listing.
func listedScan(t *testing.T, c *cluster, rel string) string {
	t.Helper()
	dir, name := filepath.Split("c1/" + rel)
	var page struct {
		Files []struct{ Path, Scan string } `json:"files"`
	}
	if err := json.Unmarshal(expectStatus(t, c.do("GET", "/api/v1/files/"+dir, nil, nil), http.StatusOK), &page); err != nil {
		t.Fatal(err)
	}
	for _, f := range page.Files {
		if filepath.Base(f.Path) == name {
			return f.Scan
		}
	}
	t.Fatalf("c1/%s is not listed", rel)
	return ""
}

// wantInfected checks an answer of 422 infected.
func wantInfected(t *testing.T, what string, resp *http.Response) {
	t.Helper()
	b := readAll(t, resp)
	if resp.StatusCode != http.StatusUnprocessableEntity || errorCode(b) != string(depot.CodeInfected) {
		t.Fatalf("%s: %d %s, want 422 infected", what, resp.StatusCode, b)
	}
}

// wantRefusedRecord checks that key's one upload.failed record is an
// infected verdict from source.
func wantRefusedRecord(t *testing.T, c *cluster, key, source string) {
	t.Helper()
	var recs []depot.AuditEvent
	for _, e := range events(t, c, depot.ActionUploadFailed, key) {
		if e.Key == key {
			recs = append(recs, e)
		}
	}
	if len(recs) != 1 {
		t.Fatalf("%s: %d upload.failed records, want 1", key, len(recs))
	}
	m := recs[0].Metadata
	if recs[0].ErrorCode != "infected" || m["scan_result"] != "infected" || m["scan_signature"] != clamdtest.Signature ||
		m["scan_source"] != source || !strings.HasPrefix(m["scan_engine"], "ClamAV ") {
		t.Fatalf("%s: upload.failed record %s %v, want infected from %s", key, recs[0].ErrorCode, m, source)
	}
}

// storageFiles lists the files under the local storage (objects and
// staging, with their sizes; not the folders), to show that a refused
// upload left nothing behind.
func storageFiles(t *testing.T, c *cluster) []string {
	t.Helper()
	var files []string
	for _, e := range treeSnapshot(t, c.storageDir(), func(string) bool { return false }) {
		if !strings.HasSuffix(e, "/") {
			files = append(files, e)
		}
	}
	return files
}

// TestScanUploads: clean and infected uploads through every entrance —
// one-shot PUT, PUT of several chunks with EICAR past the first one,
// multipart POST, and tus resumed across a restart of services (its stream
// lost, the stored bytes scanned at completion).
func TestScanUploads(t *testing.T) {
	c, _, alerts := scanCluster(t)

	clean, _ := payloadBytes(1, 3*scanChunk+17)
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/clean.csv", bytes.NewReader(clean), nil), http.StatusCreated)
	small, _ := payloadBytes(2, 1000)
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/small.csv", bytes.NewReader(small), nil), http.StatusCreated)
	checkOnDisk(t, c, "clean.csv", clean)
	for _, name := range []string{"clean.csv", "small.csv"} {
		if got := listedScan(t, c, name); got != "clean" {
			t.Fatalf("%s listed with scan %q, want clean", name, got)
		}
		recs := completedRecords(t, c, "c1/"+name)
		if len(recs) != 1 || recs[0].Metadata["scan_result"] != "clean" || recs[0].Metadata["scan_source"] != "stream" ||
			!strings.HasPrefix(recs[0].Metadata["scan_engine"], "ClamAV ") {
			t.Fatalf("%s: upload.completed records %+v, want one clean verdict from the stream", name, recs)
		}
	}

	before := storageFiles(t, c)
	wantInfected(t, "one-shot PUT", c.do("PUT", "/api/v1/files/c1/eicar.txt", strings.NewReader(clamdtest.EICAR), nil))
	big := infectedAt(3, 4*scanChunk+99, 2*scanChunk+5)
	wantInfected(t, "PUT of 5 chunks, EICAR in the third", c.do("PUT", "/api/v1/files/c1/big.bin", bytes.NewReader(big), nil))

	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "part.bin")
	fw.Write(infectedAt(4, 2*scanChunk, scanChunk+3))
	mw.Close()
	wantInfected(t, "multipart POST", c.do("POST", "/api/v1/files/c1/batch/", bytes.NewReader(mp.Bytes()),
		map[string]string{"Content-Type": mw.FormDataContentType()}))

	for _, rel := range []string{"eicar.txt", "big.bin", "batch/part.bin"} {
		checkAbsent(t, c, rel)
		expectStatus(t, c.do("GET", "/api/v1/files/c1/"+rel, nil, nil), http.StatusNotFound)
	}
	wantRefusedRecord(t, c, "c1/eicar.txt", "stream")
	wantRefusedRecord(t, c, "c1/big.bin", "stream")
	wantRefusedRecord(t, c, "c1/batch/part.bin", "stream")
	if after := storageFiles(t, c); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("refused uploads left files in the storage:\nbefore %v\nafter  %v", before, after)
	}

	// tus, resumed across a restart of services: the scan stream is lost
	// with the process, so the stored bytes are scanned at completion.
	data := infectedAt(5, 3*scanChunk, 5*scanChunk/2)
	loc := tusCreate(t, c.web.url(), c.token, int64(len(data)), "resumed.bin")
	first := 3 * scanChunk / 2
	resp := tusReq(t, c.web.url(), c.token, http.MethodPatch, loc, data[:first], map[string]string{"Upload-Offset": "0"})
	wantStatus(t, "first PATCH", resp, http.StatusNoContent)
	c.restartServices(t, nil)
	resp = tusReq(t, c.web.url(), c.token, http.MethodHead, loc, nil, nil)
	wantStatus(t, "HEAD after the restart", resp, http.StatusOK)
	if off := tusOffset(t, resp); off != int64(first) {
		t.Fatalf("offset after the restart %d, want %d", off, first)
	}
	resp = tusReq(t, c.web.url(), c.token, http.MethodPatch, loc, data[first:], map[string]string{"Upload-Offset": strconv.Itoa(first)})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("final PATCH: %d, want 422", resp.StatusCode)
	}
	wantStatus(t, "HEAD of the refused upload", tusReq(t, c.web.url(), c.token, http.MethodHead, loc, nil, nil), http.StatusNotFound)
	checkAbsent(t, c, "resumed.bin")
	wantRefusedRecord(t, c, "c1/resumed.bin", "stored")
	if after := storageFiles(t, c); strings.Join(after, "\n") != strings.Join(before, "\n") {
		t.Fatalf("the refused tus upload left files in the storage: %v", after)
	}

	alerts.waitFor(t, 30*time.Second, "4 infected alerts", func() bool { return len(alerts.alerts["infected"]) == 4 })
	for _, b := range alerts.alerts["infected"] {
		if strings.Contains(b, "eicar.txt") || strings.Contains(b, "c1/") || !strings.Contains(b, clamdtest.Signature) {
			t.Fatalf("alert %s: names a file, or not the signature", b)
		}
	}
}

// TestScanFaults: clamd killed in the middle of an upload, and clamd too
// slow (a proxy holds its answers): uploads fail closed (503) and commit
// once clamd is back; under DEPOT_SCAN_FAIL_OPEN they commit unscanned,
// and depot scan and the scheduled rescan judge them later.
func TestScanFaults(t *testing.T) {
	c, d, alerts := scanCluster(t)

	// clamd killed mid-upload: the final PATCH is refused (503, nothing
	// visible), the session stays; once clamd is back, the client's HEAD
	// commits it after a scan of the stored bytes.
	data, _ := payloadBytes(6, 3*scanChunk)
	loc := tusCreate(t, c.web.url(), c.token, int64(len(data)), "killed.bin")
	half := 3 * scanChunk / 2
	wantStatus(t, "first PATCH", tusReq(t, c.web.url(), c.token, http.MethodPatch, loc, data[:half], map[string]string{"Upload-Offset": "0"}), http.StatusNoContent)
	d.Kill()
	resp := tusReq(t, c.web.url(), c.token, http.MethodPatch, loc, data[half:], map[string]string{"Upload-Offset": strconv.Itoa(half)})
	wantStatus(t, "final PATCH with clamd dead", resp, http.StatusServiceUnavailable)
	checkAbsent(t, c, "killed.bin")
	if err := d.Run(); err != nil {
		t.Fatal(err)
	}
	resp = tusReq(t, c.web.url(), c.token, http.MethodHead, loc, nil, nil)
	wantStatus(t, "HEAD once clamd is back", resp, http.StatusOK)
	checkOnDisk(t, c, "killed.bin", data)
	recs := completedRecords(t, c, "c1/killed.bin")
	if len(recs) != 1 || recs[0].Metadata["scan_result"] != "clean" || recs[0].Metadata["scan_source"] != "stored" {
		t.Fatalf("upload.completed records %+v, want one clean verdict of the stored bytes", recs)
	}

	// clamd slow: past DEPOT_SCAN_TIMEOUT the upload is refused (503).
	slow := d.Hold(t)
	slowEnv := map[string]string{"DEPOT_CLAMD_ADDR": slow.Addr(), "DEPOT_SCAN_TIMEOUT": "1s"}
	c.restartServices(t, slowEnv)
	cleanBody, _ := payloadBytes(7, 2*scanChunk)
	resp = c.do("PUT", "/api/v1/files/c1/slow.csv", bytes.NewReader(cleanBody), nil)
	if b := readAll(t, resp); resp.StatusCode != http.StatusServiceUnavailable || errorCode(b) != "unavailable" {
		t.Fatalf("PUT with clamd slow: %d %s, want 503 unavailable", resp.StatusCode, b)
	}
	checkAbsent(t, c, "slow.csv")

	// Fail-open: the same uploads commit, marked unscanned — EICAR too.
	slowEnv["DEPOT_SCAN_FAIL_OPEN"] = "on"
	c.restartServices(t, slowEnv)
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/slow.csv", bytes.NewReader(cleanBody), nil), http.StatusCreated)
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/late.txt", strings.NewReader("a\n"+clamdtest.EICAR), nil), http.StatusCreated)
	for _, name := range []string{"slow.csv", "late.txt"} {
		if got := listedScan(t, c, name); got != "unscanned" {
			t.Fatalf("%s listed with scan %q, want unscanned", name, got)
		}
		recs := completedRecords(t, c, "c1/"+name)
		if len(recs) != 1 || recs[0].Metadata["scan_result"] != "unscanned" || recs[0].Metadata["scan_reason"] != "unavailable" {
			t.Fatalf("%s: records %+v, want unscanned (unavailable)", name, recs)
		}
	}

	// depot scan, with clamd answering: one clean, one infected, which
	// downloads then refuse.
	env := map[string]string{
		"DEPOT_DATABASE_URL": c.dbURL, "DEPOT_STORAGE_URL": "file://" + c.storageDir(),
		"DEPOT_SCAN": "clamav", "DEPOT_CLAMD_ADDR": d.Addr(), "DEPOT_ALERT_WEBHOOK_URL": alerts.srv.URL + "/alerts",
	}
	out, errOut, code := depotCLIResult(env, "scan")
	if code == 0 || !strings.Contains(out, "scanned: 2 (clean 1, infected 1)") {
		t.Fatalf("depot scan: exit %d\n%s%s", code, out, errOut)
	}
	if got := listedScan(t, c, "slow.csv"); got != "clean" {
		t.Fatalf("slow.csv after the rescan: %q", got)
	}
	wantInfected(t, "GET of the version a rescan found infected", c.do("GET", "/api/v1/files/c1/late.txt", nil, nil))
	scanned := events(t, c, depot.ActionFileScanned, "c1/")
	if len(scanned) != 2 {
		t.Fatalf("%d file.scanned records, want 2", len(scanned))
	}
	for _, e := range scanned {
		want := map[string]string{"c1/slow.csv": "clean", "c1/late.txt": "infected"}[e.Key]
		if e.Metadata["scan_result"] != want || e.Metadata["version"] == "" {
			t.Fatalf("file.scanned of %s: %+v, want %s", e.Key, e.Metadata, want)
		}
	}
	alerts.waitFor(t, 30*time.Second, "the rescan's infected alert", func() bool { return len(alerts.alerts["infected"]) == 1 })
	if out, errOut, code := depotCLIResult(env, "scan"); code != 0 || !strings.Contains(out, "scanned: 0") {
		t.Fatalf("second depot scan: exit %d\n%s%s", code, out, errOut)
	}

	// The scheduled rescan: a version committed unscanned is judged once
	// the job runs with clamd answering (its alert is the signal).
	expectStatus(t, c.do("PUT", "/api/v1/files/c1/later.txt", strings.NewReader(clamdtest.EICAR+"\n"), nil), http.StatusCreated)
	if got := listedScan(t, c, "later.txt"); got != "unscanned" {
		t.Fatalf("later.txt: %q, want unscanned", got)
	}
	c.restartServices(t, map[string]string{"DEPOT_MAINTENANCE": "on", "DEPOT_SCAN_INTERVAL": "1s"})
	alerts.waitFor(t, 60*time.Second, "the scheduled rescan's alert", func() bool { return len(alerts.alerts["infected"]) == 2 })
	wantInfected(t, "GET of later.txt", c.do("GET", "/api/v1/files/c1/later.txt", nil, nil))
	if strings.Contains(c.services.logs(), "later.txt") || strings.Contains(c.services.logs(), "slow.csv") {
		t.Fatal("services logged a file name")
	}
}
