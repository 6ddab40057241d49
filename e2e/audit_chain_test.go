package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// put sends one PUT as alice from any goroutine and returns status and body.
func (c *cluster) putRaw(path string, data []byte) (int, []byte, error) {
	req, err := http.NewRequest("PUT", c.web.url()+path, bytes.NewReader(data))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// checkLinear asserts that the whole trail is seq 1..N without gap, every
// prev_hash is the previous record's hash, and VerifyChain agrees.
func checkLinear(t *testing.T, db *servicedb.DB) []depot.AuditEvent {
	t.Helper()
	evs := auditAfter(t, db, 0)
	prev := servicedb.GenesisHash
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("record %d has seq %d: gap or duplicate", i+1, ev.Seq)
		}
		if ev.PrevHash != prev {
			t.Fatalf("seq %d: prev_hash %s, want %s (fork)", ev.Seq, ev.PrevHash, prev)
		}
		prev = ev.Hash
	}
	rep, err := db.VerifyChain(context.Background())
	// Other writers (maintenance jobs) may append between the two reads.
	if err != nil || !rep.OK || rep.LastSeq < int64(len(evs)) {
		t.Fatalf("VerifyChain: %+v, %v (records %d)", rep, err, len(evs))
	}
	return evs
}

func TestAuditConcurrentUploads(t *testing.T) {
	t.Parallel()
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		// 50 uploads of one user at once: lift the per-user limit of web.
		c := newCluster(t, clusterOpts{dbURL: e.URL, webEnv: map[string]string{"DEPOT_MAX_UPLOADS_PER_USER": "64"}})
		db := openAuditDB(t, e.URL)
		const n = 50
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range n {
			size := 1000 + i
			if i%10 == 0 {
				size = 8<<20 + 100 + i // larger than a chunk: an internal upload session
			}
			data, _ := payloadBytes(uint64(300+i), size)
			wg.Go(func() {
				code, b, err := c.putRaw(fmt.Sprintf("/api/v1/files/c1/conc/%02d.csv", i), data)
				if err == nil && code != http.StatusCreated {
					err = fmt.Errorf("status %d: %s", code, b)
				}
				if err != nil {
					errs <- fmt.Errorf("upload %d: %w", i, err)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		evs := checkLinear(t, db)
		count := map[depot.Action]int{}
		for _, ev := range evs {
			if strings.HasPrefix(ev.Key, "c1/conc/") {
				count[ev.Action]++
			}
		}
		// A body that fits in one chunk is one request and one record; a
		// larger one has an upload session, started and completed.
		if count[depot.ActionUploadStarted] != n/10 || count[depot.ActionUploadCompleted] != n || len(count) != 2 {
			t.Fatalf("records of the concurrent uploads: %v, want %d started and %d completed", count, n/10, n)
		}
	})
}

func TestAuditFailClosed(t *testing.T) {
	t.Parallel()
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		c := newCluster(t, clusterOpts{dbURL: e.URL})
		db := openAuditDB(t, e.URL)
		before, beforeSum := payloadBytes(400, 2000)
		expectStatus(t, c.do("PUT", "/api/v1/files/c1/before.csv", bytes.NewReader(before), nil), http.StatusCreated)
		head := auditHead(t, db)

		// The audit table disappears under the running services tier: every
		// audit write fails (as with a stopped or read-only database).
		mustExec(t, db.SQL(), "ALTER TABLE audit_events RENAME TO audit_events_away")
		restored := false
		restore := func() {
			if !restored {
				restored = true
				mustExec(t, db.SQL(), "ALTER TABLE audit_events_away RENAME TO audit_events")
			}
		}
		t.Cleanup(restore)

		small, _ := payloadBytes(401, 3000)
		big, _ := payloadBytes(402, 8<<20+5000) // through an internal upload session
		for _, u := range []struct {
			path string
			data []byte
		}{{"/api/v1/files/c1/new.csv", small}, {"/api/v1/files/c1/big.csv", big}} {
			resp := c.do("PUT", u.path, bytes.NewReader(u.data), nil)
			b := expectStatus(t, resp, http.StatusServiceUnavailable)
			expectErrorCode(t, b, depot.CodeUnavailable)
		}
		// Nothing is served unaudited either.
		resp := c.do("GET", "/api/v1/files/c1/before.csv", nil, nil)
		b := expectStatus(t, resp, http.StatusServiceUnavailable)
		expectErrorCode(t, b, depot.CodeUnavailable)
		if bytes.Contains(b, before[:100]) {
			t.Fatalf("file content served while the audit trail is down")
		}

		restore()
		if got := auditAfter(t, db, head); len(got) != 0 {
			t.Errorf("%d audit records written while the audit table was gone", len(got))
		}
		for _, p := range []string{"new.csv", "big.csv"} {
			expectStatus(t, c.do("GET", "/api/v1/files/c1/"+p, nil, nil), http.StatusNotFound)
			if _, err := c.currentVersion("c1/" + p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s has a version after a failed upload: %v", p, err)
			}
			var n int
			if err := db.SQL().QueryRowContext(context.Background(), "SELECT count(*) FROM versions WHERE storage_key = $1", "c1/"+p).Scan(&n); err != nil || n != 0 {
				t.Errorf("versions of %s: %d rows, %v", p, n, err)
			}
		}
		listing := expectStatus(t, c.do("GET", "/api/v1/files/c1/", nil, nil), http.StatusOK)
		if bytes.Contains(listing, []byte("new.csv")) || bytes.Contains(listing, []byte("big.csv")) {
			t.Errorf("a failed upload is listed: %s", listing)
		}
		if got := expectStatus(t, c.do("GET", "/api/v1/files/c1/before.csv", nil, nil), http.StatusOK); sha(got) != beforeSum {
			t.Errorf("before.csv changed")
		}
		// The service recovers by itself and the trail is intact.
		expectStatus(t, c.do("PUT", "/api/v1/files/c1/after.csv", bytes.NewReader(small), nil), http.StatusCreated)
		if out, code := auditVerify(t, e.URL); code != 0 {
			t.Fatalf("verify after the outage: exit %d: %s", code, out)
		}
		checkLinear(t, db)
	})
}

