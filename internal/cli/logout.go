package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"depot/client"
	"depot/internal/config"
)

// logoutCmd is depot logout: depot records the sign-out, the identity
// provider revokes the refresh token (RFC 7009, when it offers revocation),
// and the stored login is deleted, whatever of the first two failed.
func logoutCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "sign out: revoke the stored login at the identity provider and delete it",
		Args:  cobra.NoArgs,
	}
	bind(cmd, config.URL)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		base, tokens, err := storedLogin(settings{e: e, cmd: cmd}.get(config.URL))
		if err != nil {
			return err
		}
		if tokens == nil {
			if base == "" {
				return usageErr("set DEPOT_URL (or --url): which depot to sign out of")
			}
			fmt.Fprintf(e.stdout, "Not signed in to %s.\n", base)
			return nil
		}
		l, _, err := tokens.Store.Get(base)
		if err != nil {
			return err
		}
		revoked, lerr := client.New(base, "").Logout(cmd.Context(), l)
		if err := tokens.Store.Delete(base); err != nil {
			return fmt.Errorf("deleting the stored login: %w", err)
		}
		switch {
		case revoked:
			fmt.Fprintf(e.stdout, "Signed out of %s: the identity provider revoked the login, and it is deleted here.\n", base)
		default:
			fmt.Fprintf(e.stdout, "Signed out of %s: the login is deleted here; the identity provider did not revoke it (it ends when it expires there).\n", base)
		}
		if lerr != nil {
			fmt.Fprintf(e.stderr, "depot: warning: %s\n", strings.ReplaceAll(lerr.Error(), "\n", "; "))
		}
		return nil
	}
	return cmd
}
