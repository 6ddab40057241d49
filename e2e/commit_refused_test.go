package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path"
	"strconv"
	"strings"
	"testing"

	"depot"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// refuseCommits makes the database refuse every upload.completed record,
// as an audit store that fails at the commit would; the returned function
// lifts the refusal.
func refuseCommits(t *testing.T, engine, dbURL string) (lift func()) {
	t.Helper()
	db := openAuditDB(t, dbURL)
	create := `CREATE TRIGGER refuse_commits BEFORE INSERT ON audit_events WHEN NEW.action = 'upload.completed'
		BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`
	drop := `DROP TRIGGER refuse_commits`
	if engine == servicedbtest.Postgres {
		create = `CREATE FUNCTION refuse_commits() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$;
			CREATE TRIGGER refuse_commits BEFORE INSERT ON audit_events FOR EACH ROW
			WHEN (NEW.action = 'upload.completed') EXECUTE FUNCTION refuse_commits()`
		drop = `DROP TRIGGER refuse_commits ON audit_events; DROP FUNCTION refuse_commits()`
	}
	if _, err := db.SQL().ExecContext(context.Background(), create); err != nil {
		t.Fatal(err)
	}
	return func() {
		t.Helper()
		if _, err := db.SQL().ExecContext(context.Background(), drop); err != nil {
			t.Fatal(err)
		}
	}
}

// TestAuditRefusedAtCommit: with the audit store refusing the commit
// record, overwrites by a 10 MiB PUT (an upload session), a 1 MiB PUT
// (one-shot) and tus each answer 503; the previous version stays current
// and downloadable; the tus upload's HEAD and final PATCH never report
// success; and once the audit store accepts records again the tus upload
// completes from where it was, with one upload.completed record (issue 21,
// failure 2).
func TestAuditRefusedAtCommit(t *testing.T) {
	t.Parallel()
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		c := newCluster(t, clusterOpts{dbURL: e.URL, webEnv: map[string]string{"DEPOT_CHUNK_SIZE": "4194304"}})
		const key = "c1/refused/labs.csv"
		old := []byte("id,result\n1,negative\n")
		expectStatus(t, c.do("PUT", "/api/v1/files/"+key, bytes.NewReader(old), nil), http.StatusCreated)
		lift := refuseCommits(t, e.Engine, c.dbURL)

		for _, size := range []int{10 << 20, 1 << 20} {
			body, _ := payloadBytes(uint64(400+size), size)
			resp := c.do("PUT", "/api/v1/files/"+key, bytes.NewReader(body), nil)
			if b := expectStatus(t, resp, http.StatusServiceUnavailable); errorCode(b) != "unavailable" {
				t.Fatalf("%d-byte PUT with the audit store refusing: %s", size, b)
			}
		}
		tusBody, tusSHA := payloadBytes(410, 300_000)
		resp := tusReq(t, c.web.url(), c.token, "POST", tusPath, nil, map[string]string{
			"Upload-Length": strconv.Itoa(len(tusBody)), "Upload-Metadata": tusMeta("cohort", "c1", "filename", "refused/labs.csv"),
		})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("tus create: %d", resp.StatusCode)
		}
		loc := tusPath + path.Base(resp.Header.Get("Location"))
		resp = tusReq(t, c.web.url(), c.token, "PATCH", loc, tusBody, map[string]string{"Upload-Offset": "0"})
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("final tus PATCH with the audit store refusing: %d, want 503", resp.StatusCode)
		}
		// A tus client asks HEAD where to continue; Upload-Offset equal to
		// Upload-Length would tell it the upload is done.
		for i := 0; i < 2; i++ {
			resp = tusReq(t, c.web.url(), c.token, "HEAD", loc, nil, nil)
			if resp.StatusCode < 300 && resp.Header.Get("Upload-Offset") == strconv.Itoa(len(tusBody)) {
				t.Fatalf("HEAD reports the uncommitted upload complete (%d, offset %s)", resp.StatusCode, resp.Header.Get("Upload-Offset"))
			}
			resp = tusReq(t, c.web.url(), c.token, "PATCH", loc, []byte{}, map[string]string{"Upload-Offset": strconv.Itoa(len(tusBody))})
			if resp.StatusCode < 300 {
				t.Fatalf("an empty final PATCH of the uncommitted upload answered %d", resp.StatusCode)
			}
		}

		// The acknowledged version is untouched.
		if got := expectStatus(t, c.do("GET", "/api/v1/files/"+key, nil, nil), http.StatusOK); !bytes.Equal(got, old) {
			t.Fatalf("after refused commits the file reads %d bytes, want the acknowledged version", len(got))
		}
		if ids := mustVersions(t, c, key); len(ids) != 1 {
			t.Fatalf("%d versions after refused commits, want 1", len(ids))
		}

		// The audit store accepts again: the tus upload completes.
		lift()
		resp = tusReq(t, c.web.url(), c.token, "HEAD", loc, nil, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Upload-Offset") != strconv.Itoa(len(tusBody)) {
			t.Fatalf("HEAD once the audit store accepts: %d, offset %s", resp.StatusCode, resp.Header.Get("Upload-Offset"))
		}
		if got := expectStatus(t, c.do("GET", "/api/v1/files/"+key, nil, nil), http.StatusOK); sha(got) != tusSHA {
			t.Fatal("the completed tus upload is not current")
		}
		db := openAuditDB(t, c.dbURL)
		done, err := db.Events(context.Background(), servicedb.Filter{KeyPrefix: key, Action: depot.ActionUploadCompleted})
		if err != nil || len(done) != 2 {
			t.Fatalf("%d upload.completed records for the file, want 2 (the first version and the tus upload): %v", len(done), err)
		}
		checkAfterCrashes(t, c)
	})
}

