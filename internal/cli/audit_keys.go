package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"depot/checkpoint"
)

// keysCmd groups the key commands: the audit signing key, and the
// key-encryption keys of encryption at rest (encryption.go).
func keysCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "generate and manage keys"}
	cmd.AddCommand(keysGenerateSigningCmd(e), keysGenerateCmd(e), keysStatusCmd(e), keysRotateCmd(e), keysEncryptExistingCmd(e))
	return cmd
}

func keysGenerateSigningCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "generate-signing FILE",
		Short: "write a new Ed25519 audit signing key to FILE (0600) and its public key to FILE.pub; print the public key",
		Args:  cobra.ExactArgs(1),
	}
	name := cmd.Flags().String("name", checkpoint.DefaultKeyName, "key name, also the origin line of every checkpoint (e.g. audit.example.org/depot)")
	cmd.RunE = func(_ *cobra.Command, args []string) error {
		pub, err := checkpoint.WriteKeyFiles(args[0], *name)
		if err != nil {
			return usageErr("cannot write the key: %v", err)
		}
		fmt.Fprintf(e.stderr, "signing key written to %s (keep it secret: services signs checkpoints with it)\n", args[0])
		fmt.Fprintf(e.stderr, "public key written to %s.pub (give it to auditors; keep a copy away from the database)\n", args[0])
		fmt.Fprintln(e.stdout, pub)
		return nil
	}
	return cmd
}
