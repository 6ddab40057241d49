package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"depot"
	"depot/backup"
	"depot/internal/config"
	"depot/servicedb"
	"depot/storage"
)

func backupCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup DIR|s3://BUCKET/PREFIX?endpoint=…",
		Short: "write a consistent online backup: database snapshot, manifest of every file, optionally the files",
		Long: "Writes a backup while the system runs: a database snapshot and a manifest of every kept version from the\n" +
			"same point in time, and with --files a verified copy of each version's stored object. Objects are kept\n" +
			"until the backup ends (a lease in the database). The location must be new or empty: a local directory\n" +
			"(files 0600, directories 0700) or an S3 prefix (credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY,\n" +
			"or profile=NAME of the AWS shared credentials file). Exits 6 when a stored object was missing or damaged.",
		Args: cobra.ExactArgs(1),
	}
	bind(cmd, config.DatabaseURL, config.StorageURL, config.KEKFile)
	files := cmd.Flags().Bool("files", false, "copy every kept version's object into the backup too (verified while copying)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s := settings{e: e, cmd: cmd}
		ctx := cmd.Context()
		t, err := backup.OpenTarget(ctx, args[0])
		if err != nil {
			return usageErr("%v", err)
		}
		if err := freshBackup(ctx, t); err != nil {
			return err
		}
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			store, err := openStore(ctx, s, db, storage.Options{})
			if err != nil {
				return err
			}
			defer store.Close()
			host, _ := os.Hostname()
			m, err := backup.Create(ctx, backup.Options{
				DB: db, DBURL: s.get(config.DatabaseURL), Store: store, Target: t, WithFiles: *files,
				Holder: host + ":" + strconv.Itoa(os.Getpid()),
			})
			if err != nil {
				return err
			}
			if err := auditAdmin(ctx, db, depot.ActionBackupCreated, map[string]string{
				"files": strconv.Itoa(len(m.Files)), "with_files": strconv.FormatBool(m.WithFiles),
				"audit_head_seq": strconv.FormatInt(m.AuditHeadSeq, 10), "damaged": strconv.Itoa(m.Damaged),
				"location": t.String(),
			}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "backup written to %s: %s database, %d files%s, audit head %d %s\n", t,
				m.Engine, len(m.Files), map[bool]string{true: " (with contents)", false: " (manifest only)"}[m.WithFiles],
				m.AuditHeadSeq, m.AuditHead)
			if m.Damaged > 0 {
				return &exitError{code: ExitIntegrity, err: fmt.Errorf("%d stored objects were missing or damaged and are not in the backup "+
					"(the manifest marks them); run depot verify, and repair them from an earlier backup (depot restore --files-only)", m.Damaged)}
			}
			return nil
		})
	}
	return cmd
}

func restoreCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore DIR|s3://… [COHORT/PATH…]",
		Short: "restore a backup: the whole of it (database and files), or with --files-only damaged files into the live system",
		Long: "Without --files-only: replaces the database with the backup's snapshot (services must be stopped) and puts\n" +
			"back every file the backup holds; refused when the database has audit records newer than the backup,\n" +
			"unless --discard-newer-audit. With --files-only: leaves the database alone and writes back, under the same\n" +
			"version, the bytes of every kept version whose stored object is missing or damaged (read and hashed as\n" +
			"depot verify does), optionally only below the COHORT/PATHs given; each file written is audited\n" +
			"(restore.files). Run as the owner of the storage directory or as root (restored files then get the\n" +
			"directory's owner). Exits 6 when a damaged file could not be repaired.",
		Args: cobra.MinimumNArgs(1),
	}
	bind(cmd, config.DatabaseURL, config.StorageURL, config.KEKFile)
	force := cmd.Flags().Bool("force", false, "overwrite an existing SQLite database file")
	filesOnly := cmd.Flags().Bool("files-only", false, "repair missing or damaged files of the live system; leave the database alone")
	discard := cmd.Flags().Bool("discard-newer-audit", false, "replace a database whose audit trail is longer than the backup's (its newer records are lost)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s := settings{e: e, cmd: cmd}
		ctx := cmd.Context()
		if s.get(config.DatabaseURL) == "" {
			return usageErr("DEPOT_DATABASE_URL is required")
		}
		t, err := backup.OpenTarget(ctx, args[0])
		if err != nil {
			return usageErr("%v", err)
		}
		m, err := backup.ReadManifest(ctx, t)
		if err != nil {
			return usageErr("%v", err)
		}
		if *filesOnly {
			return restoreFilesOnly(e, cmd, s, t, m, args[1:])
		}
		if len(args) > 1 {
			return usageErr("paths select files to repair: add --files-only (a full restore replaces the database and every file)")
		}
		return restoreAll(e, cmd, s, t, m, *force, *discard)
	}
	return cmd
}

