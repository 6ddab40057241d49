package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"depot/servicedb/servicedbtest"
)

// TestBackupDirectoryRules follows deployment.md's backup command as an
// operator would: every file of a backup is readable by its owner only
// (depot.pgdump was written 0644), and a second backup into a directory
// that already holds one — `depot backup /backup/$(date +%F)` twice a day —
// is refused with a message that says why and what to do, as is a
// directory left by an interrupted backup. Both engines.
func TestBackupDirectoryRules(t *testing.T) {
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		c := newCluster(t, clusterOpts{dbURL: freshURL(t, e.Engine), servicesEnv: map[string]string{"DEPOT_MAINTENANCE": "off"}})
		expectStatus(t, c.do("PUT", "/api/v1/files/c1/a.csv", strings.NewReader("a,b\n1,2\n"), nil), http.StatusCreated)
		env := map[string]string{"DEPOT_DATABASE_URL": c.dbURL, "DEPOT_STORAGE_URL": "file://" + c.storageDir()}
		root := t.TempDir()
		dir := filepath.Join(root, "2026-12-06")
		depotCLI(t, env, "backup", dir, "--files")
		err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if perm := fi.Mode().Perm(); fi.IsDir() && perm&0o077 != 0 || !fi.IsDir() && perm != 0o600 {
				t.Errorf("%s: mode %v, want 0600 files in 0700 directories", p, perm)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}

		_, errOut, code := depotCLIResult(env, "backup", dir)
		if code != 2 || !strings.Contains(errOut, "already holds a backup") || !strings.Contains(errOut, "date -u +%Y%m%dT%H%M%SZ") {
			t.Fatalf("second backup into the same directory: exit %d: %s", code, errOut)
		}
		partial := filepath.Join(root, "interrupted")
		if err := os.MkdirAll(filepath.Join(partial, "files"), 0o700); err != nil {
			t.Fatal(err)
		}
		_, errOut, code = depotCLIResult(env, "backup", partial)
		if code != 2 || !strings.Contains(errOut, "holds no complete backup") {
			t.Fatalf("backup into an interrupted backup's directory: exit %d: %s", code, errOut)
		}
		depotCLI(t, env, "backup", filepath.Join(root, "20261206T120000Z"))
	})
}
