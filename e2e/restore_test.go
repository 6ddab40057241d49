package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"depot"
	"depot/servicedb/servicedbtest"
)

// versionJSON is the part of an upload's answer a restore test needs.
type versionJSON struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
}

// putVersion uploads data to c1/name as alice and returns the new version.
func (c *cluster) putVersion(name string, data []byte) versionJSON {
	c.t.Helper()
	b := expectStatus(c.t, c.do("PUT", "/api/v1/files/c1/"+name, bytes.NewReader(data), nil), http.StatusCreated)
	var v versionJSON
	if err := json.Unmarshal(b, &v); err != nil || v.Version == "" {
		c.t.Fatalf("PUT %s: %v: %s", name, err, b)
	}
	return v
}

// verifyFailures runs depot verify and returns how many versions it found
// damaged or missing.
func verifyFailures(t *testing.T, env map[string]string) int {
	t.Helper()
	out, errOut, code := depotCLIResult(env, "verify", "--json")
	var res struct{ Failed int }
	if err := json.Unmarshal([]byte(out), &res); err != nil || (code != 0) != (res.Failed > 0) {
		t.Fatalf("depot verify: exit %d, %v: %s %s", code, err, out, errOut)
	}
	return res.Failed
}

// TestRestoreFilesOnly is issue 26's restore without rollback, both
// engines. After a backup, the system goes on (a new upload), then one
// byte of a file is corrupted, another file's object is lost, and the new
// file is damaged too. `depot restore --files-only DIR c1/a.csv` repairs
// only that path; without a path it repairs everything verify finds,
// reports what the backup cannot repair (the newer file) and exits 6; the
// database is never touched: the audit trail keeps every record made
// after the backup, plus one restore.files record per repaired file.
// Restored objects get the owner of the storage directory (uid 65534 here)
// though the restore runs as root. A full restore over the live database
// is then refused because its audit trail is longer than the backup's,
// and goes through with --discard-newer-audit, writing restore.completed.
func TestRestoreFilesOnly(t *testing.T) {
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		c := newCluster(t, clusterOpts{dbURL: freshURL(t, e.Engine), servicesEnv: map[string]string{"DEPOT_MAINTENANCE": "off"}})
		env := map[string]string{"DEPOT_DATABASE_URL": c.dbURL, "DEPOT_STORAGE_URL": "file://" + c.storageDir()}
		content := map[string][]byte{}
		put := func(name string, seed uint64, n int) versionJSON {
			data, _ := payloadBytes(seed, n)
			v := c.putVersion(name, data)
			content[v.Version] = data
			return v
		}
		put("a.csv", 1, 70_000)
		a2 := put("a.csv", 2, 90_000) // a.csv's current version
		put("b.csv", 3, 5_000)
		dc := put("dir/c.csv", 4, 300_000)
		dir := filepath.Join(t.TempDir(), "backup")
		depotCLI(t, env, "backup", dir, "--files")
		db := openAuditDB(t, c.dbURL)
		headAtBackup := manifestHead(t, dir) // backup.created follows it
		late := put("late.csv", 5, 1_000)    // not in the backup

		flipByte(t, c.objectPath(a2.Version), 12_345)
		if err := os.Remove(c.objectPath(dc.Version)); err != nil {
			t.Fatal(err)
		}
		flipByte(t, c.objectPath(late.Version), 10)
		if n := verifyFailures(t, env); n != 3 {
			t.Fatalf("verify before the restore: %d failures, want 3", n)
		}
		const owner = 65534 // nobody: the service user of this test
		chownTree(t, c.storageDir(), owner)

		out := depotCLI(t, env, "restore", "--files-only", dir, "c1/a.csv")
		if !strings.Contains(out, "restored  c1/a.csv") || !strings.Contains(out, "1 restored, 0 not repaired") {
			t.Fatalf("restore of one path: %s", out)
		}
		if n := verifyFailures(t, env); n != 2 {
			t.Fatalf("verify after restoring one path: %d failures, want 2", n)
		}
		out, errOut, code := depotCLIResult(env, "restore", "--files-only", dir)
		if code != 6 || !strings.Contains(out, "restored  c1/dir/c.csv") || !strings.Contains(out, "NOT REPAIRED  c1/late.csv") ||
			!strings.Contains(out, "not_in_backup") || !strings.Contains(out, "1 restored, 1 not repaired") {
			t.Fatalf("restore of everything damaged: exit %d: %s %s", code, out, errOut)
		}
		if n := verifyFailures(t, env); n != 1 {
			t.Fatalf("verify after the restore: %d failures, want 1 (the file newer than the backup)", n)
		}
		for _, id := range []string{a2.Version, dc.Version} {
			fi, err := os.Stat(c.objectPath(id))
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != owner || st.Gid != owner {
				t.Errorf("restored object owned by %d:%d, want the storage directory's %d", st.Uid, st.Gid, owner)
			}
		}
		for _, name := range []string{"a.csv", "dir/c.csv"} {
			got := expectStatus(t, c.do("GET", "/api/v1/files/c1/"+name, nil, nil), http.StatusOK)
			id, _ := c.currentVersion("c1/" + name)
			if !bytes.Equal(got, content[id]) {
				t.Fatalf("%s differs after the restore", name)
			}
		}
		// The database was not touched: nothing after the backup is lost,
		// and each repair (and the failed one) is on the record.
		evs := auditAfter(t, db, headAtBackup)
		var uploads, restored, failed int
		for _, ev := range evs {
			switch {
			case ev.Action == depot.ActionUploadCompleted && ev.Key == "c1/late.csv":
				uploads++
			case ev.Action == depot.ActionRestoreFiles && ev.Outcome == depot.OutcomeSuccess:
				restored++
				if ev.Actor != "operator" || ev.Metadata["version"] == "" || ev.SHA256 == "" {
					t.Errorf("restore.files record: %+v", ev)
				}
			case ev.Action == depot.ActionRestoreFiles:
				failed++
				if ev.Key != "c1/late.csv" || ev.ErrorCode != "not_in_backup" {
					t.Errorf("failed restore.files record: %+v", ev)
				}
			}
		}
		if uploads != 1 || restored != 2 || failed != 1 {
			t.Fatalf("audit after the backup: %d late uploads, %d restore.files, %d failed; want 1, 2, 1", uploads, restored, failed)
		}
		expectStatus(t, c.do("DELETE", "/api/v1/files/c1/late.csv?purge&version="+late.Version, nil, nil), http.StatusNoContent)
		if n := verifyFailures(t, env); n != 0 {
			t.Fatalf("verify after purging the unrepairable version: %d failures", n)
		}

		// A full restore would roll the trail back: refused unless asked.
		c.web.stop()
		c.services.stop()
		head := auditHead(t, db)
		db.Close()
		_, errOut, code = depotCLIResult(env, "restore", "--force", dir)
		if code != 2 || !strings.Contains(errOut, "--discard-newer-audit") || !strings.Contains(errOut, fmt.Sprintf("records %d to %d", headAtBackup+1, head)) {
			t.Fatalf("full restore over a longer trail: exit %d: %s", code, errOut)
		}
		// One byte of a file the backup holds is corrupted: the full
		// restore compares bytes, not a stored attribute, and rewrites it.
		b, _ := c.currentVersion("c1/b.csv")
		flipByte(t, c.objectPath(b), 0)
		out = depotCLI(t, env, "restore", "--force", "--discard-newer-audit", dir)
		if !strings.Contains(out, "1 of 4 files written, 3 already present") ||
			!strings.Contains(out, fmt.Sprintf("discarded audit records %d to %d", headAtBackup+1, head)) {
			t.Fatalf("full restore: %s", out)
		}
		if out := depotCLI(t, env, "audit", "verify"); !strings.Contains(out, "intact") {
			t.Fatalf("audit verify: %s", out)
		}
		db = openAuditDB(t, c.dbURL)
		if n := verifyFailures(t, env); n != 0 {
			t.Fatalf("verify after the full restore: %d failures", n)
		}
		evs = auditAfter(t, db, headAtBackup) // restore.completed, then verify's records
		if len(evs) == 0 || evs[0].Action != depot.ActionRestoreCompleted ||
			evs[0].Metadata["discarded_audit_records"] != fmt.Sprint(head-headAtBackup) {
			t.Fatalf("trail after the full restore: %+v", evs)
		}
	})
}

// manifestHead returns the audit head recorded in the manifest of the
// backup in dir.
func manifestHead(t *testing.T, dir string) int64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Seq int64 `json:"audit_head_seq"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.Seq
}

// flipByte inverts one byte of the file at path, at offset off.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// chownTree gives root and everything below it to uid:uid.
func chownTree(t *testing.T, root string, uid int) {
	t.Helper()
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, uid)
	})
	if err != nil {
		t.Fatal(err)
	}
}
