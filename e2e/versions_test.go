package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/servicedb"
)

// historyJSON is the answer of GET …?versions.
type historyJSON struct {
	Deleted  *time.Time `json:"deleted"`
	Versions []struct {
		Version    string    `json:"version"`
		SHA256     string    `json:"sha256"`
		Class      string    `json:"class"`
		UploadedBy string    `json:"uploaded_by"`
		Size       int64     `json:"size"`
		Modified   time.Time `json:"modified"`
		Current    bool      `json:"current"`
	} `json:"versions"`
}

// versions reads the history of key as token's user; status is the HTTP
// status of the answer.
func (c *cluster) versions(t *testing.T, token, key string) (historyJSON, int) {
	t.Helper()
	resp := c.doAs(token, "GET", "/api/v1/files/"+key+"?versions", nil, nil)
	b := readAll(t, resp)
	var h historyJSON
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatalf("versions of %s: %v: %s", key, err, b)
		}
		for _, v := range h.Versions {
			if v.Version == "" || v.SHA256 == "" || v.Class == "" || v.Modified.IsZero() {
				t.Fatalf("versions of %s: an entry lacks a contract field: %s", key, b)
			}
		}
	}
	return h, resp.StatusCode
}

// maintEnv is the environment of a maintenance command (cleanup, verify)
// run against c's database and storage, plus extra.
func (c *cluster) maintEnv(extra map[string]string) map[string]string {
	env := map[string]string{"DEPOT_DATABASE_URL": c.dbURL, "DEPOT_STORAGE_URL": "file://" + c.storageDir()}
	if c.storageURL != "" {
		env["DEPOT_STORAGE_URL"] = c.storageURL
	}
	for k, v := range c.storageEnv {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// objectExists reports whether the object of version id is in c's storage.
func (c *cluster) objectExists(t *testing.T, id string) bool {
	t.Helper()
	var err error
	if c.storageURL == "" {
		_, err = os.Stat(c.objectPath(id))
	} else {
		_, err = s3Object(t, c.storageURL, "objects/"+id)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("object %s: %v", id, err)
	}
	return err == nil
}

// addUser creates user with role on cohort c1 and returns a token.
func (c *cluster) addUser(t *testing.T, user, role string) string {
	t.Helper()
	depotCLI(t, c.dbEnv(), "users", "add", user)
	depotCLI(t, c.dbEnv(), "cohorts", "grant", user, "c1", role)
	return strings.TrimSpace(depotCLI(t, c.dbEnv(), "tokens", "create", user))
}

func TestVersionsDeleteUndeletePurge(t *testing.T) {
	t.Parallel()
	testVersionsDeleteUndeletePurge(t, newCluster(t, clusterOpts{}))
}

func TestS3VersionsDeleteUndeletePurge(t *testing.T) {
	t.Parallel()
	testVersionsDeleteUndeletePurge(t, newCluster(t, s3Opts(t, clusterOpts{})))
}

// testVersionsDeleteUndeletePurge walks a file through its versions, a
// delete, an undelete, a restore of an old version, a purge refused by a
// hold and allowed after it, and the end of a deleted file's retention
// held and then not, checking the stored objects at each step (issue 21).
func testVersionsDeleteUndeletePurge(t *testing.T, c *cluster) {
	const key = "c1/study/visits.csv"
	bob := c.addUser(t, "bob", "uploader")
	carol := c.addUser(t, "carol", "reader")
	v1, v2 := []byte("id,visit\n1,a\n"), []byte("id,visit\n1,a\n2,b\n")
	expectStatus(t, c.do("PUT", "/api/v1/files/"+key, bytes.NewReader(v1), nil), http.StatusCreated)
	expectStatus(t, c.doAs(bob, "PUT", "/api/v1/files/"+key, bytes.NewReader(v2), nil), http.StatusCreated)

	h, code := c.versions(t, c.token, key)
	if code != http.StatusOK || len(h.Versions) != 2 || !h.Versions[0].Current || h.Versions[0].SHA256 != sha(v2) ||
		h.Versions[1].SHA256 != sha(v1) || h.Versions[0].UploadedBy != "bob" || h.Versions[1].Size != int64(len(v1)) {
		t.Fatalf("history after two uploads: %d %+v", code, h)
	}
	id1, id2 := h.Versions[1].Version, h.Versions[0].Version
	if got := expectStatus(t, c.do("GET", "/api/v1/files/"+key+"?version="+id1, nil, nil), http.StatusOK); !bytes.Equal(got, v1) {
		t.Fatalf("?version=%s read %q", id1, got)
	}

	// An uploader may add versions, nothing else.
	for _, req := range []struct{ method, query string }{
		{"DELETE", ""}, {"POST", "?restore=" + id1}, {"DELETE", "?purge"}, {"DELETE", "?purge&version=" + id1},
	} {
		expectStatus(t, c.doAs(bob, req.method, "/api/v1/files/"+key+req.query, nil, nil), http.StatusForbidden)
		expectStatus(t, c.doAs(carol, req.method, "/api/v1/files/"+key+req.query, nil, nil), http.StatusForbidden)
	}
	if h, code := c.versions(t, carol, key); code != http.StatusOK || len(h.Versions) != 2 {
		t.Fatalf("a reader's history: %d %+v", code, h)
	}

	// Delete hides the file; its versions stay, for managers.
	expectStatus(t, c.do("DELETE", "/api/v1/files/"+key, nil, nil), http.StatusNoContent)
	expectStatus(t, c.do("GET", "/api/v1/files/"+key, nil, nil), http.StatusNotFound)
	if list := expectStatus(t, c.do("GET", "/api/v1/files/c1/?recursive=1", nil, nil), http.StatusOK); bytes.Contains(list, []byte("visits.csv")) {
		t.Fatalf("a deleted file is listed: %s", list)
	}
	// (current: the version an undelete brings back)
	if h, code := c.versions(t, c.token, key); code != http.StatusOK || h.Deleted == nil || len(h.Versions) != 2 || h.Versions[0].Version != id2 || !h.Versions[0].Current {
		t.Fatalf("a manager's history of the deleted file: %d %+v", code, h)
	}
	if _, code := c.versions(t, carol, key); code != http.StatusNotFound {
		t.Fatalf("a reader's history of the deleted file: %d, want 404", code)
	}
	if !c.objectExists(t, id1) || !c.objectExists(t, id2) {
		t.Fatal("a delete removed bytes")
	}
	expectStatus(t, c.doAs(bob, "POST", "/api/v1/files/"+key+"?undelete", nil, nil), http.StatusForbidden)
	expectStatus(t, c.do("POST", "/api/v1/files/"+key+"?undelete", nil, nil), http.StatusOK)
	if got := expectStatus(t, c.do("GET", "/api/v1/files/"+key, nil, nil), http.StatusOK); !bytes.Equal(got, v2) {
		t.Fatalf("after undelete the file reads %q", got)
	}

	// A manager makes the first version current again.
	expectStatus(t, c.do("POST", "/api/v1/files/"+key+"?restore="+id1, nil, nil), http.StatusOK)
	if got := expectStatus(t, c.do("GET", "/api/v1/files/"+key, nil, nil), http.StatusOK); !bytes.Equal(got, v1) {
		t.Fatalf("after restoring version 1 the file reads %q", got)
	}

	// A hold on the path refuses a purge, by anyone; released, it allows it.
	resp := c.do("POST", "/api/v1/holds/c1", strings.NewReader(`{"path":"study/visits.csv","reason":"audit 2026"}`),
		map[string]string{"Content-Type": "application/json"})
	var hold struct{ ID int64 }
	if err := json.Unmarshal(expectStatus(t, resp, http.StatusCreated), &hold); err != nil || hold.ID == 0 {
		t.Fatalf("place hold: %v %+v", err, hold)
	}
	expectStatus(t, c.do("DELETE", "/api/v1/files/"+key+"?purge&version="+id2, nil, nil), http.StatusConflict)
	expectStatus(t, c.doAs(bob, "DELETE", "/api/v1/holds/c1/"+itoa(hold.ID), nil, nil), http.StatusForbidden)
	expectStatus(t, c.do("DELETE", "/api/v1/holds/c1/"+itoa(hold.ID), nil, nil), http.StatusNoContent)
	expectStatus(t, c.do("DELETE", "/api/v1/files/"+key+"?purge&version="+id2, nil, nil), http.StatusNoContent)
	if h, _ := c.versions(t, c.token, key); len(h.Versions) == 0 || h.Versions[len(h.Versions)-1].Version == id2 {
		t.Fatalf("purged version still listed: %+v", h)
	}
	for _, v := range mustVersions(t, c, key) {
		if v == id2 {
			t.Fatalf("purged version %s still in the history", id2)
		}
	}
	if c.objectExists(t, id2) {
		t.Fatal("a purged version's object is still stored")
	}
	expectStatus(t, c.do("GET", "/api/v1/files/"+key+"?version="+id2, nil, nil), http.StatusNotFound)

	// The end of a deleted file's retention, first under a cohort hold.
	const gone = "c1/study/old.csv"
	expectStatus(t, c.do("PUT", "/api/v1/files/"+gone, strings.NewReader("old\n"), nil), http.StatusCreated)
	goneID := currentVersionOf(t, c, gone)
	expectStatus(t, c.do("DELETE", "/api/v1/files/"+gone, nil, nil), http.StatusNoContent)
	resp = c.do("POST", "/api/v1/holds/c1", strings.NewReader(`{"reason":"study hold"}`), map[string]string{"Content-Type": "application/json"})
	if err := json.Unmarshal(expectStatus(t, resp, http.StatusCreated), &hold); err != nil {
		t.Fatal(err)
	}
	env := c.maintEnv(map[string]string{"DEPOT_DELETED_RETENTION": "1ms"})
	var res struct {
		Held           int `json:"held"`
		RetentionEnded int `json:"retention_ended"`
	}
	if err := json.Unmarshal([]byte(depotCLI(t, env, "cleanup", "--json")), &res); err != nil || res.Held == 0 || res.RetentionEnded != 0 {
		t.Fatalf("cleanup under a cohort hold: %+v %v", res, err)
	}
	if !c.objectExists(t, goneID) {
		t.Fatal("cleanup removed a held version")
	}
	expectStatus(t, c.do("DELETE", "/api/v1/holds/c1/"+itoa(hold.ID), nil, nil), http.StatusNoContent)
	out := depotCLI(t, env, "cleanup", "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.RetentionEnded != 1 {
		t.Fatalf("cleanup after the hold: %s %v", out, err)
	}
	if c.objectExists(t, goneID) {
		t.Fatal("the retention ended and the object is still stored")
	}
	if _, code := c.versions(t, c.token, gone); code != http.StatusNotFound {
		t.Fatalf("history of a file whose retention ended: %d", code)
	}
	// The visible file and its kept version were never touched.
	if got := expectStatus(t, c.do("GET", "/api/v1/files/"+key, nil, nil), http.StatusOK); !bytes.Equal(got, v1) {
		t.Fatalf("the current file reads %q after cleanup", got)
	}

	db := openAuditDB(t, c.dbURL)
	for _, a := range []depot.Action{depot.ActionDelete, depot.ActionUndelete, depot.ActionRestoreVersion, depot.ActionPurge,
		depot.ActionHoldPlaced, depot.ActionHoldReleased, depot.ActionCleanupCompleted} {
		if n := len(auditEvents(t, db, a)); n == 0 {
			t.Errorf("no %s record", a)
		}
	}
	if out, errOut, code := depotCLIResult(c.maintEnv(nil), "verify"); code != 0 {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}
}

// mustVersions lists the version IDs of key's history.
func mustVersions(t *testing.T, c *cluster, key string) []string {
	t.Helper()
	h, code := c.versions(t, c.token, key)
	if code != http.StatusOK {
		t.Fatalf("versions of %s: %d", key, code)
	}
	var ids []string
	for _, v := range h.Versions {
		ids = append(ids, v.Version)
	}
	return ids
}

// auditEvents returns the records of action.
func auditEvents(t *testing.T, db *servicedb.DB, action depot.Action) []depot.AuditEvent {
	t.Helper()
	evs, err := db.Events(context.Background(), servicedb.Filter{Action: action})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}
