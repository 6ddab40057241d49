package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"depot"
	"depot/servicedb"
)

// TestTusConcatPartDeletedMidCopy: a partial upload terminated (tus
// DELETE) while services copies the final upload, before its copy (the
// second part) or after it (the first): the final upload fails 409 and is
// closed by one upload.failed record, the terminated partial by one
// upload.aborted, nothing becomes visible, and the kept partial (already
// sealed) joins a retried final upload with a replacement part.
func TestTusConcatPartDeletedMidCopy(t *testing.T) {
	pauseDir := t.TempDir()
	for _, name := range []string{"reached", "resume"} {
		if err := syscall.Mkfifo(filepath.Join(pauseDir, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// released lets services go on from the concat-copying pause.
	released := func() {
		f, err := os.Open(filepath.Join(pauseDir, "reached")) // blocks until services holds
		if err != nil {
			t.Error(err)
			return
		}
		_, _ = io.Copy(io.Discard, f)
		f.Close()
		w, err := os.OpenFile(filepath.Join(pauseDir, "resume"), os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		w.Close()
	}
	c := newCluster(t, clusterOpts{servicesEnv: map[string]string{"DEPOTTEST_PAUSE_AT": "concat-copying", "DEPOTTEST_PAUSE_DIR": pauseDir}})
	base := c.web.url()
	data, _ := payloadBytes(42, 50_000)
	halves := [][]byte{data[:20_000], data[20_000:]}
	db, err := servicedb.Open(context.Background(), c.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, victim := range []int{1, 0} {
		parts := []string{tusPartial(t, base, c.token, "c1", halves[0], false), tusPartial(t, base, c.token, "c1", halves[1], false)}
		name := []string{"first.bin", "second.bin"}[victim]
		type answer struct {
			status int
			body   string
		}
		done := make(chan answer, 1)
		go func() {
			resp, body := tusFinal(t, base, c.token, name, nil, parts...)
			done <- answer{resp.StatusCode, body}
		}()
		f, err := os.Open(filepath.Join(pauseDir, "reached"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, f)
		f.Close()
		resp, body := tusCall(t, base, c.token, http.MethodDelete, parts[victim], nil, nil)
		wantStatus(t, "DELETE of a partial mid-copy "+body, resp, http.StatusNoContent)
		w, err := os.OpenFile(filepath.Join(pauseDir, "resume"), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		if a := <-done; a.status != http.StatusConflict {
			t.Fatalf("part %d deleted mid-copy: the final upload answered %d %s, want 409", victim, a.status, a.body)
		}
		checkAbsent(t, c, name)
		failed := events(t, c, depot.ActionUploadFailed, "c1/"+name)
		if len(failed) != 1 || failed[0].UploadID == "" || failed[0].ErrorCode != string(depot.CodeConflict) {
			t.Fatalf("part %d deleted mid-copy: upload.failed records %+v, want one (conflict) of the final", victim, failed)
		}
		if recs := closingRecords(t, db, failed[0].UploadID); len(recs) != 1 {
			t.Errorf("the failed final has %d closing records, want 1", len(recs))
		}
		id := parts[victim][len(tusPath):]
		if recs := closingRecords(t, db, id); len(recs) != 1 || recs[0].Action != depot.ActionUploadAborted {
			t.Errorf("the terminated partial's closing records: %+v, want one upload.aborted", recs)
		}
		// The kept partial was sealed; a retry with a replacement part works.
		parts[victim] = tusPartial(t, base, c.token, "c1", halves[victim], false)
		go released()
		resp, body = tusFinal(t, base, c.token, name, nil, parts...)
		wantStatus(t, "the retried final upload "+body, resp, http.StatusCreated)
		checkOnDisk(t, c, name, data)
		if n := len(completedRecords(t, c, "c1/"+name)); n != 1 {
			t.Fatalf("%d upload.completed records, want 1", n)
		}
	}
}
