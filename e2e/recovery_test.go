package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// TestRecoveryDrill is the disaster-recovery drill as a test: upload files,
// back up, destroy the data, restore, then `depot verify` finds every file
// intact and `depot audit verify` finds the chain whole.
func TestRecoveryDrill(t *testing.T) {
	for _, eng := range servicedbtest.Engines(t) {
		t.Run(string(eng.Engine), func(t *testing.T) {
			c := newCluster(t, clusterOpts{dbURL: eng.URL})
			files := map[string][]byte{}
			for i := range 5 {
				data, _ := payloadBytes(uint64(100+i), 1<<20+i*777)
				name := fmt.Sprintf("drill/file-%d.csv", i)
				files[name] = data
				expectStatus(t, c.do("PUT", "/api/v1/files/c1/"+name, bytes.NewReader(data), nil), http.StatusCreated)
			}
			c.web.stop()
			c.services.stop()

			env := map[string]string{"DEPOT_DATABASE_URL": c.dbURL, "DEPOT_STORAGE_URL": "file://" + c.storageDir()}
			backupDir := filepath.Join(t.TempDir(), "backup")
			out := depotCLI(t, env, "backup", backupDir, "--files")
			if !strings.Contains(out, "5 files") {
				t.Fatalf("backup: %s", out)
			}

			// Disaster: the storage and the database are gone.
			if err := os.RemoveAll(c.storageDir()); err != nil {
				t.Fatal(err)
			}
			destroyDatabase(t, c.dbURL)

			out = depotCLI(t, env, "restore", backupDir)
			if !strings.Contains(out, "5 of 5 files") {
				t.Fatalf("restore: %s", out)
			}
			if out := depotCLI(t, env, "audit", "verify"); !strings.Contains(out, "intact") {
				t.Fatalf("audit verify: %s", out)
			}
			if _, errOut, code := depotCLIResult(env, "verify"); code != 0 {
				t.Fatalf("depot verify after restore: exit %d: %s", code, errOut)
			}
			c.startServices(nil)
			c.startWeb(c.services.url(), nil)
			for name, data := range files {
				got := expectStatus(t, c.do("GET", "/api/v1/files/c1/"+name, nil, nil), http.StatusOK)
				if !bytes.Equal(got, data) {
					t.Fatalf("%s differs after restore", name)
				}
			}
		})
	}
}

// destroyDatabase loses the database: the SQLite files, or every table of
// the test's PostgreSQL schema.
func destroyDatabase(t *testing.T, dbURL string) {
	t.Helper()
	if path, ok := strings.CutPrefix(dbURL, "sqlite://"); ok {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(path + suffix)
		}
		return
	}
	db, err := servicedb.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.SQL().Exec(`DO $$ DECLARE r record; BEGIN
		FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = current_schema() LOOP
			EXECUTE 'DROP TABLE IF EXISTS ' || quote_ident(r.tablename) || ' CASCADE';
		END LOOP; END $$`); err != nil {
		t.Fatal(err)
	}
}
