package cli

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"depot/internal/config"
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
		s := settings{e: e, cmd: cmd}
		files := sealed.SplitFiles(s.get(config.KEKFile))
		if len(files) == 0 {
			return usageErr("DEPOT_KEK_FILE is required")
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
			recips := k.Recipients()
			counts := make([]int, len(recips))
			var plain, unknown, missing int
			for after := ""; ; {
				vs, err := db.ListVersions(ctx, servicedb.VersionFilter{After: after, Limit: 500})
				if err != nil {
					return err
				}
				if len(vs) == 0 {
					break
				}
				for _, v := range vs {
					after = v.ID
					hdr, err := sealed.Of(sd).Header(ctx, v.ID)
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
				}
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