// TestUploaderCannotLosePermanentVersions: an uploader cannot re-class a
// manager's permanent file (empty PUT with Depot-Class: temporary, tus
// with class metadata, a chunked PUT), may add versions that keep the
// file's class, and nothing of it is lost when cleanup runs with every
// temporary version due (issue 21, failure 3).
func TestUploaderCannotLosePermanentVersions(t *testing.T) {
	t.Parallel()
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		// Every temporary version is due at once.
		c := newCluster(t, clusterOpts{dbURL: e.URL, servicesEnv: map[string]string{"DEPOT_TEMP_TTL": "1ms"},
			webEnv: map[string]string{"DEPOT_CHUNK_SIZE": "65536"}})
		bob := c.addUser(t, "bob", "uploader")
		const perm, temp = "c1/keep/cohort.csv", "c1/scratch/work.csv"
		first := []byte("id\n1\n")
		expectStatus(t, c.do("PUT", "/api/v1/files/"+perm, bytes.NewReader(first), nil), http.StatusCreated)
		expectStatus(t, c.do("PUT", "/api/v1/files/"+temp, strings.NewReader("scratch\n"), map[string]string{"Depot-Class": "temporary"}), http.StatusCreated)

		big, _ := payloadBytes(420, 200_000)
		for _, body := range [][]byte{{}, big} {
			resp := c.doAs(bob, "PUT", "/api/v1/files/"+perm, bytes.NewReader(body), map[string]string{"Depot-Class": "temporary"})
			expectStatus(t, resp, http.StatusForbidden)
		}
		resp := tusReq(t, c.web.url(), bob, "POST", tusPath, nil, map[string]string{
			"Upload-Length": "0", "Upload-Metadata": tusMeta("cohort", "c1", "filename", "keep/cohort.csv", "class", "temporary"),
		})
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("tus re-class by an uploader: %d, want 403", resp.StatusCode)
		}
		resp = c.doAs(bob, "PUT", "/api/v1/files/"+temp, strings.NewReader("now permanent\n"), map[string]string{"Depot-Class": "permanent"})
		expectStatus(t, resp, http.StatusForbidden)

		// Versions without a class keep the file's class.
		second := []byte("id\n1\n2\n")
		var added fileJSON
		if err := json.Unmarshal(expectStatus(t, c.doAs(bob, "PUT", "/api/v1/files/"+perm, bytes.NewReader(second), nil), http.StatusCreated), &added); err != nil || added.Class != "permanent" {
			t.Fatalf("uploader's new version of a permanent file: %+v %v", added, err)
		}
		if err := json.Unmarshal(expectStatus(t, c.doAs(bob, "PUT", "/api/v1/files/"+temp, bytes.NewReader(big), nil), http.StatusCreated), &added); err != nil || added.Class != "temporary" {
			t.Fatalf("uploader's new version of a temporary file: %+v %v", added, err)
		}
		for _, req := range []struct{ method, query string }{{"DELETE", ""}, {"DELETE", "?purge"}} {
			expectStatus(t, c.doAs(bob, req.method, "/api/v1/files/"+perm+req.query, nil, nil), http.StatusForbidden)
		}

		var res struct {
			Deleted int `json:"deleted"`
		}
		if err := json.Unmarshal([]byte(depotCLI(t, c.maintEnv(nil), "cleanup", "--json")), &res); err != nil || res.Deleted != 2 {
			t.Fatalf("cleanup with every temporary version due: %+v %v, want both temporary versions purged", res, err)
		}
		h, code := c.versions(t, c.token, perm)
		if code != http.StatusOK || len(h.Versions) != 2 || h.Versions[0].SHA256 != sha(second) || h.Versions[1].SHA256 != sha(first) {
			t.Fatalf("the permanent file after cleanup: %d %+v", code, h)
		}
		for _, v := range h.Versions {
			if !c.objectExists(t, v.Version) {
				t.Fatalf("version %s of the permanent file lost its object", v.Version)
			}
		}
		expectStatus(t, c.do("GET", "/api/v1/files/"+temp, nil, nil), http.StatusNotFound)
		denied := auditEvents(t, openAuditDB(t, c.dbURL), depot.ActionAccessDenied)
		classChanges := 0
		for _, ev := range denied {
			if ev.Metadata["reason"] == "class_change" && ev.Actor == "bob" {
				classChanges++
			}
		}
		if classChanges < 4 {
			t.Fatalf("%d class changes by the uploader audited as access.denied, want 4", classChanges)
		}
	})
}
