// Package backup makes a consistent backup of the services tier — a database
// snapshot, a manifest of every kept version (ID, path, size, SHA-256) and,
// optionally, their stored objects — and restores it. Snapshots use the
// engines' own tools: SQLite's VACUUM INTO, PostgreSQL's pg_dump/pg_restore.
package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"depot"
	"depot/servicedb"
	"depot/storage"
)

// Manifest describes a backup. It is written last, so a directory without
// one is an incomplete backup.
type Manifest struct {
	Created      time.Time `json:"created"`
	Engine       string    `json:"engine"`
	Database     string    `json:"database"` // file name of the snapshot inside the backup
	AuditHeadSeq int64     `json:"audit_head_seq"`
	AuditHead    string    `json:"audit_head_hash"`
	WithFiles    bool      `json:"with_files"`
	Files        []Entry   `json:"files"`
}

// Entry is one kept version.
type Entry struct {
	Version string      `json:"version"`
	Key     string      `json:"key"`
	Size    int64       `json:"size"`
	SHA256  string      `json:"sha256"`
	Class   depot.Class `json:"class"`
}

// ManifestName is the manifest's file name inside a backup directory.
const ManifestName = "manifest.json"

// Create writes a backup of db (whose URL is dbURL) and store into dir, which
// must be empty or missing. With withFiles every committed file is copied
// into dir/files/ and its SHA-256 checked while copying.
func Create(ctx context.Context, db *servicedb.DB, dbURL string, store *storage.Store, dir string, withFiles bool) (Manifest, error) {
	if err := emptyDir(dir); err != nil {
		return Manifest{}, err
	}
	m := Manifest{Created: time.Now().UTC(), Engine: db.Engine(), WithFiles: withFiles}
	var err error
	if m.AuditHeadSeq, m.AuditHead, err = db.Head(ctx); err != nil {
		return m, err
	}
	switch db.Engine() {
	case "sqlite":
		m.Database = "depot.db"
		if err := createPrivate(filepath.Join(dir, m.Database)); err != nil { // VACUUM INTO fills an empty file
			return m, err
		}
		if _, err := db.SQL().ExecContext(ctx, `VACUUM INTO ?`, filepath.Join(dir, m.Database)); err != nil {
			return m, fmt.Errorf("snapshot the SQLite database: %w", err)
		}
	default:
		m.Database = "depot.pgdump"
		if err := pgDump(ctx, dbURL, filepath.Join(dir, m.Database)); err != nil {
			return m, err
		}
	}
	after := ""
	for {
		recs, err := db.ListVersions(ctx, servicedb.VersionFilter{After: after, Limit: 1000})
		if err != nil {
			return m, err
		}
		for _, r := range recs {
			e := Entry{Version: r.ID, Key: r.Key, Size: r.Size, SHA256: r.SHA256, Class: r.Class}
			if withFiles {
				if err := copyOut(ctx, store, e, filepath.Join(dir, "files")); err != nil {
					return m, err
				}
			}
			m.Files = append(m.Files, e)
			after = r.ID
		}
		if len(recs) < 1000 {
			break
		}
	}
	return m, writeManifest(dir, m)
}

// copyOut copies the object of one version into root/<version>, verifying
// its SHA-256.
func copyOut(ctx context.Context, store *storage.Store, e Entry, root string) error {
	rc, err := store.Open(ctx, e.Version, 0, -1)
	if err != nil {
		return fmt.Errorf("open a stored object: %w", err)
	}
	defer rc.Close()
	dst := filepath.Join(root, e.Version)
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	h := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(f, h), rc, make([]byte, 1<<20))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy a stored file: %w", err)
	}
	if n != e.Size || hex.EncodeToString(h.Sum(nil)) != e.SHA256 {
		return depot.Errorf(depot.CodeHashMismatch, "a stored file does not match its record; run depot verify")
	}
	return nil
}

func writeManifest(dir string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, ManifestName+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, ManifestName))
}

// ReadManifest reads the manifest of the backup in dir.
func ReadManifest(dir string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		return m, fmt.Errorf("no complete backup in this directory: %w", err)
	}
	return m, json.Unmarshal(b, &m)
}

func emptyDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return errors.New("the backup directory is not empty")
	}
	return nil
}

// pgArgs splits a postgres URL into a libpq URL (without the search_path
// parameter, which libpq does not know) and the schema it selected.
func pgArgs(dbURL string) (conn, schema string, err error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "", "", err
	}
	q := u.Query()
	schema = q.Get("search_path")
	q.Del("search_path")
	u.RawQuery = q.Encode()
	return u.String(), schema, nil
}

// createPrivate creates an empty file readable by its owner only.
// pg_dump and SQLite's VACUUM INTO create theirs with the process umask
// (0644 under the usual 022); filled into this one instead, the snapshot of
// the accounts and the audit trail is never readable by others, not even
// briefly.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

func pgDump(ctx context.Context, dbURL, out string) error {
	conn, schema, err := pgArgs(dbURL)
	if err != nil {
		return err
	}
	if err := createPrivate(out); err != nil {
		return err
	}
	args := []string{"--format=custom", "--no-owner", "--file=" + out}
	if schema != "" {
		args = append(args, "--schema="+schema)
	}
	cmd := exec.CommandContext(ctx, "pg_dump", append(args, conn)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pg_dump: %v: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}
