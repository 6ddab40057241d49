package backup

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"depot/servicedb"
	"depot/storage"
)

// snapshot writes the database snapshot into t and fills m's audit head
// and file list from that same snapshot: for SQLite the snapshot file
// itself is read (VACUUM INTO is one read transaction); for PostgreSQL
// pg_dump shares the exported snapshot of the transaction the manifest is
// read in.
func snapshot(ctx context.Context, db *servicedb.DB, dbURL string, t Target, m *Manifest) error {
	if db.Engine() == servicedb.EngineSQLite {
		return sqliteSnapshot(ctx, db, dbURL, t, m)
	}
	m.Database = "depot.pgdump"
	_, schema, err := pgArgs(dbURL)
	if err != nil {
		return err
	}
	m.Schema = schema
	return db.ExportSnapshot(ctx, func(ctx context.Context, name string, r servicedb.SnapshotReader) error {
		if err := readManifest(ctx, r, m); err != nil {
			return err
		}
		return pgDump(ctx, dbURL, name, t, m.Database)
	})
}

func sqliteSnapshot(ctx context.Context, db *servicedb.DB, dbURL string, t Target, m *Manifest) error {
	m.Database = "depot.db"
	path := ""
	if dir := t.Dir(); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		path = filepath.Join(dir, m.Database)
	} else {
		// Beside the live database, as protected as it is, until it is
		// uploaded.
		live, err := sqlitePath(dbURL)
		if err != nil {
			return err
		}
		path = live + ".backup-" + storage.NewID()
		defer os.Remove(path)
	}
	if err := createPrivate(path); err != nil { // VACUUM INTO fills an empty file
		return err
	}
	if _, err := db.SQL().ExecContext(ctx, `VACUUM INTO ?`, path); err != nil {
		return fmt.Errorf("snapshot the SQLite database: %w", err)
	}
	r, closeSnap, err := servicedb.OpenSnapshotFile(ctx, path)
	if err != nil {
		return err
	}
	err = readManifest(ctx, r, m)
	if cerr := closeSnap(); err == nil {
		err = cerr
	}
	if err != nil || t.Dir() != "" {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return t.Put(ctx, m.Database, f, fi.Size())
}

// readManifest fills m's audit head and kept versions from r.
func readManifest(ctx context.Context, r servicedb.SnapshotReader, m *Manifest) error {
	var err error
	if m.AuditHeadSeq, m.AuditHead, err = r.Head(ctx); err != nil {
		return err
	}
	after := ""
	for {
		vs, err := r.Versions(ctx, after, 1000)
		if err != nil {
			return err
		}
		for _, v := range vs {
			m.Files = append(m.Files, Entry{Version: v.ID, Key: v.Key, Size: v.Size, SHA256: v.SHA256, Class: v.Class})
			after = v.ID
		}
		if len(vs) < 1000 {
			return nil
		}
	}
}

// sqlitePath returns the file of a sqlite: database URL.
func sqlitePath(dbURL string) (string, error) {
	rest, ok := strings.CutPrefix(dbURL, "sqlite:")
	if !ok {
		return "", fmt.Errorf("not a SQLite database URL")
	}
	path, _, _ := strings.Cut(strings.TrimPrefix(rest, "//"), "?")
	if path == "" {
		return "", fmt.Errorf("the SQLite database URL has no path")
	}
	return path, nil
}

// pgDump dumps the database at dbURL as of the exported snapshot into
// name of t (custom format, no owners).
func pgDump(ctx context.Context, dbURL, snapshot string, t Target, name string) error {
	conn, schema, err := pgArgs(dbURL)
	if err != nil {
		return err
	}
	args := []string{"--format=custom", "--no-owner", "--snapshot=" + snapshot}
	if schema != "" {
		args = append(args, "--schema="+schema)
	}
	var stderr strings.Builder
	if dir := t.Dir(); dir != "" {
		out := filepath.Join(dir, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if err := createPrivate(out); err != nil {
			return err
		}
		cmd := exec.CommandContext(ctx, "pg_dump", append(args, "--file="+out, conn)...)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("pg_dump: %v: %s", err, strings.TrimSpace(stderr.String()))
		}
		f, err := os.Open(out)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	}
	cmd := exec.CommandContext(ctx, "pg_dump", append(args, conn)...)
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pg_dump: %w", err)
	}
	// A dump cut short must not be stored: the reader fails unless
	// pg_dump exits 0 once its output ends.
	perr := t.Put(ctx, name, &exitCheckedReader{r: stdout, cmd: cmd, stderr: &stderr}, -1)
	if perr != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	return perr
}

// exitCheckedReader reads a command's stdout and, at its end, reports the
// command's failure instead of io.EOF.
type exitCheckedReader struct {
	r      io.Reader
	cmd    *exec.Cmd
	stderr *strings.Builder
	done   bool
}

func (e *exitCheckedReader) Read(p []byte) (int, error) {
	if e.done {
		return 0, io.EOF
	}
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.done = true
		if werr := e.cmd.Wait(); werr != nil {
			return n, fmt.Errorf("pg_dump: %v: %s", werr, strings.TrimSpace(e.stderr.String()))
		}
	}
	return n, err
}