func expectErrorCode(t *testing.T, body []byte, code depot.Code) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != string(code) || e.Error.Message == "" {
		t.Fatalf("error body %q, want JSON error with code %q", body, code)
	}
}

func TestAuditCLIOutput(t *testing.T) {
	t.Parallel()
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		c := newCluster(t, clusterOpts{dbURL: e.URL})
		for i := range 3 {
			data, _ := payloadBytes(uint64(500+i), 500)
			expectStatus(t, c.do("PUT", fmt.Sprintf("/api/v1/files/c1/cli/%d.csv", i), bytes.NewReader(data), nil), http.StatusCreated)
		}
		expectStatus(t, c.do("GET", "/api/v1/files/c1/cli/0.csv", nil, nil), http.StatusOK)
		db := openAuditDB(t, e.URL)
		all := auditAfter(t, db, 0)

		show := depotCLI(t, c.dbEnv(), "audit", "show", "--cohort", "c1", "--days", "1")
		for i := range 3 {
			want := fmt.Sprintf(`path="c1/cli/%d.csv"`, i)
			if strings.Count(show, want) < 1 {
				t.Errorf("audit show: no line with %s:\n%s", want, show)
			}
		}
		if !strings.Contains(show, "upload.completed") || !strings.Contains(show, "file.download") || !strings.Contains(show, "user=alice") {
			t.Errorf("audit show lacks the upload/download lines:\n%s", show)
		}
		for _, line := range strings.Split(strings.TrimSpace(show), "\n") {
			if !strings.Contains(line, "c1") {
				t.Errorf("audit show --cohort c1 printed a line of another cohort: %q", line)
			}
		}
		only := depotCLI(t, c.dbEnv(), "audit", "show", "--action", "file.download")
		if n := len(strings.Split(strings.TrimSpace(only), "\n")); n != 1 {
			t.Errorf("audit show --action file.download: %d lines:\n%s", n, only)
		}

		jl := depotCLI(t, c.dbEnv(), "audit", "export", "--format", "jsonl")
		lines := strings.Split(strings.TrimSuffix(jl, "\n"), "\n")
		if len(lines) != len(all) {
			t.Fatalf("export jsonl: %d lines, want %d records", len(lines), len(all))
		}
		for i, line := range lines {
			var ev depot.AuditEvent
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("jsonl line %d does not parse: %v: %s", i+1, err, line)
			}
			if ev.Seq != all[i].Seq || ev.Hash != all[i].Hash || ev.Action != all[i].Action || ev.Key != all[i].Key {
				t.Errorf("jsonl line %d: %+v, want record %+v", i+1, ev, all[i])
			}
			// The export carries everything needed to recompute the hash.
			if servicedb.Hash(ev) != ev.Hash {
				t.Errorf("jsonl line %d does not re-hash to its hash", i+1)
			}
		}

		out := depotCLI(t, c.dbEnv(), "audit", "export", "--format", "csv", "--since", time.Now().UTC().Add(-time.Hour).Format(time.RFC3339))
		rows, err := csv.NewReader(strings.NewReader(out)).ReadAll()
		if err != nil {
			t.Fatalf("export csv does not parse: %v", err)
		}
		if len(rows) != len(all)+1 {
			t.Fatalf("export csv: %d rows, want header + %d", len(rows), len(all))
		}
		col := map[string]int{}
		for i, h := range rows[0] {
			col[h] = i
		}
		completed := 0
		for _, r := range rows[1:] {
			if r[col["action"]] == string(depot.ActionUploadCompleted) {
				completed++
				if !strings.HasPrefix(r[col["path"]], "c1/cli/") || r[col["actor"]] != "alice" || len(r[col["sha256"]]) != 64 || r[col["stored_size"]] != "500" {
					t.Errorf("csv upload.completed row: %v", r)
				}
			}
		}
		if completed != 3 {
			t.Errorf("csv: %d upload.completed rows, want 3", completed)
		}
		future := depotCLI(t, c.dbEnv(), "audit", "export", "--format", "jsonl", "--since", time.Now().UTC().Add(time.Hour).Format(time.RFC3339))
		if strings.TrimSpace(future) != "" {
			t.Errorf("export --since in the future: %q", future)
		}
	})
}
