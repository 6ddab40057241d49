package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"depot/client"
	"depot/internal/config"
)

// loginCmd is depot login: single sign-on from the command line with the
// device flow (RFC 8628). The login is kept in the user's configuration
// directory (0600) and used by the other client commands when no
// DEPOT_TOKEN is given; it is renewed with its refresh token as needed.
func loginCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "login",
		Short: "sign in through your institution's identity provider (device flow); upload, download, ls and rm then need no token",
		Args:  cobra.NoArgs,
	}
	bind(cmd, config.URL)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		base := strings.TrimSuffix(settings{e: e, cmd: cmd}.get(config.URL), "/")
		if base == "" {
			return usageErr("set DEPOT_URL (or --url) to the address of depot's web tier")
		}
		store, err := client.DefaultLoginStore()
		if err != nil {
			return err
		}
		c := client.New(base, "")
		l, err := c.DeviceLogin(cmd.Context(), func(uri, code, complete string) {
			fmt.Fprintf(e.stdout, "To sign in, open %s in a browser and enter the code %s\n", uri, code)
			if complete != "" {
				fmt.Fprintf(e.stdout, "(or open %s)\n", complete)
			}
			fmt.Fprintln(e.stdout, "Waiting for you to approve the sign-in…")
		})
		if err != nil {
			return err
		}
		if err := store.Put(l); err != nil {
			return fmt.Errorf("keeping the login: %w", err)
		}
		fmt.Fprintf(e.stdout, "Signed in to %s as %s. The login is kept in %s.\n", base, l.User, store.Path)
		return nil
	}
	return cmd
}

// storedLogin returns the depot URL and the token source of a stored login:
// the login of base, or, when base is empty and exactly one login is
// stored, that one. No login gives a nil source.
func storedLogin(base string) (string, *client.LoginTokens, error) {
	store, err := client.DefaultLoginStore()
	if err != nil {
		return base, nil, nil
	}
	all, err := store.All()
	if err != nil {
		return base, nil, err
	}
	base = strings.TrimSuffix(base, "/")
	if base == "" && len(all) == 1 {
		for u := range all {
			base = u
		}
	}
	if _, ok := all[base]; !ok || base == "" {
		return base, nil, nil
	}
	return base, &client.LoginTokens{Store: store, URL: base}, nil
}
