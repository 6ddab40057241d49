package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"depot/servicedb"
	"depot/storage"
)

// Replaced is what a full restore knows of the database it replaces.
type Replaced struct {
	Exists   bool  // the database exists and has an audit trail
	HeadSeq  int64 // its last audit record
	HeadHash string
}

// NewerAuditError refuses a full restore that would discard audit records:
// the database to be replaced has a longer chain than the backup.
type NewerAuditError struct {
	Have, Backup int64
}

func (e *NewerAuditError) Error() string {
	return fmt.Sprintf("the database holds audit records up to %d, the backup only up to %d: restoring it would discard "+
		"records %d to %d. To repair files, restore them alone (depot restore --files-only); to replace the database "+
		"anyway, export the trail first (depot audit export > audit-before-restore.jsonl) and pass --discard-newer-audit",
		e.Have, e.Backup, e.Backup+1, e.Have)
}

// CheckReplace reads the audit head of the database at dbURL, if it
// exists, and refuses (*NewerAuditError) when its chain is longer than the
// backup's unless discardNewer. It creates nothing.
func CheckReplace(ctx context.Context, dbURL string, m Manifest, discardNewer bool) (Replaced, error) {
	var r Replaced
	if path, err := sqlitePath(dbURL); err == nil {
		if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
			return r, nil
		}
	}
	db, err := servicedb.Open(ctx, dbURL)
	if err != nil {
		return r, err
	}
	defer db.Close()
	if r.Exists, err = db.HasAuditTrail(ctx); err != nil || !r.Exists {
		return r, err
	}
	if r.HeadSeq, r.HeadHash, err = db.Head(ctx); err != nil {
		return r, err
	}
	if r.HeadSeq > m.AuditHeadSeq && !discardNewer {
		return r, &NewerAuditError{Have: r.HeadSeq, Backup: m.AuditHeadSeq}
	}
	return r, nil
}

// RestoreDatabase restores the snapshot of backup t (manifest m) into the
// database at dbURL. Services must be stopped. A SQLite target file must
// not exist (unless force); it is replaced by a rename, never overwritten
// in place. A PostgreSQL target is cleaned object by object and restored
// in one transaction. Call CheckReplace first.
func RestoreDatabase(ctx context.Context, t Target, m Manifest, dbURL string, force bool) error {
	if dst, err := sqlitePath(dbURL); err == nil {
		if m.Engine != servicedb.EngineSQLite {
			return fmt.Errorf("the backup holds a %s database, the target is SQLite", m.Engine)
		}
		if fi, err := os.Stat(dst); err == nil && fi.Size() > 0 && !force {
			return errors.New("the target database exists; move it away or pass --force")
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
		src, err := t.Open(ctx, m.Database)
		if err != nil {
			return err
		}
		defer src.Close()
		tmp := dst + ".restore"
		if err := writeFile(ctx, tmp, src); err != nil {
			return err
		}
		for _, suffix := range []string{"-wal", "-shm"} {
			if err := os.Remove(dst + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if err := os.Rename(tmp, dst); err != nil {
			return err
		}
		return syncDir(filepath.Dir(dst))
	}
	if m.Engine != servicedb.EnginePostgres {
		return fmt.Errorf("the backup holds a %s database, the target is PostgreSQL", m.Engine)
	}
	conn, schema, err := pgArgs(dbURL)
	if err != nil {
		return err
	}
	if pgSchema(schema) != pgSchema(m.Schema) {
		// pg_dump names its schema in every statement: the dump would go
		// into the schema it came from, whatever the URL says.
		return fmt.Errorf("the backup holds PostgreSQL schema %q and restores into a schema of that name only, "+
			"not %q: use a database URL with search_path=%s (on a new server, or a new database of it)", m.Schema, schema, m.Schema)
	}
	args := []string{"--clean", "--if-exists", "--no-owner", "--single-transaction", "--dbname=" + conn}
	var stderr strings.Builder
	var cmd *exec.Cmd
	if dir := t.Dir(); dir != "" {
		cmd = exec.CommandContext(ctx, "pg_restore", append(args, filepath.Join(dir, m.Database))...)
	} else {
		src, err := t.Open(ctx, m.Database)
		if err != nil {
			return err
		}
		defer src.Close()
		cmd = exec.CommandContext(ctx, "pg_restore", args...)
		cmd.Stdin = src
	}
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("pg_restore: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// pgSchema names the schema a database URL's search_path selects.
func pgSchema(s string) string {
	if s == "" {
		return "public"
	}
	return s
}

// FilesResult counts what a restore of files did.
type FilesResult struct {
	Restored    int // objects written from the backup
	Present     int // objects already present with the right bytes
	Unavailable int // entries the backup holds no copy of (damaged when it was made)
}

// RestoreFiles puts the object of every version of backup t back into
// store (a full restore: the database is the backup's). Objects already
// present with the right bytes (read and hashed) are left; every other one
// is written from the backup, checked against its size and SHA-256 before
// it is published.
func RestoreFiles(ctx context.Context, t Target, m Manifest, store *storage.Store) (FilesResult, error) {
	var res FilesResult
	if !m.WithFiles {
		return res, errors.New("this backup holds no files (made without --files)")
	}
	for _, e := range m.Files {
		if e.Damaged != "" {
			res.Unavailable++
			continue
		}
		if ok, err := store.Matches(ctx, e.Version, e.Size, e.SHA256); err != nil {
			return res, err
		} else if ok {
			res.Present++
			continue
		}
		if err := restoreObject(ctx, t, e, store); err != nil {
			return res, err
		}
		res.Restored++
	}
	return res, nil
}

// restoreObject writes the backup's copy of e as its object in store.
func restoreObject(ctx context.Context, t Target, e Entry, store *storage.Store) error {
	f, err := t.Open(ctx, objectName(e.Version))
	if err != nil {
		return fmt.Errorf("an object of the manifest is missing from the backup: %w", err)
	}
	defer f.Close()
	if e.Sealed {
		return store.RestoreSealed(ctx, e.Version, f, e.Size, e.SHA256)
	}
	return store.Restore(ctx, e.Version, f, e.Size, e.SHA256)
}

// writeFile writes r to path (0600), fsynced.
func writeFile(ctx context.Context, path string, r io.Reader) error {
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.CopyBuffer(out, ctxReader{ctx, r}, make([]byte, 1<<20))
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}
