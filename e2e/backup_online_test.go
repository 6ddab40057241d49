package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"depot/internal/crashpoint"
	"depot/servicedb"
	"depot/servicedb/servicedbtest"
)

// manifestJSON is the part of a backup manifest the tests read.
type manifestJSON struct {
	Seq   int64 `json:"audit_head_seq"`
	Files []struct {
		Version string `json:"version"`
		Key     string `json:"key"`
		SHA256  string `json:"sha256"`
		Damaged string `json:"damaged"`
	} `json:"files"`
}

// readManifestAt reads the manifest of the backup at loc (a directory or an
// s3:// location of the test's S3 server).
func readManifestAt(t *testing.T, loc string) manifestJSON {
	t.Helper()
	var b []byte
	var err error
	if strings.HasPrefix(loc, "s3://") {
		b, err = s3Object(t, loc, "manifest.json")
	} else {
		b, err = os.ReadFile(filepath.Join(loc, "manifest.json"))
	}
	if err != nil {
		t.Fatalf("read the manifest: %v", err)
	}
	var m manifestJSON
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// pausedCmd is a depot command held at a crashpoint.Pause step.
type pausedCmd struct {
	cmd    *exec.Cmd
	dir    string
	out    bytes.Buffer
	exited chan error
}

// startPaused starts depot args with env, to be held at step.
func startPaused(t *testing.T, env map[string]string, step string, args ...string) *pausedCmd {
	t.Helper()
	p := &pausedCmd{dir: t.TempDir(), exited: make(chan error, 1)}
	for _, name := range []string{"reached", "resume"} {
		if err := syscall.Mkfifo(filepath.Join(p.dir, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	full := map[string]string{"DEPOTTEST_PAUSE_AT": step, "DEPOTTEST_PAUSE_DIR": p.dir}
	for k, v := range env {
		full[k] = v
	}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Env = baseEnv(full)
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
	})
	return p
}

// waitReached returns once the process is held at its step: it opened the
// "reached" pipe. It fails the test if the process exits first.
func (p *pausedCmd) waitReached(t *testing.T) {
	t.Helper()
	opened := make(chan error, 1)
	go func() {
		f, err := os.Open(filepath.Join(p.dir, "reached"))
		if err == nil {
			_, _ = io.Copy(io.Discard, f)
			f.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-p.exited:
		t.Fatalf("depot exited before its pause: %v\n%s", err, p.out.String())
	}
}

// resume lets the process go on and waits for it to exit successfully.
func (p *pausedCmd) resume(t *testing.T) string {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(p.dir, "resume"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := <-p.exited; err != nil {
		t.Fatalf("depot: %v\n%s", err, p.out.String())
	}
	return p.out.String()
}

// waitCleanupRun waits until a cleanup run that started after since has
// finished, and returns its summary.
func waitCleanupRun(t *testing.T, db *servicedb.DB, since time.Time) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		runs, err := db.JobRuns(context.Background(), "cleanup", 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range runs {
			if r.Finished != nil && r.Started.After(since) {
				if r.Outcome != servicedb.RunSuccess {
					t.Fatalf("cleanup run %d: %s %s", r.ID, r.Outcome, r.ErrorCode)
				}
				return r.Summary
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no cleanup run finished within 60 s")
	return ""
}

// TestOnlineBackupUnderLoad is issue 26's consistent online backup, on
// both engines: `depot backup --files` runs while three clients upload,
// overwrite, delete and purge files and cleanup (every second, deleted
// retention 1 s) purges deleted files. The backup is held right after its
// snapshot while versions of the snapshot are purged and a cleanup run
// completes: their objects stay (the backup's lease), so the backup copies
// them; once it ends, the next cleanup removes them. The backup is then
// restored into a fresh database and storage: depot verify and
// depot audit verify pass, and every file of the manifest is byte-exact
// with what was uploaded. SQLite writes the backup to a directory,
// PostgreSQL to S3 (pg_dump streamed).
func TestOnlineBackupUnderLoad(t *testing.T) {
	forEngine(t, func(t *testing.T, e servicedbtest.EngineURL) {
		loc := filepath.Join(t.TempDir(), "backup")
		var s3env map[string]string
		if e.Engine == servicedbtest.Postgres {
			var s3url string
			s3url, s3env = s3Storage(t)
			loc = strings.Replace(s3url, "/files?", "/backups/one?", 1)
		}
		c := newCluster(t, clusterOpts{dbURL: freshURL(t, e.Engine), servicesEnv: map[string]string{
			"DEPOT_CLEANUP_INTERVAL": "1s", "DEPOT_DELETED_RETENTION": "1s", "DEPOT_STRAY_GRACE": "1s",
		}})
		env := map[string]string{"DEPOT_DATABASE_URL": c.dbURL, "DEPOT_STORAGE_URL": "file://" + c.storageDir()}
		for k, v := range s3env {
			env[k] = v
		}
		g := newLoadGen(c)
		var seeds []string // versions older than the backup, purged during it
		for i := range 3 {
			name := fmt.Sprintf("seed/%d.csv", i)
			old, err := g.put(name, uint64(100+i))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := g.put(name, uint64(200+i)); err != nil {
				t.Fatal(err)
			}
			seeds = append(seeds, old)
		}
		seeded := time.Now()
		db := openAuditDB(t, c.dbURL)
		g.run(3)

		bk := startPaused(t, env, crashpoint.BackupSnapshotTaken, "backup", loc, "--files")
		bk.waitReached(t)
		opsAtSnapshot := g.ops.Load()
		for i, id := range seeds {
			if err := c.expect("DELETE", fmt.Sprintf("/api/v1/files/c1/seed/%d.csv?purge&version=%s", i, id), http.StatusNoContent); err != nil {
				t.Fatal(err)
			}
		}
		waitCleanupRun(t, db, time.Now())
		for g.ops.Load() < opsAtSnapshot+12 { // the load goes on during the backup
			select {
			case err := <-g.errs:
				t.Fatalf("load: %v", err)
			case <-time.After(20 * time.Millisecond):
			}
		}
		for _, id := range seeds {
			if _, err := os.Stat(c.objectPath(id)); err != nil {
				t.Fatalf("the object of a version purged during the backup was removed: %v", err)
			}
		}
		out := bk.resume(t)
		ended := time.Now()
		g.finish(t)
		t.Logf("backup: %s; %d operations of the load in all, %d during the backup", strings.TrimSpace(out), g.ops.Load(), g.ops.Load()-opsAtSnapshot)

		m := readManifestAt(t, loc)
		inManifest := map[string]bool{}
		for _, f := range m.Files {
			inManifest[f.Version] = true
			if f.Damaged != "" {
				t.Fatalf("manifest entry damaged: %+v", f)
			}
		}
		for _, id := range seeds {
			if !inManifest[id] {
				t.Fatalf("version %s of the snapshot is not in the manifest", id)
			}
		}
		// The lease is gone: the next run whose grace the seeds' objects
		// have outlived removes them.
		after := ended
		if s := seeded.Add(time.Second); s.After(after) {
			after = s
		}
		waitCleanupRun(t, db, after)
		for _, id := range seeds {
			if _, err := os.Stat(c.objectPath(id)); !os.IsNotExist(err) {
				t.Fatalf("the object of a purged version outlived the backup: %v", err)
			}
		}

		// Restore into a new database and storage, as on a new host.
		fresh := map[string]string{"DEPOT_DATABASE_URL": restoreTargetURL(t, c.dbURL), "DEPOT_STORAGE_URL": "file://" + filepath.Join(t.TempDir(), "files")}
		for k, v := range s3env {
			fresh[k] = v
		}
		out = depotCLI(t, fresh, "restore", loc)
		want := fmt.Sprintf("%d of %d files written", len(m.Files), len(m.Files))
		if !strings.Contains(out, want) {
			t.Fatalf("restore: %s (want %q)", out, want)
		}
		if out := depotCLI(t, fresh, "audit", "verify"); !strings.Contains(out, "intact") {
			t.Fatalf("audit verify: %s", out)
		}
		if n := verifyFailures(t, fresh); n != 0 {
			t.Fatalf("verify of the restored system: %d failures", n)
		}
		root := strings.TrimPrefix(fresh["DEPOT_STORAGE_URL"], "file://")
		g.mu.Lock()
		defer g.mu.Unlock()
		for _, f := range m.Files {
			want, ok := g.content[f.Version]
			if !ok {
				t.Fatalf("the manifest lists version %s that no client uploaded", f.Version)
			}
			got, err := os.ReadFile(filepath.Join(root, "objects", f.Version[:2], f.Version))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("restored %s (version %s) is not byte-exact: %v", f.Key, f.Version, err)
			}
		}
		t.Logf("restored %d versions byte-exact", len(m.Files))
	})
}

// restoreTargetURL returns a new, empty database to restore a backup of
// dbURL into, as on a new host: a new SQLite file, or on PostgreSQL a new
// database of the server, selected with the same schema name (pg_dump
// names its schema in every statement), dropped when the test ends.
func restoreTargetURL(t *testing.T, dbURL string) string {
	t.Helper()
	if strings.HasPrefix(dbURL, "sqlite:") {
		return servicedbtest.SQLiteURL(t)
	}
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("restore_%d_%d", os.Getpid(), restoreDBs.Add(1))
	admin, err := sql.Open("pgx", servicedbtest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", servicedbtest.BaseURL())
		if err == nil {
			_, _ = admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
			admin.Close()
		}
	})
	u.Path = "/" + name
	return u.String()
}

var restoreDBs atomic.Int64
