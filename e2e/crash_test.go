package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"depot"
	"depot/internal/crashpoint"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// TestCrashDuringCommit kills services (SIGKILL, from inside, at a marked
// step: internal/crashpoint) at each step of a commit, for a new file and
// for an overwrite, and at the step between a purge's transaction and the
// removal of its bytes. After a restart exactly one of the old and the new
// state is current, its bytes match its recorded SHA-256 (depot verify),
// every kept version has its audit record, the audit chain verifies, and
// cleanup removes the leftovers and never a referenced object (issue 21).
func TestCrashDuringCommit(t *testing.T) {
	t.Parallel()
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		testCrashDuringCommit(t, clusterOpts{dbURL: e.URL})
	})
}

// TestS3CrashDuringCommit is TestCrashDuringCommit on S3 storage (SQLite):
// the S3 store keeps its own object per version and its staging areas as
// multipart uploads, and a crash at any step leaves the same outcome.
func TestS3CrashDuringCommit(t *testing.T) {
	t.Parallel()
	testCrashDuringCommit(t, s3Opts(t, clusterOpts{}))
}

func testCrashDuringCommit(t *testing.T, o clusterOpts) {
	{
		// Small chunks: a 200 kB body is an upload session of four chunks.
		o.webEnv = map[string]string{"DEPOT_CHUNK_SIZE": "65536", "DEPOT_CHUNK_RETRIES": "1"}
		c := newCluster(t, o)
		old, _ := payloadBytes(900, 200_000)
		type step struct {
			point     string
			size      int  // of the new body: > 64 KiB is a session, less is one-shot
			overwrite bool // over an acknowledged file
			newWins   bool // the new version is current after the restart
		}
		steps := []step{
			{crashpoint.Staged, 200_000, false, false},
			{crashpoint.Staged, 200_000, true, false},
			{crashpoint.BeforeCommit, 200_000, false, false},
			{crashpoint.BeforeCommit, 200_000, true, false},
			{crashpoint.BeforeCommit, 1_000, true, false},
			{crashpoint.AfterCommit, 200_000, false, true},
			{crashpoint.AfterCommit, 200_000, true, true},
			{crashpoint.AfterCommit, 1_000, true, true},
		}
		for i, s := range steps {
			key := fmt.Sprintf("c1/crash/%d.bin", i)
			if s.overwrite {
				expectStatus(t, c.do("PUT", "/api/v1/files/"+key, strings.NewReader(string(old)), nil), http.StatusCreated)
			}
			body, bodySHA := payloadBytes(uint64(910+i), s.size)
			c.restartServices(t, map[string]string{"DEPOTTEST_CRASH_AT": s.point})
			resp, err := c.tryDo("PUT", "/api/v1/files/"+key, body)
			if err == nil && resp.StatusCode < 500 {
				t.Fatalf("%s, step %d: PUT answered %d although services was killed", s.point, i, resp.StatusCode)
			}
			c.services.waitExit(t)
			c.restartServices(t, nil)
			want, wantSHA := old, sha(old)
			if s.newWins {
				want, wantSHA = body, bodySHA
			}
			resp = c.do("GET", "/api/v1/files/"+key, nil, nil)
			switch {
			case !s.overwrite && !s.newWins:
				expectStatus(t, resp, http.StatusNotFound)
			default:
				got := expectStatus(t, resp, http.StatusOK)
				if sha(got) != wantSHA || len(got) != len(want) {
					t.Fatalf("%s, step %d: the file reads %d bytes (sha %s), want the %s version", s.point, i, len(got), sha(got),
						map[bool]string{true: "new", false: "old"}[s.newWins])
				}
			}
		}
		checkAfterCrashes(t, c)

		// A purge killed between its transaction and the removal of the
		// bytes: the version is gone for good, its object is a leftover.
		v1 := currentVersionOf(t, c, "c1/crash/1.bin")
		expectStatus(t, c.do("PUT", "/api/v1/files/c1/crash/1.bin", strings.NewReader("newer"), nil), http.StatusCreated)
		c.restartServices(t, map[string]string{"DEPOTTEST_CRASH_AT": crashpoint.AfterPurge})
		if resp, err := c.tryDo("DELETE", "/api/v1/files/c1/crash/1.bin?purge&version="+v1, nil); err == nil && resp.StatusCode < 500 {
			t.Fatalf("purge answered %d although services was killed", resp.StatusCode)
		}
		c.services.waitExit(t)
		c.restartServices(t, nil)
		expectStatus(t, c.do("GET", "/api/v1/files/c1/crash/1.bin?version="+v1, nil, nil), http.StatusNotFound)
		if got := expectStatus(t, c.do("GET", "/api/v1/files/c1/crash/1.bin", nil, nil), http.StatusOK); string(got) != "newer" {
			t.Fatalf("after the purge the file reads %q", got)
		}
		checkAfterCrashes(t, c)
	}
}