// owners records who must own the local files a restore writes, read
// before it writes them.
type owners struct {
	storage string
	db      string
	storeOw backup.Owner
	dbOw    backup.Owner
}

func ownersOf(s settings) (owners, error) {
	var o owners
	o.storage = localStoragePath(s.get(config.StorageURL))
	if o.storage != "" {
		if err := backup.CheckRunAs(o.storage); err != nil {
			return o, usageErr("%v", err)
		}
		var err error
		if o.storeOw, err = backup.OwnerFor(o.storage); err != nil {
			return o, err
		}
	}
	return o, nil
}

// fix gives what the restore wrote the owners read before it.
func (o owners) fix(w *env) error {
	n := 0
	if o.storage != "" {
		c, err := backup.FixOwnership(o.storage, o.storeOw)
		if err != nil {
			return fmt.Errorf("give restored files the owner of the storage directory: %w", err)
		}
		n += c
	}
	if o.db != "" {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			c, err := backup.FixOwnership(o.db+suffix, o.dbOw)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("give the restored database the owner of its directory: %w", err)
			}
			n += c
		}
	}
	if n > 0 {
		fmt.Fprintf(w.stdout, "ownership: %d restored entries given the owner of their directory\n", n)
	}
	return nil
}

func restoreFilesOnly(e *env, cmd *cobra.Command, s settings, t backup.Target, m backup.Manifest, paths []string) error {
	if !m.WithFiles {
		return usageErr("this backup holds no files (made without --files)")
	}
	for _, p := range paths {
		if err := depot.ValidatePrefix(p); err != nil {
			return usageErr("%q is not a COHORT/PATH: %v", p, err)
		}
	}
	own, err := ownersOf(s)
	if err != nil {
		return err
	}
	var res backup.RepairResult
	err = withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
		store, err := openStore(ctx, s, db, storage.Options{})
		if err != nil {
			return err
		}
		defer store.Close()
		res, err = backup.Repair(ctx, backup.RepairOptions{
			DB: db, Store: store, Target: t, Manifest: m, Paths: paths,
			Audit: func(ctx context.Context, ev depot.AuditEvent) error {
				ev.Actor, ev.AuthMethod, ev.ServerRole, ev.DeclaredSize = "operator", "cli", "cli", -1
				_, err := db.Append(ctx, ev)
				return err
			},
		})
		return err
	})
	if ferr := own.fix(e); err == nil {
		err = ferr
	}
	for _, it := range res.Items {
		switch it.Outcome {
		case backup.RepairRestored:
			fmt.Fprintf(e.stdout, "restored  %s (version %s, was %s)\n", it.Key, it.Version, it.Damage)
		case backup.RepairGone:
			fmt.Fprintf(e.stdout, "not restored  %s (version %s): the live system no longer keeps this version; a files-only restore never adds one "+
				"(its bytes are in the backup as files/%s: upload them again as a new version if they are wanted)\n", it.Key, it.Version, it.Version)
		default:
			fmt.Fprintf(e.stdout, "NOT REPAIRED  %s (version %s, %s): %s\n", it.Key, it.Version, it.Damage, it.Outcome)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "files-only restore from %s (made %s): %d files checked, %d intact, %d restored, %d not repaired\n",
		t, m.Created.UTC().Format(time.RFC3339), res.Checked, res.Intact, res.Restored, res.Failed)
	if res.Failed > 0 {
		return &exitError{code: ExitIntegrity, err: fmt.Errorf("%d damaged or missing files could not be repaired from this backup", res.Failed)}
	}
	return nil
}

