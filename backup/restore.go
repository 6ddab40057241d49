package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"depot/storage"
)

// RestoreDatabase restores the snapshot of the backup in dir into the
// database at dbURL. A SQLite target file must not exist (unless force); a
// PostgreSQL target is cleaned object by object and restored in one
// transaction.
func RestoreDatabase(ctx context.Context, dir, dbURL string, force bool) (Manifest, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return m, err
	}
	src := filepath.Join(dir, m.Database)
	switch {
	case strings.HasPrefix(dbURL, "sqlite:"):
		if m.Engine != "sqlite" {
			return m, fmt.Errorf("the backup holds a %s database, the target is SQLite", m.Engine)
		}
		dst := strings.TrimPrefix(strings.TrimPrefix(dbURL, "sqlite:"), "//")
		if i := strings.IndexByte(dst, '?'); i >= 0 {
			dst = dst[:i]
		}
		if _, err := os.Stat(dst); err == nil && !force {
			return m, errors.New("the target database exists; move it away or pass --force")
		}
		for _, suffix := range []string{"-wal", "-shm"} {
			_ = os.Remove(dst + suffix)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return m, err
		}
		return m, copyFile(src, dst)
	default:
		if m.Engine != "postgres" {
			return m, fmt.Errorf("the backup holds a %s database, the target is PostgreSQL", m.Engine)
		}
		conn, _, err := pgArgs(dbURL)
		if err != nil {
			return m, err
		}
		cmd := exec.CommandContext(ctx, "pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", "--dbname="+conn, src)
		if b, err := cmd.CombinedOutput(); err != nil {
			return m, fmt.Errorf("pg_restore: %v: %s", err, strings.TrimSpace(string(b)))
		}
		return m, nil
	}
}

// RestoreFiles puts the object of every version of the backup back into
// store, each verified against its size and SHA-256 as it is written.
// Objects already present with the right bytes are skipped. It returns how
// many were restored.
func RestoreFiles(ctx context.Context, dir string, m Manifest, store *storage.Store) (int, error) {
	if !m.WithFiles {
		return 0, errors.New("this backup holds no files (made without --files)")
	}
	n := 0
	for _, e := range m.Files {
		if ok, err := store.Matches(ctx, e.Version, e.Size, e.SHA256); err != nil {
			return n, err
		} else if ok {
			continue
		}
		f, err := os.Open(filepath.Join(dir, "files", e.Version))
		if err != nil {
			return n, fmt.Errorf("an object of the manifest is missing from the backup: %w", err)
		}
		err = store.Restore(ctx, e.Version, f, e.Size, e.SHA256)
		f.Close()
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
