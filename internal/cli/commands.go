package cli

import "github.com/spf13/cobra"

func init() {
	extraCommands = append(extraCommands,
		func(e *env) *cobra.Command { return migrateCmd(e) },
		func(e *env) *cobra.Command { return usersCmd(e) },
		func(e *env) *cobra.Command { return cohortsCmd(e) },
		func(e *env) *cobra.Command { return tokensCmd(e) },
		func(e *env) *cobra.Command { return auditCmd(e) },
	)
}