func restoreAll(e *env, cmd *cobra.Command, s settings, t backup.Target, m backup.Manifest, force, discard bool) error {
	ctx := cmd.Context()
	dbURL := s.get(config.DatabaseURL)
	replaced, err := backup.CheckReplace(ctx, dbURL, m, discard)
	var newer *backup.NewerAuditError
	if errors.As(err, &newer) {
		return usageErr("%v", err)
	}
	if err != nil {
		return err
	}
	own, err := ownersOf(s)
	if err != nil {
		return err
	}
	if path, ok := sqliteFile(dbURL); ok {
		if err := backup.CheckRunAs(filepath.Dir(path)); err != nil {
			return usageErr("%v", err)
		}
		own.db = path
		if own.dbOw, err = backup.OwnerFor(filepath.Dir(path)); err != nil {
			return err
		}
	}
	if err := backup.RestoreDatabase(ctx, t, m, dbURL, force); err != nil {
		return err
	}
	err = withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
		if err := db.ClearBackupLeases(ctx); err != nil {
			return err
		}
		var res backup.FilesResult
		if m.WithFiles {
			store, err := openStore(ctx, s, db, storage.Options{})
			if err != nil {
				return err
			}
			defer store.Close()
			if res, err = backup.RestoreFiles(ctx, t, m, store); err != nil {
				return err
			}
		}
		seq, head, err := db.Head(ctx)
		if err != nil {
			return err
		}
		if seq != m.AuditHeadSeq || head != m.AuditHead {
			return &exitError{code: ExitIntegrity, err: fmt.Errorf("the restored audit trail ends at %d, the backup's manifest at %d", seq, m.AuditHeadSeq)}
		}
		meta := map[string]string{
			"files_restored": strconv.Itoa(res.Restored), "files_present": strconv.Itoa(res.Present),
			"files_unavailable": strconv.Itoa(res.Unavailable), "backup_created": m.Created.UTC().Format(time.RFC3339),
			"backup_audit_head_seq": strconv.FormatInt(m.AuditHeadSeq, 10), "location": t.String(),
		}
		if replaced.Exists {
			meta["replaced_audit_head_seq"] = strconv.FormatInt(replaced.HeadSeq, 10)
			meta["replaced_audit_head_hash"] = replaced.HeadHash
			if d := replaced.HeadSeq - m.AuditHeadSeq; d > 0 {
				meta["discarded_audit_records"] = strconv.FormatInt(d, 10)
			}
		}
		if err := auditAdmin(ctx, db, depot.ActionRestoreCompleted, meta); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "restored: %s database (audit head %d), %d of %d files written, %d already present",
			m.Engine, seq, res.Restored, len(m.Files), res.Present)
		if res.Unavailable > 0 {
			fmt.Fprintf(e.stdout, ", %d not in the backup (damaged when it was made)", res.Unavailable)
		}
		fmt.Fprintln(e.stdout)
		if replaced.HeadSeq > m.AuditHeadSeq {
			fmt.Fprintf(e.stdout, "discarded audit records %d to %d of the replaced database (--discard-newer-audit)\n", m.AuditHeadSeq+1, replaced.HeadSeq)
		}
		if res.Unavailable > 0 {
			return &exitError{code: ExitIntegrity, err: fmt.Errorf("%d files of the backup had no intact copy", res.Unavailable)}
		}
		return nil
	})
	if ferr := own.fix(e); err == nil {
		err = ferr
	}
	return err
}

// sqliteFile returns the file of a sqlite: database URL.
func sqliteFile(dbURL string) (string, bool) {
	rest, ok := strings.CutPrefix(dbURL, "sqlite:")
	if !ok {
		return "", false
	}
	path, _, _ := strings.Cut(strings.TrimPrefix(rest, "//"), "?")
	return path, path != ""
}

// freshBackup refuses a backup location that is not empty, saying why:
// every backup needs a location of its own, so that an earlier backup is
// never mixed with or overwritten by a later one (a second backup the same
// day into /backup/$(date +%F) used to fail with a bare "not empty").
func freshBackup(ctx context.Context, t backup.Target) error {
	empty, err := t.Empty(ctx)
	if err != nil || empty {
		return err
	}
	const advice = "give each backup a location of its own, e.g. /backup/$(date -u +%Y%m%dT%H%M%SZ)"
	if m, err := backup.ReadManifest(ctx, t); err == nil {
		return usageErr("%s already holds a backup (made %s, audit head %d); %s",
			t, m.Created.UTC().Format(time.RFC3339), m.AuditHeadSeq, advice)
	}
	return usageErr("%s is not empty and holds no complete backup (an interrupted one?): remove it or %s", t, advice)
}
