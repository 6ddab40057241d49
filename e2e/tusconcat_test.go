package e2e

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"depot/internal/crashpoint"
)

// tusPartial creates a partial upload (Upload-Concat: partial) of data for
// cohort with token and sends its bytes in one PATCH unless unfinished; it
// returns the partial's path.
func tusPartial(t *testing.T, base, token, cohort string, data []byte, unfinished bool) string {
	t.Helper()
	resp := tusReq(t, base, token, http.MethodPost, tusPath, nil, map[string]string{
		"Upload-Concat": "partial", "Upload-Length": strconv.Itoa(len(data)), "Upload-Metadata": tusMeta("cohort", cohort),
	})
	wantStatus(t, "partial creation", resp, http.StatusCreated)
	if v := resp.Header.Get("Upload-Concat"); v != "partial" {
		t.Fatalf("partial creation: Upload-Concat %q, want partial", v)
	}
	loc := resp.Header.Get("Location")
	body := data
	if unfinished {
		body = data[:len(data)/2]
	}
	resp = tusReq(t, base, token, http.MethodPatch, loc, body, map[string]string{"Upload-Offset": "0"})
	wantStatus(t, "partial PATCH", resp, http.StatusNoContent)
	return loc
}

// tusCall is tusReq returning the answer's body too.
func tusCall(t *testing.T, base, token, method, path string, body []byte, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/offset+octet-stream")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, string(readAll(t, resp))
}

// tusFinal creates the final upload of parts at c1/name.
func tusFinal(t *testing.T, base, token, name string, body []byte, parts ...string) (*http.Response, string) {
	t.Helper()
	return tusCall(t, base, token, http.MethodPost, tusPath, body, map[string]string{
		"Upload-Concat": "final;" + strings.Join(parts, " "), "Upload-Metadata": tusMeta("cohort", "c1", "filename", name),
	})
}

