package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// drillFiles is the number of files of the recovery drill.
const drillFiles = 8

// drillFileSize is the size of each: 2 MiB, or DEPOT_TEST_DRILL_MB / 8 MiB
// to measure the drill at a larger size.
func drillFileSize(t *testing.T) int {
	if v := os.Getenv("DEPOT_TEST_DRILL_MB"); v != "" {
		mb, err := strconv.Atoi(v)
		if err != nil || mb < drillFiles {
			t.Fatalf("DEPOT_TEST_DRILL_MB=%q: want a number of MiB, at least %d", v, drillFiles)
		}
		return mb << 20 / drillFiles
	}
	return 2 << 20
}

// TestRecoveryDrill is the disaster-recovery drill of docs/operations.md
// ("Recovery plan"), step by step, on both engines and both storages:
// SQLite with S3 storage and the backup in another S3 prefix, PostgreSQL
// with local storage and the backup in a directory. The system runs and
// is backed up online; then the host is lost (database and storage gone:
// for S3, the bucket too); a new host gets a new database and storage,
// `depot restore`, `depot verify`, `depot audit verify`, then services and
// web are started and every file is read back byte-exact. It logs the time
// of each step and the recovery time (restore to a ready system), the
// figures of the plan's RTO.
func TestRecoveryDrill(t *testing.T) {
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		o := clusterOpts{dbURL: freshURL(t, e.Engine)}
		loc := filepath.Join(t.TempDir(), "backup", "20261206T020000Z")
		backupEnv := map[string]string{}
		if e.Engine == servicedbtest.SQLite {
			o = s3Opts(t, o)
			loc = strings.Replace(o.storageURL, "/files?", "/backup/20261206T020000Z?", 1)
			backupEnv = o.storageEnv
		}
		c := newCluster(t, o)
		size := drillFileSize(t)
		files := map[string][]byte{}
		for i := range drillFiles {
			data, _ := payloadBytes(uint64(100+i), size+i*777)
			name := fmt.Sprintf("drill/file-%d.csv", i)
			files[name] = data
			expectStatus(t, c.do("PUT", "/api/v1/files/c1/"+name, bytes.NewReader(data), nil), http.StatusCreated)
		}
		env := map[string]string{"DEPOT_DATABASE_URL": c.dbURL, "DEPOT_STORAGE_URL": c.servicesEnv(nil)["DEPOT_STORAGE_URL"]}
		for k, v := range c.storageEnv {
			env[k] = v
		}
		for k, v := range backupEnv {
			env[k] = v
		}

		// Step 1 (nightly): an online backup, services running.
		start := time.Now()
		out := depotCLI(t, env, "backup", loc, "--files")
		backupTime := time.Since(start)
		if !strings.Contains(out, fmt.Sprintf("%d files (with contents)", drillFiles)) {
			t.Fatalf("backup: %s", out)
		}

		// Disaster: the host is lost with its database and storage.
		c.web.kill()
		c.services.kill()
		destroyDatabase(t, c.dbURL)
		if c.storageURL != "" {
			emptyBucket(t, c.storageURL)
		} else if err := os.RemoveAll(c.storageDir()); err != nil {
			t.Fatal(err)
		}

		// Steps 2–3: a new host. Local storage: a new directory of the
		// service user; S3: a new bucket. A new database (PostgreSQL: the
		// same schema name on the new server).
		newEnv := map[string]string{"DEPOT_DATABASE_URL": restoreTargetURL(t, c.dbURL)}
		nc := &cluster{t: t, dataDir: t.TempDir(), key: c.key, token: c.token, dbURL: newEnv["DEPOT_DATABASE_URL"]}
		if c.storageURL != "" {
			nc.storageURL, nc.storageEnv = s3Storage(t)
			newEnv["DEPOT_STORAGE_URL"] = nc.storageURL
		} else {
			if err := os.MkdirAll(nc.storageDir(), 0o700); err != nil {
				t.Fatal(err)
			}
			newEnv["DEPOT_STORAGE_URL"] = "file://" + nc.storageDir()
		}
		for k, v := range nc.storageEnv {
			newEnv[k] = v
		}
		for k, v := range backupEnv {
			newEnv[k] = v
		}

		// Step 4: restore. Step 5: check. Step 6: start the tiers.
		rto := time.Now()
		out = depotCLI(t, newEnv, "restore", loc)
		restoreTime := time.Since(rto)
		if !strings.Contains(out, fmt.Sprintf("%d of %d files written", drillFiles, drillFiles)) {
			t.Fatalf("restore: %s", out)
		}
		checks := time.Now()
		if out := depotCLI(t, newEnv, "audit", "verify"); !strings.Contains(out, "intact") {
			t.Fatalf("audit verify: %s", out)
		}
		if n := verifyFailures(t, newEnv); n != 0 {
			t.Fatalf("depot verify after restore: %d failures", n)
		}
		checkTime := time.Since(checks)
		up := time.Now()
		nc.startServices(nil)
		nc.startWeb(nc.services.url(), nil)
		expectStatus(t, nc.do("GET", "/readyz", nil, nil), http.StatusOK)
		upTime := time.Since(up)
		total := time.Since(rto)
		for name, data := range files {
			got := expectStatus(t, nc.do("GET", "/api/v1/files/c1/"+name, nil, nil), http.StatusOK)
			if !bytes.Equal(got, data) {
				t.Fatalf("%s differs after restore", name)
			}
		}
		mb := float64(drillFiles*size) / 1e6
		t.Logf("drill (%s, %s storage, backup to %s): %.1f MB in %d files; backup %.2fs; restore %.2fs (%.1f MB/s); "+
			"verify + audit verify %.2fs; services and web ready %.2fs; RTO (restore to ready) %.2fs",
			e.Engine, map[bool]string{true: "S3", false: "local"}[c.storageURL != ""], map[bool]string{true: "S3", false: "a directory"}[strings.HasPrefix(loc, "s3://")],
			mb, drillFiles, backupTime.Seconds(), restoreTime.Seconds(), mb/restoreTime.Seconds(), checkTime.Seconds(), upTime.Seconds(), total.Seconds())
	})
}

// emptyBucket removes every object below the prefix of storageURL: the S3
// storage is lost.
func emptyBucket(t *testing.T, storageURL string) {
	t.Helper()
	bucket, prefix := s3Location(t, storageURL)
	for _, key := range s3Keys(t, storageURL) {
		if err := s3srv.client.RemoveObject(context.Background(), bucket, prefix+key, minio.RemoveObjectOptions{}); err != nil {
			t.Fatal(err)
		}
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
