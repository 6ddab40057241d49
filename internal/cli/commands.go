package cli

import "github.com/spf13/cobra"

// commands lists every subcommand of depot, one constructor per file.
func commands(e *env) []*cobra.Command {
	return []*cobra.Command{
		serveCmd(e), devCmd(e), migrateCmd(e), usersCmd(e), cohortsCmd(e), tokensCmd(e),
		auditCmd(e), certsCmd(e), backupCmd(e), restoreCmd(e), uploadCmd(e), downloadCmd(e), lsCmd(e), rmCmd(e), cleanupCmd(e), verifyCmd(e), reportCmd(e), jobsCmd(e),
		versionsCmd(e), restoreVersionCmd(e), undeleteCmd(e), purgeCmd(e), holdCmd(e), scanCmd(e),
		loginCmd(e), logoutCmd(e),
		keysCmd(e),
	}
}
