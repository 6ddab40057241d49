// Package backup makes a consistent online backup of the services tier — a
// database snapshot, a manifest of every kept version (ID, path, size,
// SHA-256) read from that same snapshot and, optionally, their stored
// objects — into a local directory or an S3 prefix, and restores it: the
// whole of it (database and files), or only files into a live system
// (Repair). Snapshots use the engines' own tools: SQLite's VACUUM INTO,
// PostgreSQL's pg_dump/pg_restore.
//
// While a backup runs it holds a lease in the database (servicedb,
// backup_leases): no stored object is removed while one is in force
// (storage.Options.DeferDelete, servicedb.DB.Referenced), so the object of
// every version of the snapshot can still be copied however long the copy
// takes, while uploads, overwrites, deletes and purges go on. Objects are
// immutable, so a copied object is the version's bytes; each is checked
// against the version's size and SHA-256 while it is copied.
package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/url"
	"os"
	"time"

	"depot"
	"depot/internal/crashpoint"
	"depot/servicedb"
	"depot/storage"
)

// Manifest describes a backup. It is written last, so a backup without
// one is incomplete.
type Manifest struct {
	Created  time.Time `json:"created"`
	Engine   string    `json:"engine"`
	Database string    `json:"database"` // name of the snapshot inside the backup
	// Schema is the PostgreSQL schema dumped (the search_path of the
	// database URL; "" for the whole database): a restore goes into a
	// schema of the same name.
	Schema       string  `json:"schema,omitempty"`
	AuditHeadSeq int64   `json:"audit_head_seq"`
	AuditHead    string  `json:"audit_head_hash"`
	WithFiles    bool    `json:"with_files"`
	Files        []Entry `json:"files"`
	// Damaged counts the entries whose object could not be copied intact.
	Damaged int `json:"damaged,omitempty"`
}

// Entry is one kept version of the snapshot.
type Entry struct {
	Version string      `json:"version"`
	Key     string      `json:"key"`
	Size    int64       `json:"size"`
	SHA256  string      `json:"sha256"`
	Class   depot.Class `json:"class"`
	// Damaged is set when the backup holds no copy of the object because
	// it was missing ("missing") or did not match the version
	// ("size_mismatch", "hash_mismatch") when it was read: what
	// depot verify reports too.
	Damaged string `json:"damaged,omitempty"`
	// Sealed is set when the backup's copy is the stored, encrypted form
	// of the object (an age file; encryption at rest): the backup then
	// carries ciphertext and wrapped data keys only.
	Sealed bool `json:"sealed,omitempty"`
}

// ManifestName is the manifest's name inside a backup.
const ManifestName = "manifest.json"

// objectName is the name of the copy of version id inside a backup.
func objectName(id string) string { return "files/" + id }

// Options configure Create.
type Options struct {
	DB        *servicedb.DB
	DBURL     string
	Store     *storage.Store
	Target    Target
	WithFiles bool
	// Holder names the process in its lease (host and PID).
	Holder string
	// LeaseTTL is how long the lease lasts unless renewed; it is renewed
	// every quarter of it. Default 10 minutes: a backup that dies holds
	// back removals of objects that long at most.
	LeaseTTL time.Duration
}

// Create writes a backup into o.Target, which must be empty. With
// WithFiles every object of the manifest is copied too, verified while
// copying; an object that is missing or damaged is recorded as such in the
// manifest (Manifest.Damaged counts them) and does not stop the backup.
func Create(ctx context.Context, o Options) (Manifest, error) {
	if empty, err := o.Target.Empty(ctx); err != nil {
		return Manifest{}, err
	} else if !empty {
		return Manifest{}, fmt.Errorf("the backup location %s is not empty", o.Target)
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Minute
	}
	lease, err := o.DB.TakeBackupLease(ctx, o.Holder, o.LeaseTTL)
	if err != nil {
		return Manifest{}, err
	}
	defer o.DB.ReleaseBackupLease(context.WithoutCancel(ctx), lease) //nolint:errcheck // it also ends by itself
	ctx, stop := context.WithCancelCause(ctx)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		renewLease(ctx, o.DB, lease, o.LeaseTTL, stop)
	}()
	defer func() { stop(nil); <-renewed }()

	m := Manifest{Created: time.Now().UTC(), Engine: o.DB.Engine(), WithFiles: o.WithFiles}
	if err := snapshot(ctx, o.DB, o.DBURL, o.Target, &m); err != nil {
		return m, causeOf(ctx, err)
	}
	crashpoint.Pause(crashpoint.BackupSnapshotTaken)
	if o.WithFiles {
		for i := range m.Files {
			e := &m.Files[i]
			e.Sealed = o.Store.Sealed()
			if e.Damaged, err = copyOut(ctx, o.Store, *e, o.Target); err != nil {
				return m, causeOf(ctx, err)
			}
			if e.Damaged != "" {
				m.Damaged++
			}
		}
	}
	// Still leased: no object was removed while they were copied.
	if err := o.DB.RenewBackupLease(ctx, lease, o.LeaseTTL); err != nil {
		return m, causeOf(ctx, err)
	}
	return m, writeManifest(ctx, o.Target, m)
}

