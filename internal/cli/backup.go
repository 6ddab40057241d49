package cli

import (
	"context"
	"fmt"
	"os"
	"strconv"
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
		Use:   "backup DIR",
		Short: "write a consistent backup: database snapshot, manifest of every file, optionally the files",
		Args:  cobra.ExactArgs(1),
	}
	bind(cmd, config.DatabaseURL, config.StorageURL)
	files := cmd.Flags().Bool("files", false, "copy every committed file into the backup too (verified while copying)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s := settings{e: e, cmd: cmd}
		if err := freshBackupDir(args[0]); err != nil {
			return err
		}
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			store, err := openStore(ctx, s.get(config.StorageURL), db, storage.Options{})
			if err != nil {
				return err
			}
			defer store.Close()
			m, err := backup.Create(ctx, db, s.get(config.DatabaseURL), store, args[0], *files)
			if err != nil {
				return err
			}
			if err := auditAdmin(ctx, db, depot.ActionBackupCreated, map[string]string{
				"files": strconv.Itoa(len(m.Files)), "with_files": strconv.FormatBool(m.WithFiles),
				"audit_head_seq": strconv.FormatInt(m.AuditHeadSeq, 10),
			}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "backup written: %s database, %d files%s, audit head %d %s\n",
				m.Engine, len(m.Files), map[bool]string{true: " (with contents)", false: " (manifest only)"}[m.WithFiles],
				m.AuditHeadSeq, m.AuditHead)
			return nil
		})
	}
	return cmd
}

func restoreCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "restore DIR",
		Short: "restore a backup: the database snapshot and, when the backup has them, the files",
		Args:  cobra.ExactArgs(1),
	}
	bind(cmd, config.DatabaseURL, config.StorageURL)
	force := cmd.Flags().Bool("force", false, "overwrite an existing SQLite database file")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s := settings{e: e, cmd: cmd}
		ctx := cmd.Context()
		dbURL := s.get(config.DatabaseURL)
		if dbURL == "" {
			return usageErr("DEPOT_DATABASE_URL is required")
		}
		m, err := backup.RestoreDatabase(ctx, args[0], dbURL, *force)
		if err != nil {
			return err
		}
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			restored := 0
			if m.WithFiles {
				store, err := openStore(ctx, s.get(config.StorageURL), db, storage.Options{})
				if err != nil {
					return err
				}
				defer store.Close()
				if restored, err = backup.RestoreFiles(ctx, args[0], m, store); err != nil {
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
			if err := auditAdmin(ctx, db, depot.ActionRestoreCompleted, map[string]string{
				"files_restored": strconv.Itoa(restored), "backup_created": m.Created.Format("2006-01-02T15:04:05Z"),
			}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "restored: %s database (audit head %d), %d of %d files written\n", m.Engine, seq, restored, len(m.Files))
			return nil
		})
	}
	return cmd
}

// freshBackupDir refuses a backup directory that is not empty, saying why:
// every backup needs a directory of its own, so that an earlier backup is
// never mixed with or overwritten by a later one (a second backup the same
// day into /backup/$(date +%F) used to fail with a bare "not empty").
func freshBackupDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) == 0 {
		return nil // missing or empty: backup.Create makes it
	}
	const advice = "give each backup a directory of its own, e.g. /backup/$(date -u +%Y%m%dT%H%M%SZ)"
	if m, err := backup.ReadManifest(dir); err == nil {
		return usageErr("%s already holds a backup (made %s, audit head %d); %s",
			dir, m.Created.UTC().Format(time.RFC3339), m.AuditHeadSeq, advice)
	}
	return usageErr("%s is not empty and holds no complete backup (an interrupted one?): remove it or %s", dir, advice)
}
