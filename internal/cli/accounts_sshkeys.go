package cli

import (
	"context"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"depot"
	"depot/servicedb"
)

// sshKeyCmds are the users subcommands that manage the SSH public keys a
// user signs in to the SFTP entrance with: add-key, remove-key, keys.
// Adding and removing are audited (ssh_key.added, ssh_key.removed).
func sshKeyCmds(e *env) []*cobra.Command {
	add := dbCommand("add-key USER PUBKEY_FILE", "register an SSH public key (one authorized_keys line) for SFTP sign-in", cobra.ExactArgs(2))
	add.RunE = func(cmd *cobra.Command, args []string) error {
		line, err := os.ReadFile(args[1])
		if err != nil {
			return usageErr("cannot read %s: %v", args[1], err)
		}
		if len(line) > 16<<10 {
			return usageErr("%s is too large for a public key", args[1])
		}
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			info, err := db.AddSSHKey(ctx, args[0], string(line))
			if err != nil {
				return err
			}
			if err := auditAdmin(ctx, db, depot.ActionSSHKeyAdded, map[string]string{"user": args[0], "fingerprint": info.Fingerprint, "type": info.Type}); err != nil {
				return err
			}
			fmt.Fprintln(e.stdout, info.Fingerprint)
			return nil
		})
	}
	remove := dbCommand("remove-key USER FINGERPRINT", "revoke a user's SSH public key (SHA256:… as listed by keys)", cobra.ExactArgs(2))
	remove.RunE = func(cmd *cobra.Command, args []string) error {
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			if err := db.RevokeSSHKey(ctx, args[0], args[1]); err != nil {
				return err
			}
			return auditAdmin(ctx, db, depot.ActionSSHKeyRemoved, map[string]string{"user": args[0], "fingerprint": args[1]})
		})
	}
	list := dbCommand("keys USER", "list a user's SSH public keys", cobra.ExactArgs(1))
	list.RunE = func(cmd *cobra.Command, args []string) error {
		return withDB(e, cmd, func(ctx context.Context, db *servicedb.DB) error {
			keys, err := db.ListSSHKeys(ctx, args[0])
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "FINGERPRINT\tTYPE\tCOMMENT\tCREATED\tSTATUS")
			for _, k := range keys {
				status := "active"
				if k.Revoked != nil {
					status = "revoked " + k.Revoked.Format(time.DateOnly)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Fingerprint, k.Type, k.Comment, k.Created.Format(time.DateOnly), status)
			}
			return tw.Flush()
		})
	}
	return []*cobra.Command{add, remove, list}
}