// TestTusConcatenation: the tus concatenation extension over plain HTTP.
// Partial uploads are never visible, even complete; a final upload is
// refused, naming the reason, when a part is unfinished, another user's,
// of another cohort, not a partial, or when it carries bytes; the size
// limit holds for each partial and for the final's sum. The final upload
// is committed once, byte-exact, with one upload.completed record naming
// its parts, the parts released; HEAD reports Upload-Concat, and PATCH on
// the final is 403.
func TestTusConcatenation(t *testing.T) {
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_MAX_UPLOAD_SIZE": "100000"}})
	depotCLI(t, c.dbEnv(), "cohorts", "add", "c2")
	depotCLI(t, c.dbEnv(), "cohorts", "grant", "alice", "c2", "uploader")
	depotCLI(t, c.dbEnv(), "users", "add", "bob")
	depotCLI(t, c.dbEnv(), "cohorts", "grant", "bob", "c1", "uploader")
	bob := strings.TrimSpace(depotCLI(t, c.dbEnv(), "tokens", "create", "bob"))
	base := c.web.url()

	if v := tusReq(t, base, "", http.MethodOptions, tusPath, nil, nil).Header.Get("Tus-Extension"); !strings.Contains(v, "concatenation") {
		t.Fatalf("Tus-Extension %q does not list concatenation", v)
	}
	data, _ := payloadBytes(31, 90_000)
	a, b, d := data[:30_000], data[30_000:60_001], data[60_001:]
	pa := tusPartial(t, base, c.token, "c1", a, false)
	pb := tusPartial(t, base, c.token, "c1", b, false)
	pd := tusPartial(t, base, c.token, "c1", d, false)

	// A complete partial is not committed and shows as partial.
	head := tusReq(t, base, c.token, http.MethodHead, pa, nil, nil)
	wantStatus(t, "HEAD partial", head, http.StatusOK)
	if head.Header.Get("Upload-Concat") != "partial" || tusOffset(t, head) != int64(len(a)) {
		t.Fatalf("HEAD partial: Upload-Concat %q, offset %s", head.Header.Get("Upload-Concat"), head.Header.Get("Upload-Offset"))
	}
	if listing := expectStatus(t, c.do("GET", "/api/v1/files/c1/", nil, nil), http.StatusOK); bytes.Contains(listing, []byte(`"path"`)) {
		t.Fatalf("a partial upload is listed: %s", listing)
	}

	refusals := []struct {
		name   string
		status int
		says   string
		resp   func() (*http.Response, string)
	}{
		{"unfinished part", http.StatusConflict, "not finished", func() (*http.Response, string) {
			return tusFinal(t, base, c.token, "cat.bin", nil, pa, tusPartial(t, base, c.token, "c1", a, true))
		}},
		{"another user's part", http.StatusBadRequest, "does not exist for you", func() (*http.Response, string) {
			return tusFinal(t, base, c.token, "cat.bin", nil, pa, tusPartial(t, base, bob, "c1", b, false))
		}},
		{"part of another cohort", http.StatusBadRequest, "another cohort", func() (*http.Response, string) {
			return tusFinal(t, base, c.token, "cat.bin", nil, pa, tusPartial(t, base, c.token, "c2", b, false))
		}},
		{"not a partial", http.StatusBadRequest, "not a partial upload", func() (*http.Response, string) {
			return tusFinal(t, base, c.token, "cat.bin", nil, pa, tusCreate(t, base, c.token, 10, "plain.bin"))
		}},
		{"a part named twice", http.StatusBadRequest, "named twice", func() (*http.Response, string) {
			return tusFinal(t, base, c.token, "cat.bin", nil, pa, pa)
		}},
		{"a final with bytes", http.StatusForbidden, "takes no bytes", func() (*http.Response, string) {
			return tusFinal(t, base, c.token, "cat.bin", []byte("x"), pa)
		}},
		{"a final with a chunked body", http.StatusForbidden, "takes no bytes", func() (*http.Response, string) {
			req, err := http.NewRequest(http.MethodPost, base+tusPath, io.MultiReader(strings.NewReader("x")))
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = -1 // sent chunked, with no Content-Type
			req.Header.Set("Tus-Resumable", "1.0.0")
			req.Header.Set("Authorization", "Bearer "+c.token)
			req.Header.Set("Upload-Concat", "final;"+pa)
			req.Header.Set("Upload-Metadata", tusMeta("cohort", "c1", "filename", "cat.bin"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			return resp, string(readAll(t, resp))
		}},
		{"a URL of another route", http.StatusBadRequest, "not the URL of an upload", func() (*http.Response, string) {
			return tusFinal(t, base, c.token, "cat.bin", nil, "/api/v1/files/c1/x")
		}},
		{"a partial over the size limit", http.StatusRequestEntityTooLarge, "limit", func() (*http.Response, string) {
			return tusCall(t, base, c.token, http.MethodPost, tusPath, nil, map[string]string{
				"Upload-Concat": "partial", "Upload-Length": "100001", "Upload-Metadata": tusMeta("cohort", "c1")})
		}},
		{"a partial without a cohort", http.StatusBadRequest, "metadataForPartialUploads", func() (*http.Response, string) {
			return tusCall(t, base, c.token, http.MethodPost, tusPath, nil, map[string]string{"Upload-Concat": "partial", "Upload-Length": "1"})
		}},
		{"a final over the size limit", http.StatusRequestEntityTooLarge, "limit", func() (*http.Response, string) {
			return tusFinal(t, base, c.token, "cat.bin", nil, pa, pb, pd, tusPartial(t, base, c.token, "c1", data[:20_000], false))
		}},
	}
	for _, r := range refusals {
		resp, body := r.resp()
		if resp.StatusCode != r.status || !strings.Contains(body, r.says) {
			t.Errorf("%s: %d %s, want %d saying %q", r.name, resp.StatusCode, body, r.status, r.says)
		}
	}
	checkAbsent(t, c, "cat.bin")

	// The final upload.
	resp, body := tusFinal(t, base, c.token, "cat.bin", nil, "http://elsewhere.example"+pa, pb, pd)
	wantStatus(t, "final creation "+body, resp, http.StatusCreated)
	loc := resp.Header.Get("Location")
	wantConcat := "final;" + strings.Join([]string{pa, pb, pd}, " ")
	if v := resp.Header.Get("Upload-Concat"); v != wantConcat || tusOffset(t, resp) != int64(len(data)) {
		t.Errorf("final creation: Upload-Concat %q (want %q), Upload-Offset %s", v, wantConcat, resp.Header.Get("Upload-Offset"))
	}
	checkOnDisk(t, c, "cat.bin", data)
	recs := completedRecords(t, c, "c1/cat.bin")
	if len(recs) != 1 || recs[0].UploadID != strings.TrimPrefix(loc, tusPath) || recs[0].StoredSize != int64(len(data)) ||
		recs[0].SHA256 != sha(data) || len(strings.Fields(recs[0].Metadata["concat_parts"])) != 3 {
		t.Fatalf("upload.completed records of c1/cat.bin: %+v, want one of the final upload naming 3 parts", recs)
	}
	head = tusReq(t, base, c.token, http.MethodHead, loc, nil, nil)
	if head.StatusCode != http.StatusOK || head.Header.Get("Upload-Concat") != wantConcat || tusOffset(t, head) != int64(len(data)) {
		t.Errorf("HEAD final: %d, Upload-Concat %q, Upload-Offset %s", head.StatusCode, head.Header.Get("Upload-Concat"), head.Header.Get("Upload-Offset"))
	}
	if resp, body := tusCall(t, base, c.token, http.MethodPatch, loc, []byte{}, map[string]string{"Upload-Offset": strconv.Itoa(len(data))}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("PATCH on the final upload: %d %s, want 403", resp.StatusCode, body)
	}
	for _, p := range []string{pa, pb, pd} {
		if resp := tusReq(t, base, c.token, http.MethodHead, p, nil, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("HEAD of a concatenated partial: %d, want 404 (released)", resp.StatusCode)
		}
	}
	// A second final from the same parts finds them gone.
	if resp, body := tusFinal(t, base, c.token, "again.bin", nil, pa); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a final from released parts: %d %s, want 400", resp.StatusCode, body)
	}
	listing := expectStatus(t, c.do("GET", "/api/v1/files/c1/", nil, nil), http.StatusOK)
	if n := bytes.Count(listing, []byte(`"path"`)); n != 1 {
		t.Errorf("the listing has %d files, want 1 (cat.bin): %s", n, listing)
	}
}

// TestTusConcatLongCopyNotCut: a final upload whose server-side copy takes
// longer than DEPOT_SERVICES_TIMEOUT (services is held in the middle of the
// copy, at the concat-copying step, for 3 × the timeout) is not taken for a
// hung services tier: services keeps the internal answer alive, and the
// final upload succeeds once the copy goes on. Partials count as open
// sessions (DEPOT_MAX_OPEN_UPLOADS_PER_USER=2: a third is refused 429), and
// a user at that cap can still join them.
func TestTusConcatLongCopyNotCut(t *testing.T) {
	pauseDir := t.TempDir()
	for _, name := range []string{"reached", "resume"} {
		if err := syscall.Mkfifo(filepath.Join(pauseDir, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const timeout = time.Second
	c := newCluster(t, clusterOpts{
		webEnv: map[string]string{"DEPOT_SERVICES_TIMEOUT": timeout.String()},
		servicesEnv: map[string]string{"DEPOTTEST_PAUSE_AT": "concat-copying", "DEPOTTEST_PAUSE_DIR": pauseDir,
			"DEPOT_MAX_OPEN_UPLOADS_PER_USER": "2"},
	})
	data, _ := payloadBytes(32, 50_000)
	pa := tusPartial(t, c.web.url(), c.token, "c1", data[:20_000], false)
	pb := tusPartial(t, c.web.url(), c.token, "c1", data[20_000:], false)
	third := tusReq(t, c.web.url(), c.token, http.MethodPost, tusPath, nil, map[string]string{
		"Upload-Concat": "partial", "Upload-Length": "5", "Upload-Metadata": tusMeta("cohort", "c1")})
	wantStatus(t, "a partial past the open-sessions cap", third, http.StatusTooManyRequests)
	type answer struct {
		status int
		body   string
	}
	done := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, c.web.url()+tusPath, nil)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Upload-Concat", "final;"+pa+" "+pb)
		req.Header.Set("Upload-Metadata", tusMeta("cohort", "c1", "filename", "slow.bin"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- answer{0, err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- answer{resp.StatusCode, string(b)}
	}()
	f, err := os.Open(filepath.Join(pauseDir, "reached")) // blocks until services holds
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, f)
	f.Close()
	time.Sleep(3 * timeout) // longer than web waits for a silent services tier
	select {
	case a := <-done:
		t.Fatalf("the final upload ended while services was still copying: %d %s", a.status, a.body)
	default:
	}
	w, err := os.OpenFile(filepath.Join(pauseDir, "resume"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	a := <-done
	if a.status != http.StatusCreated {
		t.Fatalf("final upload: %d %s, want 201", a.status, a.body)
	}
	checkOnDisk(t, c, "slow.bin", data)
	if n := len(completedRecords(t, c, "c1/slow.bin")); n != 1 {
		t.Fatalf("%d upload.completed records, want 1", n)
	}
}

// TestTusConcatCrash kills services (at a crashpoint) in the commit of a
// final upload. Before the commit's transaction: nothing is visible, the
// partials are kept, and the client's retry of the final upload commits
// the file. After it: the file is there, once, and the partials are gone
// with it (removed in the same transaction), so a retry of the final
// upload is refused instead of committing the file again.
func TestTusConcatCrash(t *testing.T) {
	c := newCluster(t, clusterOpts{webEnv: map[string]string{"DEPOT_CHUNK_RETRIES": "1"}})
	data, _ := payloadBytes(33, 60_000)
	for _, tc := range []struct {
		point string
		name  string
	}{{crashpoint.BeforeCommit, "before.bin"}, {crashpoint.AfterCommit, "after.bin"}} {
		pa := tusPartial(t, c.web.url(), c.token, "c1", data[:25_000], false)
		pb := tusPartial(t, c.web.url(), c.token, "c1", data[25_000:], false)
		c.restartServices(t, map[string]string{"DEPOTTEST_CRASH_AT": tc.point})
		if resp, body := tusFinal(t, c.web.url(), c.token, tc.name, nil, pa, pb); resp.StatusCode < 500 {
			t.Fatalf("%s: the final upload answered %d %s although services was killed", tc.point, resp.StatusCode, body)
		}
		c.services.waitExit(t)
		c.restartServices(t, nil)
		resp, body := tusFinal(t, c.web.url(), c.token, tc.name, nil, pa, pb)
		if tc.point == crashpoint.BeforeCommit {
			wantStatus(t, "the retried final upload "+body, resp, http.StatusCreated)
		} else if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "does not exist") {
			t.Fatalf("%s: the retried final upload: %d %s, want 400 (the partials went with the commit)", tc.point, resp.StatusCode, body)
		}
		checkOnDisk(t, c, tc.name, data)
		if n := len(completedRecords(t, c, "c1/"+tc.name)); n != 1 {
			t.Fatalf("%s: %d upload.completed records, want 1", tc.point, n)
		}
		for _, p := range []string{pa, pb} {
			if resp := tusReq(t, c.web.url(), c.token, http.MethodHead, p, nil, nil); resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: HEAD of a joined partial: %d, want 404", tc.point, resp.StatusCode)
			}
		}
	}
}
