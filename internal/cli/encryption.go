package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"depot"
	"depot/internal/config"
	"depot/internal/crashpoint"
	"depot/servicedb"
	"depot/storage"
	"depot/storage/sealed"
)

// sealDriver wraps d with encryption at rest when DEPOT_KEK_FILE is set
// (storage/sealed). It fails closed: an unreadable KEK file, or a stored
// object that no KEK opens, refuses to start; without a KEK, a store that
// holds encrypted objects refuses too. d is closed on error.
func sealDriver(ctx context.Context, s settings, d storage.Driver) (storage.Driver, error) {
	files := sealed.SplitFiles(s.get(config.KEKFile))
	if len(files) == 0 {
		if err := sealed.CheckPlain(ctx, d); err != nil {
			d.Close()
			return nil, usageErr("refusing to start: %v", err)
		}
		return d, nil
	}
	k, err := sealed.LoadKeyring(files)
	if err != nil {
		d.Close()
		return nil, usageErr("refusing to start: DEPOT_KEK_FILE: %v", err)
	}
	sd, err := sealed.New(d, k)
	if err != nil {
		d.Close()
		return nil, usageErr("refusing to start: %v", err)
	}
	if err := sealed.Of(sd).Check(ctx); err != nil {
		d.Close()
		return nil, usageErr("refusing to start: encryption at rest: %v", err)
	}
	return sd, nil
}

// withKeyring runs fn with the KEKs of DEPOT_KEK_FILE (need says what the
// command needs them for when the variable is empty), the services database
// and the storage opened through them (storage/sealed): the frame of the
// keys commands that read or rewrite stored objects.
func withKeyring(e *env, cmd *cobra.Command, need string, fn func(ctx context.Context, db *servicedb.DB, sd *sealed.Driver, k *sealed.Keyring) error) error {
	s := settings{e: e, cmd: cmd}
	files := sealed.SplitFiles(s.get(config.KEKFile))
	if len(files) == 0 {
		return usageErr("DEPOT_KEK_FILE is required%s", need)
	}
	k, err := sealed.LoadKeyring(files)
	if err != nil {
		return usageErr("DEPOT_KEK_FILE: %v", err)
	}
	return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
		inner, err := openDriver(ctx, s.get(config.StorageURL))
		if err != nil {
			return err
		}
		defer inner.Close()
		sd, err := sealed.New(inner, k)
		if err != nil {
			return err
		}
		return fn(ctx, db, sealed.Of(sd), k)
	})
}

// eachVersion calls fn for every kept version, in ID order, 500 at a time;
// it stops at the first error of fn or of the database.
func eachVersion(ctx context.Context, db *servicedb.DB, fn func(servicedb.Version) error) error {
	for after := ""; ; {
		vs, err := db.ListVersions(ctx, servicedb.VersionFilter{After: after, Limit: 500})
		if err != nil || len(vs) == 0 {
			return err
		}
		for _, v := range vs {
			after = v.ID
			if err := fn(v); err != nil {
				return err
			}
		}
	}
}

func keysGenerateCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "generate FILE",
		Short: "write a new key-encryption key for encryption at rest (an age X25519 identity) to FILE (0600); print its public key",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			pub, err := sealed.Generate(args[0])
			if err != nil {
				return usageErr("cannot write the key: %v", err)
			}
			fmt.Fprintf(e.stderr, "key-encryption key written to %s: keep it secret, keep a copy away from the storage and its backups; without it nothing stored can be read\n", args[0])
			fmt.Fprintln(e.stdout, pub)
			return nil
		},
	}
}

func keysStatusCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "count the kept versions each key-encryption key of DEPOT_KEK_FILE protects, and those not encrypted",
		Args:  cobra.NoArgs,
	}
	bind(cmd, config.DatabaseURL, config.StorageURL, config.KEKFile)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return withKeyring(e, cmd, "", func(ctx context.Context, db *servicedb.DB, sd *sealed.Driver, k *sealed.Keyring) error {
			recips := k.Recipients()
			counts := make([]int, len(recips))
			var plain, unknown, missing int
			err := eachVersion(ctx, db, func(v servicedb.Version) error {
				hdr, err := sd.Header(ctx, v.ID)
				switch {
				case errors.Is(err, sealed.ErrNotSealed):
					plain++
				case errors.Is(err, storage.ErrNotExist):
					missing++
				case err != nil:
					return err
				default:
					if i := k.Which(hdr); i >= 0 {
						counts[i]++
					} else {
						unknown++
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			for i, r := range recips {
				fmt.Fprintf(e.stdout, "%s\t%d\n", r, counts[i])
			}
			fmt.Fprintf(e.stdout, "other-key\t%d\nnot-encrypted\t%d\nmissing\t%d\n", unknown, plain, missing)
			return nil
		})
	}
	return cmd
}

func keysRotateCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "re-wrap the data key of every kept version under the first key-encryption key of DEPOT_KEK_FILE (the data is not re-encrypted); resumable, audited",
		Long: "Give the new KEK first and the old ones after it (DEPOT_KEK_FILE=new.txt,old.txt), to this command and to services.\n" +
			"Each object whose data key is wrapped for another KEK is written anew: a new header, then its ciphertext\n" +
			"copied, published over the old object atomically. Interrupted, it is run again: objects already under\n" +
			"the new KEK are skipped. Each run is audited (keys.rotated). Then depot keys status shows 0 versions\n" +
			"under the old KEK, which can be dropped from DEPOT_KEK_FILE.",
		Args: cobra.NoArgs,
	}
	bind(cmd, config.DatabaseURL, config.StorageURL, config.KEKFile)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return withKeyring(e, cmd, " (the new KEK first, then the old ones)", func(ctx context.Context, db *servicedb.DB, sd *sealed.Driver, k *sealed.Keyring) error {
			var rotated, already, missing int
			runErr := eachVersion(ctx, db, func(v servicedb.Version) error {
				changed, err := sd.Rewrap(ctx, v.ID)
				switch {
				case errors.Is(err, storage.ErrNotExist):
					missing++
				case err != nil:
					return fmt.Errorf("version %s: %w", v.ID, err)
				case changed:
					rotated++
					crashpoint.Reach(crashpoint.Rewrapped)
				default:
					already++
				}
				return nil
			})
			meta := map[string]string{"kek": k.Recipient(), "rotated": strconv.Itoa(rotated),
				"already": strconv.Itoa(already), "missing": strconv.Itoa(missing), "complete": strconv.FormatBool(runErr == nil)}
			if err := auditAdmin(ctx, db, depot.ActionKeysRotated, meta); err != nil {
				return errors.Join(runErr, err)
			}
			fmt.Fprintf(e.stdout, "re-wrapped %d, already under %s %d, missing %d\n", rotated, k.Recipient(), already, missing)
			return runErr
		})
	}
	return cmd
}

func keysEncryptExistingCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "encrypt-existing",
		Short: "encrypt, in place, every kept version stored unencrypted (turning encryption at rest on for an existing storage); resumable, audited",
		Long: "Run with services stopped (services with DEPOT_KEK_FILE refuses unencrypted objects) and no upload in progress.\n" +
			"Each kept version whose object is not encrypted is read, checked against its recorded size and SHA-256\n" +
			"while it is encrypted into a staging area of the same ID, and published over the unencrypted object\n" +
			"atomically. Interrupted, it is run again: encrypted objects are skipped. A damaged object is left as it\n" +
			"is and reported (exit 6). Each run is audited (storage.encrypted).",
		Args: cobra.NoArgs,
	}
	bind(cmd, config.DatabaseURL, config.StorageURL, config.KEKFile)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		return withKeyring(e, cmd, "", func(ctx context.Context, db *servicedb.DB, sd *sealed.Driver, k *sealed.Keyring) error {
			var encrypted, already, missing, damaged int
			runErr := eachVersion(ctx, db, func(v servicedb.Version) error {
				changed, err := sd.EncryptInPlace(ctx, v.ID, v.Size, v.SHA256)
				switch {
				case errors.Is(err, storage.ErrNotExist):
					missing++
				case errors.Is(err, sealed.ErrMismatch):
					damaged++
					fmt.Fprintf(e.stderr, "version %s: damaged (not encrypted; see depot verify, depot restore --files-only)\n", v.ID)
				case err != nil:
					return fmt.Errorf("version %s: %w", v.ID, err)
				case changed:
					encrypted++
					crashpoint.Reach(crashpoint.Encrypted)
				default:
					already++
				}
				return nil
			})
			meta := map[string]string{"kek": k.Recipient(), "encrypted": strconv.Itoa(encrypted), "already": strconv.Itoa(already),
				"missing": strconv.Itoa(missing), "damaged": strconv.Itoa(damaged), "complete": strconv.FormatBool(runErr == nil)}
			if err := auditAdmin(ctx, db, depot.ActionStorageEncrypted, meta); err != nil {
				return errors.Join(runErr, err)
			}
			fmt.Fprintf(e.stdout, "encrypted %d, already encrypted %d, missing %d, damaged %d\n", encrypted, already, missing, damaged)
			if runErr == nil && (damaged > 0 || missing > 0) {
				return &exitError{code: ExitIntegrity, err: fmt.Errorf("%d damaged and %d missing objects were not encrypted", damaged, missing)}
			}
			return runErr
		})
	}
	return cmd
}