// checkAfterCrashes runs cleanup (every leftover older than 1 s, the least
// DEPOT_STRAY_GRACE allowed, every plain upload idle for 2 ms: none can be
// alive after a restart), then
// checks that every kept version has its object with the recorded bytes
// (depot verify), its upload.completed record, and that the audit chain
// verifies and no object is left that nothing refers to.
func checkAfterCrashes(t *testing.T, c *cluster) {
	t.Helper()
	env := c.maintEnv(map[string]string{"DEPOT_STRAY_GRACE": "1s", "DEPOT_BODY_IDLE_TIMEOUT": "1ms"})
	time.Sleep(1100 * time.Millisecond) // every leftover is older than the grace
	cleanup, errOut, code := depotCLIResult(env, "cleanup", "--json")
	if code != 0 {
		t.Fatalf("cleanup: exit %d: %s %s", code, cleanup, errOut)
	}
	defer func() {
		if t.Failed() {
			t.Logf("cleanup: %s", cleanup)
		}
	}()
	if out, errOut, code := depotCLIResult(env, "verify"); code != 0 {
		t.Fatalf("verify: exit %d: %s %s", code, out, errOut)
	}
	if out, errOut, code := depotCLIResult(env, "audit", "verify"); code != 0 {
		t.Fatalf("audit verify: exit %d: %s %s", code, out, errOut)
	}
	db := openAuditDB(t, c.dbURL)
	ctx := context.Background()
	vs, err := db.ListVersions(ctx, servicedb.VersionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]bool{}
	for _, v := range vs {
		kept[v.ID] = true
		evs, err := db.Events(ctx, servicedb.Filter{UploadID: v.ID, Action: depot.ActionUploadCompleted})
		if err != nil || len(evs) != 1 || evs[0].SHA256 != v.SHA256 {
			t.Errorf("version %s of %s: %d upload.completed records (%v)", v.ID, v.Key, len(evs), err)
		}
	}
	objects, staging := c.storedObjects(t)
	for _, id := range objects {
		if !kept[id] {
			v, verr := db.Version(ctx, id)
			_, serr := db.Session(ctx, id)
			t.Errorf("object %s is left although no version refers to it (version %+v %v; session %v)", id, v, verr, serr)
		}
	}
	if staging != 0 {
		t.Errorf("%d staging areas left", staging)
	}
}

// storedObjects lists the IDs of the objects in c's storage and counts its
// staging areas (local directories; S3 staging markers and tails).
func (c *cluster) storedObjects(t *testing.T) (ids []string, staging int) {
	t.Helper()
	if c.storageURL != "" {
		for _, k := range s3Keys(t, c.storageURL) {
			switch {
			case strings.HasPrefix(k, "objects/"):
				ids = append(ids, strings.TrimPrefix(k, "objects/"))
			case strings.HasPrefix(k, ".depot/staging/"), strings.HasPrefix(k, ".depot/tails/"):
				staging++
			}
		}
		return ids, staging
	}
	dirs, _ := os.ReadDir(c.storageDir() + "/objects")
	for _, d := range dirs {
		files, _ := os.ReadDir(c.storageDir() + "/objects/" + d.Name())
		for _, f := range files {
			ids = append(ids, f.Name())
		}
	}
	staged, _ := os.ReadDir(c.storageDir() + "/staging")
	return ids, len(staged)
}

// currentVersionOf returns the version ID the web tier reports for key.
func currentVersionOf(t *testing.T, c *cluster, key string) string {
	t.Helper()
	resp := c.do("HEAD", "/api/v1/files/"+key, nil, nil)
	readAll(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Depot-Version") == "" {
		t.Fatalf("HEAD %s: %d, version %q", key, resp.StatusCode, resp.Header.Get("Depot-Version"))
	}
	return resp.Header.Get("Depot-Version")
}