// renewLease renews lease every quarter of ttl until ctx ends; when the
// lease has ended (it expired: renewals failed for longer than ttl) it
// stops the backup.
func renewLease(ctx context.Context, db *servicedb.DB, lease int64, ttl time.Duration, stop context.CancelCauseFunc) {
	t := time.NewTicker(ttl / 4)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := db.RenewBackupLease(ctx, lease, ttl); depot.ErrorCode(err) == depot.CodeNotFound {
				stop(err)
				return
			}
		}
	}
}

// causeOf prefers the reason the backup was stopped (its lease ended) to
// the error it caused.
func causeOf(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	return err
}

// copyOut copies the object of version e into t, verifying its size and
// SHA-256 while copying. It returns why the object could not be copied
// intact ("missing", "size_mismatch", "hash_mismatch"; nothing is stored
// then), or an error that must stop the backup.
func copyOut(ctx context.Context, store *storage.Store, e Entry, t Target) (string, error) {
	if e.Sealed {
		return copyOutSealed(ctx, store, e, t)
	}
	rc, err := store.Open(ctx, e.Version, 0, -1)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		return "missing", nil
	}
	if err != nil {
		return "", fmt.Errorf("open a stored object: %w", err)
	}
	defer rc.Close()
	err = t.Put(ctx, objectName(e.Version), newVerifier(rc, e.Size, e.SHA256), e.Size)
	var mm *mismatch
	if errors.As(err, &mm) {
		return mm.code, nil
	}
	if err != nil {
		return "", fmt.Errorf("copy a stored object: %w", err)
	}
	return "", nil
}

// copyOutSealed copies the stored (encrypted) form of version e into t,
// verifying while copying that it decrypts to the version's size and
// SHA-256; as copyOut otherwise.
func copyOutSealed(ctx context.Context, store *storage.Store, e Entry, t Target) (string, error) {
	raw, size, err := store.OpenSealed(ctx, e.Version)
	if depot.ErrorCode(err) == depot.CodeNotFound {
		return "missing", nil
	}
	if err != nil {
		return "", fmt.Errorf("open a stored object: %w", err)
	}
	defer raw.Close()
	checked := store.CheckSealed(raw, func(plain io.Reader) error {
		_, err := io.Copy(io.Discard, newVerifier(plain, e.Size, e.SHA256))
		var mm *mismatch
		if err != nil && !errors.As(err, &mm) {
			return &mismatch{code: "hash_mismatch"} // fails authentication: damaged
		}
		return err
	})
	defer checked.Close()
	err = t.Put(ctx, objectName(e.Version), checked, size)
	var mm *mismatch
	if errors.As(err, &mm) {
		return mm.code, nil
	}
	if err != nil {
		return "", fmt.Errorf("copy a stored object: %w", err)
	}
	return "", nil
}

// mismatch is the error of a verifier whose bytes are not the version's.
type mismatch struct{ code string }

func (m *mismatch) Error() string {
	return "the stored bytes do not match the version's record (" + m.code + ")"
}

// verifier passes on the bytes of r and fails with a *mismatch unless they
// are exactly size bytes whose SHA-256 is sum. It checks as soon as size
// bytes have passed, so a reader that stops at the declared size (an S3
// upload) is checked too.
type verifier struct {
	r    io.Reader
	size int64
	sum  string
	h    hash.Hash
	n    int64
	done bool
}

func newVerifier(r io.Reader, size int64, sum string) *verifier {
	return &verifier{r: r, size: size, sum: sum, h: sha256.New()}
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.done {
		return 0, io.EOF
	}
	if rest := v.size - v.n; int64(len(p)) > rest {
		p = p[:rest]
	}
	n := 0
	var err error
	if len(p) > 0 {
		n, err = v.r.Read(p)
		v.h.Write(p[:n])
		v.n += int64(n)
	}
	switch {
	case err == io.EOF && v.n < v.size:
		return n, &mismatch{code: "size_mismatch"}
	case err != nil && err != io.EOF:
		return n, err
	case v.n < v.size:
		return n, nil
	}
	// All size bytes are here: nothing may follow, and the hash must match.
	var one [1]byte
	if k, _ := io.ReadFull(v.r, one[:]); k > 0 {
		return n, &mismatch{code: "size_mismatch"}
	}
	if hex.EncodeToString(v.h.Sum(nil)) != v.sum {
		return n, &mismatch{code: "hash_mismatch"}
	}
	v.done = true
	return n, io.EOF
}

// writeManifest writes m as the last part of the backup in t.
func writeManifest(ctx context.Context, t Target, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return t.Put(ctx, ManifestName, bytes.NewReader(b), int64(len(b)))
}

// ReadManifest reads the manifest of the backup in t.
func ReadManifest(ctx context.Context, t Target) (Manifest, error) {
	var m Manifest
	rc, err := t.Open(ctx, ManifestName)
	if err != nil {
		return m, fmt.Errorf("no complete backup in %s: %w", t, err)
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(&m); err != nil {
		return m, fmt.Errorf("the manifest of %s is unreadable: %w", t, err)
	}
	return m, nil
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
